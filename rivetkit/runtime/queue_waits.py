"""Small helpers of the queue's receives and waits: name filters and shared-future waits."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection
from typing import Any

__all__ = ["name_filter", "wait_future"]


def name_filter(names: Collection[str] | str | None) -> Collection[str] | None:
    """A name filter; None (and an empty collection, as in RivetKit) means every name."""
    if names is None:
        return None
    if isinstance(names, str):
        return frozenset((names,))
    wanted = frozenset(names)
    return wanted or None


if sys.version_info >= (3, 11):

    async def wait_future(future: asyncio.Future[Any], timeout: float | None) -> Any:
        """Await ``future`` without cancelling it (it may be shared), up to ``timeout``;
        ``asyncio.TimeoutError`` then. No task is created."""
        if timeout is None:
            return await asyncio.shield(future)
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

else:  # pragma: no cover - Python 3.10

    async def wait_future(future: asyncio.Future[Any], timeout: float | None) -> Any:
        """Await ``future`` without cancelling it (it may be shared), up to ``timeout``;
        ``asyncio.TimeoutError`` then."""
        return await asyncio.wait_for(asyncio.shield(future), timeout)

"""Time limits of client calls: ``Client(timeout=...)`` and the per-call ``timeout=``.

A call that does not finish within its limit is cancelled (the request is abandoned; an
action the server already received may still run) and raises ``ActorError`` group
``client``, code ``timeout``, whose message names the call, e.g. ``action
counter.increment(['k']) did not finish within 2 s``, and whose ``metadata`` is
``{"operation": <that name>, "timeout": <seconds>}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from rivetkit.client.errors import ActorError
from rivetkit.client.query import ActorQuery, ForIdQuery

__all__ = ["describe_target", "format_seconds", "target_args", "timeout_error", "within"]

T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    """``2`` for 2.0, ``0.5`` for 0.5."""
    return f"{seconds:g}"


def target_args(query: ActorQuery) -> str:
    """``['k']`` for a key, ``id=...`` for an actor id."""
    if isinstance(query, ForIdQuery):
        return f"id={query.actor_id}"
    return repr(list(query.key))


def describe_target(query: ActorQuery) -> str:
    """``counter(['k'])`` for a key, ``counter(id=...)`` for an actor id."""
    return f"{query.name}({target_args(query)})"


def timeout_error(operation: str, seconds: float) -> ActorError:
    """The ``client.timeout`` error of ``operation`` after ``seconds``."""
    return ActorError.client(
        "timeout",
        f"{operation} did not finish within {format_seconds(seconds)} s",
        metadata={"operation": operation, "timeout": seconds},
    )


async def within(awaitable: Awaitable[T], seconds: float | None, operation: str) -> T:
    """Await ``awaitable``, cancelling it after ``seconds`` (None: no limit) with
    :func:`timeout_error`. A TimeoutError raised by the awaitable itself passes through."""
    if seconds is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        # Let the operation unwind (its finally blocks) before reporting.
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            return task.result()  # it finished while being cancelled
        raise timeout_error(operation, seconds)
    return task.result()

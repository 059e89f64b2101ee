"""Going on, in a task, with a coroutine started by hand outside any.

The direct roads (:mod:`rivetkit.server.http_direct`, :mod:`rivetkit.drivers.engine.
tunnel_direct`) run a sync action's coroutine within a protocol callback, with no task; when
it suspends all the same, a task runs :func:`resumed` to carry it on from what it yielded.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resumed"]


@types.coroutine
def _rest(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """Go on with ``coro`` from what it ``yielded``: each value sent or thrown into the task
    goes to it, until it returns."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


async def resumed(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """A task's coroutine going on with ``coro``, which yielded ``yielded`` when it was
    first stepped by hand."""
    await _rest(coro, yielded)

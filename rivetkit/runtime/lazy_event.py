"""A lighter :class:`asyncio.Event` for objects kept per awake actor.

An ``asyncio.Event`` allocates its waiter deque up front (about 750 bytes with its first
block), and most per-actor events are never waited on. :class:`LazyEvent` is an
``asyncio.Event`` (same API and behaviour, ``isinstance`` holds) whose deque is made on the
first :meth:`wait`. It relies on the ``_waiters``/``_value`` layout that ``asyncio.Event``
has had unchanged from Python 3.10 to 3.13.

:class:`AbortSignal` goes one step further for an actor's abort signal, which most actors
never read: the event is made on the first read, already set if the actor is stopping.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Literal

from rivetkit.runtime.phase import Phase

__all__ = ["AbortSignal", "LazyEvent"]

_NO_WAITERS: Any = ()  # set() iterates it; wait() replaces it with a deque


class LazyEvent(asyncio.Event):
    """``asyncio.Event`` without a waiter deque until someone waits."""

    def __init__(self) -> None:  # no super().__init__: it would build the deque
        self._waiters = _NO_WAITERS
        self._value = False

    async def wait(self) -> Literal[True]:
        if self._value:
            return True
        if self._waiters is _NO_WAITERS:
            self._waiters = collections.deque()
        return await super().wait()


class AbortSignal:
    """``ActorInstance.abort_event``: a :class:`LazyEvent` kept in the instance's ``_abort``
    once read (no ``_abort`` until then), set from the moment the instance begins to stop
    (its phase is then past ``STARTED``; ``stop`` sets it too)."""

    __slots__ = ()

    def __get__(self, instance: Any, owner: Any = None) -> asyncio.Event:
        if instance is None:
            return self  # type: ignore[return-value]
        event: asyncio.Event | None = getattr(instance, "_abort", None)
        if event is None:
            event = instance._abort = LazyEvent()
            if instance.phase >= Phase.SLEEP_GRACE:
                event.set()
        return event

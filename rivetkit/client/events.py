"""The event side of an :class:`~rivetkit.client.connection.ActorConnection`.

:class:`EventListeners` holds one connection's subscriptions: callbacks by event name
(``conn.on``/``conn.once``) and the :class:`EventStream` iterators (``conn.events()``). The
first listener of an event name subscribes to it on the server and removing the last
unsubscribes; the connection tells the listeners about incoming events with
:meth:`EventListeners.dispatch`. :func:`call_callback` runs a user callback the way every
connection callback runs: plain functions are called, coroutines become tasks, exceptions
are logged, never raised into the connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from rivetkit.client.errors import ActorError

__all__ = ["ActorEvent", "EventListeners", "EventStream", "call_callback"]

log = logging.getLogger("rivetkit.client")


class ActorEvent(NamedTuple):
    """An event from the actor: its ``name`` and its ``args`` (a list)."""

    name: str
    args: list[Any]


def call_callback(callback: Callable[..., Any], tasks: set[asyncio.Task[Any]], *args: Any) -> None:
    """Call a sync or async callback; coroutines become tasks kept in ``tasks``.

    Exceptions, raised or from the task, are logged.
    """
    try:
        result = callback(*args)
    except Exception:
        log.exception("error in connection callback %r", callback)
        return
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        tasks.add(task)
        task.add_done_callback(_callback_done(tasks))


def _callback_done(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("error in async connection callback", exc_info=task.exception())

    return done


class _Listener:
    __slots__ = ("callback", "once")

    def __init__(self, callback: Callable[..., Any], once: bool) -> None:
        self.callback = callback
        self.once = once


class _StreamEnd:
    __slots__ = ("error",)

    def __init__(self, error: ActorError | None) -> None:
        self.error = error


class EventListeners:
    """One connection's event listeners and event streams.

    ``send_subscription(name, subscribe)`` is called when an event name gains its first
    listener (``True``) or loses its last (``False``); ``tasks`` keeps the tasks of async
    callbacks alive.
    """

    def __init__(
        self,
        send_subscription: Callable[[str, bool], None],
        tasks: set[asyncio.Task[Any]],
    ) -> None:
        self._send_subscription = send_subscription
        self._tasks = tasks
        self._listeners: dict[str, list[_Listener]] = {}
        # Streams made with no names receive every event; all streams end with the connection.
        self._catch_all: set[EventStream] = set()
        self._streams: set[EventStream] = set()

    def names(self) -> Iterable[str]:
        """The event names with at least one listener (to subscribe to after each ``Init``)."""
        return self._listeners.keys()

    def add(self, name: str, callback: Callable[..., Any], once: bool) -> Callable[[], None]:
        """Add ``callback`` for event ``name`` (removed after one event when ``once``).

        Returns the function that removes it.
        """
        if not isinstance(name, str):
            raise TypeError(f"event name must be a str, not {type(name).__name__}")
        if not callable(callback):
            raise TypeError("callback must be callable")
        listener = _Listener(callback, once)
        listeners = self._listeners.get(name)
        if listeners is None:
            self._listeners[name] = [listener]
            self._send_subscription(name, True)
        else:
            listeners.append(listener)

        def unsubscribe() -> None:
            self._remove(name, listener)

        return unsubscribe

    def _remove(self, name: str, listener: _Listener) -> None:
        listeners = self._listeners.get(name)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[name]
            self._send_subscription(name, False)

    def dispatch(self, name: str, args: Any) -> None:
        """Deliver event ``name`` with ``args`` to its listeners and the catch-all streams."""
        if not isinstance(args, list):
            args = [args]
        listeners = self._listeners.get(name)
        if listeners:
            for listener in list(listeners):
                if listener.once:
                    self._remove(name, listener)
                call_callback(listener.callback, self._tasks, *args)
        for stream in list(self._catch_all):
            stream._push(ActorEvent(name, list(args)))

    def end_streams(self, error: ActorError | None) -> None:
        """End every stream: with ``error`` raised to its reader, or plainly when None."""
        for stream in list(self._streams):
            stream._end(error)


class EventStream:
    """Events as an async iterator of :class:`ActorEvent` (``async for name, args in ...``).

    Made by :meth:`ActorConnection.events`. It subscribes to its event names when made (so
    nothing sent after that is missed) and unsubscribes on :meth:`aclose` (or when used as
    ``async with``). It ends when the connection is closed, and raises the error that ended
    the connection when it gave up. Events are buffered without bound until read.
    """

    def __init__(self, listeners: EventListeners, names: tuple[str, ...]) -> None:
        self._listeners = listeners
        self._names = names
        self._queue: asyncio.Queue[ActorEvent | _StreamEnd] = asyncio.Queue()
        self._unsubscribers: list[Callable[[], None]] = []
        self._done = False
        if names:
            for name in names:
                self._unsubscribers.append(listeners.add(name, self._push_args(name), False))
        else:
            listeners._catch_all.add(self)
            self._unsubscribers.append(lambda: listeners._catch_all.discard(self))
        listeners._streams.add(self)

    def _push_args(self, name: str) -> Callable[..., None]:
        def push(*args: Any) -> None:
            self._queue.put_nowait(ActorEvent(name, list(args)))

        return push

    def _push(self, event: ActorEvent) -> None:
        self._queue.put_nowait(event)

    def _end(self, error: ActorError | None) -> None:
        self._unsubscribe()
        self._queue.put_nowait(_StreamEnd(error))

    def _unsubscribe(self) -> None:
        unsubscribers, self._unsubscribers = self._unsubscribers, []
        for unsubscribe in unsubscribers:
            unsubscribe()
        self._listeners._streams.discard(self)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ActorEvent:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _StreamEnd):
            self._done = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop: unsubscribe; iteration ends after the events already buffered."""
        if not self._done:
            self._end(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

"""``ActorConnection``: a WebSocket connection to one actor (``/connect``), as
``rivetkit@2.3.19``'s ``ActorConn`` behaves (spec ``client-protocol.md`` §2).

Protocol. The socket opens on the gateway URL with path ``/connect`` (``ws://``), offering
the subprotocols ``rivet``, ``rivet_encoding.<enc>`` and ``rivet_conn_params.<params>``. The
server's ``Init`` makes the connection *connected*; then the client sends a
``SubscriptionRequest`` for every event it has listeners for and flushes the actions queued
while it was not connected. Actions carry ids counting from 0 and are answered by id
(``ActionResponse``, or ``Error`` with ``actionId``).

Reconnect. When the socket of a connected connection closes (anything but :meth:`close`),
the actions in flight on it are rejected (``client.connection_lost``, or the
``group.code`` of a structured close reason, which also goes to the ``on_error``
callbacks), and the connection reconnects at once, then with backoff (250 ms doubling up to
30 s) for as long as it takes. Subscriptions are sent again after each ``Init``; actions
called while disconnected wait in a queue and are sent once connected.

Errors before ``Init`` (an ``Error`` message without ``actionId``, a structured close
reason, or an HTTP error answering the upgrade) reject the attempt. On a ``get`` or
``get_or_create`` target, actor lifecycle errors (``actor/not_found``, ``starting``, ...)
and transient gateway errors are retried with the same backoff; any other error from the
server ends the connection: status ``idle``, ``on_error`` callbacks called, waiting and
queued actions rejected with it (network failures are always retried). After ``Init``, an
``Error`` without ``actionId`` rejects the actions in flight and goes to ``on_error``; the
socket stays open.

Status (``conn.status``): ``idle`` (not started, given up, or closed), ``connecting``,
``connected``, ``disconnected`` (lost, about to reconnect).

Callbacks (``on``, ``once``, ``on_error``, ``on_open``, ``on_close``,
``on_status_change``) may be plain functions or coroutine functions; coroutines run as
tasks; exceptions are logged, never raised into the connection. Event callbacks receive
the event's args spread out (``callback(*args)``). Everything here must be used from the
event loop the connection was opened in.

This module holds the connection itself (status, the reconnect loop, the socket's reader and
writer, actions and callbacks); :mod:`rivetkit.client.handshake` opens one socket up to
``Init`` and :mod:`rivetkit.client.events` holds the event listeners and streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar, overload

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from rivetkit.client.backoff import CONNECT_BACKOFF, Backoff
from rivetkit.client.config import check_timeout
from rivetkit.client.errors import CLIENT_GROUP, ActorError
from rivetkit.client.events import ActorEvent, EventListeners, EventStream, call_callback
from rivetkit.client.guard import guard_client_method
from rivetkit.client.handshake import CLOSE_TIMEOUT, OpenFailure, close_error, error_of, open_socket
from rivetkit.client.http import HttpSession
from rivetkit.client.query import ActorQuery
from rivetkit.client.timeouts import describe_target, format_seconds, target_args, within
from rivetkit.client.typed import action_name_of, wire_args
from rivetkit.client.urls import connect_subprotocols
from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Error,
    Event,
    Init,
    SubscriptionRequest,
    ToServer,
)
from rivetkit.protocol.messages import decode_to_client, encode_to_server

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ActorConnection", "ActorEvent", "ConnStatus", "EventStream"]

log = logging.getLogger("rivetkit.client")

R = TypeVar("R")
P = ParamSpec("P")

ConnStatus = Literal["idle", "connecting", "connected", "disconnected"]


class ActorConnection:
    """A live connection to an actor; made by :meth:`ActorHandle.connect`.

    ``await conn`` (or ``async with conn``) waits until connected; ``await conn.increment(1)``
    or ``await conn.action("increment", 1)`` calls an action over the socket;
    ``conn.on("newCount", callback)`` subscribes; ``async for name, args in conn.events()``
    iterates; ``await conn.close()`` ends it. See the module docstring for the protocol,
    reconnects and errors.
    """

    def __init__(
        self,
        session: HttpSession,
        query: ActorQuery,
        params: Any,
        *,
        open_timeout: float | None = 30.0,
        registry: set[ActorConnection] | None = None,
    ) -> None:
        self._session = session
        self._query = query
        self._params = params
        self._encoding = session.config.encoding
        self._open_timeout = open_timeout
        self._registry = registry
        # Check the params now: a bad value is the caller's error, not a connect failure.
        self._subprotocols = [Subprotocol(p) for p in connect_subprotocols(self._encoding, params)]

        self._status: ConnStatus = "idle"
        self._disposed = False
        self._failure: ActorError | None = None
        self._last_error: ActorError | None = None
        self._attempts = 0  # failed attempts to open since the last Init
        self._actor_id: str | None = None
        self._connection_id: str | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._outbox: deque[str | bytes] = deque()
        self._outbox_ready = asyncio.Event()

        self._next_id = 0
        # Actions sent on the current socket, and actions waiting for a connection.
        self._sent: dict[int, asyncio.Future[Any]] = {}
        self._queued: dict[int, tuple[str | bytes, asyncio.Future[Any]]] = {}
        self._open_waiters: set[asyncio.Future[None]] = set()

        self._error_handlers: list[Callable[[ActorError], Any]] = []
        self._open_handlers: list[Callable[[], Any]] = []
        self._close_handlers: list[Callable[[], Any]] = []
        self._status_handlers: list[Callable[[ConnStatus], Any]] = []
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._events = EventListeners(self._send_subscription, self._callback_tasks)

    # MARK: properties

    @property
    def status(self) -> ConnStatus:
        """``idle``, ``connecting``, ``connected`` or ``disconnected``."""
        return self._status

    @property
    def is_connected(self) -> bool:
        """True while connected (``Init`` received on the current socket)."""
        return self._status == "connected"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._disposed

    @property
    def actor_id(self) -> str | None:
        """The actor id from the last ``Init`` (None before the first)."""
        return self._actor_id

    @property
    def connection_id(self) -> str | None:
        """The connection id from the last ``Init`` (None before the first)."""
        return self._connection_id

    conn_id = connection_id

    @property
    def error(self) -> ActorError | None:
        """The error the connection gave up on, if it did."""
        return self._failure

    def __repr__(self) -> str:
        return f"<ActorConnection {self._query!r} {self._status} id={self._connection_id}>"

    # MARK: opening

    def start(self) -> None:
        """Start connecting in the background (done by ``handle.connect()``)."""
        if self._task is not None or self._disposed:
            return
        loop = asyncio.get_running_loop()
        if self._registry is not None:
            self._registry.add(self)
        self._set_status("connecting")
        self._task = loop.create_task(self._run())

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until connected; raise the error the connection gave up on, if any.

        Raises ``client.connection_open_failed`` after ``timeout`` seconds (the connection
        keeps trying), ``client.connection_disposed`` once closed.
        """
        if self._status == "connected":
            return
        self._check_usable()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._open_waiters.add(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            last = self._last_error
            attempts = self._attempts
            detail = (
                f" ({attempts} failed attempt{'s' if attempts != 1 else ''}; last: {last.message})"
                if last is not None
                else ""
            )
            seconds = format_seconds(timeout or 0.0)
            raise ActorError.client(
                "connection_open_failed",
                f"connection to {describe_target(self._query)} at {self._session.endpoint} "
                f"not open after {seconds} s{detail}",
                metadata={
                    "endpoint": self._session.endpoint,
                    "operation": "WebSocket connect",
                    "attempts": attempts,
                    "timeout": timeout,
                },
            ) from last
        finally:
            self._open_waiters.discard(waiter)
            if not waiter.done():
                waiter.cancel()

    async def _open(self) -> Self:
        self.start()
        try:
            await self.wait_open(self._open_timeout)
        except BaseException:
            await self.close()
            raise
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        """Wait for ``Init`` up to the open timeout; on failure close and raise."""
        return self._open().__await__()

    async def __aenter__(self) -> Self:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_usable(self) -> None:
        if self._disposed:
            raise ActorError.client("connection_disposed", "the connection is closed")
        if self._failure is not None:
            raise self._failure

    # MARK: the connect loop

    async def _run(self) -> None:
        backoff = Backoff(*CONNECT_BACKOFF)
        session = self._session
        try:
            while not self._disposed:
                self._set_status("connecting")
                try:
                    ws, init = await open_socket(
                        session, self._query, self._subprotocols, self._handle
                    )
                except OpenFailure as failure:
                    self._last_error = failure.error
                    self._attempts += 1
                    if not failure.retry:
                        self._give_up(failure.error)
                        return
                    delay = backoff.next_delay()
                    log.warning(
                        "%s: connect attempt %d to %s failed (%s); retrying in %.2f s",
                        session.endpoint,
                        self._attempts,
                        describe_target(self._query),
                        failure.error.message,
                        delay,
                    )
                    await session.sleep(delay)
                    continue
                self._attempts = 0
                self._actor_id = init.actor_id
                self._connection_id = init.connection_id
                backoff.reset()
                await self._serve(ws)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: never leave waiters hanging
            log.exception("connection loop failed")
            self._give_up(ActorError.client("connection_lost", f"connection loop failed: {exc!r}"))

    async def _serve(self, ws: ClientConnection) -> None:
        """Run a connected socket until it closes, then reject what was in flight on it."""
        self._ws = ws
        self._outbox.clear()
        self._writer = asyncio.get_running_loop().create_task(self._write(ws))
        self._set_status("connected")
        for waiter in list(self._open_waiters):
            if not waiter.done():
                waiter.set_result(None)
        # Subscriptions first, then the actions queued while not connected.
        for name in self._events.names():
            self._enqueue(ToServer(SubscriptionRequest(event_name=name, subscribe=True)))
        queued, self._queued = self._queued, {}
        for action_id, (data, future) in queued.items():
            if not future.done():
                self._sent[action_id] = future
                self._outbox.append(data)
        self._outbox_ready.set()
        closed: ConnectionClosed | None = None
        try:
            async for raw in ws:
                try:
                    message = decode_to_client(raw, self._encoding)
                except ProtocolError as exc:
                    log.error("undecodable message from the server: %s", exc)
                    continue
                self._handle(message.body)
        except ConnectionClosed as exc:
            closed = exc
        finally:
            self._ws = None
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.cancel()
        if self._disposed:
            return
        if closed is None:  # `async for` ended on a normal close
            closed = ws.protocol.close_exc
        error = close_error(closed)
        self._set_status("disconnected")
        self._reject_sent(error)
        if error.group != CLIENT_GROUP:
            self._dispatch_error(error)
        log.info("connection to %r lost (%s); reconnecting", self._query, error)

    async def _write(self, ws: ClientConnection) -> None:
        outbox = self._outbox
        ready = self._outbox_ready
        try:
            while True:
                while outbox:
                    await ws.send(outbox.popleft())
                ready.clear()
                await ready.wait()
        except ConnectionClosed:
            pass  # the reader sees the close and rejects what was in flight

    def _enqueue(self, message: ToServer) -> None:
        self._outbox.append(encode_to_server(message, self._encoding))
        self._outbox_ready.set()

    # MARK: incoming messages

    def _handle(self, body: Any) -> None:
        if isinstance(body, ActionResponse):
            future = self._sent.pop(body.id, None)
            if future is None:
                log.warning("response to unknown action id %d ignored", body.id)
            elif not future.done():
                future.set_result(body.output)
        elif isinstance(body, Event):
            self._events.dispatch(body.name, body.args)
        elif isinstance(body, Error):
            error = error_of(body)
            if body.action_id is not None:
                future = self._sent.pop(body.action_id, None)
                if future is None:
                    log.warning("error for unknown action id %d ignored", body.action_id)
                elif not future.done():
                    future.set_exception(error)
            else:
                log.warning("connection error: %s", error)
                self._reject_sent(error)
                self._dispatch_error(error)
        elif isinstance(body, Init):
            self._actor_id = body.actor_id
            self._connection_id = body.connection_id

    def _dispatch_error(self, error: ActorError) -> None:
        for handler in list(self._error_handlers):
            call_callback(handler, self._callback_tasks, error)

    def _reject_sent(self, error: ActorError) -> None:
        sent, self._sent = self._sent, {}
        for future in sent.values():
            if not future.done():
                future.set_exception(error)

    def _set_status(self, status: ConnStatus) -> None:
        previous = self._status
        if previous == status:
            return
        self._status = status
        for handler in list(self._status_handlers):
            call_callback(handler, self._callback_tasks, status)
        if status == "connected":
            for open_handler in list(self._open_handlers):
                call_callback(open_handler, self._callback_tasks)
        elif previous == "connected":
            for close_handler in list(self._close_handlers):
                call_callback(close_handler, self._callback_tasks)

    def _give_up(self, error: ActorError) -> None:
        log.warning("connection to %r failed: %s", self._query, error)
        self._failure = error
        self._set_status("idle")
        self._fail_all(error)
        self._dispatch_error(error)

    def _fail_all(self, error: ActorError) -> None:
        self._reject_sent(error)
        queued, self._queued = self._queued, {}
        for _, future in queued.values():
            if not future.done():
                future.set_exception(error)
        for waiter in list(self._open_waiters):
            if not waiter.done():
                waiter.set_exception(error)
        self._events.end_streams(None if self._disposed else error)

    # MARK: actions

    async def action(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Call action ``name`` with ``args`` over the connection.

        Waits for the connection when not connected. Raises the server's error, or
        ``client.connection_lost`` when the socket closed with the action in flight (it is
        not retried: it may have run). ``timeout``: seconds before giving up with
        ``client.timeout`` (None: the client's ``timeout``); the connection stays open.
        """
        if not isinstance(name, str):
            raise TypeError(f"action name must be a str, not {type(name).__name__}")
        self._check_usable()
        limit = check_timeout(timeout) if timeout is not None else self._session.config.timeout
        operation = f"action {self._query.name}.{name}({target_args(self._query)}) on a connection"
        return await within(self._action(name, args), limit, operation)

    async def _action(self, name: str, args: tuple[Any, ...]) -> Any:
        action_id = self._next_id
        request = ToServer(ActionRequest(id=action_id, name=name, args=list(args)))
        try:
            data = encode_to_server(request, self._encoding)
        except EncodeError as exc:
            raise TypeError(f"action arguments cannot be encoded: {exc}") from None
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._status == "connected" and self._ws is not None:
            self._sent[action_id] = future
            self._outbox.append(data)
            self._outbox_ready.set()
        else:
            self._queued[action_id] = (data, future)
        try:
            return await future
        finally:
            self._sent.pop(action_id, None)
            self._queued.pop(action_id, None)

    @overload
    async def call(
        self,
        action: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...
    @overload
    async def call(
        self, action: Callable[Concatenate[Any, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    async def call(self, action: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call the action defined by the function ``action`` over the connection:
        ``await conn.call(increment, 5)`` (typed as :meth:`ActorHandle.call`; the time limit
        is the client's ``timeout``).

        :raises TypeError: when ``action`` is not a registered action function.
        """
        return await self.action(action_name_of(action), *wire_args(action, args, kwargs))

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        guard_client_method(self, name)

        async def call(*args: Any, timeout: float | None = None) -> Any:
            return await self.action(name, *args, timeout=timeout)

        call.__name__ = call.__qualname__ = name
        return call

    # MARK: events

    def _send_subscription(self, name: str, subscribe: bool) -> None:
        # Ephemeral, as in the TypeScript client: not queued while disconnected, since every
        # subscription is sent again after Init.
        if self._status == "connected" and self._ws is not None and not self._disposed:
            self._enqueue(ToServer(SubscriptionRequest(event_name=name, subscribe=subscribe)))

    def on(self, event: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback(*args)`` on every event ``event``; returns the unsubscribe function.

        The first listener of an event subscribes to it; removing the last unsubscribes.
        """
        return self._events.add(event, callback, False)

    def once(self, event: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Like :meth:`on`, for the next event only."""
        return self._events.add(event, callback, True)

    def events(self, *names: str) -> EventStream:
        """An :class:`EventStream` of the events ``names`` (subscribed for its lifetime).

        With no names it yields every event the connection receives, which are only those
        subscribed to by :meth:`on` or other streams (the server sends subscribed events
        only).
        """
        return EventStream(self._events, names)

    def iter_events(self, name: str | None = None) -> EventStream:
        """``events(name)``, or ``events()`` when ``name`` is None."""
        return EventStream(self._events, () if name is None else (name,))

    async def next_event(self, name: str, timeout: float | None = None) -> list[Any]:
        """Wait for the next event ``name`` and return its args.

        ``timeout``: seconds before ``client.timeout`` (None, the default: wait as long as
        it takes; the client's ``timeout`` does not apply to waiting for events).
        """
        limit = check_timeout(timeout)
        operation = f"event {name!r} from {describe_target(self._query)}"
        async with self.events(name) as stream:
            event = await within(stream.__anext__(), limit, f"waiting for {operation}")
        return event.args

    def _add_handler(self, handlers: list[Any], callback: Any) -> Callable[[], None]:
        if not callable(callback):
            raise TypeError("callback must be callable")
        handlers.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                handlers.remove(callback)

        return remove

    def on_error(self, callback: Callable[[ActorError], Any]) -> Callable[[], None]:
        """Call ``callback(error)`` on connection-level errors; returns the remover."""
        return self._add_handler(self._error_handlers, callback)

    def on_open(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` each time the connection becomes connected."""
        return self._add_handler(self._open_handlers, callback)

    def on_close(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` each time a connected connection stops being connected."""
        return self._add_handler(self._close_handlers, callback)

    def on_status_change(self, callback: Callable[[ConnStatus], Any]) -> Callable[[], None]:
        """Call ``callback(status)`` on every status change."""
        return self._add_handler(self._status_handlers, callback)

    # MARK: closing

    async def aclose(self) -> None:
        """The same as :meth:`close` (the httpx habit)."""
        await self.close()

    async def close(self) -> None:
        """Close (``1000 "Disposed"``); pending actions raise ``client.connection_disposed``.

        Event streams end. Idempotent.
        """
        if self._disposed:
            return
        self._disposed = True
        if self._registry is not None:
            self._registry.discard(self)
        self._set_status("idle")
        self._fail_all(ActorError.client("connection_disposed", "the connection was closed"))
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "Disposed"), CLOSE_TIMEOUT)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

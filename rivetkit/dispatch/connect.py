"""The ``/connect`` WebSocket session: the actor-connect protocol (client protocol §2).

:class:`ConnSession` serves one ``/connect`` socket for :class:`~rivetkit.dispatch.router.
Dispatcher` (which accepts it, echoing the subprotocol ``rivet``): encoding from
``rivet_encoding.*`` (default json), params from ``rivet_conn_params.*`` (at most
:data:`MAX_CONN_PARAMS_SIZE` bytes of JSON); ``Init`` first; actions answered by id,
concurrently; subscriptions through the event's ``can_subscribe`` gate, a refusal closing the
socket with ``auth.forbidden``; events. A hibernatable session (see
:meth:`ConnSession.hibernate_with`) outlives its actor's sleep: the next message (or the
client's close) wakes the actor, whose restored connection takes the socket back before
handling it.

Also here, for the dispatcher and :mod:`rivetkit.dispatch.hibernation`: the parsers of the
subprotocols and connection params (from :mod:`rivetkit.dispatch.conn_params`, imported here
for them), the ``Error`` frame of
a failure (:func:`error_frame`) and the close reason of one (:func:`ws_reason`), and
:func:`close_left_conn`, which closes the connection of a client that left.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final

from rivetkit.dispatch.conn_params import (
    MAX_CONN_PARAMS_SIZE,
    conn_params_bytes,
    encoding_of,
    params_of,
    parse_subprotocols,
    ws_conn_params,
)
from rivetkit.dispatch.websocket import WebSocket
from rivetkit.errors import ProtocolError, RivetError, to_public
from rivetkit.metrics.server import SERVER_COUNTERS
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    Error,
    Event,
    Init,
    SubscriptionRequest,
    ToClient,
)
from rivetkit.protocol.messages import (
    action_request_from,
    decode_to_server,
    encode_action_response,
    encode_to_client,
)
from rivetkit.protocol.value_errors import invalid_output
from rivetkit.runtime.instance import Phase
from rivetkit.schemas import conn_params_of

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.runtime.connection import Connection, Hibernation
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "MAX_CONN_PARAMS_SIZE",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_FRAMES",
    "ConnSession",
    "close_left_conn",
    "conn_params_bytes",
    "encoding_of",
    "error_frame",
    "log_error",
    "outgoing_too_long",
    "params_of",
    "parse_subprotocols",
    "ws_conn_params",
    "ws_reason",
]

logger = logging.getLogger("rivetkit.dispatch")

#: Frames queued for one connection before it is dropped as too slow.
MAX_PENDING_FRAMES: Final = 65536
#: Bytes queued for one connection (frames its socket could not take at once) before it is
#: dropped as too slow: the embedded server's own sockets bound their buffer themselves
#: (``--ws-max-buffer``), this bounds the others (uvicorn's protocol, the engine tunnel).
MAX_PENDING_BYTES: Final = 16 * 1024 * 1024


def log_error(
    error: BaseException, instance: ActorInstance | None, what: str, *, traced: bool = False
) -> None:
    """Log an error on its way to a client: internal RivetErrors as a warning line, other
    exceptions with their traceback (unless ``traced``: the runtime logged it already)."""
    log: Any = instance.log if instance is not None else logger
    if isinstance(error, RivetError):
        if to_public(error) is not error:
            log.warning("%s failed: %s", what, error)
        return
    if not traced:
        log.error("%s failed", what, exc_info=error)


def outgoing_too_long(limit: int) -> RivetError:
    """The error of a reply over ``max_outgoing_message_size`` (``limit``)."""
    return RivetError(
        "message",
        "outgoing_too_long",
        f"Outgoing message too long (the limit is {limit} bytes)",
        metadata={"limit": limit},
    )


def ws_reason(error: BaseException) -> str:
    """The close reason (``group.code``) of a socket closed for ``error``, in its public form;
    ``actor.internal_error`` when that would not fit a close frame (123 bytes)."""
    public = to_public(error)
    reason = f"{public.group}.{public.code}"
    return reason if len(reason.encode()) <= 123 else "actor.internal_error"


def error_frame(error: BaseException, action_id: int | None, encoding: str) -> str | bytes:
    """The ``Error`` frame of ``error`` (public form; metadata dropped if unencodable)."""
    public = to_public(error)
    message = ToClient(
        Error(public.group, public.code, public.message, public.metadata, action_id, None)
    )
    try:
        return encode_to_client(message, encoding)
    except Exception:
        message = ToClient(Error(public.group, public.code, public.message, None, action_id, None))
        return encode_to_client(message, encoding)


async def close_left_conn(
    conn: Connection,
    actor_id: str,
    wake: Callable[[str], Awaitable[object]] | None,
    current: Callable[[], Connection | None],
) -> None:
    """Close ``conn`` (``on_disconnect``) after its client left. A hibernated connection is
    in no instance: ``wake`` (None: never) starts the actor, whose restore re-attaches the
    connection (``current()`` then gives it) or finds the socket gone and closes it itself."""
    owner = conn.owner
    active = (Phase.STARTED, Phase.SLEEP_GRACE)
    if owner is None or owner.phase not in active:
        if wake is None:
            return
        try:
            await wake(actor_id)
        except Exception as exc:
            logger.debug("actor %s not woken to close a connection: %r", actor_id, exc)
            return
        conn = current() or conn  # re-attached meanwhile?
        owner = conn.owner
        if conn.disconnected or owner is None or owner.phase not in active:
            return
    try:
        await owner.disconnect(conn, "connection closed")
    except Exception:
        owner.log.exception("closing a connection failed")


class _Resume:
    """Awaitable that runs a coroutine on from where its first step stopped (it yielded
    ``pending``), as if a task had run it from the start (``yield from`` by hand)."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self._coro
        pending = self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # thrown in by the task (a cancellation)
                try:
                    pending = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = coro.send(value)
                except StopIteration:
                    return


# encoding -> (event name, args, frame) of the last event encoded (see send_event).
_EVENT_FRAMES: dict[str, tuple[str, list[Any], str | bytes]] = {}


def _event_frame(name: str, args: list[Any], encoding: str) -> str | bytes:
    """The frame of the event ``name`` with ``args`` (by identity) in ``encoding``: the kept
    one, or encoded now and kept (raises what the encoding raised)."""
    cached = _EVENT_FRAMES.get(encoding)
    if cached is not None and cached[1] is args and cached[0] == name:
        return cached[2]
    frame = encode_to_client(ToClient(Event(name, args)), encoding)
    _EVENT_FRAMES[encoding] = (name, args, frame)
    return frame


class ConnSession:
    """One ``/connect`` WebSocket: the runtime's :class:`ConnTransport` for its connection.

    Every outgoing frame (Init, responses, errors, events) leaves in order, and the runtime
    never waits on the socket: a frame goes straight to the socket when it can take it at
    once (its ``send_nowait``, when it has one) and nothing is queued before it; otherwise
    into one queue drained by one writer task (started by the first such frame, or by the
    close: an idle socket has none).

    Actions run concurrently, one task each, in the order they arrived; a synchronous action
    runs inline instead (no task: it cannot interleave with anything), unless an action that
    arrived before it has not started yet.
    """

    __slots__ = (
        "_actor_id",
        "_busy",
        "_closing",
        "_dispatcher",
        "_done",
        "_hibernation",
        "_inline",
        "_instance",
        "_loop",
        "_max_in",
        "_max_out",
        "_next_task",
        "_out",
        "_out_bytes",
        "_send_now",
        "_tasks",
        "_unstarted",
        "_wakeup",
        "_writer",
        "_ws",
        "conn",
        "encoding",
    )

    def __init__(self, instance: ActorInstance, websocket: WebSocket, encoding: str) -> None:
        self._instance = instance
        self._ws = websocket
        self.encoding = encoding
        self._max_in = instance.options.max_incoming_message_size
        self._max_out = instance.options.max_outgoing_message_size
        # Frames waiting for the writer; made on the first frame that cannot go out at once
        # (an idle connection holds no deque: ~750 B each, 10,000 sockets in one process).
        self._out: deque[str | bytes] | None = None
        self._out_bytes = 0
        # The idle writer's wake-up (a bare future: lighter than an Event and its deque).
        self._wakeup: asyncio.Future[None] | None = None
        # The writer task, started by the first frame that must wait or by the close (an
        # idle connection whose frames all went out at once has no task).
        self._writer: asyncio.Task[None] | None = None
        self._closing: tuple[int, str] | None = None
        self._done = False
        self._busy = False  # the writer task is sending a frame
        self._send_now: Callable[[str | bytes], bool] | None = getattr(
            websocket, "send_nowait", None
        )
        # The running action tasks (asyncio keeps only weak references), by a counter.
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._next_task = 0
        self._unstarted = 0  # action tasks created that have not started yet
        self._loop = asyncio.get_running_loop()
        # Sync actions may run inline when the runtime would not await around them either.
        options = instance.options
        self._inline = (
            getattr(instance, "table", None) is not None
            and not options.serial
            and not options.durable_replies
            and instance.definition.hooks.on_before_action_response is None
        )
        self.conn: Connection | None = None
        # Hibernation (see hibernate_with): None for a socket that does not hibernate.
        self._dispatcher: Dispatcher | None = None
        self._actor_id = instance.actor_id
        self._hibernation: Hibernation | None = None

    def hibernate_with(
        self, dispatcher: Dispatcher, actor_id: str, hibernation: Hibernation
    ) -> None:
        """Make the connection hibernatable: the socket stays open while the actor sleeps;
        the next message wakes the actor, whose restored connection takes this socket back
        (through :meth:`Dispatcher.conn_alive`, which calls :meth:`attach`)."""
        self._dispatcher = dispatcher
        self._actor_id = actor_id
        self._hibernation = hibernation

    def attach(self, conn: Connection) -> None:
        """Become the transport of ``conn``, restored by a new instance after a sleep."""
        conn.transport = self
        self.conn = conn
        self._hibernation = conn.hibernation
        if conn.owner is not None:
            self._instance = conn.owner

    # -- ConnTransport ---------------------------------------------------------------------

    def send_event(self, name: str, args: list[Any]) -> None:
        """Queue the event (encoded now, so later changes to ``args`` do not leak in).

        A broadcast hands every connection the same ``args`` list: its frame is encoded once
        per encoding and reused (the last frame per encoding is kept, with a reference to its
        ``args`` so the identity check cannot be fooled by a recycled object).
        """
        if self._closing is not None:
            return
        try:
            frame = _event_frame(name, args, self.encoding)
        except Exception as exc:
            self._instance.log.warning("event %r dropped: it cannot be encoded (%s)", name, exc)
            return
        if len(frame) > self._max_out:
            self._instance.log.warning(
                "event %r dropped: %d bytes is over max_outgoing_message_size (%d)",
                name,
                len(frame),
                self._max_out,
            )
            return
        # _push's common case inline (a broadcast calls this once per subscriber).
        info = self._hibernation
        if info is not None:
            info.client_message_index = (info.client_message_index + 1) & 0xFFFF
        if not self._out and not self._busy:
            send_now = self._send_now
            if send_now is not None and send_now(frame):
                return
        self._queue(frame)

    @staticmethod
    def send_event_to_all(transports: list[Any], name: str, args: list[Any]) -> None:
        """:meth:`send_event` on each of ``transports`` (a broadcast, see
        :meth:`rivetkit.runtime.conns.ActorConns.broadcast`), with a session's common case
        inline: open, nothing queued, the frame (encoded once per encoding) fits. Any other
        case, and any other transport, goes through its own ``send_event``."""
        encoding = None
        frame: str | bytes | None = None
        for session in transports:
            if (
                type(session) is not ConnSession
                or session._closing is not None
                or session._out
                or session._busy
                or session._send_now is None
            ):
                session.send_event(name, args)
                continue
            if session.encoding != encoding:
                encoding = session.encoding
                try:
                    frame = _event_frame(name, args, encoding)
                except Exception:
                    frame = None  # send_event reports it
            if frame is None or len(frame) > session._max_out:
                session.send_event(name, args)  # dropped there, with its warning
                continue
            info = session._hibernation
            if info is not None:
                info.client_message_index = (info.client_message_index + 1) & 0xFFFF
            if not session._send_now(frame):
                session._queue(frame)

    def close(self, reason: str | None) -> None:
        """Close the socket after the frames already queued (the runtime closed the conn)."""
        self._close_later(1000, (reason or "")[:120])

    # -- the session -----------------------------------------------------------------------

    def _push(self, frame: str | bytes) -> None:
        if self._closing is not None:
            return
        info = self._hibernation
        if info is not None:
            info.client_message_index = (info.client_message_index + 1) & 0xFFFF
        if not self._out and not self._busy:
            send_now = self._send_now
            if send_now is not None and send_now(frame):
                return
        self._queue(frame)

    def _queue(self, frame: str | bytes) -> None:
        """Queue ``frame`` for the writer task (it could not go out at once)."""
        out = self._out
        if out is None:
            out = self._out = deque()
        out.append(frame)
        self._out_bytes += len(frame)
        if len(out) > MAX_PENDING_FRAMES or self._out_bytes > MAX_PENDING_BYTES:
            out.clear()
            self._out_bytes = 0
            SERVER_COUNTERS.slow_clients_disconnected += 1
            self._instance.log.warning("a connection reads too slowly; closing it")
            self._close_later(1008, "ws.send_buffer_full")
        self._wake()

    def _wake(self) -> None:
        if self._writer is None:
            self._writer = self._loop.create_task(self._write_loop())
            return
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    def _close_later(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
            self._wake()

    def _fail(self, error: BaseException, action_id: int | None = None) -> None:
        """A connection-level error: an ``Error`` frame, then a close with ``group.code``."""
        if self._closing is not None:
            return
        self._push(error_frame(error, action_id, self.encoding))
        self._close_later(1011, ws_reason(error))

    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                out = self._out
                while out:
                    self._busy = True
                    frame = out.popleft()
                    self._out_bytes -= len(frame)
                    await ws.send(frame)
                    self._busy = False
                closing = self._closing
                if closing is not None:
                    await ws.close(*closing)
                    return
                wakeup = self._wakeup = self._loop.create_future()
                await wakeup
        except Exception as exc:
            logger.debug("connection writer stopped: %r", exc)
        finally:
            self._done = True
            self._wakeup = None
            if self._out is not None:
                self._out.clear()
            self._out_bytes = 0

    async def run(self, params: Any, restored: Connection | None = None) -> None:
        """Serve the socket to its end: connect (preflight, hooks, ``Init``), then the
        client's messages. ``restored``: the connection restored by a wake, already
        attached (no connect, no second ``Init``; engine mode, after a sleep)."""
        instance = self._instance
        hibernation = self._hibernation
        sessions = None if self._dispatcher is None else self._dispatcher._sessions
        conn: Connection | None = restored
        ws = self._ws
        # The engine's gateway delivers unacknowledged messages again to the next generation.
        redelivers = bool(getattr(ws, "redelivers", False))
        try:
            if conn is None:
                try:
                    params = conn_params_of(instance.definition, params)
                    conn = await instance.connect(params, transport=self, hibernation=hibernation)
                except Exception as exc:
                    log_error(exc, instance, "connect")
                    self._fail(exc)
                    return
                self.conn = conn
                init = ToClient(Init(instance.actor_id, conn.id))
                if hibernation is not None and sessions is not None:
                    sessions[hibernation.request_id] = self
                self._push(encode_to_client(init, self.encoding))
                release = getattr(ws, "release_headers", None)
                if release is not None:  # read at the connect, never again (~1 KiB each)
                    release()
            elif hibernation is not None and sessions is not None:
                sessions[hibernation.request_id] = self
            while True:
                data = await ws.receive()
                if data is None:
                    break
                if self._closing is None:
                    conn = self.conn
                    assert conn is not None
                    owner = conn.owner
                    if owner is not None and owner.phase != Phase.STARTED and not conn.disconnected:
                        if redelivers and conn.hibernation is not None:
                            continue  # not handled, not acknowledged: the next one gets it
                        # The actor sleeps (or is going to): wake it; its restored
                        # connection handles the message (never the stopping instance).
                        conn = await self._resume(conn)
                        if conn is None:
                            continue
                    self._on_message(data, conn)
        finally:
            if (
                hibernation is not None
                and sessions is not None
                and sessions.get(hibernation.request_id) is self
            ):
                del sessions[hibernation.request_id]
            self._close_later(1000, "")
            if self.conn is not None and not getattr(ws, "detached", False):
                await self._leave(self.conn)
            writer = self._writer  # started by the close above, if not before
            if writer is not None:
                with contextlib.suppress(Exception):
                    await writer

    async def _resume(self, conn: Connection) -> Connection | None:
        """The connection to handle the next message with, once the actor is awake again:
        waits for a sleep in progress, wakes the actor, and returns the restored connection
        (which the restore attached to this socket). None after a failure (reported to the
        client, whose socket then closes)."""
        dispatcher = self._dispatcher
        if dispatcher is None or conn.hibernation is None:
            return conn  # not hibernatable: the instance answers (or refuses) as it is
        for _ in range(5):
            try:
                instance = await dispatcher._instance(self._actor_id)
            except Exception as exc:
                log_error(exc, None, "waking the actor of a hibernated connection")
                self._fail(exc)
                return None
            current = self.conn
            if current is None or current.disconnected or self._closing is not None:
                return None
            owner = current.owner
            if owner is not None and owner.phase == Phase.STARTED:
                return current
            if current is conn and instance.phase == Phase.STARTED:
                self._fail(
                    RivetError(
                        "connection",
                        "restore_not_found",
                        "the connection was not restored when its actor woke",
                        metadata={"conn_id": conn.id},
                    )
                )
                return None
            conn = current
        self._fail(RivetError("actor", "stopping", "the actor keeps stopping; reconnect"))
        return None

    async def _leave(self, conn: Connection) -> None:
        """The client closed its socket: close its connection. A hibernated one is not in
        any instance: wake the actor; its restore finds the socket gone and closes the
        connection itself (``on_disconnect``, record deleted)."""
        if conn.disconnected:
            return
        dispatcher = self._dispatcher
        wake = None if conn.hibernation is None or dispatcher is None else dispatcher._instance
        await close_left_conn(conn, self._actor_id, wake, lambda: self.conn)

    def _on_message(self, data: str | bytes, conn: Connection) -> None:
        info = self._hibernation
        if info is not None:  # message indexes of the hibernation record (stored, then acked)
            info.server_message_index = (info.server_message_index + 1) & 0xFFFF
            if conn.owner is not None:
                conn.owner.conn_changed(conn)
        size = len(data)
        if isinstance(data, str) and size * 4 > self._max_in:
            size = len(data.encode("utf-8", "surrogatepass"))
        if size > self._max_in:
            self._fail(
                RivetError(
                    "message",
                    "incoming_too_long",
                    f"Incoming message too long (the limit is {self._max_in} bytes)",
                    metadata={"limit": self._max_in},
                )
            )
            return
        request = action_request_from(data, self.encoding)  # the common case, quickly
        if request is None:
            try:
                message = decode_to_server(data, self.encoding)
            except ProtocolError as exc:
                self._fail(exc)
                return
            body = message.body
            if isinstance(body, SubscriptionRequest):
                self._subscribe(conn, body.event_name, body.subscribe)
                return
            if not isinstance(body, ActionRequest):
                return
            request = body.id, body.name, body.args
        action_id, name, args = request
        if not isinstance(args, list):
            args = [] if args is None else [args]
        if self._inline and not self._unstarted and self._is_sync(name):
            self._run_inline(self._action(conn, action_id, name, args))
        else:
            key = self._next_task = self._next_task + 1
            self._unstarted += 1
            self._tasks[key] = self._loop.create_task(
                self._action(conn, action_id, name, args, key)
            )

    def _subscribe(self, conn: Connection, event: str, subscribe: bool) -> None:
        """A ``SubscriptionRequest``, through the event's ``can_subscribe`` gate; a refusal
        closes the socket with ``group.code`` (``auth.forbidden``), as RivetKit does."""
        instance = conn.owner if conn.owner is not None else self._instance
        try:
            pending = instance.subscribe(conn, event, subscribe)
        except Exception as exc:
            self._refuse_subscription(exc, instance, event)
            return
        if pending is not None:
            key = self._next_task = self._next_task + 1
            self._tasks[key] = self._loop.create_task(
                self._subscribe_later(key, pending, instance, event)
            )

    async def _subscribe_later(
        self, key: int, pending: Awaitable[None], instance: ActorInstance, event: str
    ) -> None:
        try:
            await pending
        except Exception as exc:
            self._refuse_subscription(exc, instance, event)
        finally:
            self._tasks.pop(key, None)

    def _refuse_subscription(
        self, error: BaseException, instance: ActorInstance, event: str
    ) -> None:
        log_error(error, instance, f"subscription to {event[:100]!r}")
        self._close_later(1011, ws_reason(error))

    def _is_sync(self, name: str) -> bool:
        try:
            return not self._instance.table.is_async(name)
        except Exception:  # an unknown action: the task path reports it
            return False

    def _run_inline(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` now, in a copy of the current context (as a task would); if it
        suspends after all, a task runs it on from there."""
        context = contextvars.copy_context()
        try:
            pending = context.run(coro.send, None)
        except StopIteration:
            return
        except asyncio.CancelledError:
            return  # as its task would: cancelled, no answer
        key = self._next_task = self._next_task + 1
        # The task runs in (a copy of) the context of the first step.
        self._tasks[key] = context.run(
            self._loop.create_task, self._finish(key, _Resume(coro, pending))
        )

    async def _finish(self, key: int, rest: Awaitable[None]) -> None:
        try:
            await rest
        finally:
            self._tasks.pop(key, None)

    async def _action(
        self, conn: Connection, action_id: int, name: str, args: list[Any], key: int = 0
    ) -> None:
        """Run the action and queue its response (``key``: of its task in ``_tasks``)."""
        if key:
            self._unstarted -= 1
        instance = self._instance
        frame: str | bytes
        try:
            output = await instance.invoke(name, args, conn)
        except Exception as exc:
            if isinstance(exc, RivetError) and to_public(exc) is not exc:
                instance.log.warning("action %r failed: %s", name, exc)
            frame = error_frame(exc, action_id, self.encoding)
        else:
            try:
                frame = encode_action_response(action_id, output, self.encoding)
            except Exception as exc:
                error = invalid_output(name, output, self.encoding, exc)
                instance.log.warning("%s", error.message)
                frame = error_frame(error, action_id, self.encoding)
            else:
                if len(frame) > self._max_out:
                    frame = error_frame(outgoing_too_long(self._max_out), action_id, self.encoding)
        finally:
            if key:
                self._tasks.pop(key, None)
        if not self._done:
            self._push(frame)

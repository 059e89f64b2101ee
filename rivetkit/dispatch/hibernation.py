"""Hibernatable raw WebSockets: ``on_websocket`` sockets that survive their actor's sleep.

A raw socket hibernates when the actor's ``can_hibernate_websocket`` option allows it (a bool,
or a synchronous predicate given the upgrade request; see :func:`can_hibernate_raw`). As in
RivetKit, such a socket gets a connection of its own (params from the ``rivet_conn_params.``
subprotocol, preflight, ``on_connect``; ``on_disconnect`` when it closes), whose record is
stored at KV ``[2] + conn_id`` like that of a ``/connect`` socket, so ``c.conn.state``
survives the sleep.

:class:`RawSession` serves such a socket to its end, across the actor's sleeps:

* the handler ``on_websocket(c, ws)`` runs with ``c.conn`` set; it keeps the actor awake
  only while it works, not while it waits in ``ws.receive()``;
* when the actor begins to sleep, ``ws.receive()`` returns None with ``ws.hibernating``
  True, so the handler ends, and the socket stays open (closing it then is a no-op);
* the next client message wakes the actor (embedded mode: this process holds the socket;
  engine mode: the engine's gateway does, and starts the actor), the connection is restored
  with its state, and ``on_websocket`` is called again with ``ws.resumed`` True; it gets the
  message, and every later one, in order, none lost or repeated (RivetKit calls
  ``onWebSocket`` again after a wake too; the socket's ``open`` does not fire twice);
* when the handler returns on its own, or fails (close 1011), the socket closes and the
  connection with it; when the client closes while the actor sleeps, the actor wakes only to
  run ``on_disconnect`` and forget the record.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from rivetkit.dispatch.connect import (
    ConnSession,
    close_left_conn,
    encoding_of,
    parse_subprotocols,
    ws_reason,
)
from rivetkit.dispatch.http import Headers, Request
from rivetkit.dispatch.websocket import RawWebSocket, WebSocket
from rivetkit.errors import RivetError, to_public
from rivetkit.runtime.instance import Phase
from rivetkit.schemas import conn_params_of

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.runtime.connection import Connection, Hibernation
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["RawSession", "can_hibernate_raw", "raw_request_of", "restore_session"]

logger = logging.getLogger("rivetkit.dispatch")


def can_hibernate_raw(options: Any, request: Request) -> bool:
    """Whether a raw socket opened with ``request`` (path as ``on_websocket`` sees it) may
    hibernate, per the ``can_hibernate_websocket`` option; a predicate that fails or does
    not return a bool counts as False (logged)."""
    value = getattr(options, "can_hibernate_websocket", False)
    if type(value) is bool:
        return value
    try:
        result = value(request)
    except Exception:
        logger.exception("can_hibernate_websocket failed; the socket will not hibernate")
        return False
    if type(result) is not bool:
        logger.warning(
            "can_hibernate_websocket returned %s, not a bool; the socket will not hibernate",
            type(result).__name__,
        )
        return False
    return result


def raw_request_of(info: Hibernation) -> Request:
    """The upgrade request of a restored raw socket, as ``on_websocket`` sees it (path
    relative to ``/websocket``), from its connection record."""
    path, _, query = info.request_path.partition("?")
    if path == "/websocket" or path.startswith("/websocket/"):
        path = path[10:] or "/"
    raw = [
        (name.encode("latin-1", "replace"), value.encode("latin-1", "replace"))
        for name, value in info.request_headers.items()
    ]
    return Request("GET", path, query_string=query, headers=Headers.from_raw(raw))


class _HandlerSocket:
    """What one run of the handler sees (through a :class:`RawWebSocket`): the messages the
    session hands it, until the socket closes or the actor sleeps."""

    __slots__ = ("_owner", "_queue", "_session", "_waiter", "busy", "ended", "hibernating")

    def __init__(self, session: RawSession, owner: ActorInstance) -> None:
        self._session = session
        self._owner = owner
        self._queue: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.hibernating = False
        #: The handler counts as a request of the actor (it keeps it awake) while busy.
        self.busy = True

    def push(self, data: str | bytes) -> None:
        self._queue.append(data)
        self._wake()

    def end(self, *, hibernating: bool = False) -> None:
        if not self.ended:
            self.ended = True
            self.hibernating = hibernating
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def accept(self, subprotocol: str | None = None) -> None:
        """Already accepted."""

    async def receive(self) -> str | bytes | None:
        queue = self._queue
        while not queue:
            if self.ended:
                return None
            if self.busy:  # waiting for the client does not keep the actor awake
                self.busy = False
                self._owner.end_request()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if not self.busy:
            self.busy = True
            self._owner.begin_request()
        return queue.popleft()

    async def send(self, data: str | bytes) -> None:
        await self._session.send(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.hibernating:
            return  # the socket outlives this run of the handler
        self.end()
        await self._session.close_socket(code, reason)


class RawSession:
    """A hibernatable raw socket and its connection (the connection's transport)."""

    __slots__ = (
        "_actor_id",
        "_closer",
        "_dispatcher",
        "_handler",
        "_loop",
        "_request",
        "_socket",
        "_view",
        "conn",
    )

    def __init__(
        self, dispatcher: Dispatcher, actor_id: str, socket: WebSocket, request: Request
    ) -> None:
        self._dispatcher = dispatcher
        self._actor_id = actor_id
        self._socket = socket
        #: The upgrade request as ``on_websocket`` sees it.
        self._request = request
        self.conn: Connection | None = None
        self._view: _HandlerSocket | None = None
        self._handler: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    # -- ConnTransport ---------------------------------------------------------------------

    def send_event(self, name: str, args: list[Any]) -> None:
        """Raw sockets get no events."""

    def close(self, reason: str | None) -> None:
        """The actor closed the connection: close the socket."""
        view = self._view
        if view is not None:
            view.end()
        if self._closer is None:
            self._closer = self._loop.create_task(self.close_socket(1000, (reason or "")[:120]))

    def attach(self, conn: Connection) -> None:
        """Become the transport of ``conn``, restored by a new instance after a sleep."""
        conn.transport = self
        self.conn = conn

    def resumed(self) -> None:
        """The restored connection's actor is started: run the handler again."""
        conn = self.conn
        if conn is not None and not conn.disconnected and self._view is None:
            self._start_handler(resumed=True)

    # -- the socket ------------------------------------------------------------------------

    async def send(self, data: str | bytes) -> None:
        """Send a message to the client (counted in the record's client message index)."""
        conn = self.conn
        if conn is not None and conn.hibernation is not None:
            info = conn.hibernation
            info.client_message_index = (info.client_message_index + 1) & 0xFFFF
        await self._socket.send(data)

    async def close_socket(self, code: int, reason: str) -> None:
        """Close the client's socket (idempotent; errors of a gone transport are ignored)."""
        try:
            await self._socket.close(code, reason)
        except Exception as exc:  # pragma: no cover - transport already gone
            logger.debug("closing a raw socket failed: %r", exc)

    async def run(self, instance: ActorInstance, params: Any, hibernation: Hibernation) -> None:
        """Open the connection, run the handler, serve the socket to its end."""
        try:
            params = conn_params_of(instance.definition, params)
            conn = await instance.connect(params, transport=self, hibernation=hibernation)
        except Exception as exc:
            if not isinstance(exc, RivetError):
                instance.log.error("raw WebSocket connect failed", exc_info=exc)
            await self.close_socket(1011, ws_reason(exc))
            return
        self.conn = conn
        self._start_handler(resumed=False)
        await self.serve()

    async def serve(self) -> None:
        """Hand the client's messages to the handler until the socket ends (a restored
        session starts here, attached to its connection)."""
        socket = self._socket
        conn = self.conn
        info = None if conn is None else conn.hibernation
        sessions = self._dispatcher._sessions
        own = info is not None and info.gateway_id == self._dispatcher.gateway_id
        if own and info is not None:
            sessions[info.request_id] = self
        redelivers = bool(getattr(socket, "redelivers", False))
        try:
            while True:
                data = await socket.receive()
                if data is None:
                    break
                conn = self.conn
                if conn is None or conn.disconnected:
                    continue
                owner = conn.owner
                if owner is None or owner.phase != Phase.STARTED:
                    if redelivers:
                        continue  # not handled, not acknowledged: the next generation gets it
                    resumed = await self._resume(conn)
                    if resumed is None:
                        continue
                    conn = resumed
                    owner = conn.owner
                    assert owner is not None
                record = conn.hibernation
                if record is not None:  # stored (then acknowledged) with the record
                    record.server_message_index = (record.server_message_index + 1) & 0xFFFF
                    owner.conn_changed(conn)
                self._deliver(data)
        finally:
            if own and info is not None and sessions.get(info.request_id) is self:
                del sessions[info.request_id]
            view = self._view
            if getattr(socket, "detached", False):
                if view is not None:
                    view.end(hibernating=True)
            else:
                if view is not None:
                    view.end()
                await self._leave()

    def _deliver(self, data: str | bytes) -> None:
        view = self._view
        if view is None or view.ended:
            self._start_handler(resumed=True)
            view = self._view
        if view is not None:
            view.push(data)

    async def _resume(self, conn: Connection) -> Connection | None:
        """Wake the actor of a hibernated connection; the restored connection (attached to
        this session by the restore), or None after a failure (the socket is closed)."""
        dispatcher = self._dispatcher
        for _ in range(5):
            try:
                instance = await dispatcher._instance(self._actor_id)
            except Exception as exc:
                logger.warning("waking the actor of a hibernated raw WebSocket failed: %s", exc)
                await self.close_socket(1011, ws_reason(exc))
                return None
            current = self.conn
            if current is None or current.disconnected:
                return None
            owner = current.owner
            if owner is not None and owner.phase == Phase.STARTED:
                return current
            if current is conn and instance.phase == Phase.STARTED:
                await self.close_socket(1011, "connection.restore_not_found")
                return None
            conn = current
        await self.close_socket(1011, "actor.stopping")
        return None

    async def _leave(self) -> None:
        """The socket ended: close the connection (``on_disconnect``). A hibernated one is in
        no instance: wake the actor; its restore finds the socket gone and closes it."""
        conn = self.conn
        if conn is None or conn.disconnected:
            return
        handler = self._handler
        if handler is not None and not handler.done():
            await asyncio.wait([handler])  # the handler closes the connection when it ends
            if conn.disconnected:
                return
        # Engine mode: the gateway tells the next generation, so no wake for it here.
        wake = None if getattr(self._socket, "redelivers", False) else self._dispatcher._instance
        await close_left_conn(conn, self._actor_id, wake, lambda: self.conn)

    # -- the handler -----------------------------------------------------------------------

    def _start_handler(self, *, resumed: bool) -> None:
        conn = self.conn
        assert conn is not None
        owner = conn.owner
        if owner is None or owner.phase != Phase.STARTED:
            return
        hook = owner.definition.hooks.on_websocket
        if hook is None:
            return
        view = _HandlerSocket(self, owner)
        raw = RawWebSocket(view, self._request)
        raw.resumed = resumed
        self._view = view
        owner.begin_request()
        self._handler = self._loop.create_task(self._run_handler(owner, hook.fn, conn, raw, view))

    async def _run_handler(
        self,
        owner: ActorInstance,
        fn: Any,
        conn: Connection,
        raw: RawWebSocket,
        view: _HandlerSocket,
    ) -> None:
        async def hibernate_on_abort() -> None:
            await owner.abort_event.wait()
            view.end(hibernating=True)

        watcher = asyncio.ensure_future(hibernate_on_abort())
        try:
            result = fn(owner.context.with_conn(conn), raw)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            if not isinstance(exc, RivetError) or to_public(exc) is not exc:
                owner.log.error("on_websocket failed", exc_info=exc)
            if not view.hibernating:
                view.end()
                await self.close_socket(1011, ws_reason(exc))
                await self._disconnect(owner, conn)
        else:
            if not view.hibernating:  # the handler is done with the socket: close it
                view.end()
                await self.close_socket(1000, "")
                await self._disconnect(owner, conn)
        finally:
            watcher.cancel()
            if view.busy:
                view.busy = False
                owner.end_request()
            if self._view is view:
                self._view = None
                self._handler = None

    @staticmethod
    async def _disconnect(owner: ActorInstance, conn: Connection) -> None:
        if conn.disconnected:
            return
        try:
            await owner.disconnect(conn, "connection closed")
        except Exception:
            owner.log.exception("closing a connection failed")


def restore_session(
    dispatcher: Dispatcher, conn: Connection, socket: WebSocket
) -> Coroutine[Any, Any, None]:
    """Attach a restored hibernatable connection to ``socket`` (a new socket for the one
    the gateway kept: engine mode) and return the coroutine that serves it from now on
    (an actor-connect session, without a second ``Init``, or a raw one)."""
    info = conn.hibernation
    owner = conn.owner
    if info is None or owner is None:
        raise ValueError("not a restored hibernatable connection")
    if info.request_path.partition("?")[0] == "/connect":
        raw = [
            (name.encode("latin-1", "replace"), value.encode("latin-1", "replace"))
            for name, value in info.request_headers.items()
        ]
        encoding = encoding_of(parse_subprotocols(Headers.from_raw(raw)))
        session = ConnSession(owner, socket, encoding)
        session.hibernate_with(dispatcher, owner.actor_id, info)
        session.attach(conn)
        return session.run(None, restored=conn)
    raw_session = RawSession(dispatcher, owner.actor_id, socket, raw_request_of(info))
    raw_session.attach(conn)
    return raw_session.serve()

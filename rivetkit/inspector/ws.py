"""The inspector WebSocket ``/inspector/connect?protocol_version=N`` (runtime spec §5).

* ``N`` is 1..6; anything else closes the socket with 1002
  ``inspector.invalid_protocol_version``. Every frame, both ways, is version ``N``.
* Without the parameter the socket is in legacy mode: every frame carries its version as a
  2-byte little-endian prefix. ``Init`` goes out in version 5 (the client has not spoken
  yet; RivetKit 2.3.19 writes the same); each answer is in the version of its request's
  frame, and pushes in the version of the client's latest frame. (RivetKit writes version 5
  always; its clients decode any embedded version, and an older client can decode ours.)
* Whatever the version lacks is dropped the way RivetKit's converters drop it: ``Init``
  loses its newer fields; a response or push with no form in the version becomes an
  ``Error`` naming it (a queue size pushed to v1 is ``inspector.queue_dropped``, as
  RivetKit sends it); schedule pushes go only to v6. A v1 events request is answered with an
  empty event list (we keep no event log; RivetKit answers an ``Error``).
* The token comes from the subprotocol ``rivet_inspector_token.<token>`` or the
  ``Authorization: Bearer`` header; a missing or wrong one closes the socket with 1008
  ``inspector.unauthorized``.
* The server first sends ``Init`` (connections, state, action names, database flag, queue
  size, tab config, schedules), then answers each request with its response (or an
  ``Error``), and pushes ``StateUpdated``, ``ConnectionsUpdated``, ``QueueUpdated``,
  ``WorkflowHistoryUpdated`` and ``SchedulesUpdated`` when they change.

Pushes come from the runtime's observer hook (``ActorInstance.inspector_observer``): the
runtime tells the session *that* something may have changed; the session's pusher decides
what to send, at most once per :data:`PUSH_INTERVAL` (the state is re-encoded at most that
often), and sends only what differs from the last push. The queue size is compared every
:data:`POLL_INTERVAL` while a session is attached (the queue has no hook). With no inspector
attached the hook is None and costs nothing.

An attached inspector does not keep its actor awake. While the actor sleeps the session stays
open; a request wakes the actor, and the pusher re-attaches to the new instance when it sees
one (sending the state, connections, queue size and schedules again). Through the engine the
socket is hibernatable instead (:mod:`rivetkit.drivers.engine.inspector_sockets`): the session
ends when the actor stops, the gateway keeps the socket open, and a request on it wakes the
actor, which runs a new session on the same socket (``Init`` again, then the answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final

from rivetkit.dispatch.http import Request
from rivetkit.dispatch.websocket import WebSocket
from rivetkit.errors import ProtocolError, RivetError
from rivetkit.inspector import snapshot, workflow
from rivetkit.inspector.http import error_parts, patch_state
from rivetkit.inspector.token import (
    SUBPROTOCOL_PREFIX,
    actor_token,
    bearer_token,
    subprotocol_token,
    token_matches,
)
from rivetkit.protocol import inspector_protocol as ip
from rivetkit.protocol.values import cbor_dumps, cbor_dumps_raw, cbor_loads
from rivetkit.runtime.instance import Phase
from rivetkit.traces import query as trace_query

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["POLL_INTERVAL", "PUSH_INTERVAL", "InspectorSession", "handle_websocket"]

logger = logging.getLogger("rivetkit.inspector")

#: Shortest time between two rounds of pushes (the state is re-encoded at most this often).
PUSH_INTERVAL: Final = 0.05
#: How often an attached session checks the queue size and its actor's instance.
POLL_INTERVAL: Final = 0.1
#: Most queue messages a ``QueueRequest`` lists.
MAX_QUEUE_LIMIT: Final = 200


def _offered(request: Request) -> list[str]:
    offered: list[str] = []
    for value in request.headers.get_all("sec-websocket-protocol"):
        offered.extend(item.strip() for item in value.split(",") if item.strip())
    return offered


def _version(request: Request) -> int | str | None:
    """The requested protocol version, None (legacy), or ``"bad"``."""
    values = request.query.get("protocol_version")
    if values is None:
        return None
    text = values[0]
    if text.isdigit() and len(text) <= 3 and int(text) in ip.VERSIONS:
        return int(text)
    return "bad"


async def handle_websocket(
    dispatcher: Dispatcher, actor_id: str, request: Request, websocket: WebSocket
) -> None:
    """Run an inspector socket (not yet accepted) to its end."""
    offered = _offered(request)
    if "rivet" in offered:
        chosen: str | None = "rivet"
    else:
        chosen = next((p for p in offered if p.startswith(SUBPROTOCOL_PREFIX)), None)
    await websocket.accept(chosen)
    if request.path != "/inspector/connect":
        await websocket.close(1011, "actor.not_found")
        return
    version = _version(request)
    if version == "bad":
        await websocket.close(1002, "inspector.invalid_protocol_version")
        return
    assert not isinstance(version, str)
    try:
        instance = await dispatcher._instance(actor_id)
        expected = await actor_token(instance)
    except Exception as exc:
        group, code, _ = error_parts(exc)
        await websocket.close(1011, f"{group}.{code}"[:120])
        return
    presented = subprotocol_token(offered) or bearer_token(request.headers.get("authorization"))
    if not token_matches(presented, expected):
        logger.warning("actor %s: rejecting an inspector socket without a valid token", actor_id)
        await websocket.close(1008, "inspector.unauthorized")
        return
    await InspectorSession(dispatcher, actor_id, websocket, version).run(instance)


class _Hub:
    """The observer installed on an instance: fans its signals out to the sessions."""

    __slots__ = ("sessions",)

    def __init__(self) -> None:
        self.sessions: set[InspectorSession] = set()

    def __call__(self, kind: str) -> None:
        for session in self.sessions:
            session.changed(kind)


def _attach(instance: ActorInstance, session: InspectorSession) -> None:
    hub = instance.inspector_observer
    if not isinstance(hub, _Hub):
        hub = _Hub()
        instance.inspector_observer = hub
    hub.sessions.add(session)
    workflow.watch(instance)  # history changes signal "workflow"


def _detach(instance: ActorInstance, session: InspectorSession) -> None:
    hub = instance.inspector_observer
    if isinstance(hub, _Hub):
        hub.sessions.discard(session)
        if not hub.sessions:
            instance.inspector_observer = None


def _wire_connections(instance: ActorInstance) -> list[ip.Connection]:
    return [
        ip.Connection(item["id"], cbor_dumps_raw(item["details"]))
        for item in snapshot.connections(instance)
    ]


def _wire_schedules(
    instance: ActorInstance, views: list[snapshot.ScheduleView]
) -> list[ip.Schedule]:
    """The v6 ``Schedule`` records; a recurring one carries its latest run's start
    (``lastRunAt``) and its ``maxHistory``."""
    out = []
    for view in views:
        last_run_at = max_history = None
        if view.kind != "at" and view.name is not None:
            record = instance.schedule.recurring(view.name)
            if record is not None:
                if record.last_started_at is not None:
                    last_run_at = int(record.last_started_at * 1000)
                max_history = record.max_history
        out.append(
            ip.Schedule(
                id=view.id,
                name=view.name,
                kind=view.kind,
                action=view.action,
                args=cbor_dumps(view.args),
                next_run_at=view.next_ms,
                last_run_at=last_run_at,
                expression=view.expression,
                timezone=view.timezone,
                interval_ms=view.interval_ms,
                max_history=max_history,
            )
        )
    return out


def _state_bytes(instance: ActorInstance) -> bytes | None:
    """The state as stored (CBOR), or None: no state, or one that cannot be encoded."""
    if not snapshot.state_enabled(instance):
        return None
    try:
        return instance.encode_state() or None
    except RivetError:
        return None


class InspectorSession:
    """One authorized inspector socket."""

    def __init__(
        self, dispatcher: Dispatcher, actor_id: str, websocket: WebSocket, version: int | None
    ) -> None:
        self._dispatcher = dispatcher
        self._actor_id = actor_id
        self._ws = websocket
        #: The version asked for with ``protocol_version`` (None: legacy mode).
        self.version = version
        #: Legacy mode: every frame carries its version.
        self.legacy = version is None
        #: The version pushes are written in: the asked one, or in legacy mode the version of
        #: the client's latest frame (5 until it sends one).
        self.client_version: int = ip.LEGACY_VERSION if version is None else version
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._instance: ActorInstance | None = None
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # What was pushed last (a push is sent only when it differs).
        self._last_state: bytes | None = None
        self._last_conns: list[ip.Connection] | None = None
        self._last_queue: int | None = None
        self._last_schedules: list[tuple[Any, ...]] | None = None

    # -- life ------------------------------------------------------------------------------

    async def run(self, instance: ActorInstance) -> None:
        """Send ``Init``, then serve requests and pushes until the socket closes."""
        pusher: asyncio.Task[None] | None = None
        try:
            self._use(instance)  # first: a change while Init is on its way is pushed after it
            await self._send(await self._init(instance), self.client_version)
            pusher = asyncio.ensure_future(self._push_loop())
            while True:
                data = await self._ws.receive()
                if data is None:
                    break
                task = asyncio.ensure_future(self._handle(data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:
            logger.exception("inspector socket of actor %s failed", self._actor_id)
        finally:
            self._closed = True
            if self._instance is not None:
                _detach(self._instance, self)
            for task in [*self._tasks, *([pusher] if pusher is not None else [])]:
                task.cancel()
            with contextlib.suppress(Exception):
                await self._ws.close(1000, "")

    def _use(self, instance: ActorInstance) -> None:
        if self._instance is instance:
            return
        if self._instance is not None:
            _detach(self._instance, self)
            # A new instance (the actor woke again): push everything that differs.
            self._dirty.update(("state", "connections", "schedules"))
            self._wake.set()
        self._instance = instance
        _attach(instance, self)

    def changed(self, kind: str) -> None:
        """The runtime's signal: ``kind`` (state, connections, schedules) may have changed."""
        self._dirty.add(kind)
        self._wake.set()

    async def _send(self, body: Any, version: int) -> None:
        frame = ip.encode_to_client(body, version, embedded=self.legacy)
        async with self._send_lock:
            if not self._closed:
                await self._ws.send(frame)

    # -- pushes ----------------------------------------------------------------------------

    async def _push_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_round = 0.0
        while not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
            delay = last_round + PUSH_INTERVAL - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._wake.clear()
            last_round = loop.time()
            try:
                await self._push_round()
            except Exception:
                logger.exception("inspector push of actor %s failed", self._actor_id)

    async def _push_round(self) -> None:
        current = self._dispatcher.runtime.instances.get(self._actor_id)
        if current is not None and current is not self._instance and current.phase == Phase.STARTED:
            self._use(current)  # the actor woke again: follow it to the new instance
        instance = self._instance
        if instance is None or instance.phase != Phase.STARTED:
            return
        dirty, self._dirty = self._dirty, set()
        version = self.client_version
        if "state" in dirty:
            state = _state_bytes(instance)
            if state is not None and state != self._last_state:
                self._last_state = state
                await self._send(ip.StateUpdated(state), version)
        if "connections" in dirty:
            conns = _wire_connections(instance)
            if conns != self._last_conns:
                self._last_conns = conns
                await self._send(ip.ConnectionsUpdated(conns), version)
        size = snapshot.queue_size(instance)
        if size != self._last_queue:
            self._last_queue = size
            await self._send(ip.QueueUpdated(size), version)  # v1: an Error, as RivetKit's
        if version >= 2 and "workflow" in dirty:
            history = await workflow.history_bytes(instance)
            if history is not None:
                await self._send(ip.WorkflowHistoryUpdated(history), version)
        if version >= 6 and "schedules" in dirty:
            views = snapshot.schedules(instance)
            keys = [view.key() for view in views]
            if keys != self._last_schedules:
                self._last_schedules = keys
                await self._send(ip.SchedulesUpdated(_wire_schedules(instance, views)), version)

    # -- requests --------------------------------------------------------------------------

    async def _init(self, instance: ActorInstance) -> ip.Init:
        state = _state_bytes(instance)
        conns = _wire_connections(instance)
        views = snapshot.schedules(instance)
        self._last_state = state
        self._last_conns = conns
        self._last_queue = snapshot.queue_size(instance)
        self._last_schedules = [view.key() for view in views]
        return ip.Init(
            connections=conns,
            state=state,
            is_state_enabled=snapshot.state_enabled(instance),
            rpcs=snapshot.rpcs(instance),
            is_database_enabled=snapshot.database_enabled(instance),
            queue_size=self._last_queue,
            workflow_history=await workflow.history_bytes(instance),
            is_workflow_enabled=workflow.is_enabled(instance),
            tab_config=[],
            schedules=_wire_schedules(instance, views),
        )

    async def _handle(self, data: str | bytes) -> None:
        version = self.client_version
        try:
            if isinstance(data, str):
                raise ProtocolError("inspector frames are binary", code=ip.ERROR_CODE)
            if self.legacy and len(data) >= 2 and data[0] + (data[1] << 8) in ip.VERSIONS:
                version = data[0] + (data[1] << 8)  # even a body that fails is answered in it
            version, request = ip.decode_request(data, self.version)
            if self.legacy:
                self.client_version = version  # later pushes follow the client's version
            instance = await self._dispatcher._instance(self._actor_id)
            self._use(instance)
            instance.begin_request()
            try:
                response = await self._answer(instance, request)
            finally:
                instance.end_request()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, RivetError):
                logger.error("inspector request failed", exc_info=exc)
            if isinstance(exc, ProtocolError) and exc.code == ip.ERROR_CODE:
                # A frame that does not decode: say why (it is the client's own bytes).
                group, code, message = exc.group, exc.code, exc.message
            else:
                group, code, message = error_parts(exc)
            response = ip.Error(f"{group}.{code}: {message}")
        if response is not None:
            await self._send(response, version)

    async def _answer(self, instance: ActorInstance, request: Any) -> Any:
        kind = type(request)
        if kind is ip.PatchStateRequest:
            await patch_state(instance, cbor_loads(request.state) if request.state else None)
            return None
        if kind is ip.StateRequest:
            return ip.StateResponse(
                request.id, _state_bytes(instance), snapshot.state_enabled(instance)
            )
        if kind is ip.ConnectionsRequest:
            return ip.ConnectionsResponse(request.id, _wire_connections(instance))
        if kind is ip.ActionRequest:
            args = cbor_loads(request.args) if request.args else []
            if not isinstance(args, list):
                args = [args]
            output = await snapshot.run_action(instance, request.name, args)
            return ip.ActionResponse(request.id, cbor_dumps(output))
        if kind is ip.RpcsListRequest:
            return ip.RpcsListResponse(request.id, snapshot.rpcs(instance))
        if kind is ip.TraceQueryRequest:
            return ip.TraceQueryResponse(request.id, await _trace_query(instance, request))
        if kind is ip.QueueRequest:
            view = await snapshot.queue_view(instance, min(request.limit, MAX_QUEUE_LIMIT))
            status = ip.QueueStatus(
                view.size,
                view.max_size,
                [ip.QueueMessageSummary(*message) for message in view.messages],
                view.truncated,
            )
            return ip.QueueResponse(request.id, status)
        if kind is ip.WorkflowHistoryRequest:
            history = await workflow.history_bytes(instance)
            return ip.WorkflowHistoryResponse(request.id, history, workflow.is_enabled(instance))
        if kind is ip.WorkflowReplayRequest:
            trimmed = await workflow.replay(instance, request.entry_id)
            history = None if trimmed is None else workflow.encode_history(trimmed)
            return ip.WorkflowReplayResponse(request.id, history, workflow.is_enabled(instance))
        if kind is ip.DatabaseSchemaRequest:
            schema = await snapshot.database_schema(instance)
            return ip.DatabaseSchemaResponse(request.id, cbor_dumps_raw(schema))
        if kind is ip.DatabaseTableRowsRequest:
            rows = await snapshot.database_rows(
                instance, request.table, request.limit, request.offset
            )
            return ip.DatabaseTableRowsResponse(request.id, cbor_dumps_raw(rows))
        if kind is ip.SchedulesRequest:
            schedules = _wire_schedules(instance, snapshot.schedules(instance))
            return ip.SchedulesResponse(request.id, schedules)
        if kind is ip.ScheduleHistoryRequest:
            rows = await snapshot.schedule_history(instance, request.schedule_id, request.limit)
            fires = [
                ip.ScheduleFire(
                    action=row["action"],
                    scheduled_at=row["scheduledAt"],
                    fired_at=row["firedAt"],
                    finished_at=row["finishedAt"],
                    result=row["result"],
                    error=_schedule_error(row["error"]),
                )
                for row in rows
            ]
            return ip.ScheduleHistoryResponse(request.id, request.schedule_id, fires)
        if kind is ip.ScheduleDeleteRequest:
            deleted = await instance.schedule.cancel(request.schedule_id)
            return ip.ScheduleDeleteResponse(request.id, request.schedule_id, bool(deleted))
        if kind is ip.v1.EventsRequest or kind is ip.v1.ClearEventsRequest:
            return ip.v1.EventsResponse(request.id, [])  # v1 only: we keep no event log
        raise ProtocolError(f"unsupported inspector request {kind.__name__}", code=ip.ERROR_CODE)


async def _trace_query(instance: ActorInstance, request: ip.TraceQueryRequest) -> bytes:
    """The ``payload`` of a ``TraceQueryResponse``: the actor's spans between
    ``request.start_ms`` and ``request.end_ms`` (at most ``request.limit``) as
    ``@rivetkit/traces``' vbare ``ReadRangeWire`` (:mod:`rivetkit.traces.query`)."""
    return await trace_query.query_wire(instance, request.start_ms, request.end_ms, request.limit)


def _schedule_error(error: Any) -> ip.ScheduleError | None:
    if not isinstance(error, dict):
        return None
    metadata = error.get("metadata")
    return ip.ScheduleError(
        group=str(error.get("group", "")),
        code=str(error.get("code", "")),
        message=str(error.get("message", "")),
        metadata=None if metadata is None else cbor_dumps(metadata),
    )

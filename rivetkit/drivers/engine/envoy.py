"""The envoy WebSocket: one session with the Rivet Engine, kept up across reconnects.

:class:`EnvoyClient` owns the socket to ``/envoys/connect?protocol_version=8&...`` (subprotocol
``rivet``, plus ``rivet_token.<t>`` with a token) and everything that must survive a
reconnect (``spec/engine.md`` B, "Session flow"):

* the ``ToRivetMetadata`` sent first on every connection (actor names, our metadata);
* a ``ToRivetPong`` for every ``ToEnvoyPing``; a watchdog drops a socket that went silent;
* commands deduplicated per ``(actor, generation)`` by index (the engine replays unacked ones
  after a reconnect) and acknowledged with ``ToRivetAckCommands`` once handled;
* event indexes per ``(actor, generation)``, from 0, never reset by a reconnect; every event
  stays in a history until ``ToEnvoyAckEvents`` covers it and is sent again after a reconnect;
* KV requests with envoy-chosen ids, answered by ``ToEnvoyKvResponse``, with a timeout; the
  ones in flight when a socket drops are sent again, in order, on the next one (KV operations
  are idempotent and the engine runs one actor's requests in order);
* tunnel messages produced while disconnected are kept (bounded) and sent after the reconnect;
* reconnects with exponential backoff and jitter (reset after a minute of stable connection),
  but not after a close with reason ``ws.eviction`` (another socket took our key); with
  several engine nodes (:class:`~.endpoints.Endpoints`) each attempt after a failed connect
  or an ended session goes to the next node, without delay until every node was tried
  (the engine keys the session by envoy key, so another node resumes it);
* after ``envoyLostThreshold`` without a connection the engine considers us lost: the
  handler's :meth:`EnvoyHandler.on_lost` runs so that local actors stop.

The first connection tries every node before failing; a refusal (bad token, unknown pool or
namespace, an invalid parameter) is an :class:`EngineError` raised by :meth:`EnvoyClient.start`
with a readable message instead of a retry loop. Frames that do not decode are logged and the
socket is dropped (then reconnected); they never crash the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from rivetkit.errors import ProtocolError, RivetError
from rivetkit.protocol.envoy_protocol import (
    PROTOCOL_VERSION,
    TO_ENVOY,
    TO_RIVET,
    ActorCheckpoint,
    CommandWrapper,
    Event,
    EventWrapper,
    KvErrorResponse,
    KvRequestData,
    KvResponseData,
    ProtocolMetadata,
    ToEnvoyAckEvents,
    ToEnvoyCommands,
    ToEnvoyInit,
    ToEnvoyKvResponse,
    ToEnvoyPing,
    ToEnvoyTunnelMessage,
    ToRivet,
    ToRivetAckCommands,
    ToRivetEvents,
    ToRivetKvRequest,
    ToRivetMetadata,
    ToRivetPong,
    ToRivetStopping,
    ToRivetTunnelMessage,
)

from .direct_send import FrameWriter
from .endpoints import Endpoints
from .envoy_handler import EnvoyHandler
from .inline_receive import InlineClientConnection
from .quickack import keep_quick_ack
from .refusals import REFUSALS, EngineError, close_reason, connect_error

__all__ = ["EngineError", "EnvoyClient", "EnvoyHandler"]

logger = logging.getLogger("rivetkit.engine")

#: Seconds without any frame from the engine (it pings every ~3 s) before the socket is
#: considered dead and replaced.
SILENCE_TIMEOUT: Final = 20.0
#: Reconnect backoff: first delay, factor, cap (seconds); reset after a stable minute.
BACKOFF_INITIAL: Final = 0.25
BACKOFF_MAX: Final = 10.0
BACKOFF_RESET_AFTER: Final = 60.0
#: Tunnel messages kept while disconnected (older ones are dropped beyond this).
MAX_BUFFERED_TUNNEL: Final = 10_000
#: The engine's default lost threshold (ms) until ``ToEnvoyInit`` says otherwise.
DEFAULT_LOST_THRESHOLD_MS: Final = 15_000
#: Retired event logs (stopped generations) are kept this long for re-sends, in seconds.
RETIRED_LOG_TTL: Final = 600.0
#: Generations whose last command index is remembered (for replay dedup) beyond live ones.
MAX_COMMAND_KEYS: Final = 10_000
#: Largest frame accepted from the engine (its own WS limit is 32 MiB).
MAX_FRAME: Final = 64 * 1024 * 1024


class _EventLog:
    """Events of one ``(actor, generation)``: the next index and the unacked history."""

    __slots__ = ("history", "next_index", "retired_at")

    def __init__(self) -> None:
        self.next_index = 0
        self.history: deque[EventWrapper] = deque()
        self.retired_at: float | None = None


class _KvRequest:
    __slots__ = ("actor_id", "data", "future", "request_id", "sent", "timer")

    def __init__(
        self,
        request_id: int,
        actor_id: str,
        data: KvRequestData,
        future: asyncio.Future[KvResponseData],
    ) -> None:
        self.request_id = request_id
        self.actor_id = actor_id
        self.data = data
        self.future = future
        self.sent = False
        self.timer: asyncio.TimerHandle | None = None


class EnvoyClient:
    """The envoy side of one engine session (see the module docstring).

    :param endpoint: the engine's URL, ``http://host:6420`` (``https`` maps to ``wss``), or
        several (a sequence, a comma-separated string, or shared :class:`~.endpoints.Endpoints`):
        each connection goes to the next one after a failed connect or an ended session
    :param namespace: the namespace name
    :param pool: the pool (runner config) name; it must exist before we connect
    :param envoy_key: our identity (3..128 characters); reconnects resume it
    :param version: our deploy version (u32), for drain-on-upgrade
    :param token: the engine's admin token, or None
    :param metadata: the ``ToRivetMetadata`` sent first on every connection
    :param handler: receives commands, tunnel messages and connection changes
    :param kv_timeout: seconds before a KV request fails
    """

    def __init__(
        self,
        endpoint: str | Sequence[str] | Endpoints,
        *,
        namespace: str,
        pool: str,
        envoy_key: str,
        version: int,
        token: str | None,
        metadata: ToRivetMetadata,
        handler: EnvoyHandler,
        kv_timeout: float = 30.0,
    ) -> None:
        if not 3 <= len(envoy_key) <= 128:
            raise ValueError("envoy_key must be 3 to 128 characters")
        if not 0 <= version <= 0xFFFFFFFF:
            raise ValueError("version must fit in a u32")
        #: The engine nodes; the socket goes to the current one (see :meth:`_run`).
        self.endpoints = endpoint if isinstance(endpoint, Endpoints) else Endpoints(endpoint)
        self._query = urlencode(
            {
                "protocol_version": str(PROTOCOL_VERSION),
                "namespace": namespace,
                "envoy_key": envoy_key,
                "version": str(version),
                "pool_name": pool,
            }
        )
        self.envoy_key = envoy_key
        self.kv_timeout = kv_timeout
        self._subprotocols = [Subprotocol("rivet")]
        if token:
            self._subprotocols.append(Subprotocol(f"rivet_token.{token}"))
        self._metadata = TO_RIVET.encode(metadata)
        self._handler = handler
        self._encode: Callable[[Any], bytes] = TO_RIVET.encode
        #: ``ToEnvoyInit`` metadata of the current (or last) session.
        self.protocol_metadata = ProtocolMetadata(DEFAULT_LOST_THRESHOLD_MS, 1_800_000, 20 << 20)
        self._ws: ClientConnection | None = None
        #: True between ``ToEnvoyInit`` and the end of that socket.
        self.ready = False
        self._buffered: deque[bytes] = deque()
        self._logs: dict[tuple[str, int], _EventLog] = {}
        self._last_commands: dict[tuple[str, int], int] = {}
        self._kv: dict[int, _KvRequest] = {}
        self._next_kv_id = 0
        self._main: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._closing = False
        self._evicted = False
        self._lost_timer: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Counters for /metrics.
        self.stats: dict[str, int] = {
            "connects": 0,
            "disconnects": 0,
            "frames_in": 0,
            "frames_out": 0,
            "bad_frames": 0,
            "kv_requests": 0,
            "kv_errors": 0,
            "kv_timeouts": 0,
        }
        self._writer = FrameWriter(self.stats)
        self._push = self._writer.push

    def url_of(self, endpoint: str) -> str:
        """The WebSocket URL of the envoy connection to the engine at ``endpoint``."""
        if endpoint.startswith("https://"):
            endpoint = "wss://" + endpoint[8:]
        elif endpoint.startswith("http://"):
            endpoint = "ws://" + endpoint[7:]
        return f"{endpoint}/envoys/connect?{self._query}"

    @property
    def url(self) -> str:
        """The WebSocket URL of the current engine node."""
        return self.url_of(self.endpoints.current)

    # -- life ------------------------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:
        """Connect and wait for the first ``ToEnvoyInit``.

        :raises EngineError: the engine refused the connection or cannot be reached
        """
        if self._main is not None:
            raise RuntimeError("the envoy was already started")
        self._loop = asyncio.get_running_loop()
        self._first = self._loop.create_future()
        self._main = self._loop.create_task(self._run(), name="rivetkit-envoy")
        try:
            await asyncio.wait_for(asyncio.shield(self._first), timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise EngineError(
                "connect_timeout",
                f"the engine did not complete the envoy handshake within {timeout:g} s "
                f"({self.endpoints.describe()})",
            ) from None
        except BaseException:
            await self.close()
            raise

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the envoy was started in (its socket's callbacks run there), or
        None before :meth:`start`."""
        return self._loop

    @property
    def closed(self) -> bool:
        """True once closed or evicted (no more reconnects)."""
        return self._closing or self._evicted

    def send_stopping(self) -> bool:
        """Tell the engine we are draining (``ToRivetStopping``); False when not connected."""
        if not self.ready:
            return False
        self._push(self._encode(ToRivetStopping()))
        return True

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait until the queued frames have been handed to the socket (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self._writer.out and self.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close the socket (code 1000, ``envoy.shutdown``) and stop reconnecting; pending KV
        requests fail. Idempotent."""
        self._closing = True
        if self._lost_timer is not None:
            self._lost_timer.cancel()
            self._lost_timer = None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "envoy.shutdown"), 3)
        task = self._main
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._fail_kv(EngineError("closed", "the envoy is closed"))

    # -- sending ---------------------------------------------------------------------------

    def send(self, message: ToRivet) -> None:
        """Send a message now if the session is ready; dropped otherwise."""
        if self.ready:
            self._push(self._encode(message))

    def send_tunnel(self, message: ToRivetTunnelMessage) -> None:
        """Send a tunnel message; kept (bounded) while disconnected and sent after the
        reconnect."""
        self.send_tunnel_frame(self._encode(message))

    def send_tunnel_frame(self, frame: bytes) -> None:
        """:meth:`send_tunnel` with the message already encoded."""
        if self.ready:
            self._push(frame)
        elif not self.closed:
            buffered = self._buffered
            buffered.append(frame)
            if len(buffered) > MAX_BUFFERED_TUNNEL:
                buffered.popleft()

    # -- events ----------------------------------------------------------------------------

    def send_event(self, actor_id: str, generation: int, inner: Event) -> EventWrapper:
        """Report an event of ``(actor_id, generation)`` with its next index; it is kept
        until acknowledged and re-sent after a reconnect."""
        key = (actor_id, generation)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _EventLog()
        wrapper = EventWrapper(ActorCheckpoint(actor_id, generation, log.next_index), inner)
        log.next_index += 1
        log.history.append(wrapper)
        if self.ready:
            self._push(self._encode(ToRivetEvents([wrapper])))
        return wrapper

    def retire(self, actor_id: str, generation: int) -> None:
        """The generation stopped: its log is dropped once acknowledged (or after a while)."""
        log = self._logs.get((actor_id, generation))
        if log is not None:
            log.retired_at = time.monotonic()
        self._prune()

    def _prune(self) -> None:
        now = time.monotonic()
        stale = [
            key
            for key, log in self._logs.items()
            if log.retired_at is not None
            and (not log.history or now - log.retired_at > RETIRED_LOG_TTL)
        ]
        for key in stale:
            del self._logs[key]

    def pending_events(self) -> int:
        """Events sent but not yet acknowledged by the engine."""
        return sum(len(log.history) for log in self._logs.values())

    # -- KV --------------------------------------------------------------------------------

    async def kv(self, actor_id: str, data: KvRequestData) -> KvResponseData:
        """One KV request for ``actor_id``; its response data.

        :raises RivetError: ``kv/engine_error`` for an error answer, ``kv/timeout`` after
            ``kv_timeout`` seconds, ``engine/closed`` once the envoy is closed
        """
        if self.closed:
            raise EngineError("closed", "the envoy is closed")
        loop = self._loop or asyncio.get_running_loop()
        request_id = self._next_kv_id
        self._next_kv_id = (request_id + 1) & 0xFFFFFFFF
        future: asyncio.Future[KvResponseData] = loop.create_future()
        request = _KvRequest(request_id, actor_id, data, future)
        self._kv[request_id] = request
        request.timer = loop.call_later(self.kv_timeout, self._kv_expired, request_id)
        self.stats["kv_requests"] += 1
        if self.ready:
            self._send_kv(request)
        try:
            response = await future
        finally:
            if self._kv.get(request_id) is request:
                del self._kv[request_id]
            if request.timer is not None:
                request.timer.cancel()
        if isinstance(response, KvErrorResponse):
            self.stats["kv_errors"] += 1
            raise RivetError(
                "kv", "engine_error", f"the engine refused a KV request: {response.message}"
            )
        return response

    def _send_kv(self, request: _KvRequest) -> None:
        request.sent = True
        self._push(
            self._encode(ToRivetKvRequest(request.actor_id, request.request_id, request.data))
        )

    def _kv_expired(self, request_id: int) -> None:
        request = self._kv.pop(request_id, None)
        if request is not None and not request.future.done():
            self.stats["kv_timeouts"] += 1
            request.future.set_exception(
                RivetError(
                    "kv",
                    "timeout",
                    f"the engine did not answer a KV request within {self.kv_timeout:g} s",
                )
            )

    def _fail_kv(self, error: BaseException) -> None:
        requests = list(self._kv.values())
        self._kv.clear()
        for request in requests:
            if request.timer is not None:
                request.timer.cancel()
            if not request.future.done():
                request.future.set_exception(error)

    # -- the connection loop ---------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        first = self._first
        assert first is not None
        endpoints = self.endpoints
        # The nodes tried in this round: moving to one not tried yet costs no delay; the
        # backoff applies once every node was tried (with one node: at every attempt).
        tried: set[str] = set()
        failures: list[EngineError] = []
        while not self.closed:
            endpoint = endpoints.current
            tried.add(endpoint)
            url = self.url_of(endpoint)
            try:
                ws = await connect(
                    url,
                    subprotocols=self._subprotocols,
                    compression=None,
                    max_size=MAX_FRAME,
                    ping_interval=None,
                    open_timeout=10,
                    close_timeout=2,
                    user_agent_header=None,
                    create_connection=InlineClientConnection,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = connect_error(exc, url)
                if not first.done():
                    failures.append(error)
                    if len(tried) >= len(endpoints):
                        first.set_exception(_first_failure(failures, endpoints))
                        return
                logger.warning("envoy: connecting to the engine failed: %s", error.message)
            else:
                logger.info("envoy: connected to %s", endpoint)
                keep_quick_ack(ws)  # no delayed ACKs under the engine's writes (quickack.py)
                started = time.monotonic()
                refusal = await self._session(ws)
                if refusal is not None and not first.done():
                    first.set_exception(refusal)
                    return
                if refusal is not None:
                    logger.error("envoy: %s", refusal.message)
                if self._evicted and not first.done():
                    first.set_exception(
                        EngineError("evicted", "another envoy connection took our envoy key")
                    )
                if self.closed:
                    return
                if time.monotonic() - started > BACKOFF_RESET_AFTER:
                    attempt = 0
                tried = {endpoint}
            following = endpoints.advance(endpoint)
            if following not in tried:
                logger.info("envoy: trying the engine at %s", following)
                continue
            tried = set()
            delay = min(BACKOFF_MAX, BACKOFF_INITIAL * (2**attempt))
            delay *= 0.5 + random.random()
            attempt = min(attempt + 1, 10)
            logger.info("envoy: reconnecting to %s in %.2f s", following, delay)
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> EngineError | None:
        """Run one socket to its end; an :class:`EngineError` when the engine refused us."""
        self._ws = ws
        self.stats["connects"] += 1
        self._writer.start(ws, self._metadata)  # the first frame of every connection
        self._last_rx = time.monotonic()
        writer = asyncio.ensure_future(self._writer.run(ws))
        watchdog = asyncio.ensure_future(self._watchdog(ws))
        if isinstance(ws, InlineClientConnection):
            ws.on_binary = self._inline
        handle = self._handle
        decode = TO_ENVOY.decode
        stats = self.stats
        try:
            async for frame in ws:
                self._last_rx = time.monotonic()
                stats["frames_in"] += 1
                if not isinstance(frame, bytes):
                    raise ProtocolError(
                        "the engine sent a text frame", code="invalid_envoy_message"
                    )
                handle(decode(frame))
            code, reason = ws.close_code, ws.close_reason or ""
        except ConnectionClosed as exc:
            code, reason = close_reason(exc)
        except ProtocolError as exc:
            stats["bad_frames"] += 1
            logger.error("envoy: dropping the connection after a malformed frame: %s", exc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1002, "envoy.invalid_frame"), 2)
            code, reason = 1002, "envoy.invalid_frame"
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(ws.close(1000, "envoy.shutdown"), 2)
            raise
        except Exception:
            logger.exception("envoy: the session failed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1011, "envoy.internal_error"), 2)
            code, reason = 1011, "envoy.internal_error"
        finally:
            writer.cancel()
            watchdog.cancel()
            was_ready = self.ready
            self.ready = False
            self._ws = self._writer.ws = None
            stats["disconnects"] += 1
            for request in self._kv.values():
                request.sent = False
            if was_ready:
                self._handler.on_connection(False)
        group_code = reason.split("#", 1)[0]
        if group_code == "ws.eviction":
            self._evicted = True
            logger.error("envoy: evicted (another connection took envoy key %s)", self.envoy_key)
            self._fail_kv(EngineError("evicted", "the envoy was evicted"))
            self._handler.on_evicted(reason)
            return None
        if not self._closing:
            logger.warning(
                "envoy: connection closed (code %s%s)", code, f", reason {reason}" if reason else ""
            )
            self._arm_lost_timer()
        if group_code in REFUSALS or (code == 1011 and group_code and not was_ready):
            explanation = REFUSALS.get(group_code, "the engine closed the connection")
            return EngineError(
                "refused",
                f"{explanation} ({reason}; {self.url.split('?')[0]})",
                metadata={"reason": reason},
            )
        return None

    def _inline(self, frame: bytes) -> bool:
        """A binary message as it is parsed (see inline_receive); False for one that does
        not decode (the receive loop decodes it again and drops the connection)."""
        try:
            message = TO_ENVOY.decode(frame)
        except Exception:
            return False
        self._last_rx = time.monotonic()
        self.stats["frames_in"] += 1
        try:
            self._handle(message)
        except Exception:  # as in the receive loop: log, then close the socket
            logger.exception("envoy: the session failed")
            ws = self._ws
            if isinstance(ws, InlineClientConnection):
                ws.fail(1011, "envoy.internal_error")
        return True

    def _arm_lost_timer(self) -> None:
        if self._lost_timer is not None or self._loop is None or self._closing:
            return
        threshold = max(1.0, self.protocol_metadata.envoy_lost_threshold / 1000)
        self._lost_timer = self._loop.call_later(threshold, self._lost)

    def _lost(self) -> None:
        self._lost_timer = None
        if not self.ready and not self._closing:
            logger.warning("envoy: disconnected past the lost threshold; local actors stop")
            self._handler.on_lost()

    async def _watchdog(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(SILENCE_TIMEOUT / 4)
            if time.monotonic() - self._last_rx > SILENCE_TIMEOUT:
                logger.warning(
                    "envoy: no frame from the engine for %g s; reconnecting", SILENCE_TIMEOUT
                )
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(1001, "envoy.silent"), 2)
                ws.transport.abort()
                return

    # -- incoming --------------------------------------------------------------------------

    def _handle(self, message: Any) -> None:
        kind = type(message)
        if kind is ToEnvoyTunnelMessage:
            self._handler.on_tunnel_message(message)
        elif kind is ToEnvoyPing:
            self._push(self._encode(ToRivetPong(message.ts)))
        elif kind is ToEnvoyKvResponse:
            request = self._kv.pop(message.request_id, None)
            if request is not None and not request.future.done():
                request.future.set_result(message.data)
        elif kind is ToEnvoyCommands:
            self._on_commands(message.commands)
        elif kind is ToEnvoyAckEvents:
            self._on_ack_events(message)
        elif kind is ToEnvoyInit:
            self._on_init(message)
        else:
            logger.debug("envoy: ignored %s", kind.__name__)

    def _on_init(self, message: ToEnvoyInit) -> None:
        self.protocol_metadata = message.metadata
        if self._lost_timer is not None:
            self._lost_timer.cancel()
            self._lost_timer = None
        self.ready = True
        # Unacknowledged events, in order per (actor, generation).
        self._prune()
        events = [event for log in self._logs.values() for event in log.history]
        if events:
            logger.info("envoy: re-sending %d unacknowledged events", len(events))
            for start in range(0, len(events), 256):
                self._push(self._encode(ToRivetEvents(events[start : start + 256])))
        # KV requests not sent (or lost with the previous socket), in id order.
        for request in sorted(self._kv.values(), key=lambda r: r.request_id):
            if not request.sent:
                self._send_kv(request)
        while self._buffered:
            self._push(self._buffered.popleft())
        self._handler.on_connection(True)
        first = self._first
        if first is not None and not first.done():
            first.set_result(None)

    def _on_commands(self, commands: list[CommandWrapper]) -> None:
        fresh: list[CommandWrapper] = []
        acks: dict[tuple[str, int], ActorCheckpoint] = {}
        last_commands = self._last_commands
        for command in commands:
            checkpoint = command.checkpoint
            key = (checkpoint.actor_id, checkpoint.generation)
            last = last_commands.get(key)
            acks[key] = checkpoint
            if last is not None and checkpoint.index <= last:
                logger.debug("envoy: skipped replayed command %s", checkpoint)
                continue
            last_commands[key] = checkpoint.index
            fresh.append(command)
        if len(last_commands) > MAX_COMMAND_KEYS:
            # Oldest first. Kept after a generation ends, so that a late replay of its
            # start command cannot start it again.
            excess = len(last_commands) - MAX_COMMAND_KEYS
            for stale in list(last_commands):
                if excess <= 0:
                    break
                log = self._logs.get(stale)
                if log is None or log.retired_at is not None:  # never a live generation
                    del last_commands[stale]
                    excess -= 1
        if fresh:
            self._handler.on_commands(fresh)
        if acks:
            self.send(ToRivetAckCommands(list(acks.values())))

    def _on_ack_events(self, message: ToEnvoyAckEvents) -> None:
        for checkpoint in message.last_event_checkpoints:
            log = self._logs.get((checkpoint.actor_id, checkpoint.generation))
            if log is None:
                continue
            history = log.history
            while history and history[0].checkpoint.index <= checkpoint.index:
                history.popleft()
        self._prune()


def _first_failure(failures: list[EngineError], endpoints: Endpoints) -> EngineError:
    """The error of a first connect that failed on every node: the one error with one node,
    else one naming every node and why."""
    if len(failures) == 1:
        return failures[0]
    codes = {error.code for error in failures}
    return EngineError(
        codes.pop() if len(codes) == 1 else "unreachable",
        f"cannot connect to any engine node ({endpoints.describe()}): "
        + "; ".join(error.message for error in failures),
        metadata={"endpoints": list(endpoints)},
    )

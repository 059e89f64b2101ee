"""The engine driver: this process is an envoy of the Rivet Engine (DESIGN.md §7).

The runtime sees the same :class:`~rivetkit.drivers.base.Driver` as with the embedded driver;
underneath, everything goes to the engine:

* **placement**: the engine decides where actors run. It sends ``CommandStartActor`` (we call
  :meth:`ActorHost.start_actor`, then report ``Running``) and ``CommandStopActor`` (we call
  :meth:`ActorHost.stop_actor`, then report ``Stopped``, only once the teardown finished).
  Stop reasons: ``SleepIntent`` and ``GoingAway`` stop with reason ``sleep`` (``shutdown``
  while we drain), ``StopIntent`` and ``Destroy`` with reason ``destroy`` (after a
  ``Stopped{OK}`` the engine destroys the actor and deletes its KV), ``Lost`` with reason
  ``sleep`` and KV cut off (the actor may already run elsewhere), reported ``Stopped{ERROR}``.
  ``c.sleep()`` and ``c.destroy()`` become ``EventActorIntent{Sleep|Stop}``; the engine then
  sends the stop command. The manager-side calls (create, get, list, destroy) use the
  engine's HTTP API (:class:`~.api.EngineApi`).
* **KV**: ``ToRivetKvRequest`` messages, split to the engine's limits (128 keys and 976 KiB
  per put, 128 keys per get) and paged for lists. A write with puts *and* deletes sends the
  puts first, then the deletes of keys not put: the final state is the same as "deletes, then
  puts", and a crash in between leaves data behind rather than losing it. Such a write, or a
  put split in several requests, is not atomic on the engine (it has no multi-op
  transaction); a single put request is.
* **alarms**: ``EventActorSetAlarm``: the engine wakes a sleeping actor at that time (the
  runtime then runs the due schedules as it starts). While the actor runs here, a local timer
  calls :meth:`ActorHost.fire_alarm`, since the engine only wakes sleeping actors.
* **SQL databases** (``c.db``): SQLite pages kept in the actor's KV, through the VFS of
  :mod:`.sqlkv`, so a database follows its actor to whichever envoy runs it.
* **traffic**: HTTP and WebSocket tunnel messages go through :class:`~.tunnel.Tunnel` to the
  same :class:`~rivetkit.dispatch.Dispatcher` the ASGI server uses.

``stop()`` drains gracefully: ``ToRivetStopping``, then the engine sends ``GoingAway`` for
every actor here; each is stopped (state saved) and reported; then the socket closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from rivetkit._version import __version__
from rivetkit.drivers.base import ActorHost, ActorRecord, StopReason
from rivetkit.drivers.keys import check_name_key, deserialize_key
from rivetkit.errors import RivetError
from rivetkit.protocol import actor_persist
from rivetkit.protocol.envoy_protocol import (
    ActorIntentSleep,
    ActorIntentStop,
    ActorName,
    ActorStateRunning,
    ActorStateStopped,
    CommandStartActor,
    CommandStopActor,
    CommandWrapper,
    Event,
    EventActorIntent,
    EventActorSetAlarm,
    EventActorStateUpdate,
    KvDeleteRangeRequest,
    KvDeleteRequest,
    KvGetRequest,
    KvGetResponse,
    KvListAllQuery,
    KvListQuery,
    KvListRangeQuery,
    KvListRequest,
    KvListResponse,
    KvPutRequest,
    StopActorReason,
    StopCode,
    ToEnvoyTunnelMessage,
    ToRivetMetadata,
)
from rivetkit.runtime import keys as actor_keys

from .api import EngineApi
from .envoy import EngineError, EnvoyClient
from .tunnel import Tunnel

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.drivers.base import Driver

    from .sqlkv import SqlKvBackend, SqlKvPool

__all__ = ["EngineDriver"]

logger = logging.getLogger("rivetkit.engine")

#: The engine's KV limits (engine/packages/pegboard/src/actor_kv/mod.rs).
MAX_KEYS: Final = 128
MAX_PUT_PAYLOAD: Final = 976 * 1024
MAX_KEY_SIZE: Final = 2048
#: Entries asked per KV list page.
LIST_PAGE: Final = 1024
#: Greater than every valid key (its tuple length is exactly the 2048-byte key limit).
KEY_MAX: Final = b"\xff" * (MAX_KEY_SIZE - 2)
#: Seconds to wait for the engine's GoingAway commands during a drain, then for the stops.
DRAIN_COMMAND_WAIT: Final = 5.0
DRAIN_TIMEOUT: Final = 60.0

_State = Literal["starting", "running", "stopping", "stopped"]

_STOP_REASONS: Final[dict[StopActorReason, StopReason]] = {
    StopActorReason.SLEEP_INTENT: "sleep",
    StopActorReason.STOP_INTENT: "destroy",
    StopActorReason.DESTROY: "destroy",
    StopActorReason.GOING_AWAY: "sleep",
    StopActorReason.LOST: "sleep",
}


class _Actor:
    """An actor generation placed on this envoy."""

    __slots__ = (
        "actor_id",
        "alarm",
        "destroy_requested",
        "done",
        "fenced",
        "generation",
        "intent",
        "pending_events",
        "pending_stop",
        "record",
        "started",
        "state",
    )

    def __init__(self, record: ActorRecord, loop: asyncio.AbstractEventLoop) -> None:
        self.actor_id = record.actor_id
        self.generation = record.generation
        self.record = record
        self.state: _State = "starting"
        self.started: asyncio.Future[ActorRecord] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.pending_stop: StopActorReason | None = None
        #: Events asked for before ``Running`` was reported (sent right after it).
        self.pending_events: list[Event] = []
        #: The intent already sent (``sleep`` or ``destroy``), if any.
        self.intent: str | None = None
        self.destroy_requested = False
        #: KV cut off (the engine gave the actor up: another envoy may run it now).
        self.fenced = False
        self.alarm: asyncio.TimerHandle | None = None


class EngineDriver:
    """A :class:`~rivetkit.drivers.base.Driver` running actors as an envoy of a Rivet Engine.

    :param endpoint: the engine's URL (``http://127.0.0.1:6420``)
    :param namespace: the namespace name (it must exist unless ``create_namespace``)
    :param pool: the pool (runner config) to join; registered as a normal pool if missing
        (unless ``register_pool=False``)
    :param token: the engine's admin token, or None
    :param envoy_key: this envoy's identity (default: a new UUID per driver)
    :param version: the deploy version (u32) reported to the engine
    :param actor_names: the names announced in ``ToRivetMetadata`` (default: the host
        registry's actors)
    :param kv_timeout: seconds before a KV request fails
    :param clock: wall clock in epoch seconds (alarms)
    """

    def __init__(
        self,
        endpoint: str,
        *,
        namespace: str = "default",
        pool: str = "default",
        token: str | None = None,
        envoy_key: str | None = None,
        version: int = 1,
        actor_names: Sequence[str] | None = None,
        register_pool: bool = True,
        create_namespace: bool = False,
        kv_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.namespace = namespace
        self.pool = pool
        self.token = token
        self.envoy_key = envoy_key or str(uuid.uuid4())
        self.version = version
        self.actor_names = list(actor_names) if actor_names is not None else None
        self.register_pool = register_pool
        self.create_namespace = create_namespace
        self.kv_timeout = kv_timeout
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.api = EngineApi(self.endpoint, namespace=namespace, token=token)
        self.host: ActorHost | None = None
        self.envoy: EnvoyClient | None = None
        self.tunnel: Tunnel | None = None
        self._actors: dict[str, _Actor] = {}
        self._alarms: dict[str, int | None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopping = False
        self._stopped = False
        #: Set when the envoy is gone for good (evicted); the owner should exit.
        self.failed: asyncio.Event | None = None
        self.failure: str | None = None
        #: Threads of the actors' SQL databases (``c.db``, pages in the KV; see ``.sqlkv``).
        self._sql: SqlKvPool | None = None

    # -- life of the driver ----------------------------------------------------------------

    async def start(self, host: ActorHost) -> None:
        """Check the engine, register the pool if needed, connect the envoy and wait for the
        session to be ready.

        :raises EngineError: the engine cannot be reached or refused us (a clear message: bad
            token, unknown namespace, ...)
        """
        if self._started:
            raise RuntimeError("the driver was already started")
        self._loop = asyncio.get_running_loop()
        self.failed = asyncio.Event()
        self.host = host
        try:
            await self._prepare()
            names = self.actor_names
            if names is None:
                registry = getattr(host, "registry", None)
                names = list(getattr(registry, "actors", {}) or {})
            metadata = ToRivetMetadata(
                {name: ActorName("{}") for name in names},
                json.dumps({"runtime": "rivetkit-python", "version": __version__}),
            )
            self.tunnel = Tunnel(self._dispatcher(host), self._is_local)
            if self.tunnel.dispatcher is not None:
                # Hibernated connections are restored through the tunnel (the engine's
                # gateway kept their sockets; see tunnel.py).
                self.tunnel.dispatcher.runtime.conn_alive = self.tunnel.conn_alive
            self.envoy = EnvoyClient(
                self.endpoint,
                namespace=self.namespace,
                pool=self.pool,
                envoy_key=self.envoy_key,
                version=self.version,
                token=self.token,
                metadata=metadata,
                handler=self,
                kv_timeout=self.kv_timeout,
            )
            self.tunnel.attach(self.envoy)
            await self.envoy.start(self.connect_timeout)
        except BaseException:
            await self.api.aclose()
            raise
        self._started = True
        logger.info(
            "envoy %s joined pool %r of namespace %r on %s",
            self.envoy_key,
            self.pool,
            self.namespace,
            self.endpoint,
        )

    async def _prepare(self) -> None:
        try:
            await self.api.health()
        except RivetError as exc:
            raise EngineError("unreachable", exc.message) from None
        try:
            if self.create_namespace and not await self.api.namespace_exists():
                await self.api.create_namespace()
                logger.info("created namespace %r on the engine", self.namespace)
            if self.register_pool and await self.api.ensure_pool(self.pool):
                logger.info("registered pool %r on the engine", self.pool)
        except RivetError as exc:
            if exc.group == "namespace" and exc.code == "not_found":
                raise EngineError(
                    "namespace_not_found",
                    f"the namespace {self.namespace!r} does not exist on the engine",
                ) from None
            if exc.group in ("api", "guard") and exc.code in (
                "forbidden",
                "unauthorized",
                "missing_header",
            ):
                raise EngineError(
                    "forbidden",
                    f"the engine refused the token ({exc.group}.{exc.code}: {exc.message})",
                ) from None
            raise

    @staticmethod
    def _dispatcher(host: ActorHost) -> Dispatcher | None:
        from rivetkit.runtime.host import Runtime

        if isinstance(host, Runtime):
            from rivetkit.dispatch.router import Dispatcher

            return Dispatcher(host)
        return None

    async def stop(self) -> None:
        """Drain: ``ToRivetStopping``, stop every actor (reason ``shutdown``) as the engine
        asks, report them, close the socket. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopping = True
        envoy = self.envoy
        assert envoy is not None
        try:
            busy = any(a.state == "running" for a in self._actors.values())
            if envoy.ready and busy and not await self._other_envoys():
                # No envoy of the pool can take the actors: put them to sleep (the next
                # request or alarm wakes them) rather than leave them in the engine's
                # reallocation backoff, which delays their next start by seconds.
                for actor in list(self._actors.values()):
                    if actor.state == "running" and actor.intent is None:
                        actor.intent = "sleep"
                        self._event(actor, EventActorIntent(ActorIntentSleep()))
                await self._wait_stopped(DRAIN_COMMAND_WAIT)
            if envoy.send_stopping():
                # The engine answers with GoingAway for each of our actors (it moves them
                # to the other envoys of the pool).
                await self._wait_stopped(DRAIN_COMMAND_WAIT)
                for actor in list(self._actors.values()):
                    if actor.state == "running" and actor.intent is None:
                        actor.intent = "sleep"
                        self._event(actor, EventActorIntent(ActorIntentSleep()))
                await self._wait_stopped(DRAIN_COMMAND_WAIT)
            # Whatever the engine did not stop: stop it here (reported as an error, which
            # the engine treats as a crash, never as a destroy).
            for actor in list(self._actors.values()):
                if actor.state == "running":
                    self._begin_stop(actor, None)
            waits = [actor.done for actor in self._actors.values()]
            if waits:
                await asyncio.wait(waits, timeout=DRAIN_TIMEOUT)
            await envoy.flush()
        finally:
            self._stopped = True
            await envoy.close()
            if self.tunnel is not None:
                self.tunnel.close()
            for actor in self._actors.values():
                if actor.alarm is not None:
                    actor.alarm.cancel()
            tasks = [task for task in self._tasks if not task.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._sql is not None:
                self._sql.shutdown()
            await self.api.aclose()

    async def _wait_stopped(self, timeout: float) -> None:
        """Wait until no actor here is starting or running (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            a.state in ("starting", "running") for a in self._actors.values()
        ):
            await asyncio.sleep(0.01)

    async def _other_envoys(self) -> bool:
        """Whether another live envoy of our pool could take our actors (True if unsure)."""
        try:
            envoys = await asyncio.wait_for(self.api.envoys(), 2)
        except Exception:
            return True
        now_ms = self.clock() * 1000
        return any(
            item.get("pool_name") == self.pool
            and item.get("envoy_key") != self.envoy_key
            and item.get("stop_ts") is None
            and now_ms - float(item.get("last_ping_ts") or 0) < 15_000
            for item in envoys
        )

    # -- EnvoyHandler ----------------------------------------------------------------------

    def on_commands(self, commands: list[CommandWrapper]) -> None:
        """Start and stop actors as the engine commands."""
        for command in commands:
            checkpoint = command.checkpoint
            inner = command.inner
            if isinstance(inner, CommandStartActor):
                self._on_start(checkpoint.actor_id, checkpoint.generation, inner)
            elif isinstance(inner, CommandStopActor):
                self._on_stop(checkpoint.actor_id, checkpoint.generation, inner.reason)

    def on_tunnel_message(self, message: ToEnvoyTunnelMessage) -> None:
        """HTTP and WebSocket traffic: handed to the tunnel."""
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.handle(message)

    def on_connection(self, connected: bool) -> None:
        """The session became ready or dropped (nothing to do: events and KV resend)."""
        logger.debug("envoy session %s", "ready" if connected else "dropped")

    def on_lost(self) -> None:
        """Disconnected past the lost threshold: stop every local actor, KV cut off."""
        for actor in list(self._actors.values()):
            actor.fenced = True
            if actor.state == "running":
                self._begin_stop(actor, StopActorReason.LOST)
            elif actor.state == "starting":
                actor.pending_stop = StopActorReason.LOST

    def on_evicted(self, reason: str) -> None:
        """Another envoy took our key: stop everything locally and report failure."""
        self.failure = f"evicted by the engine ({reason})"
        self.on_lost()
        if self.failed is not None:
            self.failed.set()

    # -- starting and stopping -------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _event(self, actor: _Actor, inner: Event) -> None:
        envoy = self.envoy
        if envoy is not None:
            envoy.send_event(actor.actor_id, actor.generation, inner)

    def _on_start(self, actor_id: str, generation: int, command: CommandStartActor) -> None:
        config = command.config
        record = ActorRecord(
            actor_id=actor_id,
            name=config.name,
            key=deserialize_key(config.key) if config.key is not None else [],
            input=config.input,
            create_ts=config.create_ts,
            destroy_ts=None,
            generation=generation,
        )
        logger.debug("start actor %s (%s) generation %d", actor_id, config.name, generation)
        loop = self._loop or asyncio.get_running_loop()
        previous = self._actors.get(actor_id)
        actor = _Actor(record, loop)
        self._actors[actor_id] = actor
        if self.tunnel is not None:  # sockets kept by the gateway while the actor slept
            self.tunnel.start_actor(actor_id, generation, command.hibernating_requests)
        self._spawn(self._start(actor, previous))

    async def _start(self, actor: _Actor, previous: _Actor | None) -> None:
        host = self.host
        assert host is not None
        if previous is not None and not previous.done.done():
            # One instance of an actor at a time: the old generation finishes first.
            if previous.state == "running":
                self._begin_stop(previous, StopActorReason.LOST)
            await asyncio.wait([previous.done])
        try:
            await host.start_actor(actor.record, actor.generation)
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            if not cancelled:
                logger.warning(
                    "starting actor %s (%s, generation %d) failed",
                    actor.actor_id,
                    actor.record.name,
                    actor.generation,
                    exc_info=exc,
                )
            message = f"{type(exc).__name__}: {exc}"[:500]
            self._finish(actor, StopCode.ERROR, message)
            if not actor.started.done():
                if cancelled:
                    actor.started.cancel()
                else:
                    actor.started.set_exception(exc)
                    actor.started.exception()
            if cancelled:
                raise
            return
        actor.state = "running"
        self._event(actor, EventActorStateUpdate(ActorStateRunning()))
        if self.tunnel is not None:
            self.tunnel.actor_started(actor.actor_id)
        for inner in actor.pending_events:
            self._event(actor, inner)
        actor.pending_events.clear()
        actor.started.set_result(actor.record)
        if actor.pending_stop is not None:
            self._begin_stop(actor, actor.pending_stop)
            return
        await self._arm_stored_alarm(actor)

    def _on_stop(self, actor_id: str, generation: int, reason: StopActorReason) -> None:
        logger.debug("stop actor %s generation %d (%s)", actor_id, generation, reason.name)
        actor = self._actors.get(actor_id)
        if actor is None or actor.generation != generation:
            logger.debug(
                "stop (%s) for actor %s generation %d, which is not running here",
                reason.name,
                actor_id,
                generation,
            )
            return
        if reason == StopActorReason.LOST:
            actor.fenced = True
        if actor.state == "starting":
            actor.pending_stop = reason
        elif actor.state == "running":
            self._begin_stop(actor, reason)

    def _begin_stop(self, actor: _Actor, reason: StopActorReason | None) -> None:
        """Stop ``actor``; ``reason`` None: a local stop the engine did not ask for."""
        actor.state = "stopping"
        if actor.alarm is not None:
            actor.alarm.cancel()
            actor.alarm = None
        self._spawn(self._stop(actor, reason))

    async def _stop(self, actor: _Actor, reason: StopActorReason | None) -> None:
        host = self.host
        assert host is not None
        if reason is None:
            stop_reason: StopReason = "shutdown"
        else:
            stop_reason = _STOP_REASONS[reason]
            if stop_reason == "sleep" and self._stopping:
                stop_reason = "shutdown"
        # c.destroy() after a sleep intent: the engine only knows of the sleep, so the
        # instance runs its destroy shutdown here and the engine is asked to destroy after.
        engine_destroys = stop_reason == "destroy"
        if actor.destroy_requested and not actor.fenced:
            stop_reason = "destroy"
        code, message = StopCode.OK, None
        if reason is None:
            code, message = StopCode.ERROR, "envoy shutting down"
        elif reason == StopActorReason.LOST:
            code, message = StopCode.ERROR, "envoy connection lost"
        try:
            await host.stop_actor(actor.actor_id, stop_reason)
        except Exception as exc:
            logger.exception("stopping actor %s (%s) failed", actor.actor_id, stop_reason)
            code, message = StopCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]
        self._finish(actor, code, message)
        if actor.destroy_requested and not engine_destroys and not actor.fenced:
            try:
                await self.api.destroy_actor(actor.actor_id)
            except RivetError as exc:
                logger.warning("destroying actor %s failed: %s", actor.actor_id, exc)

    def _finish(self, actor: _Actor, code: StopCode, message: str | None) -> None:
        """Report ``Stopped`` (after the teardown: seed lesson 11) and forget the actor."""
        actor.state = "stopped"
        if actor.alarm is not None:
            actor.alarm.cancel()
            actor.alarm = None
        self._event(actor, EventActorStateUpdate(ActorStateStopped(code, message)))
        if self.tunnel is not None:  # hibernatable sockets stay with the gateway
            self.tunnel.actor_stopped(actor.actor_id, actor.generation)
        envoy = self.envoy
        if envoy is not None:
            envoy.retire(actor.actor_id, actor.generation)
        if self._actors.get(actor.actor_id) is actor:
            del self._actors[actor.actor_id]
        if not actor.done.done():
            actor.done.set_result(None)

    # -- queries ---------------------------------------------------------------------------

    def _is_local(self, actor_id: str) -> bool:
        actor = self._actors.get(actor_id)
        return actor is not None and actor.state != "stopped"

    def running_generation(self, actor_id: str) -> int | None:
        """The generation of the actor's instance running here, or None."""
        actor = self._actors.get(actor_id)
        return actor.generation if actor is not None and actor.state == "running" else None

    def loaded(self) -> dict[str, str]:
        """``actor_id -> "starting" | "running" | "stopping"`` for the actors placed here."""
        return {actor_id: actor.state for actor_id, actor in self._actors.items()}

    # -- placement -------------------------------------------------------------------------

    async def get_or_create_actor(
        self, name: str, key: Sequence[str], input: bytes | None
    ) -> tuple[ActorRecord, bool]:
        """The live actor with ``(name, key)``, created when missing (``PUT /actors``)."""
        segments = check_name_key(name, key)
        return await self.api.get_or_create_actor(name, segments, input, self.pool)

    async def create_actor(self, name: str, key: Sequence[str], input: bytes | None) -> ActorRecord:
        """Create an actor (``POST /actors``); ``actor/duplicate_key`` if taken."""
        segments = check_name_key(name, key)
        return await self.api.create_actor(name, segments, input, self.pool)

    async def get_actor(self, actor_id: str) -> ActorRecord | None:
        """The actor with this id (destroyed ones included), or None."""
        local = self._actors.get(actor_id)
        if local is not None:
            return local.record
        try:
            records = await self.api.get_actors([actor_id])
        except RivetError as exc:
            if exc.code in ("not_found", "invalid_input", "bad_request", "invalid_id"):
                return None
            raise
        return records[0] if records else None

    async def find_actor(self, name: str, key: Sequence[str]) -> ActorRecord | None:
        """The live actor with ``(name, key)``, or None."""
        segments = check_name_key(name, key)
        for record in await self.api.list_actors(name, segments):
            if record.destroy_ts is None:
                return record
        return None

    async def list_actors(self, name: str | None = None) -> list[ActorRecord]:
        """Live actors, optionally of one name, oldest first."""
        names = [name] if name is not None else await self.api.actor_names()
        records: list[ActorRecord] = []
        for one in names:
            records.extend(r for r in await self.api.list_actors(one) if r.destroy_ts is None)
        records.sort(key=lambda r: r.create_ts)
        return records

    async def ensure_started(self, actor_id: str) -> ActorRecord:
        """The record of the actor running here, waking it through the engine if needed.

        RivetError ``actor/not_found`` for an unknown or destroyed actor, or when the engine
        placed it on another envoy.
        """
        for _ in range(3):
            actor = self._actors.get(actor_id)
            if actor is not None:
                if actor.state == "running":
                    return actor.record
                if actor.state == "starting":
                    return await asyncio.shield(actor.started)
                await asyncio.shield(actor.done)
            if self._stopping:
                raise RivetError("driver", "stopped", "the driver is shutting down")
            try:
                await self.api.wake_actor(actor_id)
            except RivetError as exc:
                if exc.group == "actor" and exc.code == "not_found":
                    raise
                if exc.group in ("actor", "guard") and exc.code in (
                    "destroyed",
                    "not_found",
                    "actor_not_found",
                ):
                    raise RivetError("actor", "not_found", f"actor {actor_id} not found") from None
                raise
            actor = self._actors.get(actor_id)
            if actor is not None and actor.state == "running":
                return actor.record
            if actor is None:
                break
        raise RivetError(
            "actor",
            "not_found",
            f"actor {actor_id} is not running on this envoy (the engine placed it elsewhere)",
            metadata={"actor_id": actor_id},
        )

    def request_sleep(self, actor_id: str, generation: int) -> None:
        """``EventActorIntent{Sleep}``: the engine answers with a ``SleepIntent`` stop."""
        self._intent(actor_id, generation, "sleep")

    def request_destroy(self, actor_id: str, generation: int) -> None:
        """``EventActorIntent{Stop}``: the engine answers with a ``StopIntent`` stop, then
        destroys the actor and its KV."""
        self._intent(actor_id, generation, "destroy")

    def _intent(self, actor_id: str, generation: int, kind: str) -> None:
        actor = self._actors.get(actor_id)
        if actor is None or actor.generation != generation or actor.state == "stopped":
            logger.debug("ignored %s request for actor %s (stale)", kind, actor_id)
            return
        if kind == "destroy":
            actor.destroy_requested = True
        if actor.intent == kind or actor.intent == "destroy":
            return
        if actor.intent == "sleep" or actor.state == "stopping":
            return  # a destroy after a sleep intent is applied when the stop comes
        actor.intent = kind
        inner: Event = EventActorIntent(
            ActorIntentStop() if kind == "destroy" else ActorIntentSleep()
        )
        if actor.state == "starting":
            actor.pending_events.append(inner)
        else:
            self._event(actor, inner)

    async def destroy_actor(self, actor_id: str) -> None:
        """Destroy an actor (``DELETE /actors/{id}``) and wait until the engine shows it
        destroyed. RivetError ``actor/not_found`` for an unknown or destroyed actor."""
        record = await self.get_actor(actor_id)
        if record is None or (record.destroy_ts is not None and actor_id not in self._actors):
            raise RivetError("actor", "not_found", f"no actor {actor_id[:100]!r}")
        await self.api.destroy_actor(actor_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = await self.api.get_actors([actor_id])
            if not records or records[0].destroy_ts is not None:
                local = self._actors.get(actor_id)
                if local is not None:
                    await asyncio.shield(local.done)
                return
            await asyncio.sleep(0.05)
        raise RivetError("driver", "timeout", f"actor {actor_id} was not destroyed within 60 s")

    # -- SQL databases ---------------------------------------------------------------------

    def sql_backend(self, actor_id: str) -> SqlKvBackend:
        """The actor's SQL database, its pages kept in the actor's KV (see :mod:`.sqlkv`)."""
        from .sqlkv import DriverKv, SqlKvPool

        if self._sql is None:
            self._sql = SqlKvPool(kv_timeout=self.kv_timeout + 5.0)
        return self._sql.open(DriverKv(self, actor_id))

    # -- KV --------------------------------------------------------------------------------

    def _envoy_for(self, actor_id: str) -> EnvoyClient:
        envoy = self.envoy
        if envoy is None:
            raise RivetError("driver", "not_started", "the driver has not been started")
        actor = self._actors.get(actor_id)
        if actor is not None and actor.fenced:
            raise RivetError(
                "driver",
                "fenced",
                f"actor {actor_id} was given up by the engine; its KV is no longer ours",
            )
        return envoy

    async def kv_get(self, actor_id: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (None where missing)."""
        if not keys:
            return []
        envoy = self._envoy_for(actor_id)
        wanted = list(dict.fromkeys(bytes(k) for k in keys))
        chunks = [wanted[i : i + MAX_KEYS] for i in range(0, len(wanted), MAX_KEYS)]
        responses = await asyncio.gather(
            *(envoy.kv(actor_id, KvGetRequest(chunk)) for chunk in chunks)
        )
        found: dict[bytes, bytes] = {}
        for response in responses:
            if not isinstance(response, KvGetResponse):
                raise _unexpected(response)
            found.update(zip(response.keys, response.values))
        return [found.get(bytes(k)) for k in keys]

    async def kv_write(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]] = (),
        deletes: Sequence[bytes] = (),
    ) -> None:
        """Apply the puts, then the deletes of keys not put (see the module docstring)."""
        if not puts and not deletes:
            return
        envoy = self._envoy_for(actor_id)
        waits: list[Coroutine[Any, Any, Any]] = []
        merged: dict[bytes, bytes] = {}
        for key, value in puts:
            merged[bytes(key)] = bytes(value)
        keys: list[bytes] = []
        values: list[bytes] = []
        size = 0
        for key, value in merged.items():
            entry = len(key) + 2 + len(value)
            if keys and (len(keys) >= MAX_KEYS or size + entry > MAX_PUT_PAYLOAD):
                waits.append(envoy.kv(actor_id, KvPutRequest(keys, values)))
                keys, values, size = [], [], 0
            keys.append(key)
            values.append(value)
            size += entry
        if keys:
            waits.append(envoy.kv(actor_id, KvPutRequest(keys, values)))
        removed = [k for k in dict.fromkeys(bytes(k) for k in deletes) if k not in merged]
        for start in range(0, len(removed), MAX_KEYS):
            waits.append(envoy.kv(actor_id, KvDeleteRequest(removed[start : start + MAX_KEYS])))
        # Sent in order now (the engine applies one actor's requests in order), awaited
        # together; the first failure is raised once all have answered.
        tasks = [asyncio.ensure_future(wait) for wait in waits]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def kv_list(
        self,
        actor_id: str,
        start: bytes,
        end: bytes | None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` (``end=None``: no upper bound), in key order
        (descending with ``reverse``), at most ``limit``."""
        start = bytes(start)
        if end is not None:
            end = bytes(end)
            if start >= end:
                return []
        if limit is not None and limit <= 0:
            return []
        envoy = self._envoy_for(actor_id)
        entries: list[tuple[bytes, bytes]] = []
        lower, upper, exclusive = start, end, True
        while True:
            page = LIST_PAGE if limit is None else min(LIST_PAGE, limit - len(entries))
            query: KvListQuery
            if not lower and upper is None:
                query = KvListAllQuery()
            elif upper is None:
                query = KvListRangeQuery(lower, KEY_MAX, False)
            else:
                query = KvListRangeQuery(lower, upper, exclusive)
            response = await envoy.kv(actor_id, KvListRequest(query, reverse or None, page))
            if not isinstance(response, KvListResponse):
                raise _unexpected(response)
            batch = list(zip(response.keys, response.values))
            entries.extend(batch)
            if len(batch) < page or (limit is not None and len(entries) >= limit):
                return entries
            last = batch[-1][0]
            if reverse:
                upper, exclusive = last, True
            else:
                lower = last + b"\x00"

    async def kv_delete_range(self, actor_id: str, start: bytes, end: bytes | None) -> None:
        """Delete entries with ``start <= key < end`` (``end=None``: no upper bound)."""
        start = bytes(start)
        envoy = self._envoy_for(actor_id)
        if end is None:
            await envoy.kv(actor_id, KvDeleteRangeRequest(start, KEY_MAX))
            await envoy.kv(actor_id, KvDeleteRequest([KEY_MAX]))
            return
        end = bytes(end)
        if start >= end:
            return
        await envoy.kv(actor_id, KvDeleteRangeRequest(start, end))

    # -- alarms ----------------------------------------------------------------------------

    async def set_alarm(self, actor_id: str, when_ms: int | None) -> None:
        """Set (or clear) the actor's alarm: ``EventActorSetAlarm`` for the engine (which
        wakes the actor when it sleeps) and a local timer while it runs here."""
        if when_ms is not None:
            when_ms = int(when_ms)
        self._alarms[actor_id] = when_ms
        actor = self._actors.get(actor_id)
        if actor is None or actor.state == "stopped":
            logger.debug("alarm of actor %s not reported: not running here", actor_id)
            return
        self._event(actor, EventActorSetAlarm(when_ms))
        if actor.state in ("starting", "running"):
            self._arm(actor, when_ms)

    def _arm(self, actor: _Actor, when_ms: int | None) -> None:
        if actor.alarm is not None:
            actor.alarm.cancel()
            actor.alarm = None
        if when_ms is None:
            return
        loop = self._loop or asyncio.get_running_loop()
        delay = max(0.0, when_ms / 1000 - self.clock())
        actor.alarm = loop.call_later(delay, self._alarm_due, actor)

    def _alarm_due(self, actor: _Actor) -> None:
        actor.alarm = None
        if actor.state != "running" or self._actors.get(actor.actor_id) is not actor:
            return
        self._spawn(self._fire_alarm(actor))

    async def _fire_alarm(self, actor: _Actor) -> None:
        host = self.host
        assert host is not None
        try:
            await host.fire_alarm(actor.actor_id)
        except RivetError as exc:
            logger.debug("alarm of actor %s dropped: %s", actor.actor_id, exc)
        except Exception:
            logger.exception("alarm of actor %s failed", actor.actor_id)

    async def _arm_stored_alarm(self, actor: _Actor) -> None:
        """Arm the local timer from the alarm the runtime last pushed (``[6]``) when this
        process has not seen it yet (the runtime does not push an unchanged alarm again)."""
        if actor.actor_id in self._alarms:
            when_ms = self._alarms[actor.actor_id]
        else:
            try:
                (raw,) = await self.kv_get(actor.actor_id, [actor_keys.LAST_PUSHED_ALARM])
                when_ms = actor_persist.LAST_PUSHED_ALARM.decode(raw) if raw is not None else None
            except Exception as exc:
                logger.warning("reading the alarm of actor %s failed: %s", actor.actor_id, exc)
                return
            self._alarms.setdefault(actor.actor_id, when_ms)
            when_ms = self._alarms[actor.actor_id]
        if actor.state == "running" and actor.alarm is None:
            self._arm(actor, when_ms)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A snapshot for ``/health`` and ``/metrics``."""
        envoy = self.envoy
        states: dict[str, int] = {"starting": 0, "running": 0, "stopping": 0}
        for actor in self._actors.values():
            if actor.state in states:
                states[actor.state] += 1
        return {
            "connected": bool(envoy is not None and envoy.ready),
            "envoy_key": self.envoy_key,
            "pool": self.pool,
            "namespace": self.namespace,
            "endpoint": self.endpoint,
            "actors": states,
            "pending_events": envoy.pending_events() if envoy is not None else 0,
            "stats": dict(envoy.stats) if envoy is not None else {},
            "tunnel": self.tunnel.counts() if self.tunnel is not None else {},
            "failure": self.failure,
        }


def _unexpected(response: object) -> RivetError:
    return RivetError(
        "kv", "engine_error", f"unexpected KV response from the engine: {type(response).__name__}"
    )


if TYPE_CHECKING:

    def _implements_driver(driver: EngineDriver) -> Driver:
        return driver

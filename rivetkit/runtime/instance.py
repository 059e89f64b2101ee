"""One running actor: its state, lifecycle, actions, saves and idle sleep.

The order of things follows RivetKit (runtime spec §3):

* start: load the snapshot at KV ``[1]`` → ``on_migrate`` → (new actor: ``create_state`` →
  ``on_create``) → ``create_vars`` → ``on_wake`` → persist ``has_initialized`` → ready →
  ``run`` in the background → arm the idle timer;
* sleep: abort signal → disconnect non-hibernatable connections → ``on_sleep`` → wait for
  ``run``, ``wait_until`` tasks, ``keep_awake`` and in-flight actions within the grace
  period → final save;
* destroy: abort signal → disconnect every connection → ``on_destroy`` (its own timeout) →
  wait (not for ``run``) → final save; the driver then deletes the actor's data.

:class:`ActorInstance` keeps the lifecycle and the action path, and wires its collaborators:
:class:`~rivetkit.runtime.persistence.StatePersistence` (``persistence``: dirty tracking and
throttled saves, never awaited on an action's path, and the final save of a shutdown),
:class:`~rivetkit.runtime.conns.ActorConns` (``connections``: opening, closing, hibernation
records, events) and :class:`~rivetkit.runtime.sleep_policy.SleepPolicy` (``sleep_policy``:
what keeps the actor awake, the idle timer, shutdown work).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from rivetkit.db import ActorDatabase
from rivetkit.drivers.base import prefix_end
from rivetkit.errors import RivetError, actor_error
from rivetkit.protocol import actor_persist
from rivetkit.protocol.actor_persist import Actor, ScheduleEvent
from rivetkit.protocol.values import cbor_loads
from rivetkit.runtime import keys
from rivetkit.runtime.action_calls import Suspended, action_table, finish_action, start_action
from rivetkit.runtime.blocking import BlockingGate, gate_for
from rivetkit.runtime.connection import Connection, ConnTransport, Hibernation
from rivetkit.runtime.conns import ActorConns, has_conn_hooks
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.hooks import ActorLogAdapter, initial_state, initial_vars, run_hook
from rivetkit.runtime.hooks import hook_fn as _hook
from rivetkit.runtime.kv import ActorKV
from rivetkit.runtime.lazy_event import AbortSignal
from rivetkit.runtime.persistence import NO_EVENTS, StatePersistence
from rivetkit.runtime.phase import Phase as Phase
from rivetkit.runtime.queue import ActorQueue
from rivetkit.runtime.schedule import ActorSchedule
from rivetkit.runtime.sleep_policy import SleepPolicy
from rivetkit.runtime.state_guard import StateGuard
from rivetkit.runtime.teardown import release
from rivetkit.runtime.timers import SleepTimers
from rivetkit.runtime.token_pool import inspector_token
from rivetkit.traces import traced, traces_for

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition
    from rivetkit.drivers.base import ActorRecord, Driver, StopReason
    from rivetkit.metrics.counters import ActorMetrics

T = TypeVar("T")
logger = logging.getLogger("rivetkit.actor")


class ActorInstance:
    """A live actor: created by the runtime when the driver starts it."""

    # Fields most actors never set (replaced on the instance when set): CPython keeps <= 30
    # attributes inline (~0.3 KB per live actor; a dict past that, ~1.6 KB).
    input: Any = None
    vars: Any = None
    _db: ActorDatabase | None = None
    #: Told ``"state"``, ``"connections"`` or ``"schedules"`` while an inspector watches.
    inspector_observer: Callable[[str], None] | None = None
    _log: ActorLogAdapter | None = None  # made on first use (see log)
    _serial: asyncio.Lock | None = None  # options.serial
    _gate: BlockingGate | None = None  # only with blocking actions (blocking.py)
    _on_state_change: Callable[..., Any] | None = None
    _before_response: Callable[..., Any] | None = None
    final_save_error: Exception | None = None  #: why the final save failed, after retries
    _run_task: asyncio.Task[Any] | None = None
    _stop_requested = _destroy_requested = False
    abort_event = AbortSignal()  # made on first read, then kept in _abort (lazy_event.py)

    def __init__(
        self,
        definition: ActorDefinition,
        driver: Driver,
        record: ActorRecord,
        generation: int,
        *,
        on_stopped: Callable[[ActorInstance], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep_timers: SleepTimers | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        conn_alive: Callable[[Connection], bool] | None = None,
        metrics: ActorMetrics | None = None,
    ) -> None:
        self.definition = definition
        self.clock = clock  #: wall clock in epoch seconds (schedules, queue timestamps)
        self.options = definition.options
        self.driver = driver
        self.actor_id = record.actor_id
        self.name = record.name
        self.key = list(record.key)
        self.generation = generation
        self.record = record
        self.phase = Phase.LOADING
        self.conn_alive = conn_alive  # (before the keys only some actors set: see above)
        self.metrics = metrics  # this actor's Prometheus counters (None: off)
        self.conns: dict[str, Connection] = {}
        self.kv = ActorKV(driver, record.actor_id)
        self.queue = ActorQueue(self, clock=clock)
        self.schedule = ActorSchedule(self, clock)
        self.traces = traces_for(self)  # span recorder (rivetkit.traces); None: tracing off
        self.context = ActorContext(self)
        self.table = action_table(definition)
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._on_stopped = on_stopped
        if self.options.serial:
            self._serial = asyncio.Lock()
        if (gate := gate_for(self)) is not None:
            self._gate = gate
        # Hooks on hot paths; the others are looked up when called (no per-actor table).
        if (hook := definition.hooks.on_state_change) is not None:
            self._on_state_change = hook.fn
        if (before := definition.hooks.on_before_action_response) is not None:
            self._before_response = before.fn
        # Replies go out as the action returns them (no hook, no durability gate).
        self._plain_replies = before is None and not self.options.durable_replies
        self._state: Any = None
        self.persistence = StatePersistence(self)
        self.connections = ActorConns(self)
        self._guard = StateGuard()  # refuses unsaveable state where written (state_guard.py)
        self.sleep_policy = SleepPolicy(self, sleep_timers)  # what keeps it awake, idle timer

    @property
    def log(self) -> ActorLogAdapter:
        """A logger whose lines carry the actor's name, key and id (made on first use: most
        actors never log)."""
        log = self._log
        if log is None:
            record = self.record
            log = self._log = ActorLogAdapter(
                logger,
                {
                    "actor": record.name,
                    "key": "/".join(record.key) or "-",
                    "actor_id": self.actor_id,
                },
            )
        return log

    # -- State ---------------------------------------------------------------------------------

    @property
    def state(self) -> Any:
        return self._state

    def set_state(self, value: Any) -> None:
        """Replace the state (``c.state = value``)."""
        if self.persistence.in_state_change:
            raise actor_error(
                "state_mutation_reentrant", "state cannot be changed inside on_state_change"
            )
        self._state = value
        self.persistence.mark_dirty()

    def mark_dirty(self) -> None:
        """The state may have changed: schedule a throttled save."""
        self.persistence.mark_dirty()

    def encode_state(self) -> bytes:
        """The state as RivetKit stores it: CBOR of the JSON-compatible form."""
        return self.persistence.encode_state()

    async def save_state(self, *, immediate: bool = False) -> None:
        """Wait until the current state is persisted (``immediate``: without the throttle).

        Raises ``actor/invalid_state`` when the state cannot be saved and
        ``actor/state_save_failed`` when the save fails (see :mod:`.state_guard`).
        """
        await self.persistence.save_state(immediate=immediate)

    async def flush(self) -> None:
        """Persist now, whatever the throttle says, and wait for it."""
        await self.persistence.flush()

    # -- Hooks ---------------------------------------------------------------------------------

    async def _call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        hook = _hook(self.definition, name)
        if hook is None:
            return None
        if self._gate is not None and self._gate.busy:  # a blocking action's thread runs
            await self._gate.before_hook(name, timeout)
        with traced(self.traces, "hook", name):
            result = hook(self.context, *args)
            if inspect.isawaitable(result):
                if timeout is None:
                    return await result
                try:
                    return await asyncio.wait_for(result, timeout)
                except asyncio.TimeoutError:
                    raise actor_error(
                        "callback_timed_out",
                        f"{name} did not finish within {timeout:g} s",
                        metadata={"callback": name, "timeout_ms": int(timeout * 1000)},
                    ) from None
            return result

    # -- Start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the snapshot, run the start hooks, persist ``has_initialized``, start ``run``."""
        options = self.options
        raw, raw_alarm, token = await self.driver.kv_get(
            self.actor_id, [keys.PERSIST, keys.LAST_PUSHED_ALARM, keys.INSPECTOR_TOKEN]
        )
        if raw is None and self.traces is not None:  # new: its KV may be known empty (free)
            await self.traces.preload()
        # The inspector token is made at the first start, as RivetKit's CoreInit does, so the
        # dashboard finds it at [3] before any inspector request (written with the snapshot).
        token_put = [(keys.INSPECTOR_TOKEN, inspector_token())] if token is None else None
        saves = self.persistence
        if raw is None:
            snapshot = Actor(self.record.input, False, b"", NO_EVENTS)
            saves.snapshot = None
        else:
            snapshot = actor_persist.ACTOR.decode(raw)
            saves.snapshot = snapshot
        saves.events = snapshot.scheduled_events  # replaced on change, never mutated
        last_alarm = (
            actor_persist.LAST_PUSHED_ALARM.decode(raw_alarm) if raw_alarm is not None else None
        )
        # A new actor whose KV the driver knows empty (the embedded driver's, until its first
        # write) has no hibernated connections, queued messages or recurring schedules: their
        # reads, all answered empty, are skipped (no await between this check and them).
        if raw is None and self.definition.db is None and self.driver.kv_known_empty(self.actor_id):
            await self.schedule.load(last_alarm, empty=True)
            dead_conns: list[Connection] = []
        else:
            dead_conns = await self.connections.restore()
            if self.definition.db is not None:
                # Migrations are applied on wake, before any hook can use the database.
                await self.db.open()
            await self.queue.load()
            await self.schedule.load(last_alarm)
            await self.schedule.interrupted_runs()
        is_new = not snapshot.has_initialized
        if snapshot.input:
            self.input = cbor_loads(snapshot.input)
        # An absent hook or factory is not awaited (no coroutine made for nothing).
        definition = self.definition
        hooks = definition.hooks
        if hooks.on_migrate is not None:
            await self._call("on_migrate", is_new, timeout=options.on_migrate_timeout)
        if is_new:
            if hooks.create_state is None:
                self._state = definition.new_state_value()
            else:
                self._state = await initial_state(definition, self.context, self.input)
            if hooks.on_create is not None:
                await self._call("on_create", self.input)
        else:
            self._state = cbor_loads(snapshot.state) if snapshot.state else None
        if hooks.create_vars is None:
            if (value := definition.new_vars_value()) is not None:
                self.vars = value
        else:
            self.vars = await initial_vars(definition, self.context)
        if hooks.on_wake is not None:
            await self._call("on_wake")
        # The checkpoint's encoding is the snapshot's (no await between them).
        encoded = self._guard.checkpoint(self._state) if self._guard.enabled else None
        if is_new or saves.dirty or token_put:
            await saves.write_snapshot(extra=token_put, encoded=encoded)
        if self._on_state_change is not None:
            saves.remember_state()
        self.phase = Phase.STARTED
        if self.metrics is not None:
            self.metrics.wakes += 1
        if hooks.run is not None:
            self._run_task = self._loop.create_task(run_hook(self))
        for conn in list(self.conns.values()):  # restored: their transports may resume now
            resumed = getattr(conn.transport, "resumed", None)
            if resumed is not None and conn.hibernation is not None:
                self._loop.call_soon(resumed)
        for conn in dead_conns:
            lost = self.connections.disconnect(conn, "connection lost while the actor slept")
            self.wait_until(lost)
        self.sleep_policy.reset_idle()
        trigger = await self.schedule.sync_alarm()  # the next trigger after the sync
        if trigger is not None and trigger <= self.clock():
            # Overdue events run right after the wake, in the background (seed lesson 3).
            self.wait_until(self.run_due_schedules())

    # -- Schedules and alarms (the owner side of ActorSchedule) --------------------------------

    def scheduled_events(self) -> list[ScheduleEvent]:
        """The one-shot events of the snapshot, soonest first (read-only: the list is shared
        with the persisted snapshot; change it with :meth:`replace_scheduled_events`)."""
        return self.persistence.events

    async def replace_scheduled_events(self, events: list[ScheduleEvent]) -> None:
        """Set the snapshot's events and persist the snapshot now (seed lesson 13)."""
        self.persistence.events = events
        if self.inspector_observer is not None:
            self.inspector_observer("schedules")
        if self.phase == Phase.LOADING:
            self.persistence.dirty = True  # written at the end of the start
        elif self.phase <= Phase.FINALIZING:
            await self.persistence.flush()

    async def kv_get(self, keys_: list[bytes]) -> list[bytes | None]:
        """Raw actor KV read (runtime subsystems)."""
        return await self.driver.kv_get(self.actor_id, keys_)

    async def kv_write(
        self, puts: list[tuple[bytes, bytes]] | None = None, deletes: list[bytes] | None = None
    ) -> None:
        """Raw atomic actor KV write (runtime subsystems)."""
        await self.driver.kv_write(self.actor_id, puts=puts or (), deletes=deletes or ())
        if self.inspector_observer is not None:  # recurring schedules are written here
            self.inspector_observer("schedules")

    async def kv_list_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Raw actor KV entries under ``prefix`` (runtime subsystems)."""
        return await self.driver.kv_list(self.actor_id, prefix, prefix_end(prefix))

    async def push_alarm(self, when_ms: int | None) -> None:
        """Arm the driver's alarm for this actor and remember the pushed value at ``[6]``."""
        await self.driver.set_alarm(self.actor_id, when_ms)
        await self.driver.kv_write(
            self.actor_id,
            puts=[(keys.LAST_PUSHED_ALARM, actor_persist.LAST_PUSHED_ALARM.encode(when_ms))],
        )

    def dispatch_scheduled(self, action: str, args: list[Any]) -> Awaitable[Any]:
        """Run a scheduled action like a client's (same serial and timeout rules)."""
        return self.invoke(action, args)

    @property
    def max_schedules(self) -> int:
        """The ``max_schedules`` option."""
        return int(self.options.max_schedules)

    async def run_due_schedules(self) -> None:
        """Run every due schedule, holding the actor awake meanwhile."""
        if self.phase != Phase.STARTED:
            return
        self.sleep_policy.inflight += 1
        try:
            await self.schedule.run_due()
        finally:
            self.sleep_policy.inflight -= 1
            if self.sleep_policy.inflight == 0:  # a shutdown may wait for it: tell it
                self.sleep_policy.activity_changed()

    async def fire_alarm(self) -> None:
        """The driver's alarm for this actor is due (the driver has dropped it)."""
        self.schedule.alarm_fired()
        await self.run_due_schedules()

    # -- SQL database --------------------------------------------------------------------------

    @property
    def db(self) -> ActorDatabase:
        """The actor's SQL database (``c.db``); ``actor/not_configured`` without one."""
        if self._db is None:
            declaration = self.definition.db
            opener = self.driver.sql_backend
            if declaration is None:
                raise actor_error(
                    "not_configured",
                    "this actor has no database: declare one with actor(..., db=Database(...))",
                    metadata={"component": "db"},
                )
            actor_id = self.actor_id
            self._db = ActorDatabase(lambda: opener(actor_id), declaration.migrations)
        return self._db

    # -- Queue (the owner side of ActorQueue) --------------------------------------------------

    def queue_wait_changed(self, delta: int) -> None:
        """A queue receive began or ended waiting; such waits do not keep the actor awake."""
        self.sleep_policy.queue_waiting += delta
        self.sleep_policy.reset_idle()

    # -- Actions -------------------------------------------------------------------------------

    def _lifecycle_error(self) -> RivetError:
        if self.phase == Phase.LOADING:
            return actor_error("not_ready", "the actor is starting")
        if self.phase in (Phase.DESTROY_GRACE, Phase.FINALIZING):
            return actor_error("stopping", "the actor is stopping")
        return actor_error("destroying", "the actor is stopped")

    def runs_at_once(self, name: str) -> bool:
        """True when an HTTP action of ``name`` (a temporary plain connection, then
        :meth:`invoke`) runs no coroutine of the user's and cannot suspend: ``name`` is a
        sync action (or none), no connection hook, no blocking-action gate, no serial order,
        replies sent as returned. A transport may then run it outside any task."""
        if self._gate is not None or self._serial is not None or not self._plain_replies:
            return False
        if has_conn_hooks(self.definition.hooks):
            return False
        try:
            return not self.table.is_async(name)
        except RivetError:  # no such action: invoke refuses it at once
            return True

    async def invoke(
        self, name: str, args: list[Any], conn: Connection | None = None, _gated: bool = False
    ) -> Any:
        """Run the action ``name`` with ``args`` and return its (transformed) output."""
        phase = self.phase
        if phase != Phase.STARTED and phase != Phase.SLEEP_GRACE:
            raise self._lifecycle_error()
        if self._gate is not None and not _gated:  # waits while a blocking action runs
            async with self._gate:
                return await self.invoke(name, args, conn, True)
        # No idle-timer work per action: the timer is lazy and re-checks can_sleep() (false
        # while an action is in flight) when it fires; see SleepPolicy.reset_idle.
        awake = self.sleep_policy
        awake.inflight += 1
        metrics = self.metrics
        started = metrics.start() if metrics is not None else 0.0
        span = None if self.traces is None else self.traces.start("action", name)
        try:
            if self._serial is not None:
                async with self._serial:
                    output = await self._invoke(name, args, conn)
            elif self._plain_replies:
                # _invoke's steps without its coroutine (nor one for the action's deadline
                # until the action suspends).
                ctx = self.context if conn is None else self.context.with_conn(conn)
                if not self.table.is_async(name):
                    output = self._invoke_sync(name, args, ctx)
                else:
                    output = start_action(self, name, args, ctx)
                    if type(output) is Suspended:
                        output = await finish_action(self, name, output)
            else:
                output = await self._invoke(name, args, conn)
        except BaseException as exc:
            if metrics is not None:
                metrics.action_failed(name, exc, started)
            if span is not None:
                span.error = exc
            raise
        finally:
            if span is not None:
                span.end()
            awake.inflight -= 1
            if conn is not None and conn.hibernation is not None:
                # Its state may have changed: persist it (throttled).
                self.connections.conn_changed(conn)
            if awake.inflight == 0:
                awake.reset_idle()
                if self.phase != Phase.STARTED:
                    awake.changed()
        if metrics is not None:
            metrics.action_ok(name, started)
        return output

    async def _invoke(self, name: str, args: list[Any], conn: Connection | None) -> Any:
        ctx = self.context if conn is None else self.context.with_conn(conn)
        if self.table.is_async(name):
            output = start_action(self, name, args, ctx)
            if type(output) is Suspended:
                output = await finish_action(self, name, output)
        else:
            output = self._invoke_sync(name, args, ctx)
        if self._before_response is not None:
            output = self._before_response(ctx, name, args, output)
            if inspect.isawaitable(output):
                output = await output
        if self.options.durable_replies and self.persistence.dirty:
            await self.persistence.save_state(immediate=True)
        return output

    def _invoke_sync(self, name: str, args: list[Any], ctx: ActorContext) -> Any:
        """Run the sync action ``name`` (no timeout: it cannot be interrupted)."""
        try:
            output = self.table.call(name, ctx, args)
        except RivetError:
            self._after_action(raising=False)
            raise
        except Exception:
            self.log.exception("action %s failed", name)
            self._after_action(raising=False)
            raise
        self._after_action()
        return output

    def _after_action(
        self, since: int | None = None, *, raising: bool = True, what: str = "the action"
    ) -> None:
        """After an action (or hook) that may have written: schedule the save, refuse state
        that cannot be kept (``raising``: raise that; else log it), run ``on_state_change``."""
        self.persistence.mark_dirty()
        guard = self._guard
        if guard.enabled:
            if raising:
                guard.check(self, since, what)
            else:
                try:
                    guard.check(self, what=what)
                except RivetError as exc:
                    self.log.error("%s", exc.message)
        if self._on_state_change is not None:
            self.persistence.check_state_change(self._on_state_change)

    # -- Connections and events (ActorConns) ---------------------------------------------------

    def connect(
        self,
        params: Any = None,
        *,
        transport: ConnTransport | None = None,
        hibernatable: bool = False,
        conn_id: str | None = None,
        hibernation: Hibernation | None = None,
    ) -> Coroutine[Any, Any, Connection]:
        """Open a connection: preflight, then ``on_connect``; return it once usable (see
        :meth:`ActorConns.connect <rivetkit.runtime.conns.ActorConns.connect>`)."""
        return self.connections.connect(
            params,
            transport=transport,
            hibernatable=hibernatable,
            conn_id=conn_id,
            hibernation=hibernation,
        )

    def disconnect(self, conn: Connection, reason: str | None = None) -> Coroutine[Any, Any, None]:
        """Close a connection: it leaves ``c.conns``, then ``on_disconnect`` runs."""
        return self.connections.disconnect(conn, reason)

    def broadcast(self, event: str, args: tuple[Any, ...] | list[Any]) -> None:
        """Send an event to every connection subscribed to it."""
        schemas = self.definition.schemas
        if schemas is not None and schemas.events:
            args = schemas.event_args(event, args)  # raises EventPayloadError (rivetkit/schemas)
        self.connections.broadcast(event, args)

    def subscribe(
        self, conn: Connection, event: str, subscribe: bool = True
    ) -> Awaitable[None] | None:
        """A client's ``SubscriptionRequest`` (see :meth:`ActorConns.subscribe
        <rivetkit.runtime.conns.ActorConns.subscribe>`): None when done, else an awaitable."""
        return self.connections.subscribe(conn, event, subscribe)

    def conn_changed(self, conn: Connection) -> None:
        """``conn``'s state, subscriptions or message index may have changed: a hibernatable
        connection's record is saved again (throttled)."""
        self.connections.conn_changed(conn)

    # -- Background work and idleness ----------------------------------------------------------

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Track ``awaitable`` as shutdown work."""
        self.sleep_policy.track(awaitable)

    async def keep_awake(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` while holding the actor awake (idle sleep and the end of a
        shutdown's grace wait both wait for it)."""
        return await self.sleep_policy.keep_awake(awaitable)

    def can_sleep(self) -> bool:
        """True when nothing keeps the actor awake (see :meth:`SleepPolicy.can_sleep`)."""
        return self.sleep_policy.can_sleep()

    def idle_expired(self) -> None:
        """The idle entry came due (called by the runtime's SleepTimers)."""
        self.sleep_policy.idle_expired()

    def activity_changed(self) -> None:
        """Something that keeps the actor awake started or ended (connections, requests)."""
        self.sleep_policy.activity_changed()

    def begin_request(self) -> None:
        """A transport request (HTTP, raw WebSocket) started: it keeps the actor awake.

        From now on the idle timer cannot put the actor to sleep (it re-checks
        :meth:`can_sleep` when due, seed lesson 8); pair every call with :meth:`end_request`.
        """
        self.sleep_policy.inflight += 1

    def end_request(self) -> None:
        """A request of :meth:`begin_request` ended; the idle timer re-arms at zero."""
        self.sleep_policy.end_request()

    @property
    def _inflight(self) -> int:
        """In-flight actions and requests (read by tests)."""
        return self.sleep_policy.inflight

    # -- Stop ----------------------------------------------------------------------------------

    def request_sleep(self) -> None:
        """Ask the driver to stop this actor with reason ``sleep``."""
        if self.phase == Phase.LOADING:
            raise actor_error("starting", "the actor is still starting")
        if self._stop_requested or self.phase != Phase.STARTED:
            return
        self._stop_requested = True
        self.driver.request_sleep(self.actor_id, self.generation)

    def request_destroy(self) -> None:
        """Ask the driver to destroy this actor."""
        if self.phase == Phase.LOADING:
            raise actor_error("starting", "the actor is still starting")
        if self._destroy_requested or self.phase in (
            Phase.DESTROY_GRACE,
            Phase.FINALIZING,
            Phase.TERMINATED,
        ):
            raise actor_error("stopping", "the actor is already stopping")
        self._stop_requested = True
        self._destroy_requested = True
        self.driver.request_destroy(self.actor_id, self.generation)

    async def stop(self, reason: StopReason) -> None:
        """Run the sleep (also ``shutdown``) or destroy shutdown, then the final save.

        In the order of runtime spec §3.2/§3.3: enter the grace phase (new requests now
        wait for the next generation; alarms no longer dispatch here) with its deadline,
        cancel the idle timer and set the abort signal; on sleep, save the hibernatable
        connections and keep them, and disconnect the others (on destroy, all of them);
        run ``on_sleep`` (within the grace deadline) or ``on_destroy`` (its own timeout);
        wait, until the deadline, for in-flight work, ``keep_awake``, ``wait_until`` tasks,
        ``on_disconnect`` callbacks and (sleep only) ``run``; abort ``run`` if still going;
        then the final save.
        """
        if self.phase >= Phase.FINALIZING:
            return
        destroying = reason == "destroy"
        options = self.options
        grace = options.effective_sleep_grace_period
        self.phase = Phase.DESTROY_GRACE if destroying else Phase.SLEEP_GRACE
        deadline = self._loop.time() + grace
        self.sleep_policy.cancel_idle()
        if (abort := getattr(self, "_abort", None)) is not None:  # else made set when read
            abort.set()
        if not destroying and self.conns:
            try:
                await self.connections.persist()  # before the others go (seed lesson 6)
            except Exception:
                self.log.exception("saving hibernatable connections failed")
        leaving = [
            self.sleep_policy.track(self.connections.disconnect(conn, "actor stopping"))
            for conn in list(self.conns.values())
            if destroying or not conn.hibernatable
        ]
        if leaving:  # on_disconnect first, as RivetKit orders it, but never past the deadline
            await asyncio.wait(leaving, timeout=max(0.0, deadline - self._loop.time()))
        hooks = self.definition.hooks
        try:
            if destroying:
                if hooks.on_destroy is not None:
                    destroy_timeout = options.on_destroy_timeout
                    await self._call(
                        "on_destroy", timeout=grace if destroy_timeout is None else destroy_timeout
                    )
            elif hooks.on_sleep is not None:
                await self._call("on_sleep", timeout=max(0.001, deadline - self._loop.time()))
        except Exception:
            self.log.exception("on_%s failed", "destroy" if destroying else "sleep")
        await self.sleep_policy.wait_for_quiet(deadline, wait_for_run=not destroying)
        if self._run_task is not None and not self._run_task.done():
            self._run_task.cancel()
            with contextlib.suppress(BaseException):  # cancelled or failed: both final here
                await asyncio.wait_for(asyncio.shield(self._run_task), 1.0)
        if self.traces is not None:  # the last spans, before the driver lets the KV go
            await self.traces.close()
        self.phase = Phase.FINALIZING
        self.persistence.cancel_scheduled()
        final_error = await self.persistence.final_save(deadline, destroying=destroying)
        if final_error is not None:
            self.final_save_error = final_error
        self.sleep_policy.cancel_background()
        self.queue.release_in_flight()
        self.schedule.close()
        if self._db is not None:
            try:
                await self._db.close()
            except Exception:
                self.log.exception("closing the SQL database failed")
        self.phase = Phase.TERMINATED
        if self.metrics is not None:
            self.metrics.stopped(reason)
        self.sleep_policy.cancel_idle()
        self.persistence.notify_savers(final_error)  # a failed final save acknowledges nothing
        if self._on_stopped is not None:
            self._on_stopped(self)
        release(self)  # no reference cycles left: freed as soon as nothing holds it

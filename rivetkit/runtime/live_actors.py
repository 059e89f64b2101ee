"""The runtime of one process: the live actor instances and how requests reach them.

:class:`Runtime` is the :class:`~rivetkit.drivers.base.ActorHost` a driver drives: the driver
decides when an actor starts and stops; the runtime builds and tears down the instances. The
transports (server, engine tunnel, test harness) call :meth:`Runtime.instance` and
:meth:`Runtime.call_action`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from rivetkit.errors import RivetError
from rivetkit.metrics.counters import MetricsOptions, RuntimeMetrics
from rivetkit.runtime import gc_tuning
from rivetkit.runtime.call_chain import SerialLock
from rivetkit.runtime.instance import ActorInstance, Phase
from rivetkit.runtime.lifecycle_times import LifecycleTimes
from rivetkit.runtime.timers import SleepTimers

if TYPE_CHECKING:
    from rivetkit.drivers.base import ActorRecord, Driver, StopReason
    from rivetkit.runtime.connection import Connection

logger = logging.getLogger("rivetkit.runtime")


#: How many times :meth:`Runtime.instance` wakes an actor that keeps stopping under it.
_WAKE_ATTEMPTS = 5


class Runtime:
    """Runs the actors of a registry on a driver."""

    def __init__(
        self,
        registry: Any,
        driver: Driver,
        *,
        clock: Callable[[], float] = time.time,
        metrics: MetricsOptions | bool | None = None,
    ) -> None:
        self.registry = registry
        self.driver = driver
        #: Wall clock in epoch seconds for schedules and timestamps (tests pass a fake one).
        self.clock = clock
        self.instances: dict[str, ActorInstance] = {}
        #: Actors whose final save failed (after its retries) since the start: their changes
        #: since the last good save are lost. A CLI may exit non-zero when it is not 0.
        self.failed_final_saves = 0
        #: The idle timers of every instance: one heap, one loop timer (keys: actor ids).
        self.sleep_timers = SleepTimers(self._idle_due)
        #: When each actor started, became connectable and went to sleep (the manager API's
        #: ``start_ts``, ``connectable_ts``, ``sleep_ts``).
        self.lifecycle = LifecycleTimes(clock)
        #: Set by the transport that holds hibernatable sockets: is this restored
        #: connection's socket still open? Answering True, it also re-attaches the socket as
        #: the connection's transport. (None: assume so, with no transport.)
        self.conn_alive: Callable[[Connection], bool] | None = None
        #: Set by the host (create_app, the engine driver): makes the client ``c.client()``
        #: returns (the same one each time). None: ``c.client()`` is refused.
        self.client_factory: Callable[[], Any] | None = None
        #: Called with an actor's id once its instance stopped (asleep or destroyed), so
        #: what is kept per live actor elsewhere (the server's routes, the dispatcher's
        #: response headers) is dropped with it: a sleeping actor holds next to nothing.
        self.stop_listeners: list[Callable[[str], None]] = []
        # Bound once: each instance keeps them (a bound method per actor otherwise).
        self._forget_cb = self._forget
        self._client_cb = self._client
        self._gc_tuned = False  # holds gc_tuning (between start and stop)
        # The running loop, from start to stop (handed to each instance: no lookup per actor).
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Prometheus counters (None: off). ``metrics``: options, True/False, or None for
        #: :meth:`MetricsOptions.from_env` (``RIVETKIT_METRICS=0`` turns them off).
        if metrics is None or metrics is True:
            metrics = MetricsOptions.from_env() if metrics is None else MetricsOptions()
        self.metrics: RuntimeMetrics | None = (
            RuntimeMetrics(lambda: self.instances, driver, metrics)
            if metrics is not False and metrics.enabled
            else None
        )

    async def start(self) -> None:
        """Start the driver (it may start actors whose alarms are due); the collector's
        first threshold is raised meanwhile (:mod:`~rivetkit.runtime.gc_tuning`)."""
        if not self._gc_tuned:
            self._gc_tuned = True
            gc_tuning.acquire()
        self._loop = asyncio.get_running_loop()
        try:
            await self.driver.start(self)
        except BaseException:
            self._loop = None
            self._gc_tuned = False
            gc_tuning.release()
            raise

    async def stop(self) -> None:
        """Stop every actor gracefully (state saved) and close the driver."""
        try:
            await self.driver.stop()
        finally:
            self._loop = None
            self.sleep_timers.close()
            if self._gc_tuned:
                self._gc_tuned = False
                gc_tuning.release()

    # -- ActorHost -------------------------------------------------------------------------

    def definition(self, name: str) -> Any:
        """The actor definition registered as ``name``."""
        actors = self.registry.actors
        definition = actors.get(name)
        if definition is None:
            raise RivetError(
                "actor",
                "not_registered",
                f"no actor named '{name}' is registered",
                metadata={"name": name},
            )
        return definition

    def actor_names(self) -> list[str]:
        """The names of the registry's actors."""
        return list(self.registry.actors)

    async def start_actor(self, record: ActorRecord, generation: int) -> None:
        """Build and start an instance (called by the driver)."""
        definition = self.definition(record.name)
        metrics = self.metrics
        instance = ActorInstance(
            definition,
            self.driver,
            record,
            generation,
            on_stopped=self._forget_cb,
            clock=self.clock,
            sleep_timers=self.sleep_timers,
            loop=self._loop,
            conn_alive=self.conn_alive,
            metrics=None if metrics is None else metrics.for_actor(record.name, definition.actions),
        )
        instance.context.bind_client(self._client_cb)
        if definition.options.serial:  # refuses call cycles instead of deadlocking
            instance._serial = SerialLock(record.actor_id, f"{record.name}{record.key!r}")
        self.instances[record.actor_id] = instance
        self.lifecycle.starting(record.actor_id)
        try:
            await instance.start()
        except BaseException:
            self.instances.pop(record.actor_id, None)
            instance.phase = Phase.TERMINATED
            self.lifecycle.stopped(record.actor_id)
            raise
        if instance.phase == Phase.STARTED:
            self.lifecycle.started(record.actor_id)

    async def stop_actor(self, actor_id: str, reason: StopReason) -> None:
        """Run an instance's shutdown (called by the driver)."""
        instance = self.instances.get(actor_id)
        if instance is not None:
            self.lifecycle.stopping(actor_id)
            await instance.stop(reason)
        if reason == "destroy":
            self.lifecycle.forget(actor_id)

    async def fire_alarm(self, actor_id: str) -> None:
        """An alarm is due (called by the driver once it started the actor). An instance
        that began to stop meanwhile does not take it: the next generation does."""
        instance = self.instances.get(actor_id)
        for _ in range(3):
            if instance is not None and instance.phase == Phase.STARTED:
                await instance.fire_alarm()
                return
            instance = await self.instance(actor_id)  # waits for a stop, wakes the actor
        logger.warning("alarm of actor %s dropped: the actor keeps stopping", actor_id)

    def _client(self) -> Any:
        factory = self.client_factory
        if factory is None:
            raise RivetError(
                "actor",
                "not_configured",
                "c.client() has no client here: it is provided by the server "
                "(create_app, rivetkit serve, setup_test) and by engine mode, not by "
                "setup_runtime",
                metadata={"component": "client"},
            )
        return factory()

    def _forget(self, instance: ActorInstance) -> None:
        if instance.final_save_error is not None:
            self.failed_final_saves += 1
        actor_id = instance.actor_id
        if self.instances.get(actor_id) is instance:
            del self.instances[actor_id]
            self.lifecycle.stopped(actor_id)
            for listener in self.stop_listeners:
                listener(actor_id)

    def _idle_due(self, actor_id: object) -> None:
        instance = self.instances.get(actor_id)  # type: ignore[call-overload]
        if instance is not None:
            instance.sleep_policy.idle_expired()  # (what instance.idle_expired does)

    # -- requests --------------------------------------------------------------------------

    async def instance(self, actor_id: str) -> ActorInstance:
        """The started instance of ``actor_id``, waking the actor when it sleeps.

        The instance a wake started may stop again before this caller resumes (another
        request put it to sleep at once); then the caller waits for that stop and wakes the
        actor again, a few times at most, instead of failing with ``actor/not_found``.
        """
        instance = self.instances.get(actor_id)
        if instance is not None and instance.phase == Phase.STARTED:
            return instance
        for _ in range(_WAKE_ATTEMPTS):
            await self.driver.ensure_started(actor_id)
            instance = self.instances.get(actor_id)
            if instance is not None and instance.phase == Phase.STARTED:
                return instance
        if instance is None:
            raise RivetError("actor", "not_found", f"actor {actor_id} is not running")
        return instance

    def call_action(
        self, actor_id: str, name: str, args: list[Any], conn: Connection | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Run an action on an actor, waking it if needed (a coroutine: await it)."""
        instance = self.instances.get(actor_id)
        if instance is not None and instance.phase == Phase.STARTED:
            return instance.invoke(name, args, conn)  # hot path: no coroutine of our own
        return self._wake_and_call(actor_id, name, args, conn)

    async def _wake_and_call(
        self, actor_id: str, name: str, args: list[Any], conn: Connection | None
    ) -> Any:
        instance = await self.instance(actor_id)
        return await instance.invoke(name, args, conn)

"""Placement on the engine: the actors the engine placed on this envoy, started and stopped
as it commands.

The engine decides where actors run. It sends ``CommandStartActor`` (we call
:meth:`ActorHost.start_actor`, then report ``Running``) and ``CommandStopActor`` (we call
:meth:`ActorHost.stop_actor`, then report ``Stopped``, only once the teardown finished).
Stop reasons: ``SleepIntent`` and ``GoingAway`` stop with reason ``sleep`` (``shutdown`` while
we drain), ``StopIntent`` and ``Destroy`` with reason ``destroy`` (after a ``Stopped{OK}`` the
engine destroys the actor and deletes its KV), ``Lost`` with reason ``sleep`` and KV cut off
(the actor may already run elsewhere), reported ``Stopped{ERROR}``. ``c.sleep()`` and
``c.destroy()`` become ``EventActorIntent{Sleep|Stop}``; the engine then sends the stop
command.

Each actor generation placed here is a :class:`PlacedActor` that is *starting*, *running*,
*stopping* or *stopped*; every transition happens on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Literal

from rivetkit.drivers.base import (
    ActorHost,
    ActorRecord,
    DestroyCallback,
    StopReason,
    notify_destroyed,
)
from rivetkit.errors import RivetError
from rivetkit.protocol.actor_keys import deserialize_key
from rivetkit.protocol.envoy_protocol import (
    ActorIntentSleep,
    ActorIntentStop,
    ActorStateRunning,
    ActorStateStopped,
    CommandStartActor,
    CommandStopActor,
    CommandWrapper,
    Event,
    EventActorIntent,
    EventActorStateUpdate,
    StopActorReason,
    StopCode,
)

if TYPE_CHECKING:
    from .api import EngineApi
    from .envoy import EnvoyClient
    from .tunnel import Tunnel

__all__ = ["DRAIN_COMMAND_WAIT", "DRAIN_TIMEOUT", "STOP_REASONS", "PlacedActor", "Placement"]

logger = logging.getLogger("rivetkit.engine")

#: Seconds to wait for the engine's GoingAway commands during a drain, then for the stops.
DRAIN_COMMAND_WAIT: Final = 5.0
DRAIN_TIMEOUT: Final = 60.0

ActorState = Literal["starting", "running", "stopping", "stopped"]

#: The runtime's stop reason for each of the engine's.
STOP_REASONS: Final[dict[StopActorReason, StopReason]] = {
    StopActorReason.SLEEP_INTENT: "sleep",
    StopActorReason.STOP_INTENT: "destroy",
    StopActorReason.DESTROY: "destroy",
    StopActorReason.GOING_AWAY: "sleep",
    StopActorReason.LOST: "sleep",
}


class PlacedActor:
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
        self.state: ActorState = "starting"
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
        #: The local alarm timer while the actor runs here (see :mod:`.alarms`).
        self.alarm: asyncio.TimerHandle | None = None

    def cancel_alarm(self) -> None:
        """Cancel the local alarm timer, if armed."""
        if self.alarm is not None:
            self.alarm.cancel()
            self.alarm = None


class Placement:
    """The actors placed on this envoy: engine commands, intents, the drain.

    :param api: the engine's HTTP API (waking an actor, destroying one after a sleep intent,
        listing the pool's envoys during a drain)
    :param pool: our pool's name
    :param envoy_key: our envoy key
    :param clock: wall clock in epoch seconds
    """

    def __init__(
        self, api: EngineApi, *, pool: str, envoy_key: str, clock: Callable[[], float]
    ) -> None:
        self.api = api
        self.pool = pool
        self.envoy_key = envoy_key
        self.clock = clock
        self.actors: dict[str, PlacedActor] = {}
        self.host: ActorHost | None = None
        self.envoy: EnvoyClient | None = None
        self.tunnel: Tunnel | None = None
        #: Set while the driver drains: sleeps become ``shutdown`` stops, no wake-ups.
        self.stopping = False
        #: Called once an actor reports ``Running`` (arms its stored alarm).
        self.on_running: Callable[[PlacedActor], Awaitable[None]] | None = None
        #: Called after an actor here is stopped with reason ``destroy`` (see
        #: :meth:`EngineDriver.on_destroyed`).
        self.destroy_callbacks: list[DestroyCallback] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, host: ActorHost) -> None:
        """Bind to the running loop and the host (at driver start)."""
        self._loop = asyncio.get_running_loop()
        self.host = host

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task of the driver (cancelled at :meth:`close`)."""
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def event(self, actor: PlacedActor, inner: Event) -> None:
        """Send an event of ``actor``'s generation to the engine."""
        envoy = self.envoy
        if envoy is not None:
            envoy.send_event(actor.actor_id, actor.generation, inner)

    # -- queries ---------------------------------------------------------------------------

    def is_local(self, actor_id: str) -> bool:
        """Whether the actor is placed here and not stopped."""
        actor = self.actors.get(actor_id)
        return actor is not None and actor.state != "stopped"

    def running_generation(self, actor_id: str) -> int | None:
        """The generation of the actor's instance running here, or None."""
        actor = self.actors.get(actor_id)
        return actor.generation if actor is not None and actor.state == "running" else None

    def loaded(self) -> dict[str, str]:
        """``actor_id -> "starting" | "running" | "stopping"`` for the actors placed here."""
        return {actor_id: actor.state for actor_id, actor in self.actors.items()}

    def counts(self) -> dict[str, int]:
        """How many actors are starting, running and stopping here."""
        states: dict[str, int] = {"starting": 0, "running": 0, "stopping": 0}
        for actor in self.actors.values():
            if actor.state in states:
                states[actor.state] += 1
        return states

    async def ensure_started(self, actor_id: str) -> ActorRecord:
        """The record of the actor running here, waking it through the engine if needed.

        RivetError ``actor/not_found`` for an unknown or destroyed actor, or when the engine
        placed it on another envoy.
        """
        for _ in range(3):
            actor = self.actors.get(actor_id)
            if actor is not None:
                if actor.state == "running":
                    return actor.record
                if actor.state == "starting":
                    return await asyncio.shield(actor.started)
                await asyncio.shield(actor.done)
            if self.stopping:
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
            actor = self.actors.get(actor_id)
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

    # -- intents ---------------------------------------------------------------------------

    def intent(self, actor_id: str, generation: int, kind: str) -> None:
        """``EventActorIntent{Sleep|Stop}`` for ``kind`` ``"sleep"`` or ``"destroy"``."""
        actor = self.actors.get(actor_id)
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
            self.event(actor, inner)

    # -- engine commands -------------------------------------------------------------------

    def on_commands(self, commands: list[CommandWrapper]) -> None:
        """Start and stop actors as the engine commands."""
        for command in commands:
            checkpoint = command.checkpoint
            inner = command.inner
            if isinstance(inner, CommandStartActor):
                self._on_start(checkpoint.actor_id, checkpoint.generation, inner)
            elif isinstance(inner, CommandStopActor):
                self._on_stop(checkpoint.actor_id, checkpoint.generation, inner.reason)

    def on_lost(self) -> None:
        """Disconnected past the lost threshold: stop every local actor, KV cut off."""
        for actor in list(self.actors.values()):
            actor.fenced = True
            if actor.state == "running":
                self.begin_stop(actor, StopActorReason.LOST)
            elif actor.state == "starting":
                actor.pending_stop = StopActorReason.LOST

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
        previous = self.actors.get(actor_id)
        actor = PlacedActor(record, loop)
        self.actors[actor_id] = actor
        if self.tunnel is not None:  # sockets kept by the gateway while the actor slept
            self.tunnel.start_actor(actor_id, generation, command.hibernating_requests)
        self.spawn(self._start(actor, previous))

    async def _start(self, actor: PlacedActor, previous: PlacedActor | None) -> None:
        host = self.host
        assert host is not None
        if previous is not None and not previous.done.done():
            # One instance of an actor at a time: the old generation finishes first.
            if previous.state == "running":
                self.begin_stop(previous, StopActorReason.LOST)
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
        self.event(actor, EventActorStateUpdate(ActorStateRunning()))
        if self.tunnel is not None:
            self.tunnel.actor_started(actor.actor_id)
        for inner in actor.pending_events:
            self.event(actor, inner)
        actor.pending_events.clear()
        actor.started.set_result(actor.record)
        if actor.pending_stop is not None:
            self.begin_stop(actor, actor.pending_stop)
            return
        if self.on_running is not None:
            await self.on_running(actor)

    def _on_stop(self, actor_id: str, generation: int, reason: StopActorReason) -> None:
        logger.debug("stop actor %s generation %d (%s)", actor_id, generation, reason.name)
        actor = self.actors.get(actor_id)
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
            self.begin_stop(actor, reason)

    def begin_stop(self, actor: PlacedActor, reason: StopActorReason | None) -> None:
        """Stop ``actor``; ``reason`` None: a local stop the engine did not ask for."""
        actor.state = "stopping"
        actor.cancel_alarm()
        self.spawn(self._stop(actor, reason))

    async def _stop(self, actor: PlacedActor, reason: StopActorReason | None) -> None:
        host = self.host
        assert host is not None
        if reason is None:
            stop_reason: StopReason = "shutdown"
        else:
            stop_reason = STOP_REASONS[reason]
            if stop_reason == "sleep" and self.stopping:
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
        if stop_reason == "destroy" and code == StopCode.OK:
            await notify_destroyed(self.destroy_callbacks, actor.actor_id)

    def _finish(self, actor: PlacedActor, code: StopCode, message: str | None) -> None:
        """Report ``Stopped`` (after the teardown: seed lesson 11) and forget the actor."""
        actor.state = "stopped"
        actor.cancel_alarm()
        self.event(actor, EventActorStateUpdate(ActorStateStopped(code, message)))
        if self.tunnel is not None:  # hibernatable sockets stay with the gateway
            self.tunnel.actor_stopped(actor.actor_id, actor.generation)
        envoy = self.envoy
        if envoy is not None:
            envoy.retire(actor.actor_id, actor.generation)
        if self.actors.get(actor.actor_id) is actor:
            del self.actors[actor.actor_id]
        if not actor.done.done():
            actor.done.set_result(None)

    # -- the drain -------------------------------------------------------------------------

    async def drain(self, envoy: EnvoyClient) -> None:
        """Stop every actor here: ``ToRivetStopping``, then the engine's ``GoingAway``
        commands; whatever it did not stop is stopped here."""
        self.stopping = True
        busy = any(a.state == "running" for a in self.actors.values())
        if envoy.ready and busy and not await self._other_envoys():
            # No envoy of the pool can take the actors: put them to sleep (the next
            # request or alarm wakes them) rather than leave them in the engine's
            # reallocation backoff, which delays their next start by seconds.
            self._sleep_all()
            await self._wait_stopped(DRAIN_COMMAND_WAIT)
        if envoy.send_stopping():
            # The engine answers with GoingAway for each of our actors (it moves them
            # to the other envoys of the pool).
            await self._wait_stopped(DRAIN_COMMAND_WAIT)
            self._sleep_all()
            await self._wait_stopped(DRAIN_COMMAND_WAIT)
        # Whatever the engine did not stop: stop it here (reported as an error, which
        # the engine treats as a crash, never as a destroy).
        for actor in list(self.actors.values()):
            if actor.state == "running":
                self.begin_stop(actor, None)
        waits = [actor.done for actor in self.actors.values()]
        if waits:
            await asyncio.wait(waits, timeout=DRAIN_TIMEOUT)

    def _sleep_all(self) -> None:
        for actor in list(self.actors.values()):
            if actor.state == "running" and actor.intent is None:
                actor.intent = "sleep"
                self.event(actor, EventActorIntent(ActorIntentSleep()))

    async def close(self) -> None:
        """Cancel the alarm timers and the driver's tasks (after the drain)."""
        for actor in self.actors.values():
            if actor.alarm is not None:
                actor.alarm.cancel()
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_stopped(self, timeout: float) -> None:
        """Wait until no actor here is starting or running (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            a.state in ("starting", "running") for a in self.actors.values()
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

"""Alarms on the engine: ``EventActorSetAlarm`` plus a local timer while the actor runs here.

The engine wakes a *sleeping* actor at its alarm time (the runtime then runs the due schedules
as it starts). While the actor runs on this envoy, a local timer calls
:meth:`ActorHost.fire_alarm`, since the engine only wakes sleeping actors. When an actor
starts here, its timer is armed from the alarm the runtime last pushed (kept in its KV).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from rivetkit.errors import RivetError
from rivetkit.protocol import actor_persist
from rivetkit.protocol.envoy_protocol import EventActorSetAlarm
from rivetkit.runtime import keys as actor_keys

from .placement import PlacedActor, Placement

__all__ = ["EngineAlarms"]

logger = logging.getLogger("rivetkit.engine")

#: Reads an actor's KV values (the driver's ``kv_get``).
KvGet = Callable[[str, Sequence[bytes]], Awaitable[list[bytes | None]]]


class EngineAlarms:
    """The alarm calls of the :class:`~rivetkit.drivers.base.Driver` for the actors of
    ``placement``.

    :param placement: the actors placed here (their events, local timers and tasks)
    :param kv_get: reads the alarm the runtime last pushed from the actor's KV
    :param clock: wall clock in epoch seconds
    """

    def __init__(self, placement: Placement, kv_get: KvGet, clock: Callable[[], float]) -> None:
        self._placement = placement
        self._kv_get = kv_get
        self._clock = clock
        #: The last alarm set per actor (``None``: cleared), as this process knows it.
        self._alarms: dict[str, int | None] = {}
        placement.on_running = self.arm_stored

    async def set(self, actor_id: str, when_ms: int | None) -> None:
        """Set (or clear) the actor's alarm: ``EventActorSetAlarm`` for the engine (which
        wakes the actor when it sleeps) and a local timer while it runs here."""
        if when_ms is not None:
            when_ms = int(when_ms)
        self._alarms[actor_id] = when_ms
        actor = self._placement.actors.get(actor_id)
        if actor is None or actor.state == "stopped":
            logger.debug("alarm of actor %s not reported: not running here", actor_id)
            return
        self._placement.event(actor, EventActorSetAlarm(when_ms))
        if actor.state in ("starting", "running"):
            self._arm(actor, when_ms)

    async def arm_stored(self, actor: PlacedActor) -> None:
        """Arm the local timer from the alarm the runtime last pushed (``[6]``) when this
        process has not seen it yet (the runtime does not push an unchanged alarm again)."""
        if actor.actor_id in self._alarms:
            when_ms = self._alarms[actor.actor_id]
        else:
            try:
                (raw,) = await self._kv_get(actor.actor_id, [actor_keys.LAST_PUSHED_ALARM])
                when_ms = actor_persist.LAST_PUSHED_ALARM.decode(raw) if raw is not None else None
            except Exception as exc:
                logger.warning("reading the alarm of actor %s failed: %s", actor.actor_id, exc)
                return
            self._alarms.setdefault(actor.actor_id, when_ms)
            when_ms = self._alarms[actor.actor_id]
        if actor.state == "running" and actor.alarm is None:
            self._arm(actor, when_ms)

    def _arm(self, actor: PlacedActor, when_ms: int | None) -> None:
        actor.cancel_alarm()
        if when_ms is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, when_ms / 1000 - self._clock())
        actor.alarm = loop.call_later(delay, self._due, actor)

    def _due(self, actor: PlacedActor) -> None:
        actor.alarm = None
        if actor.state != "running" or self._placement.actors.get(actor.actor_id) is not actor:
            return
        self._placement.spawn(self._fire(actor))

    async def _fire(self, actor: PlacedActor) -> None:
        host = self._placement.host
        assert host is not None
        try:
            await host.fire_alarm(actor.actor_id)
        except RivetError as exc:
            logger.debug("alarm of actor %s dropped: %s", actor.actor_id, exc)
        except Exception:
            logger.exception("alarm of actor %s failed", actor.actor_id)

"""actor-persist: the bytes RivetKit stores for an actor, versions 1 to 4.

:func:`build` makes the handlers over a given codec twin (used to check both twins in one
process); the module-level names are built over the selected twin.

Each top-level type is a :class:`~rivetkit.protocol.vbare.Versioned` handler: ``decode``
reads any supported version and upgrades it; ``encode`` writes v4 with its ``04 00`` prefix.

=================== ========== =============================
handler             versions   KV key
=================== ========== =============================
``ACTOR``           1-4        ``[1]``
``CONN``            3-4        ``[2] + conn_id``
``QUEUE_METADATA``  4          ``[5,1,1]``
``QUEUE_MESSAGE``   4          ``[5,1,2] + u64be(id)``
``LAST_PUSHED_ALARM`` 1        ``[6]`` (``optional<i64>``)
=================== ========== =============================
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

from rivetkit.errors import ProtocolError
from rivetkit.protocol.actor_persist import v1, v2, v3, v4
from rivetkit.protocol.actor_persist.v4 import (
    Actor,
    Conn,
    QueueMessage,
    QueueMetadata,
    ScheduleEvent,
    Subscription,
)
from rivetkit.protocol.bare import ENGINE, Codec
from rivetkit.protocol.schema import I64, plan_of
from rivetkit.protocol.vbare import Versioned

__all__ = [
    "ACTOR",
    "CONN",
    "CURRENT_VERSION",
    "ERROR_CODE",
    "LAST_PUSHED_ALARM",
    "QUEUE_MESSAGE",
    "QUEUE_METADATA",
    "Actor",
    "Conn",
    "Handlers",
    "QueueMessage",
    "QueueMetadata",
    "ScheduleEvent",
    "Subscription",
    "build",
]

CURRENT_VERSION = 4
ERROR_CODE = "invalid_persisted_data"
_I64_MAX = (1 << 63) - 1


def _actor_v1_to_v2(old: v1.PersistedActor) -> v2.PersistedActor:
    return v2.PersistedActor(
        input=old.input,
        has_initialized=old.has_initialized,
        state=old.state,
        connections=[
            v2.PersistedConnection(
                id=c.id,
                token=c.token,
                parameters=c.parameters,
                state=c.state,
                subscriptions=c.subscriptions,
                last_seen=min(c.last_seen, _I64_MAX),
                hibernatable_request_id=None,
            )
            for c in old.connections
        ],
        scheduled_events=[
            v2.PersistedScheduleEvent(e.event_id, min(e.timestamp, _I64_MAX), e.kind)
            for e in old.scheduled_events
        ],
        hibernatable_web_sockets=[],
    )


def _actor_v2_to_v3(old: v2.PersistedActor) -> Actor:
    return Actor(
        input=old.input,
        has_initialized=old.has_initialized,
        state=old.state,
        scheduled_events=[
            ScheduleEvent(e.event_id, e.timestamp, e.kind.action, e.kind.args)
            for e in old.scheduled_events
        ],
    )


def _identity(value: Any) -> Any:
    return value


class Handlers(NamedTuple):
    """The versioned handlers of actor-persist, built over one codec engine."""

    actor: Versioned[Actor]
    conn: Versioned[Conn]
    queue_metadata: Versioned[QueueMetadata]
    queue_message: Versioned[QueueMessage]
    last_pushed_alarm: Versioned[int | None]


def build(engine: ModuleType = ENGINE) -> Handlers:
    """Build the handlers over a codec engine twin (the selected one unless one is given)."""
    versioned = engine.Versioned

    def codec(tp: Any) -> Codec:
        result: Codec = engine.compile_plan(plan_of(tp), ERROR_CODE)
        return result

    actor_v3 = codec(v3.Actor)
    actor_legacy_v4 = codec(v4.LegacyActor)

    def read_legacy_v4(data: bytes, offset: int, canonical_error: ProtocolError) -> Actor:
        # Canonical v4 is tried first. Strict decoding accepts exactly the bytes that
        # re-encode identically, which is RivetKit's test for the canonical shape; what it
        # rejects may come from a short-lived writer that stored schedule args as plain data.
        try:
            legacy: v4.LegacyActor = actor_legacy_v4.decode(data, offset)
        except ProtocolError:
            raise canonical_error from None
        return Actor(
            input=legacy.input,
            has_initialized=legacy.has_initialized,
            state=legacy.state,
            scheduled_events=[
                ScheduleEvent(e.event_id, e.timestamp, e.action, e.args or None)
                for e in legacy.scheduled_events
            ],
        )

    def single(name: str, tp: Any, version: int = CURRENT_VERSION) -> Versioned[Any]:
        only = codec(tp)
        handler: Versioned[Any] = versioned(
            name, only, version, {version: only}, {}, error_code=ERROR_CODE
        )
        return handler

    conn = codec(Conn)
    return Handlers(
        actor=versioned(
            "Actor",
            actor_v3,
            CURRENT_VERSION,
            readers={
                1: codec(v1.PersistedActor),
                2: codec(v2.PersistedActor),
                3: actor_v3,
                4: actor_v3,
            },
            upgrades={1: _actor_v1_to_v2, 2: _actor_v2_to_v3, 3: _identity},
            error_code=ERROR_CODE,
            fallbacks={4: read_legacy_v4},
        ),
        conn=versioned(
            "Conn",
            conn,
            CURRENT_VERSION,
            readers={3: conn, 4: conn},
            upgrades={3: _identity},
            error_code=ERROR_CODE,
        ),
        queue_metadata=single("QueueMetadata", QueueMetadata),
        queue_message=single("QueueMessage", QueueMessage),
        last_pushed_alarm=single("LastPushedAlarm", I64 | None, version=1),
    )


_default = build()
ACTOR: Versioned[Actor] = _default.actor
CONN: Versioned[Conn] = _default.conn
QUEUE_METADATA: Versioned[QueueMetadata] = _default.queue_metadata
QUEUE_MESSAGE: Versioned[QueueMessage] = _default.queue_message
LAST_PUSHED_ALARM: Versioned[int | None] = _default.last_pushed_alarm

"""actor-persist: the bytes RivetKit stores for an actor, versions 1 to 4.

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

from typing import Any

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
from rivetkit.protocol.bare import codec_for
from rivetkit.protocol.schema import I64
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
    "QueueMessage",
    "QueueMetadata",
    "ScheduleEvent",
    "Subscription",
]

CURRENT_VERSION = 4
ERROR_CODE = "invalid_persisted_data"
_I64_MAX = (1 << 63) - 1

_actor_v1 = codec_for(v1.PersistedActor, ERROR_CODE)
_actor_v2 = codec_for(v2.PersistedActor, ERROR_CODE)
_actor_v3 = codec_for(v3.Actor, ERROR_CODE)
_actor_legacy_v4 = codec_for(v4.LegacyActor, ERROR_CODE)


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


def _read_actor_v4(data: bytes, offset: int) -> Actor:
    # Canonical v4 first. Strict decoding accepts exactly the bytes that re-encode
    # identically, which is RivetKit's test for the canonical shape; otherwise fall back to
    # the legacy shape whose schedule args were plain data.
    try:
        actor: Actor = _actor_v3.decode(data, offset)
        return actor
    except ProtocolError as canonical_error:
        try:
            legacy: v4.LegacyActor = _actor_legacy_v4.decode(data, offset)
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


ACTOR: Versioned[Actor] = Versioned(
    "Actor",
    _actor_v3,
    CURRENT_VERSION,
    readers={
        1: _actor_v1.decode,
        2: _actor_v2.decode,
        3: _actor_v3.decode,
        4: _read_actor_v4,
    },
    upgrades={1: _actor_v1_to_v2, 2: _actor_v2_to_v3, 3: _identity},
    error_code=ERROR_CODE,
)

_conn = codec_for(Conn, ERROR_CODE)
CONN: Versioned[Conn] = Versioned(
    "Conn",
    _conn,
    CURRENT_VERSION,
    readers={3: _conn.decode, 4: _conn.decode},
    upgrades={3: _identity},
    error_code=ERROR_CODE,
)

_queue_metadata = codec_for(QueueMetadata, ERROR_CODE)
QUEUE_METADATA: Versioned[QueueMetadata] = Versioned(
    "QueueMetadata",
    _queue_metadata,
    CURRENT_VERSION,
    readers={4: _queue_metadata.decode},
    upgrades={},
    error_code=ERROR_CODE,
)

_queue_message = codec_for(QueueMessage, ERROR_CODE)
QUEUE_MESSAGE: Versioned[QueueMessage] = Versioned(
    "QueueMessage",
    _queue_message,
    CURRENT_VERSION,
    readers={4: _queue_message.decode},
    upgrades={},
    error_code=ERROR_CODE,
)

_last_pushed_alarm = codec_for(I64 | None, ERROR_CODE)
LAST_PUSHED_ALARM: Versioned[int | None] = Versioned(
    "LastPushedAlarm",
    _last_pushed_alarm,
    1,
    readers={1: _last_pushed_alarm.decode},
    upgrades={},
    error_code=ERROR_CODE,
)

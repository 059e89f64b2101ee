"""actor-persist v4 (current): v3's types plus the queue records."""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.actor_persist.v3 import (
    Actor,
    Cbor,
    Conn,
    GatewayId,
    RequestId,
    ScheduleEvent,
    Subscription,
)
from rivetkit.protocol.schema import I64, U32, U64

__all__ = [
    "Actor",
    "Cbor",
    "Conn",
    "GatewayId",
    "QueueMessage",
    "QueueMetadata",
    "RequestId",
    "ScheduleEvent",
    "Subscription",
]


class QueueMetadata(NamedTuple):
    """The queue's metadata at KV key ``[5,1,1]``."""

    next_id: U64
    size: U32


class QueueMessage(NamedTuple):
    """One queue message at KV key ``[5,1,2] + u64be(id)``."""

    name: str
    body: Cbor
    created_at: I64
    failure_count: U32 | None
    available_at: I64 | None
    in_flight: bool | None
    in_flight_at: I64 | None


class LegacyScheduleEvent(NamedTuple):
    """A short-lived v4 writer stored ``args`` as plain data (empty meaning none)."""

    event_id: str
    timestamp: I64
    action: str
    args: bytes


class LegacyActor(NamedTuple):
    input: Cbor | None
    has_initialized: bool
    state: Cbor
    scheduled_events: list[LegacyScheduleEvent]

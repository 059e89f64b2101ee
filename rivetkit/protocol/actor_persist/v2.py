"""actor-persist v2 (read only: upgraded on load)."""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.actor_persist.v1 import (
    GenericPersistedScheduleEvent,
    PersistedScheduleEventKind,
    PersistedSubscription,
)
from rivetkit.protocol.schema import I64

__all__ = [
    "GenericPersistedScheduleEvent",
    "PersistedActor",
    "PersistedConnection",
    "PersistedHibernatableWebSocket",
    "PersistedScheduleEvent",
    "PersistedSubscription",
]


class PersistedConnection(NamedTuple):
    id: str
    token: str
    parameters: bytes
    state: bytes
    subscriptions: list[PersistedSubscription]
    last_seen: I64
    hibernatable_request_id: bytes | None


class PersistedScheduleEvent(NamedTuple):
    event_id: str
    timestamp: I64
    kind: PersistedScheduleEventKind


class PersistedHibernatableWebSocket(NamedTuple):
    request_id: bytes
    last_seen_timestamp: I64
    msg_index: I64


class PersistedActor(NamedTuple):
    input: bytes | None
    has_initialized: bool
    state: bytes
    connections: list[PersistedConnection]
    scheduled_events: list[PersistedScheduleEvent]
    hibernatable_web_sockets: list[PersistedHibernatableWebSocket]

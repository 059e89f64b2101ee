"""actor-persist v1 (read only: upgraded on load)."""

from __future__ import annotations

from typing import Annotated, NamedTuple

from rivetkit.protocol.schema import U64, UNION


class PersistedSubscription(NamedTuple):
    event_name: str


class PersistedConnection(NamedTuple):
    id: str
    token: str
    parameters: bytes
    state: bytes
    subscriptions: list[PersistedSubscription]
    last_seen: U64


class GenericPersistedScheduleEvent(NamedTuple):
    action: str
    args: bytes | None


PersistedScheduleEventKind = Annotated[GenericPersistedScheduleEvent, UNION]


class PersistedScheduleEvent(NamedTuple):
    event_id: str
    timestamp: U64
    kind: PersistedScheduleEventKind


class PersistedActor(NamedTuple):
    input: bytes | None
    has_initialized: bool
    state: bytes
    connections: list[PersistedConnection]
    scheduled_events: list[PersistedScheduleEvent]

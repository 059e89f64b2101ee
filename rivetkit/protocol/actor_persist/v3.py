"""actor-persist v3: connections in their own records, flat schedule events.

v4 kept these types unchanged, so :mod:`.v4` reuses them.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from rivetkit.protocol.schema import I64, U16, Fixed

GatewayId = Annotated[bytes, Fixed(4)]
RequestId = Annotated[bytes, Fixed(4)]
#: CBOR-encoded bytes.
Cbor = bytes


class Subscription(NamedTuple):
    event_name: str


class Conn(NamedTuple):
    """A connection whose hibernatable WebSocket persists across the actor's lifecycles."""

    id: str
    parameters: Cbor
    state: Cbor
    subscriptions: list[Subscription]
    gateway_id: GatewayId
    request_id: RequestId
    server_message_index: U16
    client_message_index: U16
    request_path: str
    request_headers: dict[str, str]


class ScheduleEvent(NamedTuple):
    """A one-shot scheduled action; ``args`` is a CBOR array."""

    event_id: str
    timestamp: I64
    action: str
    args: Cbor | None


class Actor(NamedTuple):
    """The actor snapshot at KV key ``[1]``."""

    input: Cbor | None
    has_initialized: bool
    state: Cbor
    scheduled_events: list[ScheduleEvent]

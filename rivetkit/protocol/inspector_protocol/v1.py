"""inspector-protocol v1 (read and written for clients that ask for it).

Every type of ``inspector-protocol/v1.bare``. Later versions reuse these classes wherever their
bytes did not change, so a message body moves between versions untouched when its type exists
in both. ``data`` fields hold raw CBOR bytes (the actor's state, action arguments and output,
connection details).
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.schema import Uint


class PatchStateRequest(NamedTuple):
    """Replace the actor's state with ``state`` (CBOR); no response."""

    state: bytes


class ActionRequest(NamedTuple):
    """Run action ``name`` with ``args`` (a CBOR array); answered by ``ActionResponse``."""

    id: Uint
    name: str
    args: bytes


class StateRequest(NamedTuple):
    """Ask for the state (``StateResponse``)."""

    id: Uint


class ConnectionsRequest(NamedTuple):
    """Ask for the connections (``ConnectionsResponse``)."""

    id: Uint


class EventsRequest(NamedTuple):
    """v1 only: ask for the event log (no longer served)."""

    id: Uint


class ClearEventsRequest(NamedTuple):
    """v1 only: clear the event log (no longer served)."""

    id: Uint


class RpcsListRequest(NamedTuple):
    """Ask for the action names (``RpcsListResponse``)."""

    id: Uint


#: The union of inspector-to-actor messages (tags in this order).
ToServerBody = (
    PatchStateRequest
    | StateRequest
    | ConnectionsRequest
    | ActionRequest
    | EventsRequest
    | ClearEventsRequest
    | RpcsListRequest
)


class ToServer(NamedTuple):
    """An inspector-to-actor message."""

    body: ToServerBody


class Connection(NamedTuple):
    """One connection: its id and its details (a CBOR map)."""

    id: str
    details: bytes


class ActionEvent(NamedTuple):
    """v1 event log entry: an action ran."""

    name: str
    args: bytes
    conn_id: str


class BroadcastEvent(NamedTuple):
    """v1 event log entry: an event was broadcast."""

    event_name: str
    args: bytes


class SubscribeEvent(NamedTuple):
    """v1 event log entry: a connection subscribed."""

    event_name: str
    conn_id: str


class UnSubscribeEvent(NamedTuple):
    """v1 event log entry: a connection unsubscribed."""

    event_name: str
    conn_id: str


class FiredEvent(NamedTuple):
    """v1 event log entry: an event was sent to a connection."""

    event_name: str
    args: bytes
    conn_id: str


#: The union of v1 event log entries.
EventBody = ActionEvent | BroadcastEvent | SubscribeEvent | UnSubscribeEvent | FiredEvent


class Event(NamedTuple):
    """A v1 event log entry."""

    body: EventBody


class Init(NamedTuple):
    """The first message on the inspector socket (v1 form)."""

    connections: list[Connection]
    events: list[Event]
    state: bytes | None
    is_state_enabled: bool
    rpcs: list[str]
    is_database_enabled: bool


class ConnectionsResponse(NamedTuple):
    """The connections, answering the request ``rid``."""

    rid: Uint
    connections: list[Connection]


class StateResponse(NamedTuple):
    """The state (CBOR; None when the actor has none), answering the request ``rid``."""

    rid: Uint
    state: bytes | None
    is_state_enabled: bool


class EventsResponse(NamedTuple):
    """v1 only: the event log."""

    rid: Uint
    events: list[Event]


class ActionResponse(NamedTuple):
    """An action's output (CBOR), answering the request ``rid``."""

    rid: Uint
    output: bytes


class StateUpdated(NamedTuple):
    """Push: the state changed (CBOR)."""

    state: bytes


class EventsUpdated(NamedTuple):
    """v1 only: push of the event log."""

    events: list[Event]


class RpcsListResponse(NamedTuple):
    """The action names, answering the request ``rid``."""

    rid: Uint
    rpcs: list[str]


class Error(NamedTuple):
    """A request failed, or a response had no form in the client's version."""

    message: str


class ConnectionsUpdated(NamedTuple):
    """Push: the connections changed."""

    connections: list[Connection]


#: The union of actor-to-inspector messages (tags in this order).
ToClientBody = (
    StateResponse
    | ConnectionsResponse
    | EventsResponse
    | ActionResponse
    | RpcsListResponse
    | ConnectionsUpdated
    | EventsUpdated
    | StateUpdated
    | Error
    | Init
)


class ToClient(NamedTuple):
    """An actor-to-inspector message."""

    body: ToClientBody

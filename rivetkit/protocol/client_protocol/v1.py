"""client-protocol v1 (read only: upgraded on load).

Every type of ``client-protocol/v1.bare``. Later versions reuse these classes wherever their
bytes did not change, so an upgrade passes such values through untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from rivetkit.protocol.schema import DATA, Uint

#: A CBOR payload. In BARE form it holds the raw CBOR bytes; in the json and cbor forms
#: (:mod:`rivetkit.protocol.messages`) it holds the user's value itself.
Cbor = Annotated[Any, DATA]


class Init(NamedTuple):
    """The first message of a connection (v1 still carried the connection token)."""

    actor_id: str
    connection_id: str
    connection_token: str


class Error(NamedTuple):
    """An error; ``action_id`` is set when it answers an action, else it is connection-level."""

    group: str
    code: str
    message: str
    metadata: Cbor | None
    action_id: Uint | None


class ActionResponse(NamedTuple):
    """The output of the action request with the same ``id``."""

    id: Uint
    output: Cbor


class Event(NamedTuple):
    """A broadcast event; ``args`` is a CBOR array."""

    name: str
    args: Cbor


#: The union of server-to-client messages (tags in this order).
ToClientBody = Init | Error | ActionResponse | Event


class ToClient(NamedTuple):
    """A server-to-client message on the connection WebSocket."""

    body: ToClientBody


class ActionRequest(NamedTuple):
    """Call action ``name``; ``id`` is the client's per-connection counter, ``args`` an array."""

    id: Uint
    name: str
    args: Cbor


class SubscriptionRequest(NamedTuple):
    """Subscribe to (or unsubscribe from) an event."""

    event_name: str
    subscribe: bool


#: The union of client-to-server messages (tags in this order).
ToServerBody = ActionRequest | SubscriptionRequest


class ToServer(NamedTuple):
    """A client-to-server message on the connection WebSocket."""

    body: ToServerBody


class HttpActionRequest(NamedTuple):
    """Body of ``POST /action/{name}``; ``args`` is a CBOR array."""

    args: Cbor


class HttpActionResponse(NamedTuple):
    """Body of a successful action response."""

    output: Cbor


class HttpResponseError(NamedTuple):
    """Body of an HTTP error response."""

    group: str
    code: str
    message: str
    metadata: Cbor | None


class HttpResolveRequest(NamedTuple):
    """``void``: the resolve request has no body."""


class HttpResolveResponse(NamedTuple):
    """The resolved actor's id."""

    actor_id: str

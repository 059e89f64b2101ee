"""client-protocol v2 (read only: upgraded on load): ``Init`` lost ``connectionToken``.

Every other type is v1's, reused.
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.client_protocol.v1 import (
    ActionRequest,
    ActionResponse,
    Cbor,
    Error,
    Event,
    HttpActionRequest,
    HttpActionResponse,
    HttpResolveRequest,
    HttpResolveResponse,
    HttpResponseError,
    SubscriptionRequest,
    ToServer,
    ToServerBody,
)

__all__ = [
    "ActionRequest",
    "ActionResponse",
    "Cbor",
    "Error",
    "Event",
    "HttpActionRequest",
    "HttpActionResponse",
    "HttpResolveRequest",
    "HttpResolveResponse",
    "HttpResponseError",
    "Init",
    "SubscriptionRequest",
    "ToClient",
    "ToClientBody",
    "ToServer",
    "ToServerBody",
]


class Init(NamedTuple):
    """The first message of a connection."""

    actor_id: str
    connection_id: str


#: The union of server-to-client messages (tags in this order).
ToClientBody = Init | Error | ActionResponse | Event


class ToClient(NamedTuple):
    """A server-to-client message on the connection WebSocket."""

    body: ToClientBody

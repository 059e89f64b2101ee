"""client-protocol v4 (current): errors may name the actor they concern.

``Error`` and ``HttpResponseError`` gained ``actor``; every other type is v3's, reused.
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.client_protocol.v3 import (
    ActionRequest,
    ActionResponse,
    Cbor,
    Event,
    HttpActionRequest,
    HttpActionResponse,
    HttpQueueSendRequest,
    HttpQueueSendResponse,
    HttpResolveRequest,
    HttpResolveResponse,
    Init,
    SubscriptionRequest,
    ToServer,
    ToServerBody,
)
from rivetkit.protocol.schema import Uint

__all__ = [
    "ActionRequest",
    "ActionResponse",
    "ActorSpecifier",
    "Cbor",
    "Error",
    "Event",
    "HttpActionRequest",
    "HttpActionResponse",
    "HttpQueueSendRequest",
    "HttpQueueSendResponse",
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


class ActorSpecifier(NamedTuple):
    """Which actor (and which generation of it) an error concerns."""

    actor_id: str
    generation: Uint
    key: str | None


class Error(NamedTuple):
    """An error; ``action_id`` is set when it answers an action, else it is connection-level."""

    group: str
    code: str
    message: str
    metadata: Cbor | None
    action_id: Uint | None
    actor: ActorSpecifier | None


#: The union of server-to-client messages (tags in this order).
ToClientBody = Init | Error | ActionResponse | Event


class ToClient(NamedTuple):
    """A server-to-client message on the connection WebSocket."""

    body: ToClientBody


class HttpResponseError(NamedTuple):
    """Body of an HTTP error response."""

    group: str
    code: str
    message: str
    metadata: Cbor | None
    actor: ActorSpecifier | None

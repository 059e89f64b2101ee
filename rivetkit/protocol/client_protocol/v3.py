"""client-protocol v3 (read only: upgraded on load): v2 plus the HTTP queue-send bodies."""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.client_protocol.v2 import (
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
    Init,
    SubscriptionRequest,
    ToClient,
    ToClientBody,
    ToServer,
    ToServerBody,
)
from rivetkit.protocol.schema import U64

__all__ = [
    "ActionRequest",
    "ActionResponse",
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


class HttpQueueSendRequest(NamedTuple):
    """Body of ``POST /queue/{name}``; ``timeout`` is in milliseconds."""

    body: Cbor
    name: str | None
    wait: bool | None
    timeout: U64 | None


class HttpQueueSendResponse(NamedTuple):
    """Answer to a queue send: ``status`` is ``completed`` or ``timedOut``."""

    status: str
    response: Cbor | None

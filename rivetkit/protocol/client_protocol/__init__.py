"""client-protocol: the messages between a RivetKit client and an actor, versions 1 to 4.

:func:`build` makes the handlers over a given codec engine twin (used to check both twins in
one process); the module-level names are built over the selected twin.

Each top-level type is a :class:`~rivetkit.protocol.vbare.Versioned` handler: ``decode``
reads any supported version and upgrades it; ``encode`` writes v4 with its ``04 00`` prefix
(vbare's embedded version, as the TypeScript client sends and expects it).

=============================== ======== =========================================
handler                         versions error code
=============================== ======== =========================================
``TO_CLIENT``                   1-4      ``invalid_actor_connect_request``
``TO_SERVER``                   1-4      ``invalid_actor_connect_request``
``HTTP_ACTION_REQUEST``         1-4      ``invalid_http_request``
``HTTP_ACTION_RESPONSE``        1-4      ``invalid_http_response``
``HTTP_QUEUE_SEND_REQUEST``     3-4      ``invalid_http_request``
``HTTP_QUEUE_SEND_RESPONSE``    3-4      ``invalid_http_response``
``HTTP_RESPONSE_ERROR``         1-4      ``invalid_http_response``
``HTTP_RESOLVE_RESPONSE``       1-4      ``invalid_http_response``
=============================== ======== =========================================

Upgrades: ``ToClient`` v1->v2 drops ``Init.connection_token``; ``ToClient`` v3->v4 and
``HttpResponseError`` v3->v4 add ``actor=None`` to the error. Everything else passes through.

Error codes: WebSocket messages in either direction use ``invalid_actor_connect_request``,
whichever side reads them. HTTP bodies are split by direction: a body the server receives
(``Http*Request``) is ``invalid_http_request``, a body the client receives (``Http*Response``,
``HttpResponseError``) is ``invalid_http_response``, so a decode failure says which side sent
the bad bytes.

``Cbor`` fields hold raw CBOR bytes here; :mod:`rivetkit.protocol.values` turns them into user
values, and :mod:`rivetkit.protocol.messages` and :mod:`rivetkit.protocol.http_bodies` provide
the json and cbor forms of the same messages.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

from rivetkit.protocol.bare import ENGINE, Codec
from rivetkit.protocol.client_protocol import v1, v2, v3, v4
from rivetkit.protocol.client_protocol.v4 import (
    ActionRequest,
    ActionResponse,
    ActorSpecifier,
    Cbor,
    Error,
    Event,
    HttpActionRequest,
    HttpActionResponse,
    HttpQueueSendRequest,
    HttpQueueSendResponse,
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
from rivetkit.protocol.schema import plan_of
from rivetkit.protocol.vbare import Versioned

__all__ = [
    "CONNECT_ERROR_CODE",
    "CURRENT_VERSION",
    "HTTP_ACTION_REQUEST",
    "HTTP_ACTION_RESPONSE",
    "HTTP_QUEUE_SEND_REQUEST",
    "HTTP_QUEUE_SEND_RESPONSE",
    "HTTP_REQUEST_ERROR_CODE",
    "HTTP_RESOLVE_RESPONSE",
    "HTTP_RESPONSE_ERROR",
    "HTTP_RESPONSE_ERROR_CODE",
    "TO_CLIENT",
    "TO_SERVER",
    "ActionRequest",
    "ActionResponse",
    "ActorSpecifier",
    "Cbor",
    "Error",
    "Event",
    "Handlers",
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
    "build",
    "v1",
    "v2",
    "v3",
    "v4",
]

#: The version every handler writes (and the TypeScript client sends).
CURRENT_VERSION = 4
#: Error code of undecodable connection messages (both directions).
CONNECT_ERROR_CODE = "invalid_actor_connect_request"
#: Error code of undecodable HTTP request bodies (received by the server).
HTTP_REQUEST_ERROR_CODE = "invalid_http_request"
#: Error code of undecodable HTTP response bodies (received by the client).
HTTP_RESPONSE_ERROR_CODE = "invalid_http_response"


def _identity(value: Any) -> Any:
    return value


def _to_client_v1_to_v2(old: v1.ToClient) -> v2.ToClient:
    body = old.body
    if isinstance(body, v1.Init):
        return v2.ToClient(v2.Init(actor_id=body.actor_id, connection_id=body.connection_id))
    return v2.ToClient(body)


def _to_client_v3_to_v4(old: v3.ToClient) -> ToClient:
    body = old.body
    if isinstance(body, v3.Error):
        return ToClient(Error(*body, actor=None))
    return ToClient(body)


def _http_response_error_v3_to_v4(old: v3.HttpResponseError) -> HttpResponseError:
    return HttpResponseError(*old, actor=None)


class Handlers(NamedTuple):
    """The versioned handlers of client-protocol, built over one codec engine."""

    to_client: Versioned[ToClient]
    to_server: Versioned[ToServer]
    http_action_request: Versioned[HttpActionRequest]
    http_action_response: Versioned[HttpActionResponse]
    http_queue_send_request: Versioned[HttpQueueSendRequest]
    http_queue_send_response: Versioned[HttpQueueSendResponse]
    http_response_error: Versioned[HttpResponseError]
    http_resolve_response: Versioned[HttpResolveResponse]


def build(engine: ModuleType = ENGINE) -> Handlers:
    """Build the handlers over a codec engine twin (the selected one unless one is given)."""

    def versioned(
        name: str, types: dict[int, Any], upgrades: dict[int, Any], error_code: str
    ) -> Versioned[Any]:
        # One codec per distinct record class: versions whose bytes did not change share it.
        codecs: dict[Any, Codec] = {}
        for tp in types.values():
            if tp not in codecs:
                codecs[tp] = engine.compile_plan(plan_of(tp), error_code)
        result: Versioned[Any] = engine.Versioned(
            name,
            codecs[types[CURRENT_VERSION]],
            CURRENT_VERSION,
            readers={version: codecs[tp] for version, tp in types.items()},
            upgrades=upgrades,
            error_code=error_code,
        )
        return result

    def unchanged(name: str, tp: Any, first: int, error_code: str) -> Versioned[Any]:
        versions = range(first, CURRENT_VERSION + 1)
        upgrades = dict.fromkeys(range(first, CURRENT_VERSION), _identity)
        return versioned(name, dict.fromkeys(versions, tp), upgrades, error_code)

    return Handlers(
        to_client=versioned(
            "ToClient",
            {1: v1.ToClient, 2: v2.ToClient, 3: v3.ToClient, 4: ToClient},
            {1: _to_client_v1_to_v2, 2: _identity, 3: _to_client_v3_to_v4},
            CONNECT_ERROR_CODE,
        ),
        to_server=unchanged("ToServer", ToServer, 1, CONNECT_ERROR_CODE),
        http_action_request=unchanged(
            "HttpActionRequest", HttpActionRequest, 1, HTTP_REQUEST_ERROR_CODE
        ),
        http_action_response=unchanged(
            "HttpActionResponse", HttpActionResponse, 1, HTTP_RESPONSE_ERROR_CODE
        ),
        http_queue_send_request=unchanged(
            "HttpQueueSendRequest", HttpQueueSendRequest, 3, HTTP_REQUEST_ERROR_CODE
        ),
        http_queue_send_response=unchanged(
            "HttpQueueSendResponse", HttpQueueSendResponse, 3, HTTP_RESPONSE_ERROR_CODE
        ),
        http_response_error=versioned(
            "HttpResponseError",
            {
                1: v1.HttpResponseError,
                2: v2.HttpResponseError,
                3: v3.HttpResponseError,
                4: HttpResponseError,
            },
            {1: _identity, 2: _identity, 3: _http_response_error_v3_to_v4},
            HTTP_RESPONSE_ERROR_CODE,
        ),
        http_resolve_response=unchanged(
            "HttpResolveResponse", HttpResolveResponse, 1, HTTP_RESPONSE_ERROR_CODE
        ),
    )


_default = build()
TO_CLIENT: Versioned[ToClient] = _default.to_client
TO_SERVER: Versioned[ToServer] = _default.to_server
HTTP_ACTION_REQUEST: Versioned[HttpActionRequest] = _default.http_action_request
HTTP_ACTION_RESPONSE: Versioned[HttpActionResponse] = _default.http_action_response
HTTP_QUEUE_SEND_REQUEST: Versioned[HttpQueueSendRequest] = _default.http_queue_send_request
HTTP_QUEUE_SEND_RESPONSE: Versioned[HttpQueueSendResponse] = _default.http_queue_send_response
HTTP_RESPONSE_ERROR: Versioned[HttpResponseError] = _default.http_response_error
HTTP_RESOLVE_RESPONSE: Versioned[HttpResolveResponse] = _default.http_resolve_response

"""The errors the client raises, and how it reads them off the wire.

Every failure a client call reports is an :class:`ActorError` (a
:class:`~rivetkit.errors.RivetError`): errors sent by the server keep their ``group``,
``code``, ``message`` and ``metadata``; failures found by the client itself use group
``client`` (codes in :data:`CLIENT_CODES`).

How error bodies are read (spec ``client-protocol.md`` §3, as the TypeScript client's
``sendHttpRequest`` does): when the response's ``content-type`` contains
``application/json`` the body is JSON whatever the request encoding was; otherwise it is read
in the request encoding. A body that does not parse becomes ``client.http_request_error``
carrying the status line and (the start of) the body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from rivetkit.errors import ProtocolError, RivetError
from rivetkit.protocol.client_protocol import ActorSpecifier
from rivetkit.protocol.http_bodies import http_error_from

__all__ = [
    "CLIENT_CODES",
    "CLIENT_GROUP",
    "ActorError",
    "connection_closed_error",
    "is_lifecycle_boundary",
    "is_query_retryable",
    "parse_close_reason",
    "parse_http_error",
]

#: Group of the errors the client raises itself.
CLIENT_GROUP: Final = "client"
#: Codes of group ``client`` and what they mean.
CLIENT_CODES: Final = {
    "http_request_error": "an HTTP request failed or its error body did not parse",
    "metadata_lookup_failed": "GET /metadata did not succeed within metadata_timeout",
    "input_too_large": "a get_or_create input is larger than max_input_size once encoded",
    "connection_lost": "the connection's socket closed while the action was in flight",
    "connection_disposed": "the connection was closed by close()",
    "connection_open_failed": "a connection did not open in time, or a raw WebSocket failed",
    "invalid_response": "the server answered something the client cannot read",
    "client_closed": "the client was closed",
    "timeout": "a call did not finish within its timeout (Client(timeout=) or timeout=)",
}

#: Error bodies quoted in ``http_request_error`` messages are cut to this many characters.
_BODY_EXCERPT: Final = 500


class ActorError(RivetError):
    """An error a client call raised: ``group``, ``code``, ``message``, ``metadata``.

    ``actor`` (the :class:`~rivetkit.protocol.client_protocol.ActorSpecifier` the server named,
    if any), ``status`` (the HTTP status, for errors read from an HTTP response) and
    ``ray_id`` (the ``x-rivet-ray-id`` response header) are set when known.
    """

    actor: ActorSpecifier | None
    status: int | None
    ray_id: str | None

    def __init__(
        self,
        group: str,
        code: str,
        message: str,
        *,
        metadata: Any = None,
        actor: ActorSpecifier | None = None,
        status: int | None = None,
        ray_id: str | None = None,
    ) -> None:
        super().__init__(group, code, message, metadata=metadata)
        self.actor = actor
        self.status = status
        self.ray_id = ray_id

    @classmethod
    def client(cls, code: str, message: str, *, metadata: Any = None) -> ActorError:
        """An error of group ``client`` (found by the client, not sent by the server)."""
        return cls(CLIENT_GROUP, code, message, metadata=metadata)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if value else None


def parse_http_error(
    status: int,
    reason: str,
    headers: Mapping[str, str],
    body: bytes,
    encoding: str,
) -> ActorError:
    """The error a non-2xx response stands for (spec §3).

    ``headers`` is looked up case-insensitively by the caller's mapping (httpx's is).
    """
    content_type = (headers.get("content-type") or "").lower()
    body_encoding = "json" if "application/json" in content_type else encoding
    ray_id = _header(headers, "x-rivet-ray-id")
    try:
        parsed = http_error_from(body, body_encoding)
    except ProtocolError:
        text = body[:_BODY_EXCERPT].decode("utf-8", "replace")
        return ActorError(
            CLIENT_GROUP,
            "http_request_error",
            f"{reason or 'HTTP error'} ({status}):\n{text}",
            status=status,
            ray_id=ray_id,
        )
    return ActorError(
        parsed.group,
        parsed.code,
        parsed.message,
        metadata=parsed.metadata,
        actor=parsed.actor,
        status=status,
        ray_id=ray_id,
    )


_QUERY_RETRY_CODES: Final = frozenset(
    {"not_found", "starting", "stopping", "not_configured", "dropped_reply", "destroying"}
)
_GUARD_BOUNDARY_CODES: Final = frozenset(
    {
        "service_unavailable",
        "actor_wake_retries_exceeded",
        "actor_stopped_while_waiting",
        "gateway_response_start_timeout",
    }
)


def is_query_retryable(group: str, code: str) -> bool:
    """True for the actor lifecycle errors a get/getOrCreate request is retried on (§3).

    Group ``actor`` with code ``not_found``, ``starting``, ``stopping``, ``not_configured``,
    ``dropped_reply``, ``destroying`` or ``destroyed_*``.
    """
    return group == "actor" and (code in _QUERY_RETRY_CODES or code.startswith("destroyed_"))


def is_lifecycle_boundary(error: RivetError) -> bool:
    """True for the transient errors any request is retried on a few times (§3).

    ``actor/restarting``; ``guard/service_unavailable``, ``actor_wake_retries_exceeded``,
    ``actor_stopped_while_waiting``, ``tunnel_*``, ``gateway_response_start_timeout``; and
    the legacy message "Actor is stopping".
    """
    if error.group == "actor" and error.code == "restarting":
        return True
    if error.group == "guard" and (
        error.code in _GUARD_BOUNDARY_CODES or error.code.startswith("tunnel_")
    ):
        return True
    return "actor is stopping" in error.message.lower()


_CLOSE_REASON: Final = re.compile(r"^([A-Za-z0-9_\-]+)\.([A-Za-z0-9_\-.]+?)(?:#(.*))?$")


def parse_close_reason(reason: str) -> tuple[str, str, str | None] | None:
    """``(group, code, ray_id)`` of a close reason ``group.code`` or ``group.code#rayId``.

    None when the reason has another shape (e.g. ``Disposed`` or empty).
    """
    match = _CLOSE_REASON.match(reason)
    if match is None:
        return None
    return match.group(1), match.group(2), match.group(3) or None


def connection_closed_error(code: int, reason: str, *, clean: bool) -> ActorError:
    """The error a WebSocket close stands for.

    A structured reason (``group.code[#rayId]``) gives that error; anything else gives
    ``client.connection_lost`` naming the close code and reason.
    """
    parsed = parse_close_reason(reason)
    if parsed is not None:
        group, err_code, ray_id = parsed
        return ActorError(group, err_code, f"Connection closed: {reason}", ray_id=ray_id)
    what = "Connection closed" if clean else "Connection lost"
    return ActorError.client(
        "connection_lost",
        f"{what} (code: {code}, reason: {reason})",
        metadata={"close_code": code, "close_reason": reason},
    )

"""Request ids and the access log of the embedded server.

Every HTTP request and WebSocket gets a request id: the client's ``x-rivet-ray-id`` header
when it sends one (printable, at most 128 characters), otherwise a new one
(made only when a log line needs it). While the request is handled, it is the current
:class:`~rivetkit.logs.RequestContext`, with the actor's id, name and key once the gateway
has found the actor, so log lines written meanwhile (the actor's ``c.log`` included) carry
them.

The access log (``rivetkit serve --access-log``) is one ``INFO`` line per HTTP request on the
``rivetkit.access`` logger: method, path (query dropped: it can hold tokens), status,
duration in milliseconds and request id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from rivetkit.logs import (
    ACCESS_LOGGER,
    RequestContext,
    _current,
    current_request,
    reset_request_context,
    set_request_context,
)

__all__ = [
    "RAY_ID_HEADER",
    "RequestContext",
    "log_access",
    "request_id_of",
    "reset_request_context",
    "set_actor_context",
    "set_request_context",
]

#: The header naming a request (RivetKit's ray id).
RAY_ID_HEADER: Final = b"x-rivet-ray-id"
_MAX_ID: Final = 128

_access = logging.getLogger(ACCESS_LOGGER)
# rivetkit.logs.current_request without its frame (once or twice per request).
_current_request: Final = _current.get


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The client's ``x-rivet-ray-id`` when usable, else None (a new id is made lazily)."""
    for name, value in headers:
        if name == RAY_ID_HEADER:
            if 0 < len(value) <= _MAX_ID and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return None


def set_actor_context(instance: Any, actor_id: str) -> None:
    """Add the actor (its id; its name and key when it is running) to the current request."""
    request = _current_request()
    if request is not None:
        request.actor_id = actor_id
        request.instance = instance


def log_access(scope: Mapping[str, Any], status: int, started: float) -> None:
    """One access-log line for the request of ``scope``."""
    request = current_request()
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope.get("path", "/")
    _access.info(
        "%s %s %d %.1fms request_id=%s",
        scope["method"],
        path[:300],
        status,
        (time.perf_counter() - started) * 1000,
        request.request_id if request is not None else "-",
    )

"""RivetError and the error types shared by every layer.

Every error that reaches a client is a :class:`RivetError` with a ``group``, a ``code``, a
human-readable ``message`` and optional ``metadata``; this mirrors RivetKit's wire shape.
"""

from __future__ import annotations

import os
from typing import Any


class RivetError(Exception):
    """An error with RivetKit's ``{group, code, message, metadata}`` shape."""

    group: str
    code: str
    message: str
    metadata: Any

    def __init__(self, group: str, code: str, message: str, *, metadata: Any = None) -> None:
        super().__init__(message)
        self.group = group
        self.code = code
        self.message = message
        self.metadata = metadata

    def __str__(self) -> str:
        return f"{self.group}.{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.group!r}, {self.code!r}, {self.message!r})"


class ProtocolError(RivetError):
    """Bytes that do not decode (group ``protocol``).

    Raised at once by every decoder on truncated input, unknown union tags or enum values,
    lengths beyond the buffer, unknown versions, non-canonical encodings and invalid UTF-8.
    ``code`` names what was being decoded, e.g. ``invalid_persisted_data``.
    """

    def __init__(self, message: str, *, code: str = "invalid_data", metadata: Any = None) -> None:
        super().__init__("protocol", code, message, metadata=metadata)


class EncodeError(ValueError):
    """A value that does not fit its schema was given to an encoder (a programming error)."""


class UserError(RivetError):
    """An error an action raises on purpose; it reaches the client as group ``user``.

    ``code`` defaults to ``user_error``; ``metadata`` is any CBOR-encodable value.
    """

    def __init__(self, message: str, *, code: str = "user_error", metadata: Any = None) -> None:
        super().__init__("user", code, message, metadata=metadata)


def actor_error(code: str, message: str, metadata: Any = None) -> RivetError:
    """An error of group ``actor`` (e.g. ``action_not_found``, ``action_timed_out``)."""
    return RivetError("actor", code, message, metadata=metadata)


#: Group and code of internal errors; their message is hidden from clients.
INTERNAL_GROUP = "core"
INTERNAL_CODE = "internal_error"
INTERNAL_MESSAGE = "An internal error occurred"

# (group, code) pairs whose message reaches clients unchanged, with their HTTP status;
# the ``*`` code stands for the whole group (runtime spec §4).
_PUBLIC_STATUS: dict[tuple[str, str], int] = {
    ("auth", "forbidden"): 403,
    ("actor", "not_found"): 404,
    ("actor", "action_not_found"): 404,
    ("actor", "method_not_allowed"): 405,
    ("actor", "action_timed_out"): 408,
    ("actor", "aborted"): 400,
    ("actor", "invalid_request"): 400,
    ("actor", "validation_error"): 400,
    # Ours: a write refused because the state could not be saved (runtime/state_guard.py).
    ("actor", "invalid_state"): 500,
    ("actor", "state_save_failed"): 503,
    # Ours: an action's output its client's encoding cannot carry (protocol/value_errors.py).
    ("actor", "invalid_output"): 500,
    # Ours: a call that would wait on itself through a serial actor (runtime/call_chain.py).
    ("actor", "call_cycle"): 409,
    ("actor_runtime_socket", "*"): 400,
    ("message", "*"): 400,
    ("schedule", "*"): 400,
    ("queue", "*"): 400,
    ("kv", "*"): 400,
    ("user", "*"): 400,
    ("inspector", "unauthorized"): 401,
    ("inspector", "invalid_request"): 400,
    # A client's own malformed bytes: rivetkit-core answers them with 400 and the message.
    ("protocol", "invalid_http_request"): 400,
    ("protocol", "invalid_actor_connect_request"): 400,
    ("protocol", "unsupported_encoding"): 400,
    # RivetKit's raw-handler errors (public, 404).
    ("handler", "request_not_defined"): 404,
    ("handler", "websocket_not_defined"): 404,
    # Emitted by the engine (and our manager API) and seen by clients.
    ("actor", "duplicate_key"): 400,
    ("actor", "key_too_large"): 400,
    ("actor", "input_too_large"): 400,
}


def http_status(group: str, code: str) -> int:
    """The HTTP status RivetKit answers an error with (500 for anything not public)."""
    status = _PUBLIC_STATUS.get((group, code)) or _PUBLIC_STATUS.get((group, "*"))
    return status if status is not None else 500


def is_public(group: str, code: str) -> bool:
    """True when the error's message and metadata may reach a client unchanged."""
    return (group, code) in _PUBLIC_STATUS or (group, "*") in _PUBLIC_STATUS


def expose_errors() -> bool:
    """``RIVET_EXPOSE_ERRORS=1``: internal error messages reach clients (development)."""
    return os.environ.get("RIVET_EXPOSE_ERRORS", "") == "1"


def to_public(error: BaseException) -> RivetError:
    """The error as a client may see it.

    A public :class:`RivetError` passes unchanged; any other error becomes
    ``core.internal_error`` (a non-public RivetError keeps its group and code) with the message
    hidden and metadata dropped, unless ``RIVET_EXPOSE_ERRORS=1``.
    """
    if isinstance(error, RivetError):
        if is_public(error.group, error.code) or expose_errors():
            return error
        return RivetError(error.group, error.code, INTERNAL_MESSAGE)
    if expose_errors():
        return RivetError(INTERNAL_GROUP, INTERNAL_CODE, f"{type(error).__name__}: {error}")
    return RivetError(INTERNAL_GROUP, INTERNAL_CODE, INTERNAL_MESSAGE)

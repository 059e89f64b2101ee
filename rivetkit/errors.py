"""RivetError and the error types shared by every layer.

Every error that reaches a client is a :class:`RivetError` with a ``group``, a ``code``, a
human-readable ``message`` and optional ``metadata``; this mirrors RivetKit's wire shape.
"""

from __future__ import annotations

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

"""Span attributes as stored: ``(key, CBOR value)`` pairs, and their estimated size."""

from __future__ import annotations

from typing import Any

from rivetkit.errors import RivetError
from rivetkit.protocol.values import cbor_dumps_raw

__all__ = ["Attrs", "attrs_size", "encode_attrs", "error_attrs"]

Attrs = tuple[tuple[str, bytes], ...]


def encode_attrs(attributes: dict[str, Any]) -> Attrs:
    """Attributes as ``(key, CBOR value)`` pairs; values CBOR cannot hold are left out."""
    out = []
    for key, value in attributes.items():
        try:
            out.append((key, cbor_dumps_raw(value)))
        except Exception:
            continue
    return tuple(out)


def error_attrs(error: BaseException) -> tuple[Attrs, str]:
    """``error.type``/``error.message`` attributes of a failure, and the status message."""
    if isinstance(error, RivetError):
        kind = f"{error.group}.{error.code}"
        message = error.message
    else:
        kind = type(error).__name__
        message = str(error)[:500]
    return encode_attrs({"error.type": kind, "error.message": message}), kind


def attrs_size(attrs: Attrs) -> int:
    """The estimated stored size of ``attrs`` (chunk sizing, not exact)."""
    return sum(len(k) + len(v) + 6 for k, v in attrs)

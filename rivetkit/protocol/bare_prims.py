"""Two BARE primitives for hand-written encoders (the envoy's tunnel frames, trace chunks):
``uint`` (LEB128 varint) and ``string`` (its length as a ``uint``, then UTF-8), the bytes the
generated codecs of :mod:`rivetkit.protocol.bare` write for those types."""

from __future__ import annotations

from typing import Final

__all__ = ["string", "uint"]

_SMALL: Final = [bytes((i,)) for i in range(128)]


def uint(value: int) -> bytes:
    """BARE ``uint`` of a non-negative ``value``."""
    if 0 <= value < 128:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def string(value: str) -> bytes:
    """BARE ``str``: the UTF-8 bytes' length as a ``uint``, then the bytes."""
    data = value.encode("utf-8")
    return uint(len(data)) + data

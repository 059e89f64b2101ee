"""Masked binary WebSocket frames of a client, encoded in one pass (the envoy's writes).

``websockets`` serializes each frame through a ``Frame`` object, a ``BytesIO`` and a
``secrets.token_bytes(4)`` call (one ``getrandom`` system call per frame) for its mask.
:func:`masked_binary_frames` writes the same bytes (RFC 6455 section 5.2: FIN set, no
reserved bits, opcode 2, the shortest length encoding, the mask bit set) for a run of
messages, with masks taken from a buffer of ``os.urandom`` bytes (the same source as
``secrets``), refilled every :data:`MASKS_PER_REFILL` frames.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import Final

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets without its C extension
    from websockets.utils import apply_mask

__all__ = ["MASKS_PER_REFILL", "masked_binary_frames"]

#: Frames masked from one ``os.urandom`` buffer.
MASKS_PER_REFILL: Final = 256

_HEAD_SHORT = struct.Struct("!BB").pack
_HEAD_16 = struct.Struct("!BBH").pack
_HEAD_64 = struct.Struct("!BBQ").pack
_FINAL_BINARY = 0x82
_MASKED = 0x80

_masks = b""
_next_mask = 0


def masked_binary_frames(messages: Iterable[bytes]) -> list[bytes]:
    """The wire bytes of ``messages`` as final binary frames from a client, in order (a
    list of parts to join or write)."""
    global _masks, _next_mask
    masks = _masks
    at = _next_mask
    parts: list[bytes] = []
    append = parts.append
    for data in messages:
        length = len(data)
        if length < 126:
            append(_HEAD_SHORT(_FINAL_BINARY, _MASKED | length))
        elif length < 65536:
            append(_HEAD_16(_FINAL_BINARY, _MASKED | 126, length))
        else:
            append(_HEAD_64(_FINAL_BINARY, _MASKED | 127, length))
        if at >= len(masks):
            masks = os.urandom(4 * MASKS_PER_REFILL)
            at = 0
        mask = masks[at : at + 4]
        at += 4
        append(mask)
        append(apply_mask(data, mask))
    _masks = masks
    _next_mask = at
    return parts

"""The byte-level helpers the engine uses: tuple keys, vbare values, CBOR user data.

They come from the protocol layer (:mod:`rivetkit.protocol.workflow_engine`); this module is
the one place the engine names them, so the rest of :mod:`rivetkit.workflow` stays on
Python values.
"""

from __future__ import annotations

from typing import Any

from rivetkit.protocol.bare import codec_for
from rivetkit.protocol.values import cbor_dumps_raw, cbor_loads_raw
from rivetkit.protocol.workflow_engine import types as T

__all__ = [
    "cbor_decode",
    "cbor_encode",
    "cbor_encode_undefined",
    "decode_entry",
    "decode_metadata",
    "encode_entry",
    "encode_metadata",
    "pack",
    "unpack",
]

_VERSION = b"\x01\x00"
_ENTRY = codec_for(T.Entry, "invalid_workflow_data")
_METADATA = codec_for(T.EntryMetadata, "invalid_workflow_data")


def _versioned(data: bytes, what: str) -> bytes:
    if len(data) < 2:
        raise ValueError(f"{what}: no vbare version")
    version = data[0] | (data[1] << 8)
    if version != 1:
        raise ValueError(f"Unknown {what} version {version}")
    return data[2:]


def encode_entry(entry: T.Entry) -> bytes:
    """vbare v1 bytes of a history entry."""
    return _VERSION + _ENTRY.encode(entry)


def decode_entry(data: bytes) -> T.Entry:
    """A history entry from its vbare bytes."""
    result: T.Entry = _ENTRY.decode(_versioned(data, "Entry"))
    return result


def encode_metadata(meta: T.EntryMetadata) -> bytes:
    """vbare v1 bytes of an entry's metadata."""
    return _VERSION + _METADATA.encode(meta)


def decode_metadata(data: bytes) -> T.EntryMetadata:
    """An entry's metadata from its vbare bytes."""
    result: T.EntryMetadata = _METADATA.decode(_versioned(data, "EntryMetadata"))
    return result


class _Undefined:
    pass


def cbor_encode(value: Any) -> bytes:
    """CBOR of a user value, as RivetKit's engine stores it (no JSON-compat wrapping)."""
    return cbor_dumps_raw(value)


def cbor_encode_undefined(value: Any) -> bytes:
    """CBOR of a loop state: None is ``undefined`` (``f7``), as a stateless loop's."""
    return b"\xf7" if value is None else cbor_dumps_raw(value)


def cbor_decode(data: bytes) -> Any:
    """A user value from CBOR (``undefined`` and ``null`` both give None)."""
    return cbor_loads_raw(data)


# -- FoundationDB tuple encoding (ints >= 0, strings, nested tuples) -------------------------


def _pack_item(item: Any, out: bytearray, nested: bool) -> None:
    if isinstance(item, bool):  # pragma: no cover - never used by the engine
        raise TypeError("booleans are not used in workflow keys")
    if isinstance(item, int):
        if item < 0:
            raise ValueError("negative integers are not used in workflow keys")
        if item == 0:
            out.append(0x14)
            return
        raw = item.to_bytes((item.bit_length() + 7) // 8, "big")
        out.append(0x14 + len(raw))
        out += raw
    elif isinstance(item, str):
        out.append(0x02)
        out += item.encode().replace(b"\x00", b"\x00\xff")
        out.append(0x00)
    elif isinstance(item, tuple):
        out.append(0x05)
        for sub in item:
            _pack_item(sub, out, True)
        out.append(0x00)
    else:
        raise TypeError(f"cannot pack {type(item).__name__} in a workflow key")


def pack(items: tuple[Any, ...]) -> bytes:
    """The FoundationDB tuple encoding of ``items``."""
    out = bytearray()
    for item in items:
        _pack_item(item, out, False)
    return bytes(out)


def _unpack_at(data: bytes, pos: int, nested: bool) -> tuple[Any, int]:
    code = data[pos]
    if code == 0x14:
        return 0, pos + 1
    if 0x15 <= code <= 0x1C:
        n = code - 0x14
        return int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), pos + 1 + n
    if code == 0x02:
        out = bytearray()
        pos += 1
        while True:
            byte = data[pos]
            if byte == 0x00:
                if pos + 1 < len(data) and data[pos + 1] == 0xFF:
                    out.append(0)
                    pos += 2
                    continue
                return out.decode(), pos + 1
            out.append(byte)
            pos += 1
    if code == 0x05:
        pos += 1
        items: list[Any] = []
        while data[pos] != 0x00 or (pos + 1 < len(data) and data[pos + 1] == 0xFF):
            item, pos = _unpack_at(data, pos, True)
            items.append(item)
        return tuple(items), pos + 1
    raise ValueError(f"unsupported tuple type code 0x{code:02x}")


def unpack(data: bytes) -> tuple[Any, ...]:
    """The items of a FoundationDB-tuple-encoded key."""
    items: list[Any] = []
    pos = 0
    while pos < len(data):
        item, pos = _unpack_at(data, pos, False)
        items.append(item)
    return tuple(items)

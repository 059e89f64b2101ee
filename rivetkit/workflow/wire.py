"""The byte-level helpers the engine uses: tuple keys, vbare values, CBOR user data.

They come from the protocol layer (:mod:`rivetkit.protocol.workflow_engine`); this module is
the one place the engine names them, so the rest of :mod:`rivetkit.workflow` stays on
Python values. CBOR ``undefined`` reads back as None here (Python has no ``undefined``).
"""

from __future__ import annotations

from typing import Any

from rivetkit.protocol.workflow_engine import codec, keys
from rivetkit.protocol.workflow_engine import types as T
from rivetkit.protocol.workflow_engine.cbor import UNDEFINED, decode_cbor, encode_cbor

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


def encode_entry(entry: T.Entry) -> bytes:
    """vbare v1 bytes of a history entry."""
    return codec.encode_entry(entry)


def decode_entry(data: bytes) -> T.Entry:
    """A history entry from its vbare bytes."""
    return codec.decode_entry(data)


def encode_metadata(meta: T.EntryMetadata) -> bytes:
    """vbare v1 bytes of an entry's metadata."""
    return codec.encode_entry_metadata(meta)


def decode_metadata(data: bytes) -> T.EntryMetadata:
    """An entry's metadata from its vbare bytes."""
    return codec.decode_entry_metadata(data)


def cbor_encode(value: Any) -> bytes:
    """CBOR of a user value, as RivetKit's engine (cbor-x) writes it."""
    return encode_cbor(value)


def cbor_encode_undefined(value: Any) -> bytes:
    """CBOR of a loop state: None is ``undefined`` (``f7``), as a stateless loop's."""
    return encode_cbor(UNDEFINED if value is None else value)


def cbor_decode(data: bytes) -> Any:
    """A user value from CBOR (``undefined`` and ``null`` both give None)."""
    value = decode_cbor(data)
    return None if value is UNDEFINED else value


def pack(items: tuple[Any, ...]) -> bytes:
    """The FoundationDB tuple encoding of ``items``."""
    return keys.pack(items)


def unpack(data: bytes) -> tuple[Any, ...]:
    """The items of a FoundationDB-tuple-encoded key."""
    return keys.unpack(data)

"""CBOR of workflow user data, written as cbor-x 1.6.9 writes a JS value (spec §2.6).

The workflow engine stores step outputs, loop state, message bodies, branch outputs, the
workflow output, error and input as raw cbor-x bytes, with no JSON-compat layer. The writer
here gives the bytes cbor-x gives for the JS value a Python value stands for; the reader
accepts any valid CBOR.

============================================ ===============================================
Python value                                 bytes (cbor-x)
============================================ ===============================================
``None`` / :data:`UNDEFINED`                 ``f6`` (null) / ``f7`` (undefined)
``True`` / ``False``                         ``f5`` / ``f4``
``int`` in ``[-2**32, 2**32)``               the shortest CBOR integer
other ``int`` within ``+-2**53``             float64 ``fb`` (a JS number)
other ``int``                                ``1b``/``3b`` + 8 bytes, beyond that tag 2/3 (a
                                             JS BigInt)
``float``                                    as an ``int`` when integral and in
                                             ``[-2**32, 2**32)`` (JS has one number type),
                                             else float64 ``fb``
``str``                                      text string
``bytes`` / ``bytearray`` / ``memoryview``   tag 64 ``d8 40`` + byte string (``Uint8Array``)
``list`` / ``tuple``                         array
``dict`` with only ``str`` keys              ``b9 nn nn`` map (a JS object; ``ba`` beyond
                                             65535 keys), integer-like keys first in
                                             ascending order, then insertion order, as a JS
                                             object enumerates them
other ``dict``                               tag 259 ``d9 01 03`` + map (a JS ``Map``)
``set`` / ``frozenset``                      tag 258 ``d9 01 02`` + array (a JS ``Set``)
aware ``datetime``                           tag 1 + seconds (``1a`` when whole seconds in
                                             u32 range, else ``fb``) (a JS ``Date``)
``cbor2.CBORTag``                            the tag, then its value
============================================ ===============================================

Reading reverses the table: a float that is integral and within ``+-2**53`` reads as an
``int`` (so a Python ``int`` survives the trip through ``fb``), tag 64 as ``bytes``, tag 259
as ``dict``, tag 258 as ``set``, ``f7`` as :data:`UNDEFINED`; other tags stay
``cbor2.CBORTag`` and re-encode unchanged.
"""

from __future__ import annotations

import datetime
import math
import struct
from collections.abc import Mapping
from typing import Any, Final

import cbor2

from rivetkit.errors import EncodeError
from rivetkit.protocol.values import MAX_DEPTH, cbor_loads_raw

__all__ = ["ERROR_CODE", "MAX_SAFE_INTEGER", "UNDEFINED", "decode_cbor", "encode_cbor"]

ERROR_CODE: Final = "invalid_workflow_data"
#: JS ``undefined`` (``f7``): cbor2's singleton, falsy.
UNDEFINED: Final = cbor2.undefined
#: The largest integer a float64 holds exactly; larger ints are written as a BigInt.
MAX_SAFE_INTEGER: Final = 1 << 53

_U32: Final = 1 << 32
_U64: Final = 1 << 64
_F64 = struct.Struct(">d")
_MAX_ARRAY_INDEX: Final = _U32 - 2


def _head(major: int, value: int, out: bytearray) -> None:
    base = major << 5
    if value < 0x18:
        out.append(base | value)
    elif value < 0x100:
        out += bytes((base | 0x18, value))
    elif value < 0x10000:
        out.append(base | 0x19)
        out += value.to_bytes(2, "big")
    elif value < _U32:
        out.append(base | 0x1A)
        out += value.to_bytes(4, "big")
    else:
        out.append(base | 0x1B)
        out += value.to_bytes(8, "big")


def _int(value: int, out: bytearray) -> None:
    if 0 <= value < _U32:
        _head(0, value, out)
    elif -_U32 <= value < 0:
        _head(1, -1 - value, out)
    elif -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        out.append(0xFB)
        out += _F64.pack(float(value))
    elif 0 <= value < _U64:
        out.append(0x1B)
        out += value.to_bytes(8, "big")
    elif -_U64 < value < 0:
        out.append(0x3B)
        out += (-1 - value).to_bytes(8, "big")
    else:
        magnitude = value if value >= 0 else -1 - value
        out.append(0xC2 if value >= 0 else 0xC3)
        raw = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
        _head(2, len(raw), out)
        out += raw


def _float(value: float, out: bytearray) -> None:
    if value.is_integer() and -_U32 <= value < _U32:
        _int(int(value), out)
        return
    out.append(0xFB)
    out += _F64.pack(value if not math.isnan(value) else math.nan)


def _array_index(key: str) -> int | None:
    # A JS object enumerates keys that are canonical array indices first, ascending.
    if not key.isdigit() or not key.isascii() or (key[0] == "0" and len(key) > 1):
        return None
    index = int(key)
    return index if index <= _MAX_ARRAY_INDEX else None


def _object(value: dict[str, Any], out: bytearray, depth: int) -> None:
    items = list(value.items())
    indexed = [(i, k) for k in value if (i := _array_index(k)) is not None]
    if indexed:
        first = [k for _, k in sorted(indexed)]
        chosen = set(first)
        items = [(k, value[k]) for k in first] + [(k, v) for k, v in items if k not in chosen]
    if len(items) < 0x10000:
        out.append(0xB9)
        out += len(items).to_bytes(2, "big")
    else:
        out.append(0xBA)
        out += len(items).to_bytes(4, "big")
    for key, item in items:
        _str(key, out)
        _encode(item, out, depth)


def _str(value: str, out: bytearray) -> None:
    raw = value.encode()
    _head(3, len(raw), out)
    out += raw


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodeError(f"value nests deeper than {MAX_DEPTH} levels")
    depth += 1
    if value is None:
        out.append(0xF6)
    elif value is UNDEFINED:
        out.append(0xF7)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        _int(value, out)
    elif isinstance(value, float):
        _float(value, out)
    elif isinstance(value, str):
        _str(value, out)
    elif isinstance(value, (list, tuple)):
        _head(4, len(value), out)
        for item in value:
            _encode(item, out, depth)
    elif isinstance(value, dict):
        if all(type(key) is str for key in value):
            _object(value, out, depth)
        else:
            out += b"\xd9\x01\x03"
            _head(5, len(value), out)
            for key, item in value.items():
                _encode(key, out, depth)
                _encode(item, out, depth)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += b"\xd8\x40"
        _head(2, len(raw), out)
        out += raw
    elif isinstance(value, (set, frozenset)):
        out += b"\xd9\x01\x02"
        _head(4, len(value), out)
        for item in value:
            _encode(item, out, depth)
    elif isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise EncodeError("a datetime without a time zone has no CBOR form")
        seconds = value.timestamp()
        out.append(0xC1)
        if value.microsecond == 0 and 0 <= seconds < _U32:
            _head(0, int(seconds), out)
        else:
            out.append(0xFB)
            out += _F64.pack(seconds)
    elif isinstance(value, cbor2.CBORTag):
        _head(6, value.tag, out)
        _encode(value.value, out, depth)
    else:
        raise EncodeError(f"cannot encode {type(value).__name__} as workflow CBOR")


def encode_cbor(value: Any) -> bytes:
    """CBOR of ``value`` as cbor-x writes the JS value it stands for; raises EncodeError."""
    out = bytearray()
    try:
        _encode(value, out, 0)
    except UnicodeEncodeError as exc:
        raise EncodeError(f"string is not valid UTF-8: {exc.reason}") from None
    return bytes(out)


def _number(value: float) -> int | float:
    if value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int(value)
    return value


def _revive_key(value: Any) -> Any:
    # Map keys and set items must stay hashable: cbor2 gives arrays there as tuples.
    kind = type(value)
    if kind is float:
        return _number(value)
    if kind is tuple:
        return tuple(_revive_key(item) for item in value)
    if kind is cbor2.CBORTag and value.tag == 64 and isinstance(value.value, bytes):
        return value.value
    return value


def _revive(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return _number(value)
    if kind is list or kind is tuple:  # tuples: arrays cbor2 read in an immutable context
        return [_revive(item) for item in value]
    if isinstance(value, Mapping):
        return {_revive_key(key): _revive(item) for key, item in value.items()}
    if kind is cbor2.CBORTag:
        if value.tag == 64 and isinstance(value.value, bytes):
            return value.value
        if value.tag == 259 and isinstance(value.value, Mapping):
            return _revive(value.value)
        return cbor2.CBORTag(value.tag, _revive(value.value))
    if kind is set or kind is frozenset:
        return {_revive_key(item) for item in value}
    return value


def decode_cbor(data: bytes | bytearray | memoryview) -> Any:
    """The value of any valid CBOR (one item filling ``data``); ProtocolError otherwise."""
    return _revive(cbor_loads_raw(data, error_code=ERROR_CODE))

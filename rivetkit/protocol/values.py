"""The codec of user values: the JSON-compat layer and the CBOR the runtime stores and sends.

Actor state, queue messages, scheduled-event args and the ``Cbor`` fields of the BARE
messages all hold CBOR of the JSON-compat form of the user's value (:func:`cbor_dumps` /
:func:`cbor_loads`); the json and cbor encodings of the client protocol
(:mod:`rivetkit.protocol.messages`, :mod:`rivetkit.protocol.http_bodies`) apply the same
layer to the values inside their trees.

JSON-compat layer (the client's ``common/encoding.ts``), Python mapping:

=========================================== ==================================================
Python value                                wire value
=========================================== ==================================================
``int`` within +-(2**53 - 1)                a plain number
any other ``int``                           ``["$BigInt", "<decimal digits>"]``
``bytes`` / ``bytearray`` / ``memoryview``  ``["$Uint8Array", "<standard base64>"]``
``set`` / ``frozenset``                     ``["$Set", [items...]]``
``cbor2.undefined``                         ``["$Undefined", 0]``
``list`` / ``tuple``                        an array; a 2-item array whose first item is a
                                            string starting with ``$`` gets one more ``$``
``dict``                                    an object (values encoded, keys as they are)
=========================================== ==================================================

Decoding reverses this: ``$BigInt`` gives an ``int`` whatever its size, ``$Uint8Array`` and
``$ArrayBuffer`` give ``bytes``, ``$Set`` gives a ``set`` (a ``list`` when an item is
unhashable), ``$Undefined`` gives ``None`` (Python has no ``undefined``), ``$$x`` loses one
``$``, and any other ``$`` tag raises :class:`~rivetkit.errors.ProtocolError`, as the client
throws on it. Only 2-item arrays are tags: the client escapes nothing else.

CBOR shared references that would expand beyond the input (cycles, exponential DAGs) are
refused. Decoders raise :class:`~rivetkit.errors.ProtocolError` on malformed input (with the
``error_code`` given); encoders raise :class:`~rivetkit.errors.EncodeError` on values that do
not fit.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from typing import Any, Final

import cbor2

from rivetkit.errors import EncodeError, ProtocolError

__all__ = [
    "BIGINT_TAG",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "U64",
    "bigint_from",
    "cbor_dumps",
    "cbor_dumps_raw",
    "cbor_loads",
    "cbor_loads_raw",
    "decode_json_compat",
    "encode_json_compat",
    "kind_of",
]

#: Largest integer a JS number holds exactly; larger ints travel as ``$BigInt``.
MAX_SAFE_INTEGER: Final = (1 << 53) - 1
#: Deepest nesting of arrays and objects in a user value; well under cbor2's decoder limit
#: (400), which also counts the levels of the message around the value.
MAX_DEPTH: Final = 256
#: The JSON-compat tag of an integer beyond :data:`MAX_SAFE_INTEGER` (and of message ids).
BIGINT_TAG: Final = "$BigInt"

_UINT8ARRAY: Final = "$Uint8Array"
_ARRAYBUFFER: Final = "$ArrayBuffer"
_UNDEFINED: Final = "$Undefined"
_SET: Final = "$Set"
_URLSAFE_TO_STANDARD: Final = str.maketrans("-_", "+/")


# MARK: JSON-compat layer


def encode_json_compat(value: Any) -> Any:
    """Return ``value`` in the client's JSON-compat form (see the module docstring).

    Values of other types (floats, strings, ``None``, or types only CBOR can carry, such as
    ``datetime``) are returned as they are. Raises :class:`EncodeError` beyond
    :data:`MAX_DEPTH` levels of nesting.
    """
    try:
        return _compat_encode(value, 0)
    except EncodeError:
        raise
    except (RecursionError, ValueError) as exc:  # ValueError: an int too long for str()
        raise EncodeError(f"value cannot be JSON-compat encoded: {exc}") from None


def _compat_encode(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        return [BIGINT_TAG, str(value)]
    if depth >= MAX_DEPTH:
        raise EncodeError(f"value nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, (list, tuple)):
        items = [_compat_encode(item, depth + 1) for item in value]
        if len(items) == 2 and isinstance(items[0], str) and items[0].startswith("$"):
            items[0] = "$" + items[0]
        return items
    if isinstance(value, Mapping):
        return {key: _compat_encode(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [_UINT8ARRAY, base64.b64encode(value).decode("ascii")]
    if isinstance(value, (set, frozenset)):
        return [_SET, [_compat_encode(item, depth + 1) for item in value]]
    if value is cbor2.undefined:
        return [_UNDEFINED, 0]
    return value


def decode_json_compat(value: Any, *, error_code: str = "invalid_data") -> Any:
    """Revive the JSON-compat tags in a parsed JSON or CBOR value (see the module docstring).

    Raises :class:`ProtocolError` (with ``error_code``) on an unknown or malformed ``$`` tag
    and beyond :data:`MAX_DEPTH` levels of nesting.
    """
    try:
        return _compat_decode(value, 0, error_code)
    except RecursionError:
        raise ProtocolError("value nests too deeply", code=error_code) from None


def _compat_decode(value: Any, depth: int, code: str) -> Any:
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"value nests deeper than {MAX_DEPTH} levels", code=code)
        if len(value) == 2 and isinstance(value[0], str) and value[0].startswith("$"):
            return _revive(value[0], value[1], depth, code)
        return [_compat_decode(item, depth + 1, code) for item in value]
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"value nests deeper than {MAX_DEPTH} levels", code=code)
        return {key: _compat_decode(item, depth + 1, code) for key, item in value.items()}
    return value


def _revive(tag: str, payload: Any, depth: int, code: str) -> Any:
    if tag == BIGINT_TAG:
        return bigint_from(payload, code)
    if tag in (_UINT8ARRAY, _ARRAYBUFFER):
        return _base64(payload, tag, code)
    if tag == _UNDEFINED:
        return None
    if tag == _SET:
        if not isinstance(payload, list):
            raise ProtocolError(f"$Set holds {kind_of(payload)}, not an array", code=code)
        items = [_compat_decode(item, depth + 1, code) for item in payload]
        try:
            return set(items)
        except TypeError:
            return items
    if tag.startswith("$$"):
        return [tag[1:], _compat_decode(payload, depth + 1, code)]
    raise ProtocolError(f"unknown JSON-compat tag {tag[:40]!r}", code=code)


def bigint_from(payload: Any, code: str) -> int:
    """The integer of a ``$BigInt`` payload (decimal digits, or an int); ProtocolError else."""
    if isinstance(payload, str):
        digits = payload[1:] if payload.startswith("-") else payload
        # str.isdigit() would admit non-ASCII digits, which int() accepts and JS does not.
        if digits and digits.isascii() and digits.isdigit():
            try:
                return int(payload)
            except ValueError:  # longer than Python's int/str conversion limit
                pass
        raise ProtocolError(f"$BigInt holds {payload[:40]!r}, not an integer", code=code)
    if isinstance(payload, int) and not isinstance(payload, bool):
        return int(payload)
    raise ProtocolError(f"$BigInt holds {kind_of(payload)}, not a string", code=code)


def _base64(payload: Any, tag: str, code: str) -> bytes:
    if not isinstance(payload, str):
        raise ProtocolError(f"{tag} holds {kind_of(payload)}, not a string", code=code)
    # Node's Buffer.from(s, "base64") accepts both alphabets and missing padding.
    text = payload.rstrip("=").translate(_URLSAFE_TO_STANDARD)
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{tag} holds invalid base64", code=code) from None


def kind_of(value: Any) -> str:
    """What ``value`` is, for error messages: ``null`` or its type's name."""
    return "null" if value is None else type(value).__name__


# MARK: CBOR


class U64:
    """A uint written as CBOR major type 0 with the 8-byte argument, whatever its size."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


def _cbor_default(encoder: Any, value: Any) -> None:
    if type(value) is U64:
        encoder.write(b"\x1b" + value.value.to_bytes(8, "big"))
        return
    raise cbor2.CBOREncodeTypeError(f"cannot encode {type(value).__name__} as CBOR")


def cbor_dumps_raw(value: Any) -> bytes:
    """CBOR of ``value`` as it is, without the JSON-compat layer; raises EncodeError."""
    try:
        return cbor2.dumps(value, default=_cbor_default)
    except (cbor2.CBORError, TypeError, ValueError, RecursionError) as exc:
        raise EncodeError(f"value is not CBOR-serializable: {exc}") from None


def cbor_loads_raw(
    data: bytes | bytearray | memoryview, *, error_code: str = "invalid_data"
) -> Any:
    """Decode exactly one CBOR value filling ``data``, without reviving JSON-compat tags.

    Accepts non-canonical headers (cbor-x's ``b9 00 NN`` maps). Raises :class:`ProtocolError`
    with ``error_code`` on malformed or trailing bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected CBOR bytes, got {type(data).__name__}", code=error_code)
    raw = bytes(data)
    stream = io.BytesIO(raw)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    # cbor2's decoders (C and pure, 5.x and 6.x) raise many exception types on bad input
    # (CBORDecodeError, ValueError, TypeError and OverflowError from tag handlers, ...).
    except Exception as exc:
        raise ProtocolError(f"invalid CBOR: {exc}", code=error_code) from None
    if stream.tell() != len(raw):
        raise ProtocolError(
            f"{len(raw) - stream.tell()} trailing bytes after the CBOR value", code=error_code
        )
    if b"\x1c" in raw or b"\x1d" in raw:  # could hold tag 28 or 29 (shared references)
        _check_expansion(value, len(raw), error_code)
    return value


def _check_expansion(value: Any, limit: int, code: str) -> None:
    # Every CBOR data item takes at least one byte, so a tree has at most len(data) nodes.
    # Shared references (tags 28/29) can build cycles, or DAGs whose walk is exponential in
    # the input size; both exceed that bound and are refused before anyone walks them.
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            raise ProtocolError(
                "CBOR value expands beyond its bytes (shared references)", code=code
            )
        if isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, cbor2.CBORTag):
            stack.append(item.value)


def cbor_dumps(value: Any) -> bytes:
    """The ``Cbor`` payload of a BARE message: CBOR of the JSON-compat form of ``value``."""
    return cbor_dumps_raw(encode_json_compat(value))


def cbor_loads(data: bytes | bytearray | memoryview, *, error_code: str = "invalid_data") -> Any:
    """The user value of a BARE message's ``Cbor`` payload (reverses :func:`cbor_dumps`)."""
    return decode_json_compat(cbor_loads_raw(data, error_code=error_code), error_code=error_code)

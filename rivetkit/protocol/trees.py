"""The client encodings, and the helpers the json and cbor message trees share.

:mod:`rivetkit.protocol.messages` (connection messages) and
:mod:`rivetkit.protocol.http_bodies` (HTTP bodies) build and read the same kind of tree: an
object of camelCase fields, user values in the JSON-compat form of
:mod:`rivetkit.protocol.values`, written as JSON text or as CBOR. This module holds what they
share: the JSON text codec (one encoder and one decoder for every call), the checks that
read a decoded tree (raising :class:`~rivetkit.errors.ProtocolError`) and those that write one
(raising :class:`~rivetkit.errors.EncodeError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, Literal, NoReturn

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol.client_protocol import ActorSpecifier
from rivetkit.protocol.values import (
    BIGINT_TAG,
    MAX_SAFE_INTEGER,
    bigint_from,
    encode_json_compat,
    kind_of,
)

#: The encodings a client may choose.
Encoding = Literal["json", "cbor", "bare"]
#: The encodings a client may choose, as a tuple.
ENCODINGS: Final = ("json", "cbor", "bare")
#: The largest ``id``/``actionId`` (a u64).
U64_MAX: Final = (1 << 64) - 1
#: How a tree writer turns an integer field into its tree value (per encoding).
TreeOf = Callable[[Any], Any]


# MARK: JSON text


# One encoder and one decoder for every call: json.dumps/json.loads with non-default options
# build a new (Python-level) encoder or decoder each time, a visible cost on the hot path.
# ASCII output (json's default) keeps lone surrogates from user strings encodable.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def json_dumps(tree: Any) -> str:
    """Compact ASCII JSON text of ``tree``; EncodeError when it is not JSON-serializable."""
    try:
        return _ENCODER.encode(tree)
    except (TypeError, ValueError, RecursionError) as exc:
        raise EncodeError(f"value is not JSON-serializable: {exc}") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
#: The scanner of the shared JSON decoder: one value at an index, no surrounding whitespace.
JSON_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def json_loads(data: Any, code: str) -> Any:
    """The value of JSON text (``str`` or UTF-8 bytes); ProtocolError with ``code`` else."""
    if isinstance(data, str):
        text = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("JSON text is not valid UTF-8", code=code) from None
    else:
        raise ProtocolError(f"expected JSON text, got {type(data).__name__}", code=code)
    try:
        # The scanner alone when the text is one value without surrounding whitespace (what
        # clients send); JSONDecoder.decode (whitespace, errors) for anything else.
        value, end = JSON_SCAN(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError, RecursionError):
        pass
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"invalid JSON: {exc}", code=code) from None


# Fast paths. The common messages (an action's request and response) carry plain values:
# small ints, strings, ``None``. For those, the functions below skip the generic tree walks;
# they answer None (or False) for anything else, and the generic path decides, so the bytes
# and the errors are the same either way.

#: The JSON string literal of a str, ASCII-escaped as :func:`json_dumps` writes it.
json_string: Final = json.encoder.encode_basestring_ascii
_PLAIN_SCALARS: Final = frozenset((int, float, bool, type(None)))


def _scalar_json(value: Any) -> str | None:
    """The JSON text of a plain scalar as :func:`json_dumps` writes it, else None."""
    kind = type(value)
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int.__repr__(value)
        return None
    if kind is str:
        return json_string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return None


def plain_args(args: Any) -> bool:
    """True when JSON-compat decoding leaves the list ``args`` as it is (no tags anywhere)."""
    if type(args) is not list:
        return False
    for item in args:
        kind = type(item)
        if kind is str:
            continue
        if kind not in _PLAIN_SCALARS:
            return False
    return not (len(args) == 2 and type(args[0]) is str and args[0].startswith("$"))


def compat_json(value: Any) -> str:
    """``json_dumps(encode_json_compat(value))``, without the walk for plain scalars."""
    text = _scalar_json(value)
    if text is None:
        text = json_dumps(encode_json_compat(value))
    return text


# MARK: reading decoded trees


def expect_object(value: Any, what: str, code: str) -> dict[Any, Any]:
    """``value`` when it is an object (a dict); ProtocolError naming ``what`` else."""
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be an object, got {kind_of(value)}", code=code)
    return value


def require_field(obj: dict[Any, Any], key: str, what: str, code: str) -> Any:
    """The field ``key`` of ``obj``; ProtocolError when it is missing."""
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError(f"{what} lacks the field {key!r}", code=code) from None


def read_string(obj: dict[Any, Any], key: str, what: str, code: str) -> str:
    """The string field ``key`` of ``obj``; ProtocolError when missing or not a string."""
    value = require_field(obj, key, what, code)
    if not isinstance(value, str):
        raise ProtocolError(f"{what}.{key} must be a string, got {kind_of(value)}", code=code)
    return value


def read_optional_string(obj: dict[Any, Any], key: str, what: str, code: str) -> str | None:
    """The string field ``key`` of ``obj``, None when missing or null."""
    if obj.get(key) is None:
        return None
    return read_string(obj, key, what, code)


def read_boolean(obj: dict[Any, Any], key: str, what: str, code: str) -> bool:
    """The boolean field ``key`` of ``obj``; ProtocolError when missing or not a boolean."""
    value = require_field(obj, key, what, code)
    if not isinstance(value, bool):
        raise ProtocolError(f"{what}.{key} must be a boolean, got {kind_of(value)}", code=code)
    return value


def read_optional_boolean(obj: dict[Any, Any], key: str, what: str, code: str) -> bool | None:
    """The boolean field ``key`` of ``obj``, None when missing or null."""
    if obj.get(key) is None:
        return None
    return read_boolean(obj, key, what, code)


def read_uint(value: Any, what: str, code: str, *, allow_float: bool = False) -> int:
    """A u64 given as an integer, a ``$BigInt`` or (``allow_float``) an integral float."""
    if isinstance(value, list) and len(value) == 2 and value[0] == BIGINT_TAG:
        value = bigint_from(value[1], code)
    integral = isinstance(value, int) and not isinstance(value, bool)
    if integral or (allow_float and isinstance(value, float) and value.is_integer()):
        number = int(value)
    else:
        raise ProtocolError(f"{what} must be an unsigned integer, got {kind_of(value)}", code=code)
    if not 0 <= number <= U64_MAX:
        raise ProtocolError(f"{what} {number} is outside the u64 range", code=code)
    return number


def read_optional_uint(
    obj: dict[Any, Any], key: str, what: str, code: str, *, allow_float: bool = False
) -> int | None:
    """The u64 field ``key`` of ``obj`` (see :func:`read_uint`), None when missing or null."""
    value = obj.get(key)
    if value is None:
        return None
    return read_uint(value, f"{what}.{key}", code, allow_float=allow_float)


def read_tagged(tree: Any, code: str) -> tuple[str, dict[Any, Any]]:
    """The ``(tag, val)`` of a ``{"body": {"tag": ..., "val": {...}}}`` message tree."""
    message = expect_object(tree, "message", code)
    body = expect_object(require_field(message, "body", "message", code), "body", code)
    tag = read_string(body, "tag", "body", code)
    return tag, expect_object(require_field(body, "val", "body", code), f"{tag[:40]} value", code)


def actor_from_tree(value: Any, code: str) -> ActorSpecifier | None:
    """The ``actor`` field of an error (``{actorId, generation, key?}``), None when absent."""
    if value is None:
        return None
    obj = expect_object(value, "actor", code)
    return ActorSpecifier(
        actor_id=read_string(obj, "actorId", "actor", code),
        generation=read_uint(
            require_field(obj, "generation", "actor", code),
            "actor.generation",
            code,
            allow_float=True,
        ),
        key=read_optional_string(obj, "key", "actor", code),
    )


# MARK: writing trees


def check_str(value: Any, what: str) -> str:
    """``value`` when it is a str; EncodeError naming ``what`` else."""
    if not isinstance(value, str):
        raise EncodeError(f"{what} expects a str, got {type(value).__name__}")
    return value


def check_bool(value: Any, what: str) -> bool:
    """``value`` when it is a bool; EncodeError naming ``what`` else."""
    if not isinstance(value, bool):
        raise EncodeError(f"{what} expects a bool, got {type(value).__name__}")
    return value


def check_u64(value: Any, what: str) -> int:
    """``value`` when it is an int in the u64 range; EncodeError naming ``what`` else."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"{what} expects an int, got {type(value).__name__}")
    if not 0 <= value <= U64_MAX:
        raise EncodeError(f"{what} value {value} is outside the u64 range")
    return int(value)


def json_uint(value: int) -> Any:
    """An ``id`` in the json form: always ``["$BigInt", "n"]``."""
    return [BIGINT_TAG, str(value)]


def json_number(value: int) -> Any:
    """An integer in the json form: a number when a JS number holds it, else ``$BigInt``."""
    return value if value <= MAX_SAFE_INTEGER else [BIGINT_TAG, str(value)]


def plain(value: int) -> Any:
    """An integer as it is (the cbor form of a field that is not an ``id``)."""
    return value


def actor_tree(actor: Any, generation: TreeOf) -> dict[str, Any]:
    """The tree of an :class:`ActorSpecifier`, ``generation`` written by the given writer."""
    if type(actor) is not ActorSpecifier:
        raise EncodeError(f"actor expects an ActorSpecifier, got {type(actor).__name__}")
    tree: dict[str, Any] = {
        "actorId": check_str(actor.actor_id, "actor.actor_id"),
        "generation": generation(check_u64(actor.generation, "actor.generation")),
    }
    if actor.key is not None:
        tree["key"] = check_str(actor.key, "actor.key")
    return tree


def check_encoding(encoding: str) -> None:
    """ValueError unless ``encoding`` is one of :data:`ENCODINGS` (encoders' check)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def unsupported_encoding(encoding: Any, code: str) -> NoReturn:
    """Raise the ProtocolError of a decoder given an unknown encoding."""
    raise ProtocolError(f"unsupported encoding {str(encoding)[:40]!r}", code=code)


def as_binary(data: Any, code: str) -> bytes:
    """``data`` as bytes when it is binary; ProtocolError with ``code`` else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}", code=code)
    return bytes(data)

"""The json and cbor forms of the client protocol, and the JSON-compat value layer under them.

The official TypeScript client (``rivetkit@2.3.19``) speaks one of three encodings, chosen per
connection (``rivet_encoding.*`` subprotocol) or per request (``x-rivet-encoding`` header):

* ``bare``: the vbare-prefixed BARE messages of :mod:`rivetkit.protocol.client_protocol`,
  whose ``Cbor`` fields hold CBOR of the JSON-compat encoding of the user's value
  (:func:`cbor_dumps` / :func:`cbor_loads`);
* ``json``: ``{"body": {"tag": "<Variant>", "val": {camelCase fields}}}`` as JSON text, with the
  JSON-compat layer applied to user values and ``id``/``actionId`` written ``["$BigInt", "n"]``;
* ``cbor``: the same tree as CBOR, ``id``/``actionId`` written as 8-byte CBOR integers
  (``1b`` + 8 bytes), which cbor-x decodes to the bigints the client's schema demands.

Every message function here takes or returns the v4 records of
:mod:`rivetkit.protocol.client_protocol`, with the ``Cbor`` fields (``args``, ``output``,
``metadata``, ``body``, ``response``) holding the user's value itself rather than bytes; the
``encode_*``/``decode_*`` dispatchers give that same view for the ``bare`` encoding too.

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

Quirks of the client this module follows:

* its ToServer **cbor** form carries ``args`` raw, without the compat layer, while json and
  bare escape it; so those fields are not revived. Its cbor HTTP request bodies come from the
  same serializer, so their ``args``/``body`` are read raw too (an inference: no vector shows
  one with a ``$`` value);
* cbor-x writes 16-bit map headers (``b9 00 NN``) and float64 for integers beyond 32 bits
  (``actor.generation``); the decoders accept both;
* an ``Error`` always carries ``actionId`` (``null`` when absent); an absent ``metadata``,
  ``actor`` or ``actor.key`` is left out.

Decoders accept ``id``/``actionId`` as any CBOR integer width, as ``["$BigInt", "n"]`` in
either form, or as a plain JSON integer, but never a bool, a float, a negative number or one
of 2**64 or more. CBOR shared references that would expand beyond the input (cycles,
exponential DAGs) are refused.

Decoders raise :class:`~rivetkit.errors.ProtocolError` on any malformed input, with code
``invalid_actor_connect_request`` for connection messages, ``invalid_http_request`` for
request bodies and ``invalid_http_response`` for response bodies (an unknown encoding
included). Encoders raise :class:`~rivetkit.errors.EncodeError` on values that do not fit,
and ``ValueError`` on an unknown encoding.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, NoReturn

import cbor2

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol.client_protocol import (
    CONNECT_ERROR_CODE,
    HTTP_ACTION_REQUEST,
    HTTP_ACTION_RESPONSE,
    HTTP_QUEUE_SEND_REQUEST,
    HTTP_QUEUE_SEND_RESPONSE,
    HTTP_REQUEST_ERROR_CODE,
    HTTP_RESPONSE_ERROR,
    HTTP_RESPONSE_ERROR_CODE,
    TO_CLIENT,
    TO_SERVER,
    ActionRequest,
    ActionResponse,
    ActorSpecifier,
    Error,
    Event,
    HttpActionRequest,
    HttpActionResponse,
    HttpQueueSendRequest,
    HttpQueueSendResponse,
    HttpResponseError,
    Init,
    SubscriptionRequest,
    ToClient,
    ToServer,
)

__all__ = [
    "ENCODINGS",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "Encoding",
    "action_request_from",
    "action_response_cbor",
    "action_response_json",
    "cbor_dumps",
    "cbor_dumps_raw",
    "cbor_loads",
    "cbor_loads_raw",
    "decode_json_compat",
    "decode_to_client",
    "decode_to_server",
    "encode_action_response",
    "encode_json_compat",
    "encode_to_client",
    "encode_to_server",
    "event_json",
    "http_action_request_from",
    "http_action_request_to",
    "http_action_response_from",
    "http_action_response_to",
    "http_error_from",
    "http_error_to",
    "http_queue_send_request_from",
    "http_queue_send_request_to",
    "http_queue_send_response_from",
    "http_queue_send_response_to",
    "to_client_cbor",
    "to_client_from_cbor",
    "to_client_from_json",
    "to_client_json",
    "to_server_cbor",
    "to_server_from_cbor",
    "to_server_from_json",
    "to_server_json",
]

#: The encodings a client may choose.
Encoding = Literal["json", "cbor", "bare"]
#: The encodings a client may choose, as a tuple.
ENCODINGS: Final = ("json", "cbor", "bare")
#: Largest integer a JS number holds exactly; larger ints travel as ``$BigInt``.
MAX_SAFE_INTEGER: Final = (1 << 53) - 1
#: Deepest nesting of arrays and objects in a user value; well under cbor2's decoder limit
#: (400), which also counts the levels of the message around the value.
MAX_DEPTH: Final = 256

_U64_MAX: Final = (1 << 64) - 1
_BIGINT: Final = "$BigInt"
_UINT8ARRAY: Final = "$Uint8Array"
_ARRAYBUFFER: Final = "$ArrayBuffer"
_UNDEFINED: Final = "$Undefined"
_SET: Final = "$Set"
_URLSAFE_TO_STANDARD: Final = str.maketrans("-_", "+/")

_TreeOf = Callable[[Any], Any]


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
        return [_BIGINT, str(value)]
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
    if tag == _BIGINT:
        return _bigint(payload, code)
    if tag in (_UINT8ARRAY, _ARRAYBUFFER):
        return _base64(payload, tag, code)
    if tag == _UNDEFINED:
        return None
    if tag == _SET:
        if not isinstance(payload, list):
            raise ProtocolError(f"$Set holds {_kind(payload)}, not an array", code=code)
        items = [_compat_decode(item, depth + 1, code) for item in payload]
        try:
            return set(items)
        except TypeError:
            return items
    if tag.startswith("$$"):
        return [tag[1:], _compat_decode(payload, depth + 1, code)]
    raise ProtocolError(f"unknown JSON-compat tag {tag[:40]!r}", code=code)


def _bigint(payload: Any, code: str) -> int:
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
    raise ProtocolError(f"$BigInt holds {_kind(payload)}, not a string", code=code)


def _base64(payload: Any, tag: str, code: str) -> bytes:
    if not isinstance(payload, str):
        raise ProtocolError(f"{tag} holds {_kind(payload)}, not a string", code=code)
    # Node's Buffer.from(s, "base64") accepts both alphabets and missing padding.
    text = payload.rstrip("=").translate(_URLSAFE_TO_STANDARD)
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{tag} holds invalid base64", code=code) from None


# MARK: JSON and CBOR primitives


# One encoder and one decoder for every call: json.dumps/json.loads with non-default options
# build a new (Python-level) encoder or decoder each time, a visible cost on the hot path.
# ASCII output (json's default) keeps lone surrogates from user strings encodable.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _json_dumps(tree: Any) -> str:
    try:
        return _ENCODER.encode(tree)
    except (TypeError, ValueError, RecursionError) as exc:
        raise EncodeError(f"value is not JSON-serializable: {exc}") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _json_loads(data: Any, code: str) -> Any:
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
        value, end = _SCAN(text, 0)
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

_encode_basestring_ascii: Final = json.encoder.encode_basestring_ascii
_PLAIN_SCALARS: Final = frozenset((int, float, bool, type(None)))


def _scalar_json(value: Any) -> str | None:
    """The JSON text of a plain scalar as :func:`_json_dumps` writes it, else None."""
    kind = type(value)
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int.__repr__(value)
        return None
    if kind is str:
        return _encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return None


def _plain_args(args: Any) -> bool:
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


def _fast_uint(value: Any) -> int | None:
    """An ``id`` as a plain int or ``["$BigInt", "digits"]`` within the u64 range, else None."""
    kind = type(value)
    if kind is int:
        return value if 0 <= value <= _U64_MAX else None
    if kind is list and len(value) == 2 and value[0] == _BIGINT:
        digits = value[1]
        if type(digits) is str and 0 < len(digits) <= 20 and digits.isascii() and digits.isdigit():
            number = int(digits)
            return number if number <= _U64_MAX else None
    return None


class _U64:
    """A uint written as CBOR major type 0 with the 8-byte argument, whatever its size."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


def _cbor_default(encoder: Any, value: Any) -> None:
    if type(value) is _U64:
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


# MARK: reading decoded trees


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _object(value: Any, what: str, code: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be an object, got {_kind(value)}", code=code)
    return value


def _require(obj: dict[Any, Any], key: str, what: str, code: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError(f"{what} lacks the field {key!r}", code=code) from None


def _string(obj: dict[Any, Any], key: str, what: str, code: str) -> str:
    value = _require(obj, key, what, code)
    if not isinstance(value, str):
        raise ProtocolError(f"{what}.{key} must be a string, got {_kind(value)}", code=code)
    return value


def _optional_string(obj: dict[Any, Any], key: str, what: str, code: str) -> str | None:
    if obj.get(key) is None:
        return None
    return _string(obj, key, what, code)


def _boolean(obj: dict[Any, Any], key: str, what: str, code: str) -> bool:
    value = _require(obj, key, what, code)
    if not isinstance(value, bool):
        raise ProtocolError(f"{what}.{key} must be a boolean, got {_kind(value)}", code=code)
    return value


def _optional_boolean(obj: dict[Any, Any], key: str, what: str, code: str) -> bool | None:
    if obj.get(key) is None:
        return None
    return _boolean(obj, key, what, code)


def _uint(value: Any, what: str, code: str, *, allow_float: bool = False) -> int:
    """A u64 given as an integer, a ``$BigInt`` or (``allow_float``) an integral float."""
    if isinstance(value, list) and len(value) == 2 and value[0] == _BIGINT:
        value = _bigint(value[1], code)
    integral = isinstance(value, int) and not isinstance(value, bool)
    if integral or (allow_float and isinstance(value, float) and value.is_integer()):
        number = int(value)
    else:
        raise ProtocolError(f"{what} must be an unsigned integer, got {_kind(value)}", code=code)
    if not 0 <= number <= _U64_MAX:
        raise ProtocolError(f"{what} {number} is outside the u64 range", code=code)
    return number


def _optional_uint(
    obj: dict[Any, Any], key: str, what: str, code: str, *, allow_float: bool = False
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    return _uint(value, f"{what}.{key}", code, allow_float=allow_float)


def _tagged(tree: Any, code: str) -> tuple[str, dict[Any, Any]]:
    message = _object(tree, "message", code)
    body = _object(_require(message, "body", "message", code), "body", code)
    tag = _string(body, "tag", "body", code)
    return tag, _object(_require(body, "val", "body", code), f"{tag[:40]} value", code)


def _actor_from_tree(value: Any, code: str) -> ActorSpecifier | None:
    if value is None:
        return None
    obj = _object(value, "actor", code)
    return ActorSpecifier(
        actor_id=_string(obj, "actorId", "actor", code),
        generation=_uint(
            _require(obj, "generation", "actor", code), "actor.generation", code, allow_float=True
        ),
        key=_optional_string(obj, "key", "actor", code),
    )


# MARK: writing trees


def _check_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise EncodeError(f"{what} expects a str, got {type(value).__name__}")
    return value


def _check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise EncodeError(f"{what} expects a bool, got {type(value).__name__}")
    return value


def _check_u64(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"{what} expects an int, got {type(value).__name__}")
    if not 0 <= value <= _U64_MAX:
        raise EncodeError(f"{what} value {value} is outside the u64 range")
    return int(value)


def _json_uint(value: int) -> Any:
    return [_BIGINT, str(value)]


def _json_number(value: int) -> Any:
    return value if value <= MAX_SAFE_INTEGER else [_BIGINT, str(value)]


def _plain(value: int) -> Any:
    return value


def _actor_tree(actor: Any, generation: _TreeOf) -> dict[str, Any]:
    if type(actor) is not ActorSpecifier:
        raise EncodeError(f"actor expects an ActorSpecifier, got {type(actor).__name__}")
    tree: dict[str, Any] = {
        "actorId": _check_str(actor.actor_id, "actor.actor_id"),
        "generation": generation(_check_u64(actor.generation, "actor.generation")),
    }
    if actor.key is not None:
        tree["key"] = _check_str(actor.key, "actor.key")
    return tree


# MARK: connection messages


def _to_client_tree(msg: Any, uint: _TreeOf, generation: _TreeOf) -> dict[str, Any]:
    if type(msg) is not ToClient:
        raise EncodeError(f"expected ToClient, got {type(msg).__name__}")
    body = msg.body
    val: dict[str, Any]
    if isinstance(body, Init):
        val = {
            "actorId": _check_str(body.actor_id, "Init.actor_id"),
            "connectionId": _check_str(body.connection_id, "Init.connection_id"),
        }
    elif isinstance(body, Error):
        val = {
            "group": _check_str(body.group, "Error.group"),
            "code": _check_str(body.code, "Error.code"),
            "message": _check_str(body.message, "Error.message"),
        }
        if body.metadata is not None:
            val["metadata"] = encode_json_compat(body.metadata)
        action_id = body.action_id
        val["actionId"] = (
            None if action_id is None else uint(_check_u64(action_id, "Error.action_id"))
        )
        if body.actor is not None:
            val["actor"] = _actor_tree(body.actor, generation)
    elif isinstance(body, ActionResponse):
        val = {
            "id": uint(_check_u64(body.id, "ActionResponse.id")),
            "output": encode_json_compat(body.output),
        }
    elif isinstance(body, Event):
        val = {"name": _check_str(body.name, "Event.name"), "args": encode_json_compat(body.args)}
    else:
        raise EncodeError(f"ToClient body expects a v4 body record, got {type(body).__name__}")
    return {"body": {"tag": type(body).__name__, "val": val}}


def _to_client_from_tree(tree: Any) -> ToClient:
    code = CONNECT_ERROR_CODE
    tag, val = _tagged(tree, code)
    if tag == "Init":
        return ToClient(
            Init(
                actor_id=_string(val, "actorId", tag, code),
                connection_id=_string(val, "connectionId", tag, code),
            )
        )
    if tag == "Error":
        return ToClient(
            Error(
                group=_string(val, "group", tag, code),
                code=_string(val, "code", tag, code),
                message=_string(val, "message", tag, code),
                metadata=decode_json_compat(val.get("metadata"), error_code=code),
                action_id=_optional_uint(val, "actionId", tag, code),
                actor=_actor_from_tree(val.get("actor"), code),
            )
        )
    if tag == "ActionResponse":
        return ToClient(
            ActionResponse(
                id=_uint(_require(val, "id", tag, code), "ActionResponse.id", code),
                # JSON.stringify drops an `undefined` output, so a missing one is None.
                output=decode_json_compat(val.get("output"), error_code=code),
            )
        )
    if tag == "Event":
        return ToClient(
            Event(
                name=_string(val, "name", tag, code),
                args=decode_json_compat(_require(val, "args", tag, code), error_code=code),
            )
        )
    raise ProtocolError(f"unknown ToClient tag {tag[:40]!r}", code=code)


def _to_server_tree(msg: Any, uint: _TreeOf, args: _TreeOf) -> dict[str, Any]:
    if type(msg) is not ToServer:
        raise EncodeError(f"expected ToServer, got {type(msg).__name__}")
    body = msg.body
    val: dict[str, Any]
    if isinstance(body, ActionRequest):
        val = {
            "id": uint(_check_u64(body.id, "ActionRequest.id")),
            "name": _check_str(body.name, "ActionRequest.name"),
            "args": args(body.args),
        }
    elif isinstance(body, SubscriptionRequest):
        val = {
            "eventName": _check_str(body.event_name, "SubscriptionRequest.event_name"),
            "subscribe": _check_bool(body.subscribe, "SubscriptionRequest.subscribe"),
        }
    else:
        raise EncodeError(f"ToServer body expects a body record, got {type(body).__name__}")
    return {"body": {"tag": type(body).__name__, "val": val}}


def _fast_action_request(tree: Any, revive_args: bool) -> tuple[int, str, Any] | None:
    """``(id, name, args)`` of a well-formed ``ActionRequest`` tree with plain args, read
    without the generic walk; None for anything else."""
    if type(tree) is not dict:
        return None
    body = tree.get("body")
    if type(body) is not dict or body.get("tag") != "ActionRequest":
        return None
    val = body.get("val")
    if type(val) is not dict or "args" not in val:
        return None
    args = val["args"]
    name = val.get("name")
    action_id = _fast_uint(val.get("id"))
    if action_id is None or type(name) is not str:
        return None
    if revive_args and args is not None and not _plain_args(args):
        return None
    return action_id, name, args


def action_request_from(data: Any, encoding: str) -> tuple[int, str, Any] | None:
    """``(id, name, args)`` of a json ``ActionRequest`` whose args are plain (no JSON-compat
    tags), read faster than :func:`decode_to_server` and with the same result; None for
    anything else (other messages and encodings, tagged args, malformed input), which
    :func:`decode_to_server` then reads (or rejects)."""
    if encoding != "json" or type(data) is not str:
        return None
    try:
        tree, end = _SCAN(data, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(data):
        return None
    return _fast_action_request(tree, True)


def _to_server_from_tree(tree: Any, *, revive_args: bool) -> ToServer:
    code = CONNECT_ERROR_CODE
    fast = _fast_action_request(tree, revive_args)
    if fast is not None:
        return ToServer(ActionRequest(*fast))
    tag, val = _tagged(tree, code)
    if tag == "ActionRequest":
        args = _require(val, "args", tag, code)
        return ToServer(
            ActionRequest(
                id=_uint(_require(val, "id", tag, code), "ActionRequest.id", code),
                name=_string(val, "name", tag, code),
                args=decode_json_compat(args, error_code=code) if revive_args else args,
            )
        )
    if tag == "SubscriptionRequest":
        return ToServer(
            SubscriptionRequest(
                event_name=_string(val, "eventName", tag, code),
                subscribe=_boolean(val, "subscribe", tag, code),
            )
        )
    raise ProtocolError(f"unknown ToServer tag {tag[:40]!r}", code=code)


def _compat_json(value: Any) -> str:
    """``_json_dumps(encode_json_compat(value))``, without the walk for plain scalars."""
    text = _scalar_json(value)
    if text is None:
        text = _json_dumps(encode_json_compat(value))
    return text


def action_response_json(action_id: int, output: Any) -> str:
    """The json form of ``ToClient(ActionResponse(action_id, output))`` (what
    :func:`to_client_json` writes), built without the intermediate records and trees."""
    action_id = _check_u64(action_id, "ActionResponse.id")
    return (
        '{"body":{"tag":"ActionResponse","val":{"id":["$BigInt","'
        + int.__repr__(action_id)
        + '"],"output":'
        + _compat_json(output)
        + "}}}"
    )


def event_json(name: str, args: Any) -> str:
    """The json form of ``ToClient(Event(name, args))`` (what :func:`to_client_json` writes)."""
    name = _check_str(name, "Event.name")
    return (
        '{"body":{"tag":"Event","val":{"name":'
        + _encode_basestring_ascii(name)
        + ',"args":'
        + _compat_json(args)
        + "}}}"
    )


def to_client_json(msg: ToClient) -> str:
    """The json form of a server-to-client message (``id``/``actionId`` as ``$BigInt``)."""
    if type(msg) is ToClient:
        body = msg.body
        if type(body) is ActionResponse:
            return action_response_json(body.id, body.output)
        if type(body) is Event:
            return event_json(body.name, body.args)
    return _json_dumps(_to_client_tree(msg, _json_uint, _json_number))


# {"body": {"tag": "ActionResponse", "val": {"id": <1b + 8 bytes>, "output": ...}}} in cbor.
_CBOR_RESPONSE_HEAD: Final = b"\xa1\x64body\xa2\x63tag\x6eActionResponse\x63val\xa2\x62id\x1b"
_CBOR_RESPONSE_OUTPUT: Final = b"\x66output"


def action_response_cbor(action_id: int, output: Any) -> bytes:
    """The cbor form of ``ToClient(ActionResponse(action_id, output))`` (what
    :func:`to_client_cbor` writes), built without the intermediate records and trees."""
    action_id = _check_u64(action_id, "ActionResponse.id")
    return (
        _CBOR_RESPONSE_HEAD
        + action_id.to_bytes(8, "big")
        + _CBOR_RESPONSE_OUTPUT
        + cbor_dumps_raw(encode_json_compat(output))
    )


def to_client_cbor(msg: ToClient) -> bytes:
    """The cbor form of a server-to-client message (``id``/``actionId`` as 8-byte ints)."""
    if type(msg) is ToClient and type(msg.body) is ActionResponse:
        return action_response_cbor(msg.body.id, msg.body.output)
    return cbor_dumps_raw(_to_client_tree(msg, _U64, _plain))


def to_client_from_json(data: str | bytes | bytearray | memoryview) -> ToClient:
    """Read the json form of a server-to-client message (what the client accepts)."""
    return _to_client_from_tree(_json_loads(data, CONNECT_ERROR_CODE))


def to_client_from_cbor(data: bytes | bytearray | memoryview) -> ToClient:
    """Read the cbor form of a server-to-client message (what the client accepts)."""
    return _to_client_from_tree(cbor_loads_raw(data, error_code=CONNECT_ERROR_CODE))


def to_server_json(msg: ToServer) -> str:
    """The json form of a client-to-server message, as the TypeScript client writes it."""
    return _json_dumps(_to_server_tree(msg, _json_uint, encode_json_compat))


def to_server_cbor(msg: ToServer) -> bytes:
    """The cbor form of a client-to-server message, as the TypeScript client writes it.

    Like that client, ``args`` goes into the CBOR raw, without the JSON-compat layer.
    """
    return cbor_dumps_raw(_to_server_tree(msg, _U64, _plain))


def to_server_from_json(data: str | bytes | bytearray | memoryview) -> ToServer:
    """Read the json form of a client-to-server message; ``args`` is revived."""
    return _to_server_from_tree(_json_loads(data, CONNECT_ERROR_CODE), revive_args=True)


def to_server_from_cbor(data: bytes | bytearray | memoryview) -> ToServer:
    """Read the cbor form of a client-to-server message; ``args`` is kept raw (client quirk)."""
    tree = cbor_loads_raw(data, error_code=CONNECT_ERROR_CODE)
    return _to_server_from_tree(tree, revive_args=False)


def _to_client_bare(msg: ToClient) -> ToClient:
    if type(msg) is not ToClient:
        raise EncodeError(f"expected ToClient, got {type(msg).__name__}")
    body = msg.body
    if isinstance(body, Error):
        meta = None if body.metadata is None else cbor_dumps(body.metadata)
        return ToClient(body._replace(metadata=meta))
    if isinstance(body, ActionResponse):
        return ToClient(body._replace(output=cbor_dumps(body.output)))
    if isinstance(body, Event):
        return ToClient(body._replace(args=cbor_dumps(body.args)))
    return msg


def _to_client_user(msg: ToClient) -> ToClient:
    body = msg.body
    code = CONNECT_ERROR_CODE
    if isinstance(body, Error):
        meta = None if body.metadata is None else cbor_loads(body.metadata, error_code=code)
        return ToClient(body._replace(metadata=meta))
    if isinstance(body, ActionResponse):
        return ToClient(body._replace(output=cbor_loads(body.output, error_code=code)))
    if isinstance(body, Event):
        return ToClient(body._replace(args=cbor_loads(body.args, error_code=code)))
    return msg


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def _unsupported(encoding: Any, code: str) -> NoReturn:
    raise ProtocolError(f"unsupported encoding {str(encoding)[:40]!r}", code=code)


def encode_to_client(msg: ToClient, encoding: str) -> str | bytes:
    """Write a server-to-client message whose payload fields hold user values.

    json gives ``str`` (a text frame); cbor and bare give ``bytes``.
    """
    if encoding == "json":
        return to_client_json(msg)
    if encoding == "cbor":
        return to_client_cbor(msg)
    _check_encoding(encoding)
    return TO_CLIENT.encode(_to_client_bare(msg))


def encode_action_response(action_id: int, output: Any, encoding: str) -> str | bytes:
    """``encode_to_client(ToClient(ActionResponse(action_id, output)), encoding)``, faster."""
    if encoding == "json":
        return action_response_json(action_id, output)
    if encoding == "cbor":
        return action_response_cbor(action_id, output)
    return encode_to_client(ToClient(ActionResponse(action_id, output)), encoding)


def decode_to_client(data: str | bytes | bytearray | memoryview, encoding: str) -> ToClient:
    """Read a server-to-client message in any encoding; payload fields hold user values."""
    code = CONNECT_ERROR_CODE
    if encoding == "json":
        return to_client_from_json(data)
    if encoding == "cbor":
        return to_client_from_cbor(_binary(data, code))
    if encoding == "bare":
        return _to_client_user(TO_CLIENT.decode(_binary(data, code)))
    _unsupported(encoding, code)


def encode_to_server(msg: ToServer, encoding: str) -> str | bytes:
    """Write a client-to-server message whose ``args`` hold user values, as the client does."""
    if encoding == "json":
        return to_server_json(msg)
    if encoding == "cbor":
        return to_server_cbor(msg)
    _check_encoding(encoding)
    if type(msg) is ToServer and isinstance(msg.body, ActionRequest):
        msg = ToServer(msg.body._replace(args=cbor_dumps(msg.body.args)))
    return TO_SERVER.encode(msg)


def decode_to_server(data: str | bytes | bytearray | memoryview, encoding: str) -> ToServer:
    """Read a client-to-server message in any encoding; ``args`` holds the user value."""
    code = CONNECT_ERROR_CODE
    if encoding == "json":
        return to_server_from_json(data)
    if encoding == "cbor":
        return to_server_from_cbor(_binary(data, code))
    if encoding == "bare":
        msg = TO_SERVER.decode(_binary(data, code))
        if isinstance(msg.body, ActionRequest):
            return ToServer(msg.body._replace(args=cbor_loads(msg.body.args, error_code=code)))
        return msg
    _unsupported(encoding, code)


def _binary(data: Any, code: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}", code=code)
    return bytes(data)


# MARK: HTTP bodies


def _http_tree(body: Any, encoding: str, code: str) -> tuple[dict[Any, Any], bool]:
    """The decoded object of a json or cbor body, and whether its values need reviving."""
    if encoding == "json":
        return _object(_json_loads(body, code), "body", code), True
    return _object(cbor_loads_raw(_binary(body, code), error_code=code), "body", code), False


def _args_list(args: Any) -> list[Any]:
    # rivetkit-core accepts a non-array: null (or nothing) means no args, a scalar one arg.
    if args is None:
        return []
    if isinstance(args, list):
        return args
    return [args]


def http_action_request_from(body: bytes | str, encoding: str) -> list[Any]:
    """The args of a ``POST /action/{name}`` body (json args revived, cbor args raw)."""
    code = HTTP_REQUEST_ERROR_CODE
    if encoding == "bare":
        request = HTTP_ACTION_REQUEST.decode(_binary(body, code))
        return _args_list(cbor_loads(request.args, error_code=code))
    if encoding not in ENCODINGS:
        _unsupported(encoding, code)
    tree, revive = _http_tree(body, encoding, code)
    args = tree.get("args")
    if revive and not _plain_args(args):
        args = decode_json_compat(args, error_code=code)
    return _args_list(args)


def http_action_request_to(args: Sequence[Any], encoding: str) -> bytes:
    """A ``POST /action/{name}`` body, as the TypeScript client writes it (cbor args raw)."""
    args = list(args)
    if encoding == "json":
        return _json_dumps({"args": encode_json_compat(args)}).encode()
    if encoding == "cbor":
        return cbor_dumps_raw({"args": args})
    _check_encoding(encoding)
    return HTTP_ACTION_REQUEST.encode(HttpActionRequest(args=cbor_dumps(args)))


def http_action_response_to(output: Any, encoding: str) -> bytes:
    """The body of a successful action response: ``{"output": ...}`` or ``HttpActionResponse``."""
    if encoding == "json":
        return ('{"output":' + _compat_json(output) + "}").encode()
    if encoding == "cbor":
        return _CBOR_OUTPUT_KEY + cbor_dumps_raw(encode_json_compat(output))
    _check_encoding(encoding)
    return HTTP_ACTION_RESPONSE.encode(HttpActionResponse(output=cbor_dumps(output)))


# A one-entry map (a1) with the text key "output" (66 + 6 bytes): the head of the cbor form.
_CBOR_OUTPUT_KEY: Final = b"\xa1\x66output"


def http_action_response_from(body: bytes | str, encoding: str) -> Any:
    """The output of a successful action response body (client side)."""
    code = HTTP_RESPONSE_ERROR_CODE
    if encoding == "bare":
        response = HTTP_ACTION_RESPONSE.decode(_binary(body, code))
        return cbor_loads(response.output, error_code=code)
    if encoding not in ENCODINGS:
        _unsupported(encoding, code)
    tree, _ = _http_tree(body, encoding, code)
    return decode_json_compat(tree.get("output"), error_code=code)


def http_error_to(
    group: str,
    code: str,
    message: str,
    metadata: Any,
    encoding: str,
    *,
    actor: ActorSpecifier | None = None,
) -> bytes:
    """The body of an HTTP error response (spec §3); ``metadata``/``actor`` None are omitted.

    json and cbor give ``{group, code, message, metadata?, actor?}``; bare gives
    ``HttpResponseError`` v4 with its vbare prefix.
    """
    if encoding == "bare":
        meta = None if metadata is None else cbor_dumps(metadata)
        return HTTP_RESPONSE_ERROR.encode(HttpResponseError(group, code, message, meta, actor))
    _check_encoding(encoding)
    tree: dict[str, Any] = {
        "group": _check_str(group, "group"),
        "code": _check_str(code, "code"),
        "message": _check_str(message, "message"),
    }
    if metadata is not None:
        tree["metadata"] = encode_json_compat(metadata)
    if encoding == "json":
        if actor is not None:
            tree["actor"] = _actor_tree(actor, _json_number)
        return _json_dumps(tree).encode()
    if actor is not None:
        tree["actor"] = _actor_tree(actor, _plain)
    return cbor_dumps_raw(tree)


def http_error_from(body: bytes | str, encoding: str) -> HttpResponseError:
    """Read an HTTP error body (client side); ``metadata`` holds the user value."""
    code = HTTP_RESPONSE_ERROR_CODE
    if encoding == "bare":
        error = HTTP_RESPONSE_ERROR.decode(_binary(body, code))
        if error.metadata is None:
            return error
        return error._replace(metadata=cbor_loads(error.metadata, error_code=code))
    if encoding not in ENCODINGS:
        _unsupported(encoding, code)
    tree, _ = _http_tree(body, encoding, code)
    what = "HttpResponseError"
    return HttpResponseError(
        group=_string(tree, "group", what, code),
        code=_string(tree, "code", what, code),
        message=_string(tree, "message", what, code),
        metadata=decode_json_compat(tree.get("metadata"), error_code=code),
        actor=_actor_from_tree(tree.get("actor"), code),
    )


def http_queue_send_request_from(body: bytes | str, encoding: str) -> HttpQueueSendRequest:
    """Read a ``POST /queue/{name}`` body; ``body`` holds the user value (cbor: raw).

    ``timeout`` is in milliseconds. A missing ``body`` is None, as rivetkit-core reads it.
    """
    code = HTTP_REQUEST_ERROR_CODE
    if encoding == "bare":
        request = HTTP_QUEUE_SEND_REQUEST.decode(_binary(body, code))
        return request._replace(body=cbor_loads(request.body, error_code=code))
    if encoding not in ENCODINGS:
        _unsupported(encoding, code)
    tree, revive = _http_tree(body, encoding, code)
    if not revive:  # cbor-x writes the options the client left out as `undefined`
        tree = {k: None if v is cbor2.undefined else v for k, v in tree.items()}
    what = "HttpQueueSendRequest"
    value = tree.get("body")
    return HttpQueueSendRequest(
        body=decode_json_compat(value, error_code=code) if revive else value,
        name=_optional_string(tree, "name", what, code),
        wait=_optional_boolean(tree, "wait", what, code),
        timeout=_optional_uint(tree, "timeout", what, code, allow_float=True),
    )


def http_queue_send_request_to(request: HttpQueueSendRequest, encoding: str) -> bytes:
    """A ``POST /queue/{name}`` body, as the TypeScript client writes it (cbor body raw)."""
    if encoding == "bare":
        return HTTP_QUEUE_SEND_REQUEST.encode(request._replace(body=cbor_dumps(request.body)))
    _check_encoding(encoding)
    json_form = encoding == "json"
    tree: dict[str, Any] = {"body": encode_json_compat(request.body) if json_form else request.body}
    if request.wait is not None:
        tree["wait"] = _check_bool(request.wait, "wait")
    if request.timeout is not None:
        timeout = _check_u64(request.timeout, "timeout")
        tree["timeout"] = _json_number(timeout) if json_form else timeout
    if request.name is not None:
        tree["name"] = _check_str(request.name, "name")
    return _json_dumps(tree).encode() if json_form else cbor_dumps_raw(tree)


def http_queue_send_response_to(status: str, response: Any, encoding: str) -> bytes:
    """The answer to a queue send: ``{"status", "response"?}``; a None response is omitted."""
    if encoding == "bare":
        payload = None if response is None else cbor_dumps(response)
        return HTTP_QUEUE_SEND_RESPONSE.encode(HttpQueueSendResponse(status, payload))
    _check_encoding(encoding)
    tree: dict[str, Any] = {"status": _check_str(status, "status")}
    if response is not None:
        tree["response"] = encode_json_compat(response)
    return _json_dumps(tree).encode() if encoding == "json" else cbor_dumps_raw(tree)


def http_queue_send_response_from(body: bytes | str, encoding: str) -> HttpQueueSendResponse:
    """Read the answer to a queue send (client side); ``response`` holds the user value."""
    code = HTTP_RESPONSE_ERROR_CODE
    if encoding == "bare":
        response = HTTP_QUEUE_SEND_RESPONSE.decode(_binary(body, code))
        if response.response is None:
            return response
        return response._replace(response=cbor_loads(response.response, error_code=code))
    if encoding not in ENCODINGS:
        _unsupported(encoding, code)
    tree, _ = _http_tree(body, encoding, code)
    return HttpQueueSendResponse(
        status=_string(tree, "status", "HttpQueueSendResponse", code),
        response=decode_json_compat(tree.get("response"), error_code=code),
    )

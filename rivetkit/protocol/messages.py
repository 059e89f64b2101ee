"""The connection messages of the client protocol (``/connect``), in its three encodings.

The official TypeScript client (``rivetkit@2.3.19``) speaks one of three encodings, chosen per
connection (``rivet_encoding.*`` subprotocol) or per request (``x-rivet-encoding`` header):

* ``bare``: the vbare-prefixed BARE messages of :mod:`rivetkit.protocol.client_protocol`,
  whose ``Cbor`` fields hold CBOR of the JSON-compat encoding of the user's value
  (:func:`~rivetkit.protocol.values.cbor_dumps` / :func:`~rivetkit.protocol.values.cbor_loads`);
* ``json``: ``{"body": {"tag": "<Variant>", "val": {camelCase fields}}}`` as JSON text, with the
  JSON-compat layer (:mod:`rivetkit.protocol.values`) applied to user values and
  ``id``/``actionId`` written ``["$BigInt", "n"]``;
* ``cbor``: the same tree as CBOR, ``id``/``actionId`` written as 8-byte CBOR integers
  (``1b`` + 8 bytes), which cbor-x decodes to the bigints the client's schema demands.

Every function here takes or returns the v4 ``ToClient``/``ToServer`` records of
:mod:`rivetkit.protocol.client_protocol`, with the ``Cbor`` fields (``args``, ``output``,
``metadata``) holding the user's value itself rather than bytes; the ``encode_*``/``decode_*``
dispatchers give that same view for the ``bare`` encoding too. The HTTP bodies are in
:mod:`rivetkit.protocol.http_bodies`.

Quirks of the client this module follows:

* its ToServer **cbor** form carries ``args`` raw, without the compat layer, while json and
  bare escape it; so those fields are not revived;
* cbor-x writes 16-bit map headers (``b9 00 NN``) and float64 for integers beyond 32 bits
  (``actor.generation``); the decoders accept both;
* an ``Error`` always carries ``actionId`` (``null`` when absent); an absent ``metadata``,
  ``actor`` or ``actor.key`` is left out.

Decoders accept ``id``/``actionId`` as any CBOR integer width, as ``["$BigInt", "n"]`` in
either form, or as a plain JSON integer, but never a bool, a float, a negative number or one
of 2**64 or more. They raise :class:`~rivetkit.errors.ProtocolError` with code
``invalid_actor_connect_request`` on any malformed input. Encoders raise
:class:`~rivetkit.errors.EncodeError` on values that do not fit, and ``ValueError`` on an
unknown encoding.
"""

from __future__ import annotations

from typing import Any, Final

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol.client_protocol import (
    CONNECT_ERROR_CODE,
    TO_CLIENT,
    TO_SERVER,
    ActionRequest,
    ActionResponse,
    Error,
    Event,
    Init,
    SubscriptionRequest,
    ToClient,
    ToServer,
)
from rivetkit.protocol.trees import (
    JSON_SCAN,
    U64_MAX,
    TreeOf,
    actor_from_tree,
    actor_tree,
    as_binary,
    check_bool,
    check_encoding,
    check_str,
    check_u64,
    compat_json,
    json_dumps,
    json_loads,
    json_number,
    json_string,
    json_uint,
    plain,
    plain_args,
    read_boolean,
    read_optional_uint,
    read_string,
    read_tagged,
    read_uint,
    require_field,
    unsupported_encoding,
)
from rivetkit.protocol.values import (
    BIGINT_TAG,
    U64,
    cbor_dumps,
    cbor_dumps_raw,
    cbor_loads,
    cbor_loads_raw,
    decode_json_compat,
    encode_json_compat,
)

__all__ = [
    "action_request_from",
    "action_response_cbor",
    "action_response_json",
    "decode_to_client",
    "decode_to_server",
    "encode_action_response",
    "encode_to_client",
    "encode_to_server",
    "event_json",
    "to_client_cbor",
    "to_client_from_cbor",
    "to_client_from_json",
    "to_client_json",
    "to_server_cbor",
    "to_server_from_cbor",
    "to_server_from_json",
    "to_server_json",
]


def _fast_uint(value: Any) -> int | None:
    """An ``id`` as a plain int or ``["$BigInt", "digits"]`` within the u64 range, else None."""
    kind = type(value)
    if kind is int:
        return value if 0 <= value <= U64_MAX else None
    if kind is list and len(value) == 2 and value[0] == BIGINT_TAG:
        digits = value[1]
        if type(digits) is str and 0 < len(digits) <= 20 and digits.isascii() and digits.isdigit():
            number = int(digits)
            return number if number <= U64_MAX else None
    return None


def _to_client_tree(msg: Any, uint: TreeOf, generation: TreeOf) -> dict[str, Any]:
    if type(msg) is not ToClient:
        raise EncodeError(f"expected ToClient, got {type(msg).__name__}")
    body = msg.body
    val: dict[str, Any]
    if isinstance(body, Init):
        val = {
            "actorId": check_str(body.actor_id, "Init.actor_id"),
            "connectionId": check_str(body.connection_id, "Init.connection_id"),
        }
    elif isinstance(body, Error):
        val = {
            "group": check_str(body.group, "Error.group"),
            "code": check_str(body.code, "Error.code"),
            "message": check_str(body.message, "Error.message"),
        }
        if body.metadata is not None:
            val["metadata"] = encode_json_compat(body.metadata)
        action_id = body.action_id
        val["actionId"] = (
            None if action_id is None else uint(check_u64(action_id, "Error.action_id"))
        )
        if body.actor is not None:
            val["actor"] = actor_tree(body.actor, generation)
    elif isinstance(body, ActionResponse):
        val = {
            "id": uint(check_u64(body.id, "ActionResponse.id")),
            "output": encode_json_compat(body.output),
        }
    elif isinstance(body, Event):
        val = {"name": check_str(body.name, "Event.name"), "args": encode_json_compat(body.args)}
    else:
        raise EncodeError(f"ToClient body expects a v4 body record, got {type(body).__name__}")
    return {"body": {"tag": type(body).__name__, "val": val}}


def _to_client_from_tree(tree: Any) -> ToClient:
    code = CONNECT_ERROR_CODE
    tag, val = read_tagged(tree, code)
    if tag == "Init":
        return ToClient(
            Init(
                actor_id=read_string(val, "actorId", tag, code),
                connection_id=read_string(val, "connectionId", tag, code),
            )
        )
    if tag == "Error":
        return ToClient(
            Error(
                group=read_string(val, "group", tag, code),
                code=read_string(val, "code", tag, code),
                message=read_string(val, "message", tag, code),
                metadata=decode_json_compat(val.get("metadata"), error_code=code),
                action_id=read_optional_uint(val, "actionId", tag, code),
                actor=actor_from_tree(val.get("actor"), code),
            )
        )
    if tag == "ActionResponse":
        return ToClient(
            ActionResponse(
                id=read_uint(require_field(val, "id", tag, code), "ActionResponse.id", code),
                # JSON.stringify drops an `undefined` output, so a missing one is None.
                output=decode_json_compat(val.get("output"), error_code=code),
            )
        )
    if tag == "Event":
        return ToClient(
            Event(
                name=read_string(val, "name", tag, code),
                args=decode_json_compat(require_field(val, "args", tag, code), error_code=code),
            )
        )
    raise ProtocolError(f"unknown ToClient tag {tag[:40]!r}", code=code)


def _to_server_tree(msg: Any, uint: TreeOf, args: TreeOf) -> dict[str, Any]:
    if type(msg) is not ToServer:
        raise EncodeError(f"expected ToServer, got {type(msg).__name__}")
    body = msg.body
    val: dict[str, Any]
    if isinstance(body, ActionRequest):
        val = {
            "id": uint(check_u64(body.id, "ActionRequest.id")),
            "name": check_str(body.name, "ActionRequest.name"),
            "args": args(body.args),
        }
    elif isinstance(body, SubscriptionRequest):
        val = {
            "eventName": check_str(body.event_name, "SubscriptionRequest.event_name"),
            "subscribe": check_bool(body.subscribe, "SubscriptionRequest.subscribe"),
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
    if revive_args and args is not None and not plain_args(args):
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
        tree, end = JSON_SCAN(data, 0)
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
    tag, val = read_tagged(tree, code)
    if tag == "ActionRequest":
        args = require_field(val, "args", tag, code)
        return ToServer(
            ActionRequest(
                id=read_uint(require_field(val, "id", tag, code), "ActionRequest.id", code),
                name=read_string(val, "name", tag, code),
                args=decode_json_compat(args, error_code=code) if revive_args else args,
            )
        )
    if tag == "SubscriptionRequest":
        return ToServer(
            SubscriptionRequest(
                event_name=read_string(val, "eventName", tag, code),
                subscribe=read_boolean(val, "subscribe", tag, code),
            )
        )
    raise ProtocolError(f"unknown ToServer tag {tag[:40]!r}", code=code)


def action_response_json(action_id: int, output: Any) -> str:
    """The json form of ``ToClient(ActionResponse(action_id, output))`` (what
    :func:`to_client_json` writes), built without the intermediate records and trees."""
    action_id = check_u64(action_id, "ActionResponse.id")
    return (
        '{"body":{"tag":"ActionResponse","val":{"id":["$BigInt","'
        + int.__repr__(action_id)
        + '"],"output":'
        + compat_json(output)
        + "}}}"
    )


def event_json(name: str, args: Any) -> str:
    """The json form of ``ToClient(Event(name, args))`` (what :func:`to_client_json` writes)."""
    name = check_str(name, "Event.name")
    return (
        '{"body":{"tag":"Event","val":{"name":'
        + json_string(name)
        + ',"args":'
        + compat_json(args)
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
    return json_dumps(_to_client_tree(msg, json_uint, json_number))


# {"body": {"tag": "ActionResponse", "val": {"id": <1b + 8 bytes>, "output": ...}}} in cbor.
_CBOR_RESPONSE_HEAD: Final = b"\xa1\x64body\xa2\x63tag\x6eActionResponse\x63val\xa2\x62id\x1b"
_CBOR_RESPONSE_OUTPUT: Final = b"\x66output"


def action_response_cbor(action_id: int, output: Any) -> bytes:
    """The cbor form of ``ToClient(ActionResponse(action_id, output))`` (what
    :func:`to_client_cbor` writes), built without the intermediate records and trees."""
    action_id = check_u64(action_id, "ActionResponse.id")
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
    return cbor_dumps_raw(_to_client_tree(msg, U64, plain))


def to_client_from_json(data: str | bytes | bytearray | memoryview) -> ToClient:
    """Read the json form of a server-to-client message (what the client accepts)."""
    return _to_client_from_tree(json_loads(data, CONNECT_ERROR_CODE))


def to_client_from_cbor(data: bytes | bytearray | memoryview) -> ToClient:
    """Read the cbor form of a server-to-client message (what the client accepts)."""
    return _to_client_from_tree(cbor_loads_raw(data, error_code=CONNECT_ERROR_CODE))


def to_server_json(msg: ToServer) -> str:
    """The json form of a client-to-server message, as the TypeScript client writes it."""
    return json_dumps(_to_server_tree(msg, json_uint, encode_json_compat))


def to_server_cbor(msg: ToServer) -> bytes:
    """The cbor form of a client-to-server message, as the TypeScript client writes it.

    Like that client, ``args`` goes into the CBOR raw, without the JSON-compat layer.
    """
    return cbor_dumps_raw(_to_server_tree(msg, U64, plain))


def to_server_from_json(data: str | bytes | bytearray | memoryview) -> ToServer:
    """Read the json form of a client-to-server message; ``args`` is revived."""
    return _to_server_from_tree(json_loads(data, CONNECT_ERROR_CODE), revive_args=True)


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


def encode_to_client(msg: ToClient, encoding: str) -> str | bytes:
    """Write a server-to-client message whose payload fields hold user values.

    json gives ``str`` (a text frame); cbor and bare give ``bytes``.
    """
    if encoding == "json":
        return to_client_json(msg)
    if encoding == "cbor":
        return to_client_cbor(msg)
    check_encoding(encoding)
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
        return to_client_from_cbor(as_binary(data, code))
    if encoding == "bare":
        return _to_client_user(TO_CLIENT.decode(as_binary(data, code)))
    unsupported_encoding(encoding, code)


def encode_to_server(msg: ToServer, encoding: str) -> str | bytes:
    """Write a client-to-server message whose ``args`` hold user values, as the client does."""
    if encoding == "json":
        return to_server_json(msg)
    if encoding == "cbor":
        return to_server_cbor(msg)
    check_encoding(encoding)
    if type(msg) is ToServer and isinstance(msg.body, ActionRequest):
        msg = ToServer(msg.body._replace(args=cbor_dumps(msg.body.args)))
    return TO_SERVER.encode(msg)


def decode_to_server(data: str | bytes | bytearray | memoryview, encoding: str) -> ToServer:
    """Read a client-to-server message in any encoding; ``args`` holds the user value."""
    code = CONNECT_ERROR_CODE
    if encoding == "json":
        return to_server_from_json(data)
    if encoding == "cbor":
        return to_server_from_cbor(as_binary(data, code))
    if encoding == "bare":
        msg = TO_SERVER.decode(as_binary(data, code))
        if isinstance(msg.body, ActionRequest):
            return ToServer(msg.body._replace(args=cbor_loads(msg.body.args, error_code=code)))
        return msg
    unsupported_encoding(encoding, code)

"""client-protocol: the golden vectors, the json/cbor forms, HTTP bodies and malformed input."""

from __future__ import annotations

import json
import math
import types
import typing
from types import ModuleType
from typing import Annotated, Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors_dir import load_cases, vectors_dir

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol import client_protocol as cp
from rivetkit.protocol import http_bodies, messages, trees, values
from rivetkit.protocol.bare import codec_for
from rivetkit.protocol.client_protocol import v1, v2, v3, v4
from rivetkit.protocol.schema import DATA, is_record, record_fields, wire_name

VECTORS = vectors_dir() / "client-protocol.json"
CASES: list[dict[str, Any]] = load_cases(VECTORS.name)

CONNECT = "invalid_actor_connect_request"
HTTP_REQUEST = "invalid_http_request"
HTTP_RESPONSE = "invalid_http_response"

HANDLERS: dict[str, Any] = {
    "ToClient": cp.TO_CLIENT,
    "ToServer": cp.TO_SERVER,
    "HttpActionRequest": cp.HTTP_ACTION_REQUEST,
    "HttpActionResponse": cp.HTTP_ACTION_RESPONSE,
    "HttpQueueSendRequest": cp.HTTP_QUEUE_SEND_REQUEST,
    "HttpQueueSendResponse": cp.HTTP_QUEUE_SEND_RESPONSE,
    "HttpResponseError": cp.HTTP_RESPONSE_ERROR,
    "HttpResolveResponse": cp.HTTP_RESOLVE_RESPONSE,
}
OLD_MODULES = {1: v1, 2: v2, 3: v3, 4: v4}


def cases(encoding: str, *, upgrade: bool | None = None) -> list[Any]:
    chosen = [
        c
        for c in CASES
        if c["encoding"] == encoding and (upgrade is None or ("upgraded_from" in c) == upgrade)
    ]
    return [pytest.param(c, id=c["name"]) for c in chosen]


# MARK: records <-> the vectors' JSON value convention


def _is_payload(tp: Any) -> bool:
    """A ``Cbor`` field: ``Annotated[Any, DATA]``."""
    if typing.get_origin(tp) is not Annotated:
        return False
    base, *markers = typing.get_args(tp)
    return base is Any and any(m is DATA for m in markers)


def _members(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def to_vector(value: Any, tp: Any, *, payload_as_value: bool = False) -> Any:
    """Our record value as the vectors write it (camelCase, $hex bytes, tagged unions)."""
    if _is_payload(tp):
        if payload_as_value:
            return value
        assert isinstance(value, bytes)
        return {"$hex": value.hex()}
    members = _members(tp)
    if members is not None:
        if type(None) in members:
            if value is None:
                return None
            inner = [m for m in members if m is not type(None)]
            return to_vector(value, inner[0], payload_as_value=payload_as_value)
        assert type(value) in members, (type(value), members)
        return {
            "tag": type(value).__name__,
            "val": to_vector(value, type(value), payload_as_value=payload_as_value),
        }
    if is_record(tp):
        assert type(value) is tp, (type(value), tp)
        fields = record_fields(tp)
        if not fields:
            return None
        return {
            wire_name(name): to_vector(
                getattr(value, name), hint, payload_as_value=payload_as_value
            )
            for name, hint in fields
        }
    if typing.get_origin(tp) is Annotated:
        return to_vector(value, typing.get_args(tp)[0], payload_as_value=payload_as_value)
    if isinstance(value, bytes):
        return {"$hex": value.hex()}
    return value


def from_vector(obj: Any, tp: Any, *, payload_as_value: bool = False) -> Any:
    """The record value a vector describes."""
    if _is_payload(tp):
        return obj if payload_as_value else bytes.fromhex(obj["$hex"])
    members = _members(tp)
    if members is not None:
        if type(None) in members:
            if obj is None:
                return None
            inner = [m for m in members if m is not type(None)]
            return from_vector(obj, inner[0], payload_as_value=payload_as_value)
        (member,) = [m for m in members if m.__name__ == obj["tag"]]
        return from_vector(obj["val"], member, payload_as_value=payload_as_value)
    if is_record(tp):
        fields = record_fields(tp)
        if not fields:
            assert obj is None
            return tp()
        return tp(
            *(
                from_vector(obj[wire_name(name)], hint, payload_as_value=payload_as_value)
                for name, hint in fields
            )
        )
    if typing.get_origin(tp) is Annotated:
        return from_vector(obj, typing.get_args(tp)[0], payload_as_value=payload_as_value)
    if isinstance(obj, dict) and "$hex" in obj:
        return bytes.fromhex(obj["$hex"])
    return obj


def latest_type(name: str) -> Any:
    return getattr(cp, name)


# MARK: bare vectors


def test_vectors_present() -> None:
    assert len(CASES) >= 40, f"expected RivetKit's vectors at {VECTORS}"


@pytest.mark.parametrize("case", cases("bare", upgrade=False))
def test_bare_vector_decodes_and_encodes(case: dict[str, Any]) -> None:
    handler = HANDLERS[case["type"]]
    tp = latest_type(case["type"])
    data = bytes.fromhex(case["hex"])
    decoded = handler.decode(data)
    assert to_vector(decoded, tp) == case["value"]
    assert handler.encode(from_vector(case["value"], tp)) == data


@pytest.mark.parametrize("case", cases("bare", upgrade=True))
def test_bare_vector_upgrades(case: dict[str, Any]) -> None:
    handler = HANDLERS[case["type"]]
    data = bytes.fromhex(case["hex"])
    assert to_vector(handler.decode(data), latest_type(case["type"])) == case["value"]
    version, old = handler.decode_raw(data)
    assert version == case["upgraded_from"]
    old_type = getattr(OLD_MODULES[version], case["type"])
    assert to_vector(old, old_type) == case["old_value"]
    # Re-encoding writes v4, which reads back to the same value.
    assert handler.decode(handler.encode(handler.decode(data))) == handler.decode(data)


def test_every_declared_type_exists() -> None:
    common = [
        "Init", "Error", "ActionResponse", "Event", "ToClient", "ActionRequest",
        "SubscriptionRequest", "ToServer", "HttpActionRequest", "HttpActionResponse",
        "HttpResponseError", "HttpResolveRequest", "HttpResolveResponse",
    ]  # fmt: skip
    for version, module in OLD_MODULES.items():
        for name in common:
            assert is_record(getattr(module, name)), (version, name)
        assert module.ToClientBody is not None and module.ToServerBody is not None
        has_queue = version >= 3
        assert hasattr(module, "HttpQueueSendRequest") == has_queue
        assert hasattr(module, "HttpQueueSendResponse") == has_queue
        assert hasattr(module, "ActorSpecifier") == (version == 4)
    assert v1.Init._fields == ("actor_id", "connection_id", "connection_token")
    assert v4.Init is v2.Init and v4.ActionResponse is v1.ActionResponse
    assert v4.ToServer is v1.ToServer and v3.ToClient is v2.ToClient
    assert v4.Error._fields[-1] == "actor" and v4.HttpResponseError._fields[-1] == "actor"
    assert v1.HttpResolveRequest._fields == ()
    assert cp.CURRENT_VERSION == 4


def test_upgrades_pass_unchanged_bodies_through() -> None:
    event = v1.ToClient(v1.Event("e", b"\x80"))
    data = b"\x01\x00" + codec_for(v1.ToClient).encode(event)
    assert cp.TO_CLIENT.decode(data) == v4.ToClient(v1.Event("e", b"\x80"))
    error = v3.HttpResponseError("g", "c", "m", b"\xa0")
    data = b"\x03\x00" + codec_for(v3.HttpResponseError).encode(error)
    assert cp.HTTP_RESPONSE_ERROR.decode(data) == v4.HttpResponseError("g", "c", "m", b"\xa0", None)
    request = v3.HttpQueueSendRequest(b"\xf6", None, None, None)
    data = b"\x03\x00" + codec_for(v3.HttpQueueSendRequest).encode(request)
    assert cp.HTTP_QUEUE_SEND_REQUEST.decode(data) == request


@pytest.mark.parametrize(
    ("handler", "code"),
    [
        (cp.TO_CLIENT, CONNECT),
        (cp.TO_SERVER, CONNECT),
        (cp.HTTP_ACTION_REQUEST, HTTP_REQUEST),
        (cp.HTTP_QUEUE_SEND_REQUEST, HTTP_REQUEST),
        (cp.HTTP_ACTION_RESPONSE, HTTP_RESPONSE),
        (cp.HTTP_QUEUE_SEND_RESPONSE, HTTP_RESPONSE),
        (cp.HTTP_RESPONSE_ERROR, HTTP_RESPONSE),
        (cp.HTTP_RESOLVE_RESPONSE, HTTP_RESPONSE),
    ],
)
@pytest.mark.parametrize(
    "data",
    [b"", b"\x04", b"\x05\x00\x00", b"\x00\x00", b"\x04\x00", b"\x04\x00\x09", b"\x04\x00\xff\xff"],
)
def test_bare_malformed_raises_protocol_error(handler: Any, code: str, data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        handler.decode(data)
    assert info.value.code == code
    assert info.value.group == "protocol"


def test_build_over_each_twin(engine: ModuleType) -> None:
    handlers = cp.build(engine)
    assert set(handlers.http_queue_send_request.readers) == {3, 4}
    assert set(handlers.to_server.readers) == {1, 2, 3, 4}
    for case in CASES:
        if case["encoding"] != "bare":
            continue
        handler = getattr(handlers, _snake(case["type"]))
        tp = latest_type(case["type"])
        data = bytes.fromhex(case["hex"])
        assert to_vector(handler.decode(data), tp) == case["value"], case["name"]
        if "upgraded_from" not in case:
            assert handler.encode(from_vector(case["value"], tp)) == data, case["name"]
    assert handlers.http_resolve_response.decode(b"\x01\x00\x01a") == cp.HttpResolveResponse("a")
    assert handlers.http_resolve_response.encode(cp.HttpResolveResponse("a")) == b"\x04\x00\x01a"


def _snake(name: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in name).lstrip("_")


def test_queue_handlers_refuse_versions_before_3() -> None:
    with pytest.raises(ProtocolError, match="unsupported version 2"):
        cp.HTTP_QUEUE_SEND_REQUEST.decode(b"\x02\x00\x01\x80\x00\x00\x00")


# MARK: json and cbor vectors


def _fill_error(value: dict[str, Any]) -> dict[str, Any]:
    """The vectors' convention: a decoded Error lists all six fields."""
    body = value["body"]
    if body["tag"] != "Error":
        return value
    val = dict(body["val"])
    for key in ("metadata", "actionId", "actor"):
        val.setdefault(key, None)
    if val["actor"] is not None:
        val["actor"] = {"key": None, **val["actor"]}
    return {"body": {"tag": "Error", "val": val}}


def _client_view_json(text: str) -> dict[str, Any]:
    """Read our ToClient json as the TS client's schema does: ids must be $BigInt."""
    tree = json.loads(text)
    val = tree["body"]["val"]
    for key in ("id", "actionId"):
        if key in val and val[key] is not None:
            tag, digits = val[key]
            assert tag == "$BigInt" and isinstance(digits, str)
            val[key] = int(digits)
    if tree["body"]["tag"] == "Error":
        assert "actionId" in val
    return _fill_error(values.decode_json_compat(tree))


def _u64_positions(data: bytes, key: str) -> list[int]:
    marker = cbor2.dumps(key)
    found = []
    start = data.find(marker)
    while start >= 0:
        found.append(start + len(marker))
        start = data.find(marker, start + 1)
    return found


def _client_view_cbor(data: bytes) -> dict[str, Any]:
    """Read our ToClient cbor: ids must be 1b + 8 bytes, so cbor-x yields bigints."""
    tree = cbor2.loads(data)
    val = tree["body"]["val"]
    for key in ("id", "actionId"):
        if val.get(key) is not None:
            positions = _u64_positions(data, key)
            assert positions, key
            head = positions[-1]
            assert data[head] == 0x1B
            assert int.from_bytes(data[head + 1 : head + 9], "big") == val[key]
    if tree["body"]["tag"] == "Error":
        assert "actionId" in val
    return _fill_error(values.decode_json_compat(tree))


def _record_type(case: dict[str, Any]) -> Any:
    return cp.ToServer if case["type"] == "ToServer" else cp.ToClient


@pytest.mark.parametrize("case", cases("json"))
def test_json_vector_decodes(case: dict[str, Any]) -> None:
    reader = (
        messages.to_server_from_json if case["type"] == "ToServer" else messages.to_client_from_json
    )
    decoded = reader(case["text"])
    assert to_vector(decoded, _record_type(case), payload_as_value=True) == case["value"]
    assert reader(case["text"].encode()) == decoded


@pytest.mark.parametrize("case", cases("cbor"))
def test_cbor_vector_decodes(case: dict[str, Any]) -> None:
    reader = (
        messages.to_server_from_cbor if case["type"] == "ToServer" else messages.to_client_from_cbor
    )
    decoded = reader(bytes.fromhex(case["hex"]))
    assert to_vector(decoded, _record_type(case), payload_as_value=True) == case["value"]


@pytest.mark.parametrize("case", cases("json"))
def test_json_vector_encodes(case: dict[str, Any]) -> None:
    msg = from_vector(case["value"], _record_type(case), payload_as_value=True)
    if case["type"] == "ToServer":
        ours = messages.to_server_json(msg)
        assert messages.to_server_from_json(ours) == msg
    else:
        ours = messages.to_client_json(msg)
        assert _client_view_json(ours) == case["value"]
        assert messages.to_client_from_json(ours) == msg
    # Same keys, same order, same omissions as the TypeScript codec.
    assert ours == case["text"]


@pytest.mark.parametrize("case", cases("cbor"))
def test_cbor_vector_encodes(case: dict[str, Any]) -> None:
    msg = from_vector(case["value"], _record_type(case), payload_as_value=True)
    if case["type"] == "ToServer":
        ours = messages.to_server_cbor(msg)
        assert messages.to_server_from_cbor(ours) == msg
        if msg.body.__class__ is cp.ActionRequest:
            head = _u64_positions(ours, "id")[0]
            assert ours[head] == 0x1B
    else:
        ours = messages.to_client_cbor(msg)
        assert _client_view_cbor(ours) == case["value"]
        assert messages.to_client_from_cbor(ours) == msg
    # Only header widths may differ from cbor-x's bytes.
    assert cbor2.loads(ours) == cbor2.loads(bytes.fromhex(case["hex"]))


def test_cbor_ids_are_eight_bytes_even_for_zero() -> None:
    data = messages.to_client_cbor(cp.ToClient(cp.ActionResponse(0, 5)))
    assert b"\x62id\x1b\x00\x00\x00\x00\x00\x00\x00\x00" in data
    data = messages.to_client_cbor(cp.ToClient(cp.Error("g", "c", "m", None, 7, None)))
    assert b"\x68actionId\x1b\x00\x00\x00\x00\x00\x00\x00\x07" in data
    data = messages.to_server_cbor(cp.ToServer(cp.ActionRequest(2**64 - 1, "a", [])))
    assert b"\x62id\x1b\xff\xff\xff\xff\xff\xff\xff\xff" in data


def test_json_ids_are_bigints_and_action_id_null() -> None:
    text = messages.to_client_json(cp.ToClient(cp.ActionResponse(2**64 - 1, None)))
    assert text == (
        '{"body":{"tag":"ActionResponse","val":{"id":["$BigInt","18446744073709551615"],'
        '"output":null}}}'
    )
    text = messages.to_client_json(cp.ToClient(cp.Error("g", "c", "m", None, None, None)))
    assert '"actionId":null' in text and "metadata" not in text and "actor" not in text


def test_generation_forms() -> None:
    actor = cp.ActorSpecifier("a", 2**60, None)
    msg = cp.ToClient(cp.Error("g", "c", "m", None, None, actor))
    assert '"generation":["$BigInt","1152921504606846976"]' in messages.to_client_json(msg)
    assert '"generation":5,' not in messages.to_client_json(msg)
    assert messages.to_client_from_json(messages.to_client_json(msg)) == msg
    # cbor-x writes 2**32 as a float64; the decoder takes it as an integer.
    tree = {
        "body": {
            "tag": "Error",
            "val": {
                "group": "g", "code": "c", "message": "m", "actionId": None,
                "actor": {"actorId": "a", "generation": 4294967296.0},
            },
        }
    }  # fmt: skip
    decoded = messages.to_client_from_cbor(cbor2.dumps(tree))
    assert decoded.body.actor == cp.ActorSpecifier("a", 4294967296, None)
    assert b"\xfb\x41\xf0\x00\x00\x00\x00\x00\x00" in cbor2.dumps(tree)


def test_cbor_form_args_are_raw_json_form_escaped() -> None:
    # The client's ToServer cbor form skips the compat layer; json escapes.
    msg = cp.ToServer(cp.ActionRequest(1, "a", [["$x", 1]]))
    assert '"args":[["$$x",1]]' in messages.to_server_json(msg)
    assert messages.to_server_from_json(messages.to_server_json(msg)) == msg
    raw = messages.to_server_cbor(msg)
    assert cbor2.loads(raw)["body"]["val"]["args"] == [["$x", 1]]
    assert messages.to_server_from_cbor(raw) == msg
    # The server-to-client cbor form is revived by the client, so it is escaped.
    out = messages.to_client_cbor(cp.ToClient(cp.Event("e", [["$x", 1]])))
    assert cbor2.loads(out)["body"]["val"]["args"] == [["$$x", 1]]


# MARK: the JSON-compat layer


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (5, 5),
        (2**53 - 1, 2**53 - 1),
        (-(2**53 - 1), -(2**53 - 1)),
        (2**53, ["$BigInt", "9007199254740992"]),
        (-(2**53), ["$BigInt", "-9007199254740992"]),
        (2**70, ["$BigInt", str(2**70)]),
        (1.5, 1.5),
        (True, True),
        (None, None),
        ("$x", "$x"),
        (b"\x00\x01", ["$Uint8Array", "AAE="]),
        (bytearray(b"hi"), ["$Uint8Array", "aGk="]),
        (["$x", 1], ["$$x", 1]),
        (["$$x", 1], ["$$$x", 1]),
        (["$", 1], ["$$", 1]),
        (["$x", 1, 2], ["$x", 1, 2]),
        (["x", 1], ["x", 1]),
        (("$x", [b"a"]), ["$$x", [["$Uint8Array", "YQ=="]]]),
        ({"a": ["$BigInt", "1"]}, {"a": ["$$BigInt", "1"]}),
        ([2**60, "$y"], [["$BigInt", "1152921504606846976"], "$y"]),
        ({1}, ["$Set", [1]]),
        (cbor2.undefined, ["$Undefined", 0]),
    ],
)
def test_compat_encode(value: Any, wire: Any) -> None:
    assert values.encode_json_compat(value) == wire


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (["$BigInt", "123"], 123),
        (["$BigInt", "-18446744073709551617"], -(2**64) - 1),
        (["$BigInt", 7], 7),
        (["$Uint8Array", "AAE="], b"\x00\x01"),
        (["$Uint8Array", "AAE"], b"\x00\x01"),
        (["$ArrayBuffer", "-_8="], b"\xfb\xff"),
        (["$Uint8Array", ""], b""),
        (["$Undefined", 0], None),
        (["$Set", [1, ["$BigInt", "2"]]], {1, 2}),
        (["$Set", [[1], [2]]], [[1], [2]]),
        (["$$x", ["$BigInt", "1"]], ["$x", 1]),
        (["$$$x", 1], ["$$x", 1]),
        ({"k": [["$$y", 2], "z"]}, {"k": [["$y", 2], "z"]}),
        (["$x", 1, 2], ["$x", 1, 2]),
        ([1, "$x"], [1, "$x"]),
    ],
)
def test_compat_decode(wire: Any, value: Any) -> None:
    assert values.decode_json_compat(wire) == value


@pytest.mark.parametrize(
    "wire",
    [
        ["$Foo", 1],
        ["$", 1],
        ["$bigint", "1"],
        ["$BigInt", ""],
        ["$BigInt", "-"],
        ["$BigInt", "12a"],
        ["$BigInt", "1_000"],
        ["$BigInt", " 1"],
        ["$BigInt", "\uff11"],
        ["$BigInt", "9" * 5000],
        ["$BigInt", 1.5],
        ["$BigInt", True],
        ["$BigInt", None],
        ["$Uint8Array", 5],
        ["$Uint8Array", "!!!!"],
        ["$Uint8Array", "A"],
        ["$Uint8Array", "\u00e9\u00e9=="],
        ["$Set", {"a": 1}],
        [{"a": ["$Nope", 0]}],
    ],
)
def test_compat_decode_rejects(wire: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        values.decode_json_compat(wire, error_code="some_code")
    assert info.value.code == "some_code"


def test_compat_depth_limits() -> None:
    deep: Any = 1
    for _ in range(values.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(EncodeError):
        values.encode_json_compat(deep)
    with pytest.raises(ProtocolError):
        values.decode_json_compat(deep)
    ok: Any = 1
    for _ in range(values.MAX_DEPTH - 1):
        ok = [ok]
    assert values.decode_json_compat(values.encode_json_compat(ok)) == ok
    for encoding in trees.ENCODINGS:
        msg = cp.ToClient(cp.ActionResponse(1, ok))
        assert messages.decode_to_client(messages.encode_to_client(msg, encoding), encoding) == msg
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(EncodeError):
        values.encode_json_compat(cyclic)


def test_cbor_payload_helpers_match_the_client() -> None:
    # README: a bigint in user data becomes the CBOR array ["$BigInt", digits] inside bare.
    assert values.cbor_dumps(2**60) == cbor2.dumps(["$BigInt", str(2**60)])
    assert values.cbor_dumps(["$x", 1]) == cbor2.dumps(["$$x", 1])
    assert values.cbor_dumps([5]) == bytes.fromhex("8105")
    assert values.cbor_loads(bytes.fromhex("8463626f62b90001617801f6f5")) == [
        "bob",
        {"x": 1},
        None,
        True,
    ]
    assert values.cbor_loads(cbor2.dumps(["$$x", ["$Uint8Array", "AA=="]])) == ["$x", b"\x00"]
    with pytest.raises(ProtocolError) as info:
        values.cbor_loads(b"\x81", error_code="c1")
    assert info.value.code == "c1"
    with pytest.raises(ProtocolError, match="trailing"):
        values.cbor_loads_raw(b"\x01\x02")
    with pytest.raises(ProtocolError):
        values.cbor_loads(cbor2.dumps(["$Nope", 1]))
    with pytest.raises(ProtocolError):
        values.cbor_loads_raw("text")  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        values.cbor_dumps(object())
    with pytest.raises(EncodeError):
        values.cbor_dumps("\ud800")


def test_cbor_shared_references_are_refused() -> None:
    # Tags 28/29 can make cycles or DAGs that expand exponentially when walked.
    dag: Any = [0]
    for _ in range(60):
        dag = [dag, dag]
    with pytest.raises(ProtocolError, match="shared references"):
        values.cbor_loads(cbor2.dumps(dag, value_sharing=True))
    cyclic = bytes.fromhex("d81c81d81d00")
    for read in (messages.to_server_from_cbor, messages.to_client_from_cbor):
        with pytest.raises(ProtocolError) as info:
            read(cyclic)
        assert info.value.code == CONNECT
    # Marked but never reused is a plain tree.
    assert values.cbor_loads_raw(cbor2.dumps([[1], [2]], value_sharing=True)) == [[1], [2]]


def test_json_text_is_ascii_and_keeps_lone_surrogates() -> None:
    msg = cp.ToClient(cp.Event("\u00e9", ["\ud800", "\U0001f600"]))
    text = messages.to_client_json(msg)
    assert text.isascii()
    text.encode("utf-8")
    assert messages.to_client_from_json(text) == msg


# MARK: malformed connection messages


BAD_TO_SERVER_JSON = [
    "",
    "not json",
    "{",
    "[]",
    "1",
    "null",
    '"x"',
    "{}",
    '{"body":1}',
    '{"body":{}}',
    '{"body":{"tag":5,"val":{}}}',
    '{"body":{"tag":"Nope","val":{}}}',
    '{"body":{"tag":"ActionRequest"}}',
    '{"body":{"tag":"ActionRequest","val":[]}}',
    '{"body":{"tag":"ActionRequest","val":{"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":true,"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":-1,"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":1.5,"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":"0","name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":null,"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","-1"],"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","18446744073709551616"],"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":18446744073709551616,"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","x"],"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt"],"name":"a","args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":5,"args":[]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"a"}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"a","args":[["$Foo",1]]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"a","args":[NaN]}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"a","args":[Infinity]}}}',
    '{"body":{"tag":"SubscriptionRequest","val":{"eventName":"e","subscribe":"yes"}}}',
    '{"body":{"tag":"SubscriptionRequest","val":{"eventName":"e","subscribe":1}}}',
    '{"body":{"tag":"SubscriptionRequest","val":{"eventName":null,"subscribe":true}}}',
    '{"body":{"tag":"SubscriptionRequest","val":{"subscribe":true}}}',
    '{"body":{"tag":"ActionRequest","val":{"id":' + "9" * 5000 + ',"name":"a","args":[]}}}',
    "[" * 100_000 + "]" * 100_000,
    '{"body":{"tag":"ActionRequest","val":{"id":0,"name":"a","args":'
    + "[" * 1000
    + "]" * 1000
    + "}}}",
]


@pytest.mark.parametrize("text", BAD_TO_SERVER_JSON)
def test_to_server_json_malformed(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        messages.to_server_from_json(text)
    assert info.value.code == CONNECT


@pytest.mark.parametrize("data", [b"\xff\xfe", b'{"body":"\xc3"}', 5, None, ["x"]])
def test_to_server_json_bad_input_types(data: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        messages.to_server_from_json(data)
    assert info.value.code == CONNECT


def _action_tree(**val: Any) -> dict[str, Any]:
    return {"body": {"tag": "ActionRequest", "val": {"id": 0, "name": "a", "args": [], **val}}}


BAD_TO_SERVER_CBOR = [
    b"",
    b"\xff",
    b"\x1b\x00",
    bytes.fromhex("5bffffffffffffffff"),
    b"\x9f" * 1000,
    cbor2.dumps([1]),
    cbor2.dumps({"body": None}),
    cbor2.dumps({"body": {"tag": b"ActionRequest", "val": {}}}),
    cbor2.dumps(_action_tree(id=-1)),
    cbor2.dumps(_action_tree(id=2**64)),
    cbor2.dumps(_action_tree(id=1.0)),
    cbor2.dumps(_action_tree(id=True)),
    cbor2.dumps(_action_tree(name=None)),
    cbor2.dumps({"body": {"tag": "ActionRequest", "val": {"id": 0, "name": "a"}}}),
    cbor2.dumps(_action_tree()) + b"\x00",
    cbor2.dumps(
        {"body": {"tag": "SubscriptionRequest", "val": {"eventName": "e", "subscribe": 0}}}
    ),
    bytes.fromhex("c11a"),
    bytes.fromhex("d8258163"),
]


@pytest.mark.parametrize("data", BAD_TO_SERVER_CBOR)
def test_to_server_cbor_malformed(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        messages.to_server_from_cbor(data)
    assert info.value.code == CONNECT


def test_to_server_cbor_accepts_any_uint_width_and_bigint_tag() -> None:
    for id_ in (0, 23, 24, 255, 2**32, 2**64 - 1):
        assert messages.to_server_from_cbor(cbor2.dumps(_action_tree(id=id_))).body.id == id_
    assert messages.to_server_from_cbor(cbor2.dumps(_action_tree(id=["$BigInt", "9"]))).body.id == 9


def _error_tree(**val: Any) -> dict[str, Any]:
    base = {"group": "g", "code": "c", "message": "m", "actionId": None}
    return {"body": {"tag": "Error", "val": {**base, **val}}}


BAD_TO_CLIENT_TREES = [
    {"body": {"tag": "Init", "val": {"actorId": "a"}}},
    {"body": {"tag": "Init", "val": {"actorId": "a", "connectionId": 1}}},
    {"body": {"tag": "ActionResponse", "val": {"output": 1}}},
    {"body": {"tag": "ActionResponse", "val": {"id": -3, "output": 1}}},
    {"body": {"tag": "Event", "val": {"name": "e"}}},
    {"body": {"tag": "Event", "val": {"name": "e", "args": ["$Nope", 0]}}},
    {"body": {"tag": "Bogus", "val": {}}},
    _error_tree(group=None),
    _error_tree(actionId=False),
    _error_tree(actor="a"),
    _error_tree(actor={"actorId": "a"}),
    _error_tree(actor={"actorId": "a", "generation": -1}),
    _error_tree(actor={"actorId": "a", "generation": 1.5}),
    _error_tree(actor={"actorId": "a", "generation": "1"}),
    _error_tree(actor={"actorId": "a", "generation": 1, "key": 5}),
    _error_tree(metadata=["$Nope", 1]),
]


@pytest.mark.parametrize("tree", BAD_TO_CLIENT_TREES)
def test_to_client_malformed(tree: Any) -> None:
    for read, data in (
        (messages.to_client_from_cbor, cbor2.dumps(tree)),
        (messages.to_client_from_json, json.dumps(tree)),
    ):
        with pytest.raises(ProtocolError) as info:
            read(data)
        assert info.value.code == CONNECT


def test_to_client_lenient_where_the_client_is() -> None:
    # A missing output is JS `undefined` (JSON.stringify drops it); a missing actionId is null.
    msg = messages.to_client_from_json(
        '{"body":{"tag":"ActionResponse","val":{"id":["$BigInt","1"]}}}'
    )
    assert msg == cp.ToClient(cp.ActionResponse(1, None))
    msg = messages.to_client_from_json(
        '{"body":{"tag":"Error","val":{"group":"g","code":"c","message":"m"}}}'
    )
    assert msg == cp.ToClient(cp.Error("g", "c", "m", None, None, None))
    # Older servers' extra fields (v1 connectionToken) are ignored, as zod does.
    text = '{"body":{"tag":"Init","val":{"actorId":"a","connectionId":"b","connectionToken":"t"}}}'
    assert messages.to_client_from_json(text) == cp.ToClient(cp.Init("a", "b"))


@pytest.mark.parametrize(
    "msg",
    [
        "not a message",
        cp.ToServer(cp.ActionRequest(0, "a", [])),
        cp.ToClient(cp.ActionResponse(-1, None)),
        cp.ToClient(cp.ActionResponse(2**64, None)),
        cp.ToClient(cp.ActionResponse(True, None)),
        cp.ToClient(v1.Error("g", "c", "m", None, None)),
        cp.ToClient(cp.Init(5, "x")),
        cp.ToClient(cp.Error("g", "c", "m", None, None, ("a", 1, None))),
        cp.ToClient(cp.Error("g", "c", "m", None, None, cp.ActorSpecifier("a", -1, None))),
        cp.ToClient(cp.Event("e", [object()])),
    ],
)
def test_to_client_encoders_refuse_misfits(msg: Any) -> None:
    for write in (messages.to_client_json, messages.to_client_cbor):
        with pytest.raises(EncodeError):
            write(msg)


def test_to_server_encoders_refuse_misfits() -> None:
    for write in (messages.to_server_json, messages.to_server_cbor):
        with pytest.raises(EncodeError):
            write(cp.ToServer(cp.SubscriptionRequest("e", 1)))  # type: ignore[arg-type]
        with pytest.raises(EncodeError):
            write(cp.ToClient(cp.Init("a", "b")))  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        messages.to_client_json(cp.ToClient(cp.ActionResponse(0, math.nan)))
    assert messages.to_client_from_cbor(
        messages.to_client_cbor(cp.ToClient(cp.ActionResponse(0, math.inf)))
    ) == (cp.ToClient(cp.ActionResponse(0, math.inf)))


def test_dispatchers() -> None:
    msg = cp.ToClient(cp.Event("e", [1, b"\x00", 2**60]))
    for encoding in trees.ENCODINGS:
        data = messages.encode_to_client(msg, encoding)
        assert isinstance(data, str if encoding == "json" else bytes)
        assert messages.decode_to_client(data, encoding) == msg
    bare = messages.encode_to_client(msg, "bare")
    assert cp.TO_CLIENT.decode(bare).body.args == values.cbor_dumps([1, b"\x00", 2**60])
    # The bare args of the spec's example: ActionRequest id 0, args [2].
    request = bytes.fromhex("0400000009696e6372656d656e74028102")
    assert messages.decode_to_server(request, "bare") == cp.ToServer(
        cp.ActionRequest(0, "increment", [2])
    )
    assert (
        messages.encode_to_server(cp.ToServer(cp.ActionRequest(0, "increment", [2])), "bare")
        == request
    )
    with pytest.raises(ValueError):
        messages.encode_to_client(msg, "xml")
    with pytest.raises(ValueError):
        messages.encode_to_server(cp.ToServer(cp.SubscriptionRequest("e", True)), "xml")
    for bad in ("xml", None):
        with pytest.raises(ProtocolError) as info:
            messages.decode_to_server(b"", bad)  # type: ignore[arg-type]
        assert info.value.code == CONNECT
    with pytest.raises(ProtocolError):
        messages.decode_to_server("text", "bare")
    with pytest.raises(ProtocolError):
        messages.decode_to_server(
            bytes.fromhex("040000000161028119"), "bare"
        )  # truncated CBOR args


# MARK: HTTP bodies


def test_http_action_request_from_every_encoding() -> None:
    assert http_bodies.http_action_request_from(b'{"args":[5]}', "json") == [5]
    assert http_bodies.http_action_request_from(bytes.fromhex("b9000164617267738105"), "cbor") == [
        5
    ]
    assert http_bodies.http_action_request_from(bytes.fromhex("0400028105"), "bare") == [5]
    assert http_bodies.http_action_request_from(bytes.fromhex("04000180"), "bare") == []
    # rivetkit-core's leniency: null or missing -> [], a scalar -> [scalar].
    assert http_bodies.http_action_request_from(b'{"args":null}', "json") == []
    assert http_bodies.http_action_request_from(b"{}", "json") == []
    assert http_bodies.http_action_request_from(b'{"args":7}', "json") == [7]
    assert http_bodies.http_action_request_from(b'{"args":{"a":1}}', "json") == [{"a": 1}]
    assert http_bodies.http_action_request_from(cbor2.dumps({"args": "x"}), "cbor") == ["x"]
    assert http_bodies.http_action_request_from(bytes.fromhex("040001f6"), "bare") == []
    # json revives, cbor stays raw (the client sends cbor args without the compat layer).
    assert http_bodies.http_action_request_from(b'{"args":[["$BigInt","9"]]}', "json") == [9]
    assert http_bodies.http_action_request_from(cbor2.dumps({"args": [["$x", 1]]}), "cbor") == [
        ["$x", 1]
    ]


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"", "json"),
        (b"[5]", "json"),
        (b'{"args":[["$Nope",1]]}', "json"),
        (b"\xff", "json"),
        (b"", "cbor"),
        (cbor2.dumps([5]), "cbor"),
        (cbor2.dumps({"args": [5]}) + b"\x00", "cbor"),
        (b"", "bare"),
        (b"\x04\x00", "bare"),
        (b"\x04\x00\x01\xff", "bare"),
        (b"\x09\x00\x01\x80", "bare"),
        (b'{"args":[]}', "xml"),
        ("text", "bare"),
    ],
)
def test_http_action_request_malformed(body: Any, encoding: str) -> None:
    with pytest.raises(ProtocolError) as info:
        http_bodies.http_action_request_from(body, encoding)
    assert info.value.code == HTTP_REQUEST


def test_http_bodies_against_bare_vectors() -> None:
    by_name = {c["name"]: bytes.fromhex(c["hex"]) for c in CASES if "hex" in c}
    assert (
        http_bodies.http_action_response_to(5, "bare") == by_name["http_action_response.output_5"]
    )
    assert http_bodies.http_action_request_to([5], "bare") == by_name["http_action_request.args_5"]
    assert http_bodies.http_action_request_to([], "bare") == by_name["http_action_request.no_args"]
    assert (
        http_bodies.http_action_response_from(by_name["http_action_response.output_5"], "bare") == 5
    )
    assert (
        http_bodies.http_error_to("actor", "action_not_found", "Action not found", None, "bare")
        == by_name["http_response_error.minimal"]
    )
    assert http_bodies.http_error_from(
        by_name["http_response_error.full"], "bare"
    ) == cp.HttpResponseError(
        "user", "user_error", "nope", {"why": "x"}, cp.ActorSpecifier("a1", 2, None)
    )
    assert http_bodies.http_error_from(by_name["http_response_error.upgrade_from_v1"], "bare") == (
        cp.HttpResponseError("g", "c", "m", None, None)
    )
    assert http_bodies.http_queue_send_request_from(
        by_name["http_queue_send_request.client_default"], "bare"
    ) == cp.HttpQueueSendRequest({"job": 1}, "jobs", False, None)
    assert http_bodies.http_queue_send_request_from(
        by_name["http_queue_send_request.wait_timeout"], "bare"
    ) == cp.HttpQueueSendRequest("hi", "jobs", True, 5000)
    assert http_bodies.http_queue_send_response_from(
        by_name["http_queue_send_response.completed"], "bare"
    ) == cp.HttpQueueSendResponse("completed", {"done": True})
    assert (
        http_bodies.http_queue_send_response_to("timedOut", None, "bare")
        == by_name["http_queue_send_response.timed_out"]
    )


def test_http_json_and_cbor_shapes() -> None:
    assert http_bodies.http_action_response_to(5, "json") == b'{"output":5}'
    assert cbor2.loads(http_bodies.http_action_response_to(2**60, "cbor")) == {
        "output": ["$BigInt", str(2**60)]
    }
    assert http_bodies.http_action_request_to([5], "json") == b'{"args":[5]}'
    assert cbor2.loads(http_bodies.http_action_request_to([["$x", 1]], "cbor")) == {
        "args": [["$x", 1]]
    }
    assert json.loads(http_bodies.http_error_to("user", "boom", "Boom", None, "json")) == {
        "group": "user",
        "code": "boom",
        "message": "Boom",
    }
    actor = cp.ActorSpecifier("a1", 3, "k")
    assert json.loads(
        http_bodies.http_error_to("user", "boom", "Boom", {"n": 1}, "json", actor=actor)
    ) == {
        "group": "user",
        "code": "boom",
        "message": "Boom",
        "metadata": {"n": 1},
        "actor": {"actorId": "a1", "generation": 3, "key": "k"},
    }
    assert cbor2.loads(http_bodies.http_error_to("g", "c", "m", [b"\x01"], "cbor")) == {
        "group": "g",
        "code": "c",
        "message": "m",
        "metadata": [["$Uint8Array", "AQ=="]],
    }
    request = cp.HttpQueueSendRequest({"x": 1}, "jobs", True, 5000)
    assert json.loads(http_bodies.http_queue_send_request_to(request, "json")) == {
        "body": {"x": 1},
        "wait": True,
        "timeout": 5000,
        "name": "jobs",
    }
    assert json.loads(http_bodies.http_queue_send_response_to("completed", None, "json")) == {
        "status": "completed"
    }
    # cbor-x sends a large timeout as float64.
    body = cbor2.dumps({"body": None, "wait": True, "timeout": 4294967296.0, "name": "q"})
    assert http_bodies.http_queue_send_request_from(body, "cbor").timeout == 4294967296


@pytest.mark.parametrize(
    "body",
    [
        b'{"body":1,"timeout":-1}',
        b'{"body":1,"timeout":"5"}',
        b'{"body":1,"timeout":1.5}',
        b'{"body":1,"wait":"no"}',
        b'{"body":1,"name":5}',
        b'{"body":["$Nope",1]}',
        b"[]",
    ],
)
def test_http_queue_send_request_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        http_bodies.http_queue_send_request_from(body, "json")
    assert info.value.code == HTTP_REQUEST


@pytest.mark.parametrize(
    "read",
    [
        http_bodies.http_action_response_from,
        http_bodies.http_error_from,
        http_bodies.http_queue_send_response_from,
    ],
)
@pytest.mark.parametrize(
    ("body", "encoding"),
    [(b"nope", "json"), (b"\xff", "cbor"), (b"\x04", "bare"), (b"{}", "xml"), (b"[1]", "json")],
)
def test_http_responses_malformed(read: Any, body: bytes, encoding: str) -> None:
    with pytest.raises(ProtocolError) as info:
        read(body, encoding)
    assert info.value.code == HTTP_RESPONSE


def test_http_error_and_queue_response_need_their_fields() -> None:
    for encoding, dump in (("json", lambda v: json.dumps(v).encode()), ("cbor", cbor2.dumps)):
        with pytest.raises(ProtocolError):
            http_bodies.http_error_from(dump({"group": "g", "code": "c"}), encoding)
        with pytest.raises(ProtocolError):
            http_bodies.http_queue_send_response_from(dump({"response": 1}), encoding)


def test_http_encoders_refuse_unknown_encodings() -> None:
    for call in (
        lambda: http_bodies.http_action_request_to([], "xml"),
        lambda: http_bodies.http_action_response_to(1, "xml"),
        lambda: http_bodies.http_error_to("g", "c", "m", None, "xml"),
        lambda: http_bodies.http_queue_send_request_to(
            cp.HttpQueueSendRequest(1, None, None, None), "xml"
        ),
        lambda: http_bodies.http_queue_send_response_to("completed", 1, "xml"),
    ):
        with pytest.raises(ValueError):
            call()


# MARK: property tests


def _scalars(*, finite: bool) -> st.SearchStrategy[Any]:
    return (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=not finite)
        | st.text(max_size=8)
        | st.binary(max_size=8)
    )


def _compat_values(*, finite: bool) -> st.SearchStrategy[Any]:
    """User values the compat layer carries exactly."""
    return st.recursive(
        _scalars(finite=finite),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=5), children, max_size=4)
            | st.tuples(st.text(max_size=4).map(lambda s: "$" + s), children).map(list)
            | st.sets(
                st.integers(-(2**60), 2**60) | st.text(max_size=4) | st.binary(max_size=3),
                max_size=3,
            )
        ),
        max_leaves=12,
    )


def _raw_values() -> st.SearchStrategy[Any]:
    """User values plain CBOR carries exactly (the client's raw ToServer cbor args)."""
    return st.recursive(
        _scalars(finite=False) | st.integers(-(2**100), 2**100),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=5), children, max_size=4)
            | st.tuples(st.text(max_size=4).map(lambda s: "$" + s), children).map(list)
        ),
        max_leaves=12,
    )


U64 = st.integers(0, 2**64 - 1)
NAMES = st.text(max_size=12)


def _to_server(payload: st.SearchStrategy[Any]) -> st.SearchStrategy[cp.ToServer]:
    body = st.builds(cp.ActionRequest, U64, NAMES, payload) | st.builds(
        cp.SubscriptionRequest, NAMES, st.booleans()
    )
    return st.builds(cp.ToServer, body)


def _to_client(
    payload: st.SearchStrategy[Any], metadata: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[cp.ToClient]:
    actor = st.none() | st.builds(cp.ActorSpecifier, NAMES, U64, st.none() | NAMES)
    body = (
        st.builds(cp.Init, NAMES, NAMES)
        | st.builds(
            cp.Error,
            NAMES,
            NAMES,
            NAMES,
            payload if metadata is None else metadata,
            st.none() | U64,
            actor,
        )
        | st.builds(cp.ActionResponse, U64, payload)
        | st.builds(cp.Event, NAMES, payload)
    )
    return st.builds(cp.ToClient, body)


@settings(max_examples=300, deadline=None)
@given(
    _to_server(st.binary(max_size=16)),
    _to_client(st.binary(max_size=16), st.none() | st.binary(max_size=16)),
)
def test_bare_records_round_trip(server_msg: cp.ToServer, client_msg: cp.ToClient) -> None:
    assert cp.TO_SERVER.decode(cp.TO_SERVER.encode(server_msg)) == server_msg
    assert cp.TO_CLIENT.decode(cp.TO_CLIENT.encode(client_msg)) == client_msg


@settings(max_examples=200, deadline=None)
@given(
    json_msg=_to_server(_compat_values(finite=True)),
    cbor_msg=_to_server(_raw_values()),
    bare_msg=_to_server(_compat_values(finite=False)),
)
def test_to_server_round_trips(
    json_msg: cp.ToServer, cbor_msg: cp.ToServer, bare_msg: cp.ToServer
) -> None:
    assert messages.to_server_from_json(messages.to_server_json(json_msg)) == json_msg
    assert messages.to_server_from_cbor(messages.to_server_cbor(cbor_msg)) == cbor_msg
    for encoding, msg in (("json", json_msg), ("cbor", cbor_msg), ("bare", bare_msg)):
        assert messages.decode_to_server(messages.encode_to_server(msg, encoding), encoding) == msg


@settings(max_examples=200, deadline=None)
@given(
    json_msg=_to_client(_compat_values(finite=True)),
    binary_msg=_to_client(_compat_values(finite=False)),
)
def test_to_client_round_trips(json_msg: cp.ToClient, binary_msg: cp.ToClient) -> None:
    assert messages.to_client_from_json(messages.to_client_json(json_msg)) == json_msg
    assert messages.to_client_from_cbor(messages.to_client_cbor(binary_msg)) == binary_msg
    for encoding, msg in (("json", json_msg), ("cbor", binary_msg), ("bare", binary_msg)):
        assert messages.decode_to_client(messages.encode_to_client(msg, encoding), encoding) == msg


@settings(max_examples=200, deadline=None)
@given(_compat_values(finite=True), _compat_values(finite=False))
def test_compat_round_trips(json_value: Any, cbor_value: Any) -> None:
    wire = json.loads(json.dumps(values.encode_json_compat(json_value)))
    assert values.decode_json_compat(wire) == json_value
    assert values.cbor_loads(values.cbor_dumps(cbor_value)) == cbor_value
    for encoding in trees.ENCODINGS:
        value = json_value if encoding == "json" else cbor_value
        assert (
            http_bodies.http_action_response_from(
                http_bodies.http_action_response_to(value, encoding), encoding
            )
            == value
        )
        error = http_bodies.http_error_from(
            http_bodies.http_error_to("g", "c", "m", value, encoding), encoding
        )
        assert error == cp.HttpResponseError("g", "c", "m", value, None)
        sent = http_bodies.http_queue_send_response_to("completed", value, encoding)
        assert http_bodies.http_queue_send_response_from(
            sent, encoding
        ) == cp.HttpQueueSendResponse("completed", value)


@settings(max_examples=100, deadline=None)
@given(
    args=st.lists(_compat_values(finite=True), max_size=3),
    raw_args=st.lists(_raw_values(), max_size=3),
    name=st.none() | NAMES,
    wait=st.none() | st.booleans(),
    timeout=st.none() | U64,
)
def test_http_requests_round_trip(
    args: list[Any], raw_args: list[Any], name: str | None, wait: bool | None, timeout: int | None
) -> None:
    for encoding in trees.ENCODINGS:
        chosen = raw_args if encoding == "cbor" else args
        assert (
            http_bodies.http_action_request_from(
                http_bodies.http_action_request_to(chosen, encoding), encoding
            )
            == chosen
        )
        request = cp.HttpQueueSendRequest(chosen, name, wait, timeout)
        body = http_bodies.http_queue_send_request_to(request, encoding)
        assert http_bodies.http_queue_send_request_from(body, encoding) == request


JSON_TREES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["body", "tag", "val", "id", "name", "args", "eventName", "subscribe", "x"]
            )
            | st.text(max_size=3),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_TREES, st.sampled_from(["ActionRequest", "SubscriptionRequest", "Init", "Error", "x"]))
def test_decoders_only_raise_protocol_errors_on_trees(tree: Any, tag: Any) -> None:
    shaped = {"body": {"tag": tag, "val": tree}}
    for candidate in (tree, shaped):
        text = json.dumps(candidate)
        data = cbor2.dumps(candidate)
        for read, arg in (
            (messages.to_server_from_json, text),
            (messages.to_client_from_json, text),
            (messages.to_server_from_cbor, data),
            (messages.to_client_from_cbor, data),
        ):
            try:
                read(arg)
            except ProtocolError as exc:
                assert exc.code == CONNECT


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decoders_only_raise_protocol_errors_on_bytes(data: bytes) -> None:
    calls = [
        lambda: messages.to_server_from_cbor(data),
        lambda: messages.to_client_from_cbor(data),
        lambda: messages.to_server_from_json(data),
        lambda: messages.decode_to_server(b"\x04\x00" + data, "bare"),
        lambda: messages.decode_to_client(b"\x04\x00" + data, "bare"),
    ]
    for call in calls:
        try:
            call()
        except ProtocolError as exc:
            assert exc.code == CONNECT
    for encoding in trees.ENCODINGS:
        for read, code in (
            (http_bodies.http_action_request_from, HTTP_REQUEST),
            (http_bodies.http_queue_send_request_from, HTTP_REQUEST),
            (http_bodies.http_action_response_from, HTTP_RESPONSE),
            (http_bodies.http_error_from, HTTP_RESPONSE),
            (http_bodies.http_queue_send_response_from, HTTP_RESPONSE),
        ):
            try:
                read(data, encoding)
            except ProtocolError as exc:
                assert exc.code == code


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_vectors_only_raise_protocol_errors(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from([c for c in CASES if "hex" in c or "text" in c]))
    raw = bytes.fromhex(case["hex"]) if "hex" in case else case["text"].encode()
    index = data.draw(st.integers(0, len(raw) - 1))
    mutated = raw[:index] + bytes([data.draw(st.integers(0, 255))]) + raw[index + 1 :]
    cut = mutated[: data.draw(st.integers(0, len(mutated)))]
    for candidate in (mutated, cut):
        if case["encoding"] == "bare":
            handler = HANDLERS[case["type"]]
            try:
                handler.decode(candidate)
            except ProtocolError as exc:
                assert exc.code == handler.error_code
            continue
        encoding = case["encoding"]
        decode = (
            messages.decode_to_server if case["type"] == "ToServer" else messages.decode_to_client
        )
        try:
            decode(candidate, encoding)
        except ProtocolError as exc:
            assert exc.code == CONNECT

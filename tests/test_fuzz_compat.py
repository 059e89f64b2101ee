"""Fuzzing the json / cbor / bare message layer (``rivetkit.protocol.messages``, ``.http_bodies``).

Every decoder, given arbitrary bytes or text, random JSON / CBOR trees (with and without
JSON-compat ``$`` tags) or mutated valid messages, either returns or raises
:class:`~rivetkit.errors.ProtocolError` of group ``protocol`` (never ValueError, TypeError,
KeyError, RecursionError...). The json fast path (:func:`action_request_from`) agrees with
the generic decoder whenever it answers. ``RIVETKIT_FUZZ_EXAMPLES`` sets the examples per test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from fuzzing import FUZZ, mutated
from hypothesis import given
from hypothesis import strategies as st
from strategies import strategy_for

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol import http_bodies, messages, values
from rivetkit.protocol.client_protocol import ActionRequest, ToClient, ToServer

ENCODINGS = ("json", "cbor", "bare")

DECODERS: dict[str, Callable[[Any, str], Any]] = {
    "decode_to_server": messages.decode_to_server,
    "decode_to_client": messages.decode_to_client,
    "http_action_request_from": http_bodies.http_action_request_from,
    "http_action_response_from": http_bodies.http_action_response_from,
    "http_error_from": http_bodies.http_error_from,
    "http_queue_send_request_from": http_bodies.http_queue_send_request_from,
    "http_queue_send_response_from": http_bodies.http_queue_send_response_from,
}


def decodes_or_rejects(decode: Callable[[], Any]) -> bool:
    """True when ``decode()`` returned, False when it raised a protocol ProtocolError."""
    try:
        decode()
    except ProtocolError as exc:
        assert exc.group == "protocol", exc
        assert exc.code.startswith("invalid_") or exc.code == "unsupported_encoding", exc
        assert isinstance(exc.message, str) and exc.message
        return False
    return True


# -- trees --------------------------------------------------------------------------------------

_TAGS = ["$BigInt", "$Uint8Array", "$ArrayBuffer", "$Undefined", "$Set", "$$x", "$Weird", "$"]
_TAG_PAYLOADS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["12", "-3", "99999999999999999999999", "AAAA", "!!", "", "0x1"]),
    st.integers(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
_FIELD_NAMES = st.sampled_from(
    ["body", "tag", "val", "id", "name", "args", "actionId", "output", "group", "code",
     "message", "metadata", "actor", "eventName", "subscribe", "wait", "timeout", "status",
     "response", "actorId", "connectionId", "generation", "key", "x"]
)  # fmt: skip
_TAG_NAMES = st.sampled_from(
    ["ActionRequest", "SubscriptionRequest", "Init", "Error", "ActionResponse", "Event", "Nope"]
)


def _tree(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_FIELD_NAMES, children, max_size=5),
        st.tuples(st.sampled_from(_TAGS), _TAG_PAYLOADS).map(list),
        st.tuples(_TAG_NAMES, st.dictionaries(_FIELD_NAMES, children, max_size=4)).map(
            lambda tv: {"body": {"tag": tv[0], "val": tv[1]}}
        ),
    )


TREES = st.recursive(_SCALARS | _TAG_NAMES, _tree, max_leaves=20)


def _json_text(tree: Any) -> str | None:
    try:
        return json.dumps(tree)
    except (ValueError, TypeError):
        return None


def _cbor_bytes(tree: Any) -> bytes:
    return cbor2.dumps(tree)


# -- valid messages -----------------------------------------------------------------------------


def _encoded(encode: Callable[[Any, str], Any], value_strategy: st.SearchStrategy[Any]) -> Any:
    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, bytes | str]:
        encoding = draw(st.sampled_from(ENCODINGS))
        value = draw(value_strategy)
        try:
            return encoding, encode(value, encoding)
        except EncodeError:
            return encoding, encode(ToServer(ActionRequest(1, "a", [1])), encoding)

    return build()


VALID_TO_SERVER = _encoded(messages.encode_to_server, strategy_for(ToServer))
VALID_TO_CLIENT = _encoded(messages.encode_to_client, strategy_for(ToClient))


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


# -- tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(data=st.binary(max_size=200), encoding=st.sampled_from([*ENCODINGS, "xml", ""]))
def test_random_bytes(name: str, data: bytes, encoding: str) -> None:
    decode = DECODERS[name]
    decodes_or_rejects(lambda: decode(data, encoding))
    if encoding == "json":
        text = data.decode("utf-8", "replace")
        decodes_or_rejects(lambda: decode(text, encoding))


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(tree=TREES)
def test_random_trees(name: str, tree: Any) -> None:
    decode = DECODERS[name]
    text = _json_text(tree)
    if text is not None:
        decodes_or_rejects(lambda: decode(text, "json"))
        decodes_or_rejects(lambda: decode(text.encode(), "json"))
    raw = _cbor_bytes(tree)
    decodes_or_rejects(lambda: decode(raw, "cbor"))
    # The tree as the CBOR payload of a bare message.
    decodes_or_rejects(lambda: decode(b"\x04\x00\x00" + bytes([len(raw) & 0x7F]) + raw, "bare"))


@FUZZ
@given(tree=TREES)
def test_json_compat_layer(tree: Any) -> None:
    decodes_or_rejects(lambda: values.decode_json_compat(tree, error_code="invalid_data"))
    raw = _cbor_bytes(tree)
    decodes_or_rejects(lambda: values.cbor_loads(raw))
    decodes_or_rejects(lambda: values.cbor_loads_raw(raw))


@FUZZ
@given(data=st.binary(max_size=200))
def test_cbor_garbage(data: bytes) -> None:
    decodes_or_rejects(lambda: values.cbor_loads(data))
    decodes_or_rejects(lambda: values.cbor_loads_raw(data))


@FUZZ
@given(message=VALID_TO_SERVER, data=st.data())
def test_mutated_to_server(message: tuple[str, bytes | str], data: st.DataObject) -> None:
    encoding, raw = message
    assert decodes_or_rejects(lambda: messages.decode_to_server(raw, encoding))
    bad = data.draw(mutated(st.just(_as_bytes(raw))))
    decodes_or_rejects(lambda: messages.decode_to_server(bad, encoding))
    if encoding == "json":
        text = bad.decode("utf-8", "replace")
        decodes_or_rejects(lambda: messages.decode_to_server(text, "json"))
        check_fast_path(text)


@FUZZ
@given(message=VALID_TO_CLIENT, data=st.data())
def test_mutated_to_client(message: tuple[str, bytes | str], data: st.DataObject) -> None:
    encoding, raw = message
    assert decodes_or_rejects(lambda: messages.decode_to_client(raw, encoding))
    bad = data.draw(mutated(st.just(_as_bytes(raw))))
    decodes_or_rejects(lambda: messages.decode_to_client(bad, encoding))


def check_fast_path(text: str) -> None:
    """The json fast path answers like the generic decoder whenever it answers."""
    fast = messages.action_request_from(text, "json")
    if fast is None:
        return
    msg = messages.decode_to_server(text, "json")
    assert isinstance(msg.body, ActionRequest)
    assert (msg.body.id, msg.body.name, msg.body.args) == fast


@FUZZ
@given(tree=TREES, action_id=st.integers(min_value=-5, max_value=1 << 65), name=st.text())
def test_fast_path_agrees(tree: Any, action_id: int, name: str) -> None:
    message = {"body": {"tag": "ActionRequest", "val": {"id": action_id, "name": name}}}
    message["body"]["val"]["args"] = tree
    text = _json_text(message)
    if text is not None:
        check_fast_path(text)
        decodes_or_rejects(lambda: messages.decode_to_server(text, "json"))


def test_adversarial_inputs() -> None:
    deep = 100_000
    cases: list[bytes | str] = [
        "[" * deep + "]" * deep,
        '{"body":' * deep,
        '{"body":{"tag":"ActionRequest","val":{"id":1,"name":"a","args":' + "[" * 5000,
        '{"body":{"tag":"ActionRequest","val":{"id":1,"name":"a","args":[' + "1" * 6000 + "]}}}",
        '{"body":{"tag":"ActionRequest","val":{"id":1e400,"name":"a","args":[]}}}',
        '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","1' + "0" * 5000 + '"],'
        '"name":"a","args":[]}}}',
        '{"body":{"tag":"ActionRequest","val":{"id":1,"name":"a","args":'
        + '["$Set",' * 300
        + "[]"
        + "]" * 300
        + "}}}",
        b"\x81" * deep + b"\x00",
        b"\xd8\x1c" * deep + b"\x00",
        b"\x9f" * 1000,
        b"\xbf" * 1000,
        b"\xc2\x5a\xff\xff\xff\xff",
        b"\xd8\x1c\x81\xd8\x1d\x00",
        b"\x04\x00\x00\x10" + b"\x81" * 16,
        b"\x04\x00\x01\x01a\x01",
        "\ud800",
        "",
    ]
    for raw in cases:
        for decode in DECODERS.values():
            for encoding in ENCODINGS:
                decodes_or_rejects(lambda d=decode, r=raw, e=encoding: d(r, e))  # type: ignore[misc]
        if isinstance(raw, bytes):
            decodes_or_rejects(lambda r=raw: values.cbor_loads(r))  # type: ignore[misc]
    nested: Any = []
    for _ in range(5000):
        nested = [nested]
    decodes_or_rejects(lambda: values.decode_json_compat(nested))

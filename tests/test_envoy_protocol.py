"""envoy-protocol v8: golden vectors, generic round trips and malformed input.

The vectors (``tests/vectors/envoy-protocol-v8.json``; see ``tests/vectors_dir.py``) were
written by the TypeScript codec ``@rivetkit/engine-envoy-protocol@2.3.19``. Their ``value`` uses
the TypeScript shape, so records are converted to and from that JSON convention here:
camelCase keys, ``{"$hex": ...}`` bytes, ``{"tag", "val"}`` unions, ``null`` for void members,
the bare list for list-alias members and PascalCase enum names.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import strategy_for
from vectors_dir import load_cases, vectors_dir

from rivetkit.errors import ProtocolError
from rivetkit.protocol import plan as P
from rivetkit.protocol import schema
from rivetkit.protocol.envoy_protocol import (
    ERROR_CODE,
    PROTOCOL_VERSION,
    TO_ENVOY,
    TO_RIVET,
    StopActorReason,
    StopCode,
    ToEnvoy,
    ToEnvoyCommands,
    ToEnvoyPing,
    ToRivet,
    ToRivetEvents,
    ToRivetPong,
    enum_from_ts_name,
    enum_ts_name,
)
from rivetkit.protocol.schema import plan_of, wire_name

_VECTORS = vectors_dir() / "envoy-protocol-v8.json"
CASES: list[dict[str, Any]] = load_cases(_VECTORS.name)
CODECS = {"ToRivet": TO_RIVET, "ToEnvoy": TO_ENVOY}
TOP_TYPES = {"ToRivet": ToRivet, "ToEnvoy": ToEnvoy}
#: Union members declared as an alias of a list; the vectors show them as that list.
LIST_ALIASES = frozenset({ToRivetEvents, ToEnvoyCommands})


def _members(tp: Any) -> list[type]:
    kind, members, _ = plan_of(tp)
    assert kind == P.UNION
    return [cls for cls, _ in members]


TO_RIVET_MEMBERS = _members(ToRivet)
TO_ENVOY_MEMBERS = _members(ToEnvoy)


# MARK: JSON convention


def to_json(value: Any, node: P.Node) -> Any:
    """A record value in the vectors' JSON convention."""
    kind, a, b = node
    if kind in (P.DATA, P.FIXED):
        return {"$hex": bytes(value).hex()}
    if kind == P.OPTIONAL:
        return None if value is None else to_json(value, a)
    if kind == P.LIST:
        return [to_json(item, a) for item in value]
    if kind == P.MAP:
        return {to_json(k, a): to_json(v, b) for k, v in value.items()}
    if kind == P.ENUM:
        return enum_ts_name(value)
    if kind == P.UNION:
        for cls, member in a:
            if type(value) is cls:
                return {"tag": cls.__name__, "val": to_json(value, member)}
        raise TypeError(f"{type(value).__name__} is not a member of the union")
    if kind == P.STRUCT:
        assert type(value) is a, (type(value), a)
        if not b:
            return None
        if a in LIST_ALIASES:
            return to_json(value[0], b[0][1])
        return {
            wire_name(name): to_json(field, fnode)
            for (name, fnode), field in zip(b, value, strict=True)
        }
    return value


def from_json(obj: Any, node: P.Node) -> Any:
    """A record value from the vectors' JSON convention (strict about keys and tags)."""
    kind, a, b = node
    if kind in (P.DATA, P.FIXED):
        assert set(obj) == {"$hex"}
        return bytes.fromhex(obj["$hex"])
    if kind == P.OPTIONAL:
        return None if obj is None else from_json(obj, a)
    if kind == P.LIST:
        return [from_json(item, a) for item in obj]
    if kind == P.MAP:
        return {from_json(k, a): from_json(v, b) for k, v in obj.items()}
    if kind == P.ENUM:
        return enum_from_ts_name(a, obj)
    if kind == P.UNION:
        for cls, member in a:
            if cls.__name__ == obj["tag"]:
                return from_json(obj["val"], member)
        raise KeyError(f"unknown union tag {obj['tag']!r}")
    if kind == P.STRUCT:
        if not b:
            assert obj is None
            return a()
        if a in LIST_ALIASES:
            return a(from_json(obj, b[0][1]))
        assert list(obj) == [wire_name(name) for name, _ in b], "field names or order differ"
        return a(*(from_json(obj[wire_name(name)], fnode) for name, fnode in b))
    return obj


def _case_id(case: dict[str, Any]) -> str:
    return str(case["name"])


# MARK: golden vectors


def test_vector_file_covers_both_directions() -> None:
    assert PROTOCOL_VERSION == 8
    assert {c["type"] for c in CASES} == {"ToRivet", "ToEnvoy"}
    assert all(c["encoding"] == "bare" and c["version"] == 8 for c in CASES)
    assert len(CASES) >= 37


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_vector_decode(case: dict[str, Any]) -> None:
    codec = CODECS[case["type"]]
    decoded = codec.decode(bytes.fromhex(case["hex"]))
    assert to_json(decoded, codec.plan) == case["value"]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_vector_encode(case: dict[str, Any]) -> None:
    codec = CODECS[case["type"]]
    data = bytes.fromhex(case["hex"])
    # Re-encoding what we decoded gives the same bytes (map order is kept by decode).
    assert codec.encode(codec.decode(data)).hex() == case["hex"]
    # Building the records from the vector's value gives the same bytes and the same records.
    built = from_json(case["value"], codec.plan)
    assert codec.encode(built).hex() == case["hex"]
    assert to_json(built, codec.plan) == to_json(codec.decode(data), codec.plan)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_vector_every_strict_prefix_is_rejected(case: dict[str, Any]) -> None:
    codec = CODECS[case["type"]]
    data = bytes.fromhex(case["hex"])
    for end in range(len(data)):
        with pytest.raises(ProtocolError) as info:
            codec.decode(data[:end])
        assert info.value.code == ERROR_CODE == "invalid_envoy_message"
        assert info.value.group == "protocol"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_vector_trailing_byte_is_rejected(case: dict[str, Any]) -> None:
    codec = CODECS[case["type"]]
    with pytest.raises(ProtocolError) as info:
        codec.decode(bytes.fromhex(case["hex"]) + b"\x00")
    assert info.value.code == ERROR_CODE


def test_known_frames() -> None:
    # The first frame the engine sends (engine.md B, "Connect").
    init = TO_ENVOY.decode(
        bytes.fromhex("00983a000000000000" + "40771b0000000000" + "0000400100000000")
    )
    assert init.metadata.envoy_lost_threshold == 15000
    assert init.metadata.actor_stop_threshold == 1800000
    assert init.metadata.max_response_payload_size == 20971520
    assert TO_ENVOY.decode(bytes.fromhex("050068e5cf8b010000")) == ToEnvoyPing(ts=1700000000000)
    assert TO_RIVET.encode(ToRivetPong(ts=1700000000000)).hex() == "040068e5cf8b010000"


def test_union_tag_order() -> None:
    assert [c.__name__ for c in TO_RIVET_MEMBERS] == [
        "ToRivetMetadata",
        "ToRivetEvents",
        "ToRivetAckCommands",
        "ToRivetStopping",
        "ToRivetPong",
        "ToRivetKvRequest",
        "ToRivetTunnelMessage",
        "ToRivetSqliteGetPagesRequest",
        "ToRivetSqliteCommitRequest",
        "ToRivetSqliteCommitStageBeginRequest",
        "ToRivetSqliteCommitStageSegmentRequest",
        "ToRivetSqliteCommitFinalizeRequest",
        "ToRivetSqliteExecRequest",
        "ToRivetSqliteExecuteRequest",
        "ToRivetSqliteExecuteBatchRequest",
    ]
    assert [c.__name__ for c in TO_ENVOY_MEMBERS] == [
        "ToEnvoyInit",
        "ToEnvoyCommands",
        "ToEnvoyAckEvents",
        "ToEnvoyKvResponse",
        "ToEnvoyTunnelMessage",
        "ToEnvoyPing",
        "ToEnvoySqliteGetPagesResponse",
        "ToEnvoySqliteCommitResponse",
        "ToEnvoySqliteCommitStageBeginResponse",
        "ToEnvoySqliteCommitStageSegmentResponse",
        "ToEnvoySqliteCommitFinalizeResponse",
        "ToEnvoySqliteExecResponse",
        "ToEnvoySqliteExecuteResponse",
        "ToEnvoySqliteExecuteBatchResponse",
    ]


def test_enum_ts_names() -> None:
    assert [enum_ts_name(m) for m in StopActorReason] == [
        "SleepIntent",
        "StopIntent",
        "Destroy",
        "GoingAway",
        "Lost",
    ]
    assert enum_from_ts_name(StopCode, "Ok") is StopCode.OK
    assert enum_from_ts_name(StopCode, "Error") is StopCode.ERROR
    with pytest.raises(KeyError):
        enum_from_ts_name(StopCode, "OK")


def test_list_alias_member_is_byte_identical_to_its_list() -> None:
    # A one-field record encodes exactly like its field: the union tag, then list<...>.
    assert TO_RIVET.encode(ToRivetEvents([])) == b"\x01\x00"
    assert TO_ENVOY.encode(ToEnvoyCommands([])) == b"\x01\x00"
    assert TO_ENVOY.decode(b"\x01\x00") == ToEnvoyCommands(commands=[])


# MARK: malformed input


@pytest.mark.parametrize(
    ("codec", "members"),
    [(TO_RIVET, TO_RIVET_MEMBERS), (TO_ENVOY, TO_ENVOY_MEMBERS)],
    ids=["ToRivet", "ToEnvoy"],
)
def test_unknown_top_level_tag(codec: Any, members: list[type]) -> None:
    n = len(members)
    for raw in (bytes([n]), bytes([n, 0, 0, 0, 0]), bytes([0x7F]), b"\x80\x01", b"\xff" * 11):
        with pytest.raises(ProtocolError) as info:
            codec.decode(raw)
        assert info.value.code == ERROR_CODE
    # A non-minimal varint for a valid tag is rejected too.
    with pytest.raises(ProtocolError):
        codec.decode(b"\x83\x00")


def test_empty_input() -> None:
    for codec in (TO_RIVET, TO_ENVOY):
        with pytest.raises(ProtocolError):
            codec.decode(b"")


def test_huge_counts_fail_fast() -> None:
    # ToEnvoyCommands / ToRivetEvents / KvGetRequest keys claiming ~2^63 items with no bytes.
    huge = b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f"
    frames = [
        (TO_ENVOY, b"\x01" + huge),
        (TO_RIVET, b"\x01" + huge),
        (TO_RIVET, b"\x05\x01a\x01\x00\x00\x00\x00" + huge),
        (TO_ENVOY, b"\x03\x01\x00\x00\x00\x01" + huge),
        (TO_RIVET, b"\x00\x01" + huge),
    ]
    # Fast means: refused before anything is sized by the claimed count (no big allocation).
    tracemalloc.start()
    try:
        for codec, raw in frames:
            with pytest.raises(ProtocolError) as info:
                codec.decode(raw)
            assert info.value.code == ERROR_CODE
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_invalid_utf8_and_bad_bool_and_enum() -> None:
    with pytest.raises(ProtocolError):  # ToRivetMetadata.metadata = "\xff"
        TO_RIVET.decode(b"\x00\x00\x01\x01\xff")
    with pytest.raises(ProtocolError):  # ToRivetWebSocketOpen.canHibernate = 2
        TO_RIVET.decode(bytes.fromhex("06aabbccdd0000000100000502"))
    with pytest.raises(ProtocolError):  # CommandStopActor.reason = 5
        TO_ENVOY.decode(bytes.fromhex("0101076163746f722d31010000000200000000000000" + "0105"))
    with pytest.raises(ProtocolError):  # optional tag 2
        TO_RIVET.decode(b"\x00\x02\x00")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_mutated_vectors_raise_only_protocol_error(case: dict[str, Any], data: Any) -> None:
    codec = CODECS[case["type"]]
    raw = bytearray(bytes.fromhex(case["hex"]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    try:
        value = codec.decode(bytes(raw))
    except ProtocolError as exc:
        assert exc.code == ERROR_CODE
    else:
        again = codec.decode(codec.encode(value))
        assert to_json(again, codec.plan) == to_json(value, codec.plan)


@settings(max_examples=300)
@given(raw=st.binary(max_size=64))
def test_random_bytes_raise_only_protocol_error(raw: bytes) -> None:
    for codec in (TO_RIVET, TO_ENVOY):
        try:
            codec.decode(raw)
        except ProtocolError as exc:
            assert exc.code == ERROR_CODE


# MARK: generic round trips


def _check_round_trip(codec: Any, value: Any) -> None:
    data = codec.encode(value)
    decoded = codec.decode(data)
    # Records of different classes can compare equal as tuples, so compare the tagged form.
    assert to_json(decoded, codec.plan) == to_json(value, codec.plan)
    assert codec.encode(decoded) == data
    assert codec.encode(from_json(to_json(value, codec.plan), codec.plan)) == data
    for end in (0, len(data) // 2, len(data) - 1):
        with pytest.raises(ProtocolError):
            codec.decode(data[:end])


@pytest.mark.parametrize("member", TO_RIVET_MEMBERS, ids=lambda c: c.__name__)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_to_rivet_round_trip(member: type, data: Any) -> None:
    _check_round_trip(TO_RIVET, data.draw(strategy_for(member)))


@pytest.mark.parametrize("member", TO_ENVOY_MEMBERS, ids=lambda c: c.__name__)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_to_envoy_round_trip(member: type, data: Any) -> None:
    _check_round_trip(TO_ENVOY, data.draw(strategy_for(member)))


def test_strategy_covers_every_plan_kind_used() -> None:
    # Every record reachable from the two unions has a strategy (no kind is left out).
    seen: set[int] = set()

    def walk(node: P.Node) -> None:
        kind, a, b = node
        seen.add(kind)
        if kind in (P.OPTIONAL, P.LIST):
            walk(a)
        elif kind == P.MAP:
            walk(a)
            walk(b)
        elif kind == P.STRUCT:
            for _, field in b:
                walk(field)
        elif kind == P.UNION:
            for _, member in a:
                walk(member)

    walk(schema.plan_of(ToRivet))
    walk(schema.plan_of(ToEnvoy))
    assert {P.U16, P.U32, P.U64, P.I64, P.FIXED, P.MAP, P.ENUM, P.UNION} <= seen


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(to_rivet=strategy_for(ToRivet), to_envoy=strategy_for(ToEnvoy))
def test_top_level_round_trip(to_rivet: Any, to_envoy: Any) -> None:
    _check_round_trip(TO_RIVET, to_rivet)
    _check_round_trip(TO_ENVOY, to_envoy)

"""workflow-engine v1 codec: the spec's worked bytes, round trips of every type, any CBOR in.

The fixed vectors are spec §2.1 (keys) and §2.5 (values), derived there by running
RivetKit 2.3.19's own codecs; the differential tests against the Node engine itself are in
tests/test_workflow_differential.py.
"""

from __future__ import annotations

import datetime
import math
from types import ModuleType
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import strategy_for

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol.schema import plan_of
from rivetkit.protocol.workflow_engine import codec, keys, types
from rivetkit.protocol.workflow_engine.cbor import UNDEFINED, decode_cbor, encode_cbor
from rivetkit.protocol.workflow_engine.keys import Field, NameRegistry
from rivetkit.protocol.workflow_engine.types import (
    BranchStatus,
    BranchStatusType,
    Entry,
    EntryMetadata,
    EntryStatus,
    JoinEntry,
    LoopEntry,
    LoopIterationMarker,
    MessageEntry,
    NameIndex,
    RemovedEntry,
    RollbackCheckpointEntry,
    SleepEntry,
    SleepState,
    StepEntry,
    VersionCheckEntry,
    WorkflowStateText,
)

T0 = 1700000000000  # Date.now() in the spec's derivation runs
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
ID_HEX = "24" + UUID.encode().hex()  # BARE str: length 36, then the ASCII bytes


def h(text: str) -> bytes:
    """Bytes from spaced hex with ``"quoted"`` ASCII runs (the spec's notation)."""
    out = bytearray()
    for i, part in enumerate(text.split('"')):
        out += part.encode() if i % 2 else bytes.fromhex(part.replace(" ", "").replace("|", ""))
    return bytes(out)


@pytest.fixture
def handlers(engine: ModuleType) -> codec.Handlers:
    return codec.build(engine)


# MARK: Keys (§2.1)

KEY_VECTORS = [
    ((1, 0), "15 01 14"),
    ((1, 300), "15 01 16 01 2c"),
    ((1, 65536), "15 01 17 01 00 00"),
    ((2, 0), "15 02 14"),
    ((2, 1, (1, 0), 2), "15 02 15 01 05 15 01 14 00 15 02"),
    ((2, 1, (1, 300), 2), "15 02 15 01 05 15 01 16 01 2c 00 15 02"),
    ((3, 1), "15 03 15 01"),
    ((3, 4), "15 03 15 04"),
    ((4, "ab\0c"), "15 04 02 61 62 00 ff 63 00"),
    ((4, UUID), "15 04 02" + UUID.encode().hex() + "00"),
]


@pytest.mark.parametrize(("items", "hexes"), KEY_VECTORS, ids=[v for _, v in KEY_VECTORS])
def test_key_vectors(items: tuple[Any, ...], hexes: str) -> None:
    raw = h(hexes)
    assert keys.pack(items) == raw
    assert keys.unpack(raw) == items


def test_key_builders() -> None:
    assert keys.name_key(0) == h("15 01 14")
    assert keys.history_key([NameIndex(0)]) == h("15 02 14")
    nested = [NameIndex(1), LoopIterationMarker(1, 0), NameIndex(2)]
    assert keys.history_key(nested) == h("15 02 15 01 05 15 01 14 00 15 02")
    assert keys.workflow_key(Field.STATE) == h("15 03 15 01")
    assert keys.workflow_key(Field.INPUT) == h("15 03 15 04")
    assert keys.metadata_key("ab\0c") == h("15 04 02 61 62 00 ff 63 00")
    assert h("15 01") == keys.NAMES_PREFIX
    assert h("15 02") == keys.HISTORY_PREFIX
    assert h("15 04") == keys.ENTRY_METADATA_PREFIX
    assert keys.actor_key(keys.name_key(0)) == h("06 01 15 01 14")
    assert keys.actor_key(keys.workflow_key(Field.STATE)) == h("06 01 15 03 15 01")
    assert keys.engine_key(h("06 01 15 01 14")) == h("15 01 14")
    with pytest.raises(ProtocolError):
        keys.engine_key(h("06 15 01 14"))


def test_loop_prune_range() -> None:
    # Pruning iterations 0..19 of loop #1 at the root (spec §2.1).
    start, end = keys.loop_iteration_range([NameIndex(1)], 1, 0, 20)
    assert start == h("15 02 15 01 05 15 01 14 00")
    assert end == h("15 02 15 01 05 15 01 15 14 00")
    inside = [
        keys.history_key([NameIndex(1), LoopIterationMarker(1, i), NameIndex(2)]) for i in range(20)
    ]
    inside += [keys.history_key([NameIndex(1), LoopIterationMarker(1, 19)])]
    outside = [
        keys.history_key([NameIndex(1)]),
        keys.history_key([NameIndex(1), LoopIterationMarker(1, 20), NameIndex(2)]),
        keys.history_key([NameIndex(1), LoopIterationMarker(1, 300)]),
        keys.history_key([NameIndex(2)]),
    ]
    assert all(start <= k < end for k in inside)
    assert not any(start <= k < end for k in outside)


def test_parse_key() -> None:
    assert keys.parse_key(h("15 01 16 01 2c")) == keys.NameKey(300)
    nested = [NameIndex(1), LoopIterationMarker(1, 300), NameIndex(2)]
    assert keys.parse_key(keys.history_key(nested)) == keys.HistoryKey(nested)
    assert keys.parse_key(keys.history_key([])) == keys.HistoryKey([])
    assert keys.parse_key(h("15 03 15 02")) == keys.WorkflowKey(Field.OUTPUT)
    assert keys.parse_key(h("15 04 02 61 62 00 ff 63 00")) == keys.MetadataKey("ab\0c")
    # Prefix 5 is reserved for trace context: readers skip it.
    assert isinstance(keys.parse_key(keys.pack([5, "trace"])), keys.OtherKey)
    assert isinstance(keys.parse_key(keys.pack([3, 9])), keys.OtherKey)
    for bad in ([1, "x"], [1, 1, 2], [4, 7], [2, "x"], [2, (1,)], [2, (1, 2, 3)]):
        with pytest.raises(ProtocolError):
            keys.parse_key(keys.pack(bad))


@pytest.mark.parametrize(
    "raw", ["15", "16 01", "02 61", "05 15 01", "33", "00 15", "05 15"], ids=str
)
def test_malformed_keys(raw: str) -> None:
    with pytest.raises(ProtocolError):
        keys.parse_key(h(raw))


def test_prefix_end() -> None:
    assert keys.prefix_end(h("15 02")) == h("15 03")
    assert keys.prefix_end(h("15 ff ff")) == h("16")
    with pytest.raises(ValueError):
        keys.prefix_end(h("ff"))


_leaf = st.integers(-(1 << 64) + 1, (1 << 64) - 1) | st.text() | st.binary() | st.none()
tuple_items = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=10
)
segments = st.builds(NameIndex, st.integers(0, 2**32 - 1)) | st.builds(
    LoopIterationMarker, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)
)


@given(st.lists(tuple_items, max_size=5))
def test_tuple_round_trip(items: list[Any]) -> None:
    assert keys.unpack(keys.pack(items)) == tuple(items)


@given(st.lists(st.integers(0, 2**64 - 1) | st.text(), min_size=2, max_size=2))
def test_tuple_order_matches_value_order(pair: list[Any]) -> None:
    a, b = pair
    if type(a) is type(b) and a != b:
        assert (keys.pack([a]) < keys.pack([b])) == (a < b)


@given(st.lists(segments, max_size=6))
def test_location_round_trip(location: list[Any]) -> None:
    key = keys.history_key(location)
    assert keys.parse_key(key) == keys.HistoryKey(location)
    assert keys.location_from_tuple(keys.location_to_tuple(location)) == location
    for n in range(len(location) + 1):
        assert key.startswith(keys.history_prefix(location[:n]))


def test_registry_and_location_keys() -> None:
    registry = NameRegistry()
    assert [registry.register(n) for n in ("greet", "L", "x", "greet", "nap")] == [0, 1, 2, 0, 3]
    assert registry.unflushed() == [(0, "greet"), (1, "L"), (2, "x"), (3, "nap")]
    registry.mark_flushed()
    assert registry.unflushed() == []
    assert registry.register("y") == 4
    assert registry.unflushed() == [(4, "y")]
    assert registry.resolve(2) == "x" and "L" in registry and len(registry) == 5
    with pytest.raises(ProtocolError, match="Name index 9 not found"):
        registry.resolve(9)
    loaded = NameRegistry.load([(1, "L"), (0, "greet")])
    assert loaded.names == ["greet", "L"] and loaded.unflushed() == []
    with pytest.raises(ProtocolError):
        NameRegistry.load([(0, "a"), (2, "c")])

    names = registry.names
    location = keys.append_name(keys.append_loop_iteration([NameIndex(1)], 1, 0), 2)
    assert location == [NameIndex(1), LoopIterationMarker(1, 0), NameIndex(2)]
    assert keys.location_key(location, names) == "L/~0/x"
    assert keys.location_key([], names) == ""
    with pytest.raises(ProtocolError):
        keys.location_key([NameIndex(7)], names)
    assert keys.is_location_prefix([NameIndex(1)], location)
    assert not keys.is_location_prefix([NameIndex(2)], location)
    assert keys.is_scope_key("L/~0/x", "L") and keys.is_scope_key("L", "L")
    assert keys.is_scope_key("anything", "")
    assert not keys.is_scope_key("Lx/y", "L")


# MARK: Worked values (§2.5)


def test_run_a_values(handlers: codec.Handlers) -> None:
    assert codec.encode_name("greet") == h("67 72 65 65 74")
    greet = Entry(UUID, [NameIndex(0)], StepEntry(encode_cbor("hi"), None))
    loop = Entry(UUID, [NameIndex(1)], LoopEntry(encode_cbor(1), 1, encode_cbor(1)))
    x = Entry(
        UUID,
        [NameIndex(1), LoopIterationMarker(1, 0), NameIndex(2)],
        StepEntry(encode_cbor(1), None),
    )
    nap = Entry(UUID, [NameIndex(3)], SleepEntry(1699999999999, SleepState.COMPLETED))
    expected = [
        (greet, "01 00" + ID_HEX + "01 00 00000000 | 00 01 03 626869 00"),
        (loop, "01 00" + ID_HEX + "01 00 01000000 | 01 01 01 | 01000000 | 01 01 01"),
        (x, "01 00" + ID_HEX + "03 00 01000000 01 01000000 00000000 00 02000000 | 00 01 01 01 00"),
        (nap, "01 00" + ID_HEX + "01 00 03000000 | 02 ff67e5cf8b010000 01"),
    ]
    for entry, hexes in expected:
        assert handlers.entry.encode(entry) == h(hexes)
        assert handlers.entry.decode(h(hexes)) == entry
    step_meta = EntryMetadata(EntryStatus.COMPLETED, None, 1, T0, T0, T0, None, None)
    loop_meta = EntryMetadata(EntryStatus.COMPLETED, None, 0, 0, T0, T0, None, None)
    ts = "0068e5cf8b010000"
    metas = {
        step_meta: f"01 00 02 00 01000000 {ts} {ts} 01 {ts} 00 00",
        loop_meta: f"01 00 02 00 00000000 0000000000000000 {ts} 01 {ts} 00 00",
    }
    for meta, hexes in metas.items():
        assert handlers.entry_metadata.encode(meta) == h(hexes)
        assert handlers.entry_metadata.decode(h(hexes)) == meta
    assert codec.encode_state(WorkflowStateText.COMPLETED) == b"completed"
    assert codec.encode_cbor({"a": "hi", "r": 1}) == h("b9 00 02 61 61 62 68 69 61 72 01")
    assert codec.encode_cbor(UNDEFINED) == h("f7")


def test_run_b_values() -> None:
    def kind_bytes(kind: Any) -> bytes:
        raw = codec.encode_entry(Entry(UUID, [NameIndex(0)], kind))
        prefix = h("01 00" + ID_HEX + "01 00 00000000")
        assert raw.startswith(prefix)
        assert codec.decode_entry(raw).kind == kind
        return raw[len(prefix) :]

    assert kind_bytes(RollbackCheckpointEntry("cp")) == h('04 02 "cp"')
    assert kind_bytes(VersionCheckEntry(2, 2)) == h("08 02000000 02000000")
    assert kind_bytes(RemovedEntry("step", "old")) == h('07 04 "step" 01 03 "old"')
    label = codec.message_count_label(["job"]) + ":count"
    count = MessageEntry(label, codec.encode_message_count(1))
    assert kind_bytes(count) == h('03 09 "job:count" 01 01')
    message = codec.QueueMessageRecord("7", "job", {"v": 1}, T0, False)
    data = codec.encode_queue_message(message)
    assert kind_bytes(MessageEntry("job", data)) == h(
        '03 03 "job" 58 b9 00 06 78 1b "__rivetWorkflowQueueMessage" 01 62 "id" 61 "7" 64 "name"'
        ' 63 "job" 64 "body" b9 00 01 61 "v" 01 69 "createdAt" fb 42 78 bc fe 56 80 00 00'
        ' 69 "completed" f4'
    )
    assert codec.decode_queue_message(data, "job") == message
    done = BranchStatus(BranchStatusType.COMPLETED, encode_cbor(2), None)
    join = JoinEntry({"2": done, "b": BranchStatus(BranchStatusType.COMPLETED, h("01"), None)})
    assert kind_bytes(join) == h('05 02 | 01 "2" 02 01 01 02 00 | 01 "b" 02 01 01 01 00')
    assert kind_bytes(StepEntry(None, "Error: boom")) == h('00 00 01 0b "Error: boom"')
    bad = EntryMetadata(EntryStatus.EXHAUSTED, "Error: boom", 1, T0, T0, None, None, None)
    ts = "0068e5cf8b010000"
    assert codec.encode_entry_metadata(bad) == h(
        f'01 00 04 01 0b "Error: boom" 01000000 {ts} {ts} 00 00 00'
    )
    assert codec.encode_state("failed") == b"failed"
    stack = "S" * 0x3D
    error = codec.SerializedError(
        "StepExhaustedError",
        'Step "bad" exhausted retries: Error: boom',
        stack,
        {"stepName": "bad", "lastError": "Error: boom"},
    )
    raw = codec.encode_error(error)
    assert raw == h(
        'b9 00 04 64 "name" 72 "StepExhaustedError" 67 "message" 78 29 "Step " 22 "bad" 22'
        ' " exhausted retries: Error: boom" 65 "stack" 78 3d "' + stack + '" 68 "metadata"'
        ' b9 00 02 68 "stepName" 63 "bad" 69 "lastError" 6b "Error: boom"'
    )
    assert codec.decode_error(raw) == error


def test_queue_message_without_marker() -> None:
    # Spec §4.12: history messages without the marker read as {id:"", sentAt:0, body:value}.
    record = codec.decode_queue_message(encode_cbor({"v": 1}), "job")
    assert record == codec.QueueMessageRecord("", "job", {"v": 1}, 0, False)
    odd = encode_cbor({codec.QUEUE_MESSAGE_MARKER: 1, "id": 7, "name": None, "createdAt": "x"})
    assert codec.decode_queue_message(odd, "q") == codec.QueueMessageRecord(
        "", "q", UNDEFINED, 0, False
    )
    assert codec.message_count_label(None) == "*"
    assert codec.message_count_label(["a", "b", "a"]) == "a|b"
    assert codec.decode_message_count(h("18 2a")) == 42
    with pytest.raises(ProtocolError):
        codec.decode_message_count(encode_cbor("x"))


def test_state_text() -> None:
    for state in WorkflowStateText:
        assert codec.decode_state(codec.encode_state(state)) is state
    assert codec.decode_state(None) is WorkflowStateText.PENDING
    assert codec.encode_state("rolling_back") == b"rolling_back"
    with pytest.raises(ProtocolError, match="Invalid workflow state: done"):
        codec.decode_state(b"done")
    with pytest.raises(EncodeError):
        codec.encode_state("done")


def test_error_record_reading() -> None:
    minimal = codec.encode_error(codec.SerializedError("Error", "boom"))
    assert minimal == h('b9 00 02 64 "name" 65 "Error" 67 "message" 64 "boom"')
    loose = cbor2.dumps({"message": "m", "name": "N", "stack": 3, "metadata": "x"})
    assert codec.decode_error(loose) == codec.SerializedError("N", "m", None, None)
    for bad in (
        cbor2.dumps([1]),
        cbor2.dumps({"name": "N"}),
        cbor2.dumps({"name": 1, "message": ""}),
    ):
        with pytest.raises(ProtocolError):
            codec.decode_error(bad)


def test_bad_values(handlers: codec.Handlers) -> None:
    good = codec.encode_entry(Entry(UUID, [NameIndex(0)], StepEntry(None, None)))
    with pytest.raises(ProtocolError, match="Unknown Entry version 2"):
        codec.decode_entry(b"\x02\x00" + good[2:])
    with pytest.raises(ProtocolError, match="Unknown EntryMetadata version 0"):
        codec.decode_entry_metadata(b"\x00\x00")
    with pytest.raises(ProtocolError):
        handlers.entry.decode(good + b"\x00")  # trailing bytes
    with pytest.raises(ProtocolError):
        handlers.entry.decode(good[:-1])
    with pytest.raises(ProtocolError):
        handlers.entry.decode(good[:-3] + b"\x09" + good[-2:])  # unknown kind tag
    with pytest.raises(ProtocolError):
        codec.decode_entry(b"\x01")
    sleeping = codec.encode_entry(Entry(UUID, [], SleepEntry(0, SleepState.PENDING)))
    with pytest.raises(ProtocolError):
        codec.decode_entry(sleeping[:-1] + b"\x03")  # SleepState has 3 values
    assert codec.decode_name(b"\xffok") == "\ufffdok"


# MARK: Round trips of every schema type


SCHEMA_TYPES = [
    getattr(types, name) for name in types.__all__ if name not in ("Cbor", "WorkflowStateText")
]


@pytest.mark.parametrize("tp", SCHEMA_TYPES, ids=lambda tp: getattr(tp, "__name__", str(tp)))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_type_round_trips(engine: ModuleType, tp: Any, data: st.DataObject) -> None:
    node = plan_of(tp)
    schema_codec = engine.compile_plan(node, codec.ERROR_CODE)
    value = data.draw(strategy_for(tp))
    raw = schema_codec.encode(value)
    assert schema_codec.decode(raw) == value
    assert schema_codec.encode(schema_codec.decode(raw)) == raw


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=strategy_for(Entry), metadata=strategy_for(EntryMetadata))
def test_versioned_round_trips(
    handlers: codec.Handlers, entry: Entry, metadata: EntryMetadata
) -> None:
    raw = handlers.entry.encode(entry)
    assert raw[:2] == b"\x01\x00"
    assert handlers.entry.decode(raw) == entry == codec.decode_entry(raw)
    raw = handlers.entry_metadata.encode(metadata)
    assert handlers.entry_metadata.decode(raw) == metadata == codec.decode_entry_metadata(raw)


def test_twins_write_the_same_bytes() -> None:
    from conftest import compiled_twin
    from rivetkit.protocol import _bare_py

    compiled = compiled_twin()
    if compiled is None:
        pytest.skip("compiled twin not built")
    pure_h, cy_h = codec.build(_bare_py), codec.build(compiled)
    entry = Entry(UUID, [NameIndex(1), LoopIterationMarker(1, 3)], LoopEntry(h("f7"), 3, None))
    assert pure_h.entry.encode(entry) == cy_h.entry.encode(entry)


# MARK: CBOR (§2.6)

CBOR_VECTORS: list[tuple[Any, str]] = [
    ({}, "b9 00 00"),
    ({"a": 1}, "b9 00 01 61 61 01"),
    (1700000000000, "fb 42 78 bc fe 56 80 00 00"),
    (1.5, "fb 3f f8 00 00 00 00 00 00"),
    (0, "00"),
    (23, "17"),
    (24, "18 18"),
    (65535, "19 ff ff"),
    (2**32 - 1, "1a ff ff ff ff"),
    (2**32, "fb 41 f0 00 00 00 00 00 00"),
    (-1, "20"),
    (-25, "38 18"),
    (-(2**31) - 1, "3a 80 00 00 00"),
    (-(2**32), "3a ff ff ff ff"),
    (2**53 + 1, "1b 00 20 00 00 00 00 00 01"),
    (-(2**64) + 1, "3b ff ff ff ff ff ff ff fe"),
    (-(2**64), "c3 48 ff ff ff ff ff ff ff ff"),
    (2**64, "c2 49 01 00 00 00 00 00 00 00 00"),
    (2.0, "02"),
    (-0.0, "00"),
    (b"\x01\x02", "d8 40 42 01 02"),
    (UNDEFINED, "f7"),
    (None, "f6"),
    (True, "f5"),
    (False, "f4"),
    ("a" * 24, "78 18" + "61" * 24),
    ([1, "x"], "82 01 61 78"),
    ({1: "a"}, "d9 01 03 a1 01 61 61"),
    ({"b": 1, "10": 2, "2": 3, "01": 4}, 'b9 00 04 61 "2" 03 62 "10" 02 61 "b" 01 62 "01" 04'),
    (datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), "c1 1a 5e 0b e1 00"),
]


@pytest.mark.parametrize(("value", "hexes"), CBOR_VECTORS, ids=[v for _, v in CBOR_VECTORS])
def test_cbor_vectors(value: Any, hexes: str) -> None:
    raw = h(hexes)
    assert encode_cbor(value) == raw
    decoded = decode_cbor(raw)
    assert encode_cbor(decoded) == raw
    if not isinstance(value, float):
        assert decoded == value or (decoded is UNDEFINED and value is UNDEFINED)


def test_cbor_sets_and_tags() -> None:
    assert decode_cbor(encode_cbor({1, 2})) == {1, 2}
    tagged = cbor2.CBORTag(27, ["Error", "boom"])
    assert encode_cbor(tagged) == h('d8 1b 82 65 "Error" 64 "boom"')
    assert decode_cbor(encode_cbor(tagged)).tag == 27
    nan = decode_cbor(encode_cbor(math.nan))
    assert math.isnan(nan)
    assert encode_cbor(math.inf) == h("fb 7f f0 00 00 00 00 00 00")
    with pytest.raises(EncodeError):
        encode_cbor(object())
    with pytest.raises(EncodeError):
        encode_cbor(datetime.datetime(2020, 1, 1))  # naive
    deep: list[Any] = []
    for _ in range(400):
        deep = [deep]
    with pytest.raises(EncodeError):
        encode_cbor(deep)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def _js(value: Any) -> Any:
    """What a value reads back as: integral floats in the safe range become ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, list):
        return [_js(v) for v in value]
    if isinstance(value, dict):
        return {k: _js(v) for k, v in value.items()}
    return value


@given(json_like)
def test_cbor_round_trip(value: Any) -> None:
    raw = encode_cbor(value)
    decoded = decode_cbor(raw)
    assert decoded == _js(value)
    assert encode_cbor(decoded) == raw
    # Any CBOR decoder reads it as the same value (the bytes are plain CBOR).
    assert _js(_untag(cbor2.loads(raw))) == _js(value)


def _untag(value: Any) -> Any:
    if isinstance(value, cbor2.CBORTag) and value.tag == 64:
        return value.value
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if isinstance(value, dict):
        return {k: _untag(v) for k, v in value.items()}
    return value


@given(json_like, st.booleans())
def test_cbor_reads_any_valid_encoding(value: Any, canonical: bool) -> None:
    # cbor2 writes other (valid) forms: short map headers, half/single floats, no tag 64.
    other = cbor2.dumps(value, canonical=canonical)
    assert decode_cbor(other) == _js(value)


@pytest.mark.parametrize(
    ("hexes", "value"),
    [
        ("9f 01 02 ff", [1, 2]),  # indefinite-length array
        ("bf 61 61 01 ff", {"a": 1}),  # indefinite-length map
        ("7f 61 61 61 62 ff", "ab"),  # indefinite-length text
        ("5f 41 01 41 02 ff", b"\x01\x02"),  # indefinite-length bytes
        ("f9 3c 00", 1),  # half float 1.0
        ("fa 3f c0 00 00", 1.5),  # single float
        ("b8 01 61 61 01", {"a": 1}),  # map with an 8-bit count
        ("d9 01 03 b9 00 01 01 61 61", {1: "a"}),  # tag 259 over a long-form map
        ("c2 41 05", 5),  # bignum tag
        ("d8 40 5f 41 01 ff", b"\x01"),
        ("1b 00 00 00 00 00 00 00 05", 5),  # a small BigInt
    ],
)
def test_cbor_reads_other_forms(hexes: str, value: Any) -> None:
    assert decode_cbor(h(hexes)) == value


@pytest.mark.parametrize("hexes", ["", "82 01", "01 02", "ff", "7b ff ff ff ff ff ff ff ff"])
def test_cbor_rejects_invalid(hexes: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_cbor(h(hexes))
    assert info.value.code == "invalid_workflow_data"

"""Differential tests against RivetKit's own workflow engine (npm @rivetkit/workflow-engine 2.3.19).

``tests/interop/workflow_dump.mjs`` runs workflows in Node with the engine's ``InMemoryDriver``
and prints the stored KV plus what the engine reads back from a store (its ``loadStorage``).

* TS -> Python: every key and value of stores holding every entry kind (steps with every kind
  of user value, loops with pruning, sleeps, queue waits with and without timeouts, rollback
  checkpoints and handlers, version checks, removed entries, joins, races, tries, retries,
  failures) decodes with our codec into what the engine itself reads, and re-encodes to the
  same bytes.
* Python -> TS: stores written by our codec (every kind, every enum value, random user
  values) are read by the engine into exactly what we wrote, and a history we wrote is
  *continued* by the engine: it replays our recorded results and runs the rest.

The tests skip only when node or tests/interop/node_modules is missing (``make test``
installs it), and fail instead under CI.
"""

from __future__ import annotations

import math
import random
from typing import Any

import cbor2
import pytest
from workflow_interop import (
    KIND_NAMES,
    T0,
    Store,
    normalized,
    py_view,
    run_node,
    tag,
)

from rivetkit.protocol.workflow_engine import codec, keys
from rivetkit.protocol.workflow_engine.cbor import UNDEFINED, decode_cbor, encode_cbor
from rivetkit.protocol.workflow_engine.keys import Field
from rivetkit.protocol.workflow_engine.types import (
    BranchStatus,
    BranchStatusType,
    EntryKind,
    EntryMetadata,
    EntryStatus,
    JoinEntry,
    LoopEntry,
    MessageEntry,
    RaceEntry,
    RemovedEntry,
    RollbackCheckpointEntry,
    SleepEntry,
    SleepState,
    StepEntry,
    VersionCheckEntry,
    WorkflowStateText,
)

# MARK: TS -> Python


@pytest.fixture(scope="module")
def ts_stores() -> list[dict[str, Any]]:
    return run_node("dump")


def _cbor_fields(kind: EntryKind) -> list[bytes]:
    if isinstance(kind, StepEntry):
        return [kind.output] if kind.output is not None else []
    if isinstance(kind, LoopEntry):
        return [kind.state] + ([kind.output] if kind.output is not None else [])
    if isinstance(kind, MessageEntry):
        return [kind.message_data]
    if isinstance(kind, (JoinEntry, RaceEntry)):
        return [b.output for b in kind.branches.values() if b.output is not None]
    return []


def test_ts_values_round_trip(ts_stores: list[dict[str, Any]]) -> None:
    """Every TS-written key and value decodes and re-encodes to the same bytes."""
    checked = 0
    for store in ts_stores:
        for k_hex, v_hex in store["kv"]:
            key, value = bytes.fromhex(k_hex), bytes.fromhex(v_hex)
            parsed = keys.parse_key(key)
            assert not isinstance(parsed, keys.OtherKey), (store["name"], k_hex)
            assert keys.pack(keys.unpack(key)) == key
            if isinstance(parsed, keys.NameKey):
                assert keys.name_key(parsed.name_index) == key
                assert codec.encode_name(codec.decode_name(value)) == value
            elif isinstance(parsed, keys.HistoryKey):
                entry = codec.decode_entry(value)
                assert keys.history_key(entry.location) == key
                assert codec.encode_entry(entry) == value
                for raw in _cbor_fields(entry.kind):
                    assert encode_cbor(decode_cbor(raw)) == raw, (store["name"], raw.hex())
            elif isinstance(parsed, keys.MetadataKey):
                assert keys.metadata_key(parsed.entry_id) == key
                assert codec.encode_entry_metadata(codec.decode_entry_metadata(value)) == value
            else:
                assert isinstance(parsed, keys.WorkflowKey)
                assert keys.workflow_key(parsed.field) == key
                if parsed.field is Field.STATE:
                    assert codec.encode_state(codec.decode_state(value)) == value
                elif parsed.field is Field.ERROR:
                    assert codec.encode_error(codec.decode_error(value)) == value
                else:
                    assert encode_cbor(decode_cbor(value)) == value
            checked += 1
    assert checked > 100


def test_ts_stores_read_as_the_engine_reads_them(ts_stores: list[dict[str, Any]]) -> None:
    for store in ts_stores:
        assert normalized(py_view(store["kv"])) == normalized(store["view"]), store["name"]


def test_ts_stores_cover_every_kind(ts_stores: list[dict[str, Any]]) -> None:
    entries = [e for store in ts_stores for e in py_view(store["kv"])["entries"]]
    assert {e["type"] for e in entries} == set(KIND_NAMES.values())
    metadata = [m for store in ts_stores for m in py_view(store["kv"])["metadata"].values()]
    assert {m["status"] for m in metadata} >= {"completed", "failed", "exhausted"}
    assert any("rollbackCompletedAt" in m for m in metadata)
    assert any("rollbackError" in m for m in metadata)
    sleeps = {e["data"]["state"] for e in entries if e["type"] == "sleep"}
    assert sleeps == {"pending", "completed", "interrupted"}
    branches = {
        b["status"]
        for e in entries
        if e["type"] in ("join", "race")
        for b in e["data"]["branches"].values()
    }
    assert branches >= {"completed", "failed", "running", "cancelled"}
    states = {py_view(store["kv"])["state"] for store in ts_stores}
    assert states >= {"completed", "failed", "rolling_back", "sleeping"}
    every_kind = next(s for s in ts_stores if s["name"] == "every_kind")
    loop_keys = [
        e["key"] for e in py_view(every_kind["kv"])["entries"] if e["key"].startswith("L/")
    ]
    assert loop_keys == ["L/~3/x", "L/~4/x"]  # iterations 0..2 were pruned


# MARK: Python -> TS


SAMPLE_VALUES: list[Any] = [
    "hi",
    "ünïcødé ✓ \u0000 nul",
    0,
    -1,
    23,
    2**32 - 1,
    2**32,
    -(2**32) - 1,
    1_700_000_000_000,
    2**53,
    2**53 + 1,
    -(2**60),
    2**70,
    1.5,
    -0.25,
    1e300,
    math.inf,
    None,
    True,
    b"\x00\x01\xff",
    [1, "two", [3.5, None]],
    {"b": 1, "2": "two", "a": {"nested": [True]}},
    {1: "one", 2: "two"},
    {3, 4},
]


def _every_kind_store() -> Store:
    s = Store()
    for i, value in enumerate(SAMPLE_VALUES):
        s.step(f"value{i}", output=value)
    s.step("void")
    s.step("failed-once", output="ok", error="Error: flaky")
    loop_meta = EntryMetadata(EntryStatus.COMPLETED, None, 0, 0, T0, T0, None, None)
    s.entry(("L",), LoopEntry(encode_cbor({"n": 2}), 2, encode_cbor("out")), loop_meta)
    s.step("L", ("L", 0), "x", output=0)
    s.step("L", ("L", 1), "x", output=1)
    s.entry(("plain",), LoopEntry(encode_cbor(UNDEFINED), 0, None))
    for state in SleepState:
        s.entry((f"sleep-{state.name}",), SleepEntry(T0 + state, state))
    s.entry(("wait:count",), MessageEntry("job|other:count", encode_cbor(1)))
    record = codec.QueueMessageRecord("42", "job", {"v": [1, 2]}, T0, True)
    s.entry(("wait:0",), MessageEntry("job", codec.encode_queue_message(record)))
    s.entry(("bare",), MessageEntry("raw", encode_cbor("just a body")))
    s.entry(("cp",), RollbackCheckpointEntry("cp"))
    statuses = {
        status.name.lower(): BranchStatus(
            status,
            encode_cbor(status.name) if status is BranchStatusType.COMPLETED else None,
            "Error: x" if status is BranchStatusType.FAILED else None,
        )
        for status in BranchStatusType
    }
    s.entry(("j",), JoinEntry({"2": statuses["completed"], **statuses}))
    s.entry(("r",), RaceEntry("completed", statuses))
    s.entry(("r2",), RaceEntry(None, {"a": statuses["pending"]}))
    s.entry(("gone",), RemovedEntry("step", "gone"))
    s.entry(("gone2",), RemovedEntry("loop", None))
    s.entry(("v",), VersionCheckEntry(1, 3))
    for status in EntryStatus:
        meta = EntryMetadata(
            status,
            f"error {status.name}"
            if status in (EntryStatus.FAILED, EntryStatus.EXHAUSTED)
            else None,
            int(status),
            T0 + 1,
            T0,
            T0 + 2 if status is EntryStatus.COMPLETED else None,
            T0 + 3 if status is EntryStatus.COMPLETED else None,
            "refund failed" if status is EntryStatus.EXHAUSTED else None,
        )
        s.entry((f"meta-{status.name}",), StepEntry(None, None), meta)
    s.field(Field.STATE, codec.encode_state(WorkflowStateText.COMPLETED))
    s.field(Field.OUTPUT, encode_cbor({"done": True, "values": SAMPLE_VALUES[:6]}))
    s.field(Field.INPUT, encode_cbor(UNDEFINED))
    return s


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    leaves: list[Any] = [
        None,
        UNDEFINED,
        rng.random() < 0.5,
        rng.randint(-(2**31), 2**31),
        rng.randint(-(2**70), 2**70),
        rng.randint(0, 2**53),
        rng.uniform(-1e9, 1e9),
        "".join(
            chr(rng.choice([rng.randint(32, 126), rng.randint(160, 0xD7FF)]))
            for _ in range(rng.randint(0, 8))
        ),
        bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 5))),
    ]
    if depth >= 3 or rng.random() < 0.5:
        return rng.choice(leaves)
    shape = rng.randrange(4)
    if shape == 0:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if shape == 1:
        names = [
            rng.choice(["a", "b", "0", "7", "10", "x y", "é"]) for _ in range(rng.randint(0, 4))
        ]
        return {name: _random_value(rng, depth + 1) for name in names}
    if shape == 2:
        return {rng.randint(0, 9): _random_value(rng, depth + 1) for _ in range(rng.randint(1, 3))}
    return {rng.randint(0, 100) for _ in range(rng.randint(0, 4))}


def _random_store(seed: int) -> Store:
    rng = random.Random(seed)
    s = Store()
    for i in range(60):
        path: tuple[str | tuple[str, int], ...] = (f"n{rng.randrange(12)}",)
        if rng.random() < 0.3:
            path = ("loop", ("loop", rng.randrange(5)), *path)
        choice = rng.randrange(4)
        if choice == 0:
            s.step(*path, f"s{i}", output=_random_value(rng))
        elif choice == 1:
            s.entry((*path, f"m{i}"), MessageEntry(f"q{i}", encode_cbor(_random_value(rng))))
        elif choice == 2:
            out = encode_cbor(_random_value(rng))
            branch = BranchStatus(BranchStatusType.COMPLETED, out, None)
            s.entry((*path, f"j{i}"), JoinEntry({"x": branch, str(i): branch}))
        else:
            state = encode_cbor(_random_value(rng))
            s.entry((*path, f"l{i}"), LoopEntry(state, rng.randrange(9), None))
    return s


def test_python_stores_read_by_ts() -> None:
    stores = {"every_kind": _every_kind_store()}
    stores.update({f"random{seed}": _random_store(seed) for seed in range(4)})
    for state in WorkflowStateText:
        s = Store()
        s.step("only", output=state.value)
        s.field(Field.STATE, codec.encode_state(state))
        if state is WorkflowStateText.FAILED:
            error = codec.SerializedError(
                "StepExhaustedError", "boom", "stack", {"stepName": "only"}
            )
            s.field(Field.ERROR, codec.encode_error(error))
        stores[f"state-{state.value}"] = s
    histories = [{"name": name, "kv": s.pairs()} for name, s in stores.items()]
    results = {r["name"]: r for r in run_node("load", {"histories": histories})}
    for history in histories:
        result = results[history["name"]]
        assert "error" not in result, (history["name"], result)
        assert normalized(result["view"]) == normalized(py_view(history["kv"])), history["name"]


def test_ts_rejects_what_we_reject() -> None:
    s = Store()
    s.field(Field.STATE, b"done")
    [result] = run_node("load", {"histories": [{"name": "bad-state", "kv": s.pairs()}]})
    assert result["error"] == "Invalid workflow state: done"
    with pytest.raises(Exception, match="Invalid workflow state: done"):
        py_view(s.pairs())


def _resume_history() -> Store:
    """The first part of the ``resume`` workflow's history (workflow_dump.mjs), as ours."""
    s = Store()
    # Names are registered in another order than the TS engine would use: indexes resolve
    # through the registry, so the engine must not care.
    s.loc("after-unused", "r", "j")
    s.step("greet", output="py-greet")
    loop_meta = EntryMetadata(EntryStatus.PENDING, None, 0, 0, T0, None, None, None)
    s.entry(("L",), LoopEntry(encode_cbor(2), 1, None), loop_meta)
    s.step("L", ("L", 0), "x", output="py-0")
    s.entry(("nap",), SleepEntry(T0 + 3_600_000, SleepState.COMPLETED))
    s.entry(("cp",), RollbackCheckpointEntry("cp"))
    s.entry(("v",), VersionCheckEntry(2, 2))
    s.step("old", output="from the old code")
    s.entry(("wait:count",), MessageEntry("job:count", encode_cbor(1)))
    record = codec.QueueMessageRecord("7", "job", {"v": "py-job"}, T0, False)
    s.entry(("wait:0",), MessageEntry("job", codec.encode_queue_message(record)))
    s.entry(("timed:deadline",), SleepEntry(T0, SleepState.COMPLETED))
    s.entry(("timed:count",), MessageEntry("never:count", encode_cbor(0)))
    pending = BranchStatus(BranchStatusType.PENDING, None, None)
    done = BranchStatus(BranchStatusType.COMPLETED, encode_cbor("py-a"), None)
    s.entry(("j",), JoinEntry({"a": done, "b": pending}))
    s.step("j", "a", "sa", output="py-a")
    fast = BranchStatus(BranchStatusType.COMPLETED, encode_cbor("py-fast"), None)
    slow = BranchStatus(BranchStatusType.CANCELLED, None, None)
    s.entry(("r",), RaceEntry("fast", {"fast": fast, "slow": slow}))
    s.step("r", "fast", "f", output="py-fast")
    s.field(Field.STATE, codec.encode_state(WorkflowStateText.SLEEPING))
    s.field(Field.INPUT, encode_cbor(UNDEFINED))
    return s


def test_python_history_continued_by_ts() -> None:
    ours = _resume_history()
    kv = ours.pairs()
    [run] = run_node("continue", {"runs": [{"name": "resume", "workflow": "resume", "kv": kv}]})
    assert run["result"]["state"] == "completed", run["result"]
    expected = {
        "greet": "py-greet",  # replayed from our entry, not re-run
        "total": "ts-2|2",  # resumed at our iteration 1 with our state 2, then broke
        "version": 2,  # our recorded version, though the code says latest 3
        "job": {"v": "py-job"},
        "timed": 0,
        "joined": {"a": "py-a", "b": "ts-b"},  # our completed branch kept, the pending one ran
        "raced": {"winner": "fast", "value": "py-fast"},
        "after": "ts-after",
    }
    assert run["result"]["output"] == expected
    # The store the engine left behind reads with our codec, and round-trips byte for byte.
    final = py_view(run["kv"])
    assert normalized(final) == normalized(run["view"])
    assert final["state"] == "completed" and final["output"] == expected
    assert final["names"][: len(ours.registry.names)] == ours.registry.names
    by_key = {e["key"]: e for e in final["entries"]}
    assert by_key["greet"]["data"] == {"output": "py-greet"}
    assert by_key["L/~1/x"]["data"] == {"output": "ts-2"}
    assert "L/~2/x" not in by_key
    assert by_key["after"]["data"] == {"output": "ts-after"}
    assert by_key["j"]["data"]["branches"]["b"] == {"status": "completed", "output": "ts-b"}
    for k_hex, v_hex in run["kv"]:
        parsed = keys.parse_key(bytes.fromhex(k_hex))
        if isinstance(parsed, keys.HistoryKey):
            assert codec.encode_entry(codec.decode_entry(bytes.fromhex(v_hex))).hex() == v_hex


def test_cbor2_agrees_with_the_engine_on_our_values(ts_stores: list[dict[str, Any]]) -> None:
    """A generic CBOR reader also reads the engine's bytes (they are plain CBOR)."""
    every_kind = next(s for s in ts_stores if s["name"] == "every_kind")
    for k_hex, v_hex in every_kind["kv"]:
        if isinstance(keys.parse_key(bytes.fromhex(k_hex)), keys.HistoryKey):
            entry = codec.decode_entry(bytes.fromhex(v_hex))
            for raw in _cbor_fields(entry.kind):
                cbor2.loads(raw)


EDGE_NUMBERS: list[Any] = [
    2**31 - 1, 2**31, 2**32 - 1, 2**32, -(2**31), -(2**31) - 1, -(2**32), -(2**32) - 1,
    2**53, 2**53 + 1, -(2**53), -(2**53) - 1, 2**64 - 1, 2**64, -(2**64) + 1, -(2**64), 2**100,
    0.5, -1.5, 2.0, -0.0, 4294967295.0, 4294967296.0, -4294967296.0, -4294967297.0, 1e20,
    1e-310, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan,
]  # fmt: skip


def test_our_cbor_is_cbor_x_bytes() -> None:
    """Our writer gives the bytes cbor-x (the engine's CBOR) gives for the same JS value."""
    rng = random.Random(7)
    values = SAMPLE_VALUES + EDGE_NUMBERS + [_random_value(rng) for _ in range(400)]
    theirs: list[Any] = run_node("cbor", {"values": [tag(v) for v in values]})
    assert len(theirs) == len(values)
    for value, hexes in zip(values, theirs, strict=True):
        assert encode_cbor(value).hex() == hexes, value

"""Queue key scanning twins: FIFO order, name filter, bad keys and values."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TWIN_IDS, both_twins, twin
from rivetkit.errors import ProtocolError, RivetError
from rivetkit.protocol.actor_persist import QUEUE_MESSAGE, QueueMessage
from rivetkit.runtime import _queuescan_py


@pytest.fixture(params=TWIN_IDS)
def qs(request: pytest.FixtureRequest) -> ModuleType:
    """The queue-scan twin under test: ``py`` (pure) or ``cy`` (compiled)."""
    return twin(request.param, "_queuescan", _queuescan_py)


def message(name: str, n: int = 0) -> QueueMessage:
    return QueueMessage(name, bytes([0x18, n % 24]), 1700000000000 + n, None, None, None, None)


def test_key_layout(qs: ModuleType) -> None:
    # runtime spec §2.6: queue key for id 1.
    assert qs.message_key(1).hex() == "0501020000000000000001"
    assert qs.message_id(bytes.fromhex("0501020000000000000001")) == 1
    assert qs.message_id(qs.message_key((1 << 64) - 1)) == (1 << 64) - 1
    with pytest.raises(ValueError):
        qs.message_key(-1)


@pytest.mark.parametrize(
    "key", ["", "05", "050102", "0501020000000000000000" + "01", "0601020000000000000001"]
)
def test_bad_keys(qs: ModuleType, key: str) -> None:
    with pytest.raises(RivetError) as info:
        qs.message_id(bytes.fromhex(key))
    assert (info.value.group, info.value.code) == ("queue", "invalid_message_key")


def test_scan_filters_and_limits(qs: ModuleType) -> None:
    names = ["jobs", "mail", "jobs", "other", "jobs"]
    entries = [
        (qs.message_key(i + 1), QUEUE_MESSAGE.encode(message(n, i))) for i, n in enumerate(names)
    ]
    everything = qs.scan(entries, None, 100, QUEUE_MESSAGE.decode)
    assert [i for i, _ in everything] == [1, 2, 3, 4, 5]
    jobs = qs.scan(entries, {"jobs"}, 2, QUEUE_MESSAGE.decode)
    assert [(i, m.name) for i, m in jobs] == [(1, "jobs"), (3, "jobs")]
    assert qs.scan(entries, {"mail", "other"}, 10, QUEUE_MESSAGE.decode)[1][0] == 4
    assert qs.scan(entries, None, 0, QUEUE_MESSAGE.decode) == []
    assert qs.peek_name(entries[1][1]) == "mail"


@pytest.mark.parametrize("value", ["", "0400", "0300016a", "04000a6a6f62", "040002c328"])
def test_bad_values(qs: ModuleType, value: str) -> None:
    with pytest.raises(ProtocolError):
        qs.peek_name(bytes.fromhex(value))


@settings(max_examples=200)
@given(
    names=st.lists(st.sampled_from(["a", "bb", "ccc", "é"]), max_size=30),
    wanted=st.none() | st.frozensets(st.sampled_from(["a", "bb", "é", "zz"])),
    limit=st.integers(min_value=0, max_value=40),
)
def test_twins_agree(names: list[str], wanted: frozenset[str] | None, limit: int) -> None:
    pure, compiled = _both()
    entries = [
        (pure.message_key(i + 1), QUEUE_MESSAGE.encode(message(n, i))) for i, n in enumerate(names)
    ]
    expected = [
        (i + 1, message(n, i)) for i, n in enumerate(names) if wanted is None or n in wanted
    ][:limit]
    assert pure.scan(entries, wanted, limit, QUEUE_MESSAGE.decode) == expected
    assert compiled.scan(entries, wanted, limit, QUEUE_MESSAGE.decode) == expected


# -- differential: the two twins answer the same, bytes for bytes and error for error ---------


def _outcome(fn: object, *args: object) -> tuple[str, object]:
    try:
        return ("ok", fn(*args))  # type: ignore[operator]
    except RivetError as exc:
        return ("error", (type(exc).__name__, exc.group, exc.code))
    except ValueError as exc:
        return ("error", (type(exc).__name__, None, None))


def _both() -> tuple[ModuleType, ModuleType]:
    return both_twins("_queuescan", _queuescan_py)


@settings(max_examples=300)
@given(ident=st.integers(min_value=-5, max_value=(1 << 64) + 5))
def test_twins_agree_on_keys(ident: int) -> None:
    py, cy = _both()
    assert _outcome(py.message_key, ident) == _outcome(cy.message_key, ident)
    if 0 <= ident < 1 << 64:
        key = py.message_key(ident)
        assert py.message_id(key) == cy.message_id(key) == ident
        # Big-endian: byte order is id order, so a prefix scan is FIFO.
        if ident:
            assert py.message_key(ident - 1) < key


@settings(max_examples=500)
@given(data=st.binary(max_size=24))
def test_twins_agree_on_arbitrary_bytes(data: bytes) -> None:
    py, cy = _both()
    assert _outcome(py.message_id, data) == _outcome(cy.message_id, data)
    assert _outcome(py.peek_name, data) == _outcome(cy.peek_name, data)
    prefixed = b"\x04\x00" + data
    assert _outcome(py.peek_name, prefixed) == _outcome(cy.peek_name, prefixed)


@settings(max_examples=200)
@given(name=st.text(max_size=200), n=st.integers(min_value=0, max_value=1000))
def test_twins_agree_on_names(name: str, n: int) -> None:
    py, cy = _both()
    value = QUEUE_MESSAGE.encode(message(name, n))
    assert py.peek_name(value) == cy.peek_name(value) == name
    # Every truncation fails the same way in both (or still reads the name).
    for cut in range(0, min(len(value), 2 + 3 + len(name.encode())) + 1):
        assert _outcome(py.peek_name, value[:cut]) == _outcome(cy.peek_name, value[:cut])


def test_twins_agree_on_bad_entries_and_buffers() -> None:
    py, cy = _both()
    good = [(py.message_key(i), QUEUE_MESSAGE.encode(message("a", i))) for i in (1, 2)]
    bad_key = [*good, (b"\x05\x01\x02\x00", QUEUE_MESSAGE.encode(message("a")))]
    bad_value = [*good, (py.message_key(3), b"\x03\x00\x01a")]
    for entries in (bad_key, bad_value):
        assert _outcome(py.scan, entries, None, 10, QUEUE_MESSAGE.decode) == _outcome(
            cy.scan, entries, None, 10, QUEUE_MESSAGE.decode
        )
    # The limit stops the scan before a bad entry, in both.
    assert py.scan(bad_key, None, 2, bytes) == cy.scan(bad_key, None, 2, bytes)
    assert py.scan(good, None, -1, bytes) == cy.scan(good, None, -1, bytes) == []
    # bytearray and memoryview inputs read as bytes.
    key = bytearray(py.message_key(9))
    value = bytearray(QUEUE_MESSAGE.encode(message("mv")))
    for twin_module in (py, cy):
        assert twin_module.message_id(key) == twin_module.message_id(memoryview(key)) == 9
        assert twin_module.peek_name(value) == twin_module.peek_name(memoryview(value)) == "mv"


@settings(max_examples=100)
@given(names=st.lists(st.sampled_from(["a", "bb", "é", ""]), max_size=20))
def test_encode_with_one_twin_decode_with_the_other(names: list[str]) -> None:
    py, cy = _both()
    for writer, reader in ((py, cy), (cy, py)):
        entries = [
            (writer.message_key(i + 1), QUEUE_MESSAGE.encode(message(n, i)))
            for i, n in enumerate(names)
        ]
        assert [i for i, _ in reader.scan(entries, None, 100, bytes)] == list(
            range(1, len(names) + 1)
        )
        assert [reader.peek_name(v) for _, v in entries] == names

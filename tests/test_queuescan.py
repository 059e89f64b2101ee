"""Queue key scanning twins: FIFO order, name filter, bad keys and values."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rivetkit import _twins
from rivetkit.errors import ProtocolError, RivetError
from rivetkit.protocol.actor_persist import QUEUE_MESSAGE, QueueMessage
from rivetkit.runtime import _queuescan_py


def _compiled() -> ModuleType | None:
    try:
        return importlib.import_module("rivetkit._speedups._queuescan")
    except ImportError:
        return None


@pytest.fixture(params=["py", "cy"])
def qs(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "py":
        return _queuescan_py
    module = _compiled()
    if module is None:
        if _twins.SPEEDUPS_REQUIRED:
            pytest.fail("RIVETKIT_REQUIRE_SPEEDUPS=1 but rivetkit._speedups._queuescan is missing")
        pytest.skip("compiled twin rivetkit._speedups._queuescan is not built")
    return module


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
    compiled = _compiled()
    if compiled is None:
        if _twins.SPEEDUPS_REQUIRED:
            pytest.fail("RIVETKIT_REQUIRE_SPEEDUPS=1 but rivetkit._speedups._queuescan is missing")
        pytest.skip("compiled twin not built")
    entries = [
        (_queuescan_py.message_key(i + 1), QUEUE_MESSAGE.encode(message(n, i)))
        for i, n in enumerate(names)
    ]
    expected = [
        (i + 1, message(n, i)) for i, n in enumerate(names) if wanted is None or n in wanted
    ][:limit]
    assert _queuescan_py.scan(entries, wanted, limit, QUEUE_MESSAGE.decode) == expected
    assert compiled.scan(entries, wanted, limit, QUEUE_MESSAGE.decode) == expected

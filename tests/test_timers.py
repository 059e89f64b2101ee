"""Timer bookkeeping twins: same answers, cheap re-arm and cancel."""

from __future__ import annotations

import gc
import random
import weakref
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TWIN_IDS, both_twins, compiled_module, twin
from rivetkit import _twins
from rivetkit.runtime import _timers_py


@pytest.fixture(params=TWIN_IDS)
def timers(request: pytest.FixtureRequest) -> ModuleType:
    """The timer-queue twin under test: ``py`` (pure) or ``cy`` (compiled)."""
    return twin(request.param, "_timers", _timers_py)


def test_basic(timers: ModuleType) -> None:
    q = timers.TimerQueue()
    assert q.next_deadline() is None
    assert q.pop_due(100.0) == []
    q.arm("a", 5.0)
    q.arm("b", 3.0)
    q.arm("c", 7.0)
    assert len(q) == 3 and "a" in q
    assert q.next_deadline() == 3.0
    q.arm("b", 9.0)  # re-arm later
    assert q.deadline("b") == 9.0
    assert q.next_deadline() == 5.0
    assert q.cancel("a") is True
    assert q.cancel("a") is False
    assert q.next_deadline() == 7.0
    assert q.pop_due(8.0) == ["c"]
    assert q.pop_due(8.0) == []
    assert q.pop_due(9.0) == ["b"]
    assert len(q) == 0 and q.next_deadline() is None


def test_same_deadline_keeps_arm_order(timers: ModuleType) -> None:
    q = timers.TimerQueue()
    for key in ("x", "y", "z"):
        q.arm(key, 1.0)
    assert q.pop_due(1.0) == ["x", "y", "z"]


def test_rearm_with_the_same_deadline_object_moves_the_key_last(timers: ModuleType) -> None:
    # Each arm counts on its own, even with the very same float object: the latest arm
    # decides the key's place among equal deadlines, before and after a compaction.
    when = 1.0
    q = timers.TimerQueue()
    q.arm("x", when)
    q.arm("y", when)
    q.arm("x", when)
    assert q.deadline("x") == 1.0
    assert q.pop_due(when) == ["y", "x"]
    filler = [object() for _ in range(40)]
    for key in ("a", "b", "c"):
        q.arm(key, when)
    q.arm("a", when)
    for _ in range(3):  # stale entries now outnumber live ones: compacted
        for key in filler:
            q.arm(key, 5.0)
    q.arm("b", when)
    assert q.pop_due(when) == ["c", "a", "b"]
    assert len(q) == len(filler)


def test_many_rearms_stay_small(timers: ModuleType) -> None:
    q = timers.TimerQueue()
    keys = [object() for _ in range(100)]
    for round_ in range(1000):
        q.arm(keys[round_ % 100], float(round_))
    assert len(q) == 100
    due = q.pop_due(10_000.0)
    assert len(due) == 100 and set(map(id, due)) == set(map(id, keys))


class _Key:
    """A key that can be watched with a weak reference."""


def test_departed_keys_are_not_kept_alive(timers: ModuleType) -> None:
    q = timers.TimerQueue()
    keys = [_Key() for _ in range(300)]
    refs = [weakref.ref(k) for k in keys]
    for i, key in enumerate(keys):
        q.arm(key, float(i))
        q.arm(key, float(i) + 0.5)  # re-armed: a stale entry each
    live = keys[250:]
    for key in keys[:250]:
        q.cancel(key)
    del keys, key
    gc.collect()
    kept = sum(ref() is not None for ref in refs)
    assert kept <= max(64, 2 * len(live))  # stale entries stay bounded by the live ones
    assert q.pop_due(1e9) == live
    del live
    gc.collect()
    assert all(ref() is None for ref in refs)  # all gone: nothing left holds them
    assert len(q) == 0 and q.next_deadline() is None
    q.arm("again", 1.0)  # still usable after being emptied
    assert q.pop_due(2.0) == ["again"]


class _Model:
    def __init__(self) -> None:
        self.deadlines: dict[Any, tuple[float, int]] = {}
        self.seq = 0

    def arm(self, key: Any, when: float) -> None:
        self.seq += 1
        self.deadlines[key] = (when, self.seq)

    def pop_due(self, now: float) -> list[Any]:
        due = sorted((v, k) for k, v in self.deadlines.items() if v[0] <= now)
        for _, key in due:
            del self.deadlines[key]
        return [key for _, key in due]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["arm", "cancel", "pop", "next"]),
        st.integers(min_value=0, max_value=20),
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=200,
)


@settings(max_examples=200)
@given(ops=OPS)
def test_matches_model_and_twins_agree(ops: list[tuple[str, int, float]]) -> None:
    # The pure twin always runs against the model; the compiled one too when built (a
    # missing build fails under RIVETKIT_REQUIRE_SPEEDUPS=1).
    queues = [_timers_py.TimerQueue()]
    compiled = compiled_module("_timers")
    if compiled is not None or _twins.SPEEDUPS_REQUIRED:
        queues.append(twin("cy", "_timers", _timers_py).TimerQueue())
    model = _Model()
    for op, key, value in ops:
        if op == "arm":
            model.arm(key, value)
            for q in queues:
                q.arm(key, value)
        elif op == "cancel":
            expected = model.deadlines.pop(key, None) is not None
            assert [q.cancel(key) for q in queues] == [expected] * len(queues)
        elif op == "pop":
            expected_due = model.pop_due(value)
            assert [q.pop_due(value) for q in queues] == [expected_due] * len(queues)
        else:
            expected_next = min((v[0] for v in model.deadlines.values()), default=None)
            assert [q.next_deadline() for q in queues] == [expected_next] * len(queues)
        assert [len(q) for q in queues] == [len(model.deadlines)] * len(queues)


def test_random_load_against_each_other() -> None:
    pure, compiled = both_twins("_timers", _timers_py)
    rng = random.Random(7)
    a, b = pure.TimerQueue(), compiled.TimerQueue()
    now = 0.0
    for _ in range(20_000):
        key = rng.randrange(500)
        roll = rng.random()
        if roll < 0.7:
            when = now + rng.random() * 10
            a.arm(key, when)
            b.arm(key, when)
        elif roll < 0.85:
            assert a.cancel(key) == b.cancel(key)
        else:
            now += rng.random()
            assert a.pop_due(now) == b.pop_due(now)
        assert a.next_deadline() == b.next_deadline()

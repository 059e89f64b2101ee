"""A trace chunk is sealed when it is ``chunk_age`` seconds old, through one loop timer for
every recorder of the loop (rivetkit/traces/aging.py): never before its age, at most
``SLOT_WIDTH`` after it; a seal or a close takes the recorder out of its slot at once (nothing
keeps a stopped actor's recorder until its deadline). Over both twins of the recording half."""

from __future__ import annotations

import asyncio
import gc
from types import ModuleType
from typing import Any

import pytest
from trace_helpers import MemoryStore

from conftest import TWIN_IDS, LoopClock, twin
from rivetkit.traces import aging
from rivetkit.traces.aging import SLOT_WIDTH, ChunkAges, ages_of
from rivetkit.traces.recorder import TraceStorage
from rivetkit.traces.schema import CHUNK

AGE = 2.0


@pytest.fixture(params=TWIN_IDS)
def spans(request: pytest.FixtureRequest) -> ModuleType:
    """The recording half under test: ``py`` (pure) or ``cy`` (compiled)."""
    return twin(request.param, "_spans", "rivetkit.traces._spans_py")


def recorder_on(spans: ModuleType, store: MemoryStore, age: float = AGE) -> Any:
    """The real recorder (sealing, storing) on ``spans``' recording half."""
    cls = type(f"Traces_{spans.__name__.rsplit('.', 1)[1]}", (TraceStorage, spans.SpanRecorder), {})
    return cls(store, chunk_age=age)


def _waiting(ages: ChunkAges, recorder: Any) -> bool:
    return any(recorder in slot for slot in ages._slots.values())


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_a_chunk_is_sealed_at_its_age_not_before(spans: ModuleType) -> None:
    with LoopClock() as clock:
        store = MemoryStore()
        recorder = recorder_on(spans, store)
        recorder.instant("action", "a")
        ages = ages_of(asyncio.get_running_loop(), AGE)
        assert recorder._age_slot is not None and _waiting(ages, recorder)
        await clock.advance(AGE - 0.01)
        assert recorder._records and store.writes == 0  # not old enough yet
        recorder.instant("action", "b")  # the same chunk: no second deadline
        assert len(recorder._records) == 2 and len(ages) == 1
        await clock.advance(0.01 + SLOT_WIDTH)
        await _settle()
        assert not recorder._records and recorder._age_slot is None and len(ages) == 0
        assert store.writes == 1
        (value,) = store.data.values()
        assert len(CHUNK.decode(value).records) == 4  # two spans: start and end each
        recorder.instant("action", "c")  # a new chunk: a new deadline from now
        assert _waiting(ages, recorder)
        await recorder.close()
        assert recorder._age_slot is None and not _waiting(ages, recorder)


@pytest.mark.asyncio
async def test_recorders_share_one_loop_timer(
    spans: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    armed: list[int] = []
    real_arm = ChunkAges._arm

    def arm(self: ChunkAges, number: int) -> None:
        armed.append(number)
        real_arm(self, number)

    monkeypatch.setattr(ChunkAges, "_arm", arm)
    with LoopClock() as clock:
        # Just after a slot starts: what follows runs well within the slot (real time runs).
        await clock.advance(-clock.time() % SLOT_WIDTH + 0.01)
        store = MemoryStore()
        recorders = [recorder_on(spans, store, age=3.0) for _ in range(50)]
        for recorder in recorders:
            recorder.instant("action", "a")
        ages = ages_of(asyncio.get_running_loop(), 3.0)
        assert len(ages) == 50 and len(armed) == 1  # one slot, one timer
        await clock.advance(SLOT_WIDTH)
        late = [recorder_on(spans, store, age=3.0) for _ in range(10)]
        for recorder in late:
            recorder.instant("action", "a")
        assert len(ages) == 60 and len(armed) == 1  # a later slot waits behind the first
        await clock.advance(3.0)
        await _settle()
        assert len(armed) == 2  # the first slot's end armed the next one
        assert all(not r._records for r in recorders) and all(r._records for r in late)
        await clock.advance(SLOT_WIDTH)
        await _settle()
        assert len(ages) == 0 and all(not r._records for r in late)
        assert len(armed) == 2 and store.writes == 60


@pytest.mark.asyncio
async def test_a_seal_or_close_lets_go_of_the_recorder_at_once(spans: ModuleType) -> None:
    store = MemoryStore()
    ages = ages_of(asyncio.get_running_loop(), AGE)
    closed = recorder_on(spans, store)
    closed.instant("action", "a")
    flushed = recorder_on(spans, store)
    flushed.instant("action", "a")
    assert _waiting(ages, closed) and _waiting(ages, flushed)
    await closed.close()
    await flushed.flush()
    assert not _waiting(ages, closed) and not _waiting(ages, flushed)
    assert closed._age_slot is None and flushed._age_slot is None and len(ages) == 0
    # A chunk sealed by its size opens the next one in a later slot, never in two slots.
    small = recorder_on(spans, store)
    small.chunk_target = 1
    small.instant("action", "a")
    small.instant("action", "b")
    assert sum(small in slot for slot in ages._slots.values()) == 1
    await small.close()
    gc.collect()
    assert len(ages) == 0


@pytest.mark.asyncio
async def test_a_failing_seal_does_not_stop_the_others(spans: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        with LoopClock() as clock:
            store = MemoryStore()
            first, second = recorder_on(spans, store), recorder_on(spans, store)
            first.instant("action", "a")
            second.instant("action", "a")

            def broken() -> None:
                raise RuntimeError("boom")

            first._seal = broken
            await clock.advance(AGE + SLOT_WIDTH)
            await _settle()
            assert [str(c["exception"]) for c in reported] == ["boom"]
            assert not second._records and store.writes == 1
    finally:
        loop.set_exception_handler(None)


@pytest.mark.asyncio
async def test_each_loop_and_age_has_its_own_slots() -> None:
    loop = asyncio.get_running_loop()
    assert ages_of(loop, 1.0) is ages_of(loop, 1.0) is aging._last
    assert ages_of(loop, 2.0) is not ages_of(loop, 1.0)
    assert ages_of(loop, 1.0).age == 1.0


def test_no_running_loop_no_deadline(spans: ModuleType) -> None:
    recorder = recorder_on(spans, MemoryStore())
    recorder.instant("action", "a")
    assert recorder._records and recorder._age_slot is None

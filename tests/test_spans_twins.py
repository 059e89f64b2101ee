"""The span hot path's twins (``rivetkit.traces._spans_py`` and ``rivetkit._speedups._spans``)
behave the same: for the same calls and the same injected clock they give the same spans,
the same records, the same chunk bytes and the same stored KV.

Each recorder is the real one (:class:`rivetkit.traces.recorder.TraceStorage`, which seals
and stores) on one twin's :class:`SpanRecorder`; the script exercises nesting through the
context variable, failures, extra attributes, instant spans, a span ended twice, one ended
in another context, spans running across a seal, chunks sealed by size, a bucket change and
the bound on running spans.
"""

from __future__ import annotations

import asyncio
import contextvars
from types import ModuleType
from typing import Any

import pytest
from trace_helpers import MemoryStore

from conftest import TWIN_IDS, both_twins, twin
from rivetkit.errors import UserError
from rivetkit.traces.encode import encode_chunk
from rivetkit.traces.recorder import TraceStorage
from rivetkit.traces.wire import build_chunk

pytestmark = pytest.mark.asyncio
PURE = "rivetkit.traces._spans_py"
#: Just before an hour bucket ends, so the script crosses into the next bucket.
START_NS = (1_764_000_000 // 3600 * 3600 + 3599) * 1_000_000_000 - 400_000_000


class StepClock:
    """Epoch nanoseconds that advance 1 ms per read."""

    def __init__(self, start_ns: int) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


def recorder_on(spans: ModuleType, *, max_bytes: int = 4096) -> Any:
    """The real recorder (sealing, storing) on ``spans``' recording half, with fixed ids and
    a step clock."""
    cls = type(f"Traces_{spans.__name__.rsplit('.', 1)[1]}", (TraceStorage, spans.SpanRecorder), {})
    recorder = cls(MemoryStore(), max_bytes=max_bytes, clock_ns=StepClock(START_NS))
    recorder.id_base = 0xFFFF_FFFF_FFFF_FF00  # span ids wrap around 2**64 in the script
    recorder.trace_base = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    return recorder


def span_fields(span: Any) -> tuple[Any, ...]:
    """What the writer reads of a span."""
    error = span.error
    return (
        span.seq,
        span.trace_seq,
        span.parent_seq,
        span.span_id,
        span.trace_id,
        span.parent_id,
        span.start_ns,
        span.end_ns,
        span.info,
        span.extra,
        span.start_ref,
        None if error is None else (type(error).__name__, str(error)),
    )


def record_fields(entry: Any) -> Any:
    """A chunk record: an ended span, or ``(STARTED, span)``."""
    if type(entry) is tuple:
        return (entry[0], span_fields(entry[1]))
    return span_fields(entry)


async def script(recorder: Any, spans: ModuleType) -> list[Any]:
    """Drive ``recorder``; returns what was observed along the way."""
    seen: list[Any] = []
    outer = recorder.start("action", "outer")
    seen.append(spans.current_span() is outer)
    inner = recorder.start("hook", "on_wake", {"rivet.conn.id": "c1", "bad": object()})
    seen.append((inner.parent_seq, inner.trace_seq, spans.current_span() is inner))
    recorder.instant("queue.receive", "jobs", {"rivet.queue.count": 2})
    inner.fail(UserError("no way", code="refused"))
    inner.end()
    inner.end()  # a second end does nothing
    seen.append(spans.current_span() is outer)
    # Ended in another context than the one it started in: still recorded.
    other = contextvars.copy_context().run(recorder.start, "action", "elsewhere")
    other.end()
    long_running = recorder.start("schedule", "tick")
    for i in range(120):  # past the chunk target (max_bytes // 8): several seals
        span = recorder.start("action", f"a{i % 7}")
        if i % 11 == 0:
            span.error = ValueError(f"bad {i}")
        span.end()
    seen.append([s.seq for s in recorder.running()])
    recorder._seal(with_running=True)  # the running spans' starts are written
    seen.append([s.start_ref for s in recorder.running()])
    for _ in range(400):  # crosses the hour bucket
        recorder.end(recorder.start("action", "late"))
    long_running.end()
    outer.end()
    seen.append(spans.current_span())
    seen.append(recorder.current() is None)
    return seen


async def run_twin(
    spans: ModuleType,
) -> tuple[list[Any], list[Any], list[bytes], dict[bytes, bytes]]:
    """The script on one twin: observations, records, chunk bytes, stored KV."""
    recorder = recorder_on(spans)
    seen = await script(recorder, spans)
    sealed = list(recorder.pending)
    current = recorder.current()
    records = [[record_fields(e) for e in s.records] for s in sealed]
    chunks = [encode_chunk(recorder, s) for s in sealed]
    # The direct encoder agrees with the schema's encoder on every chunk.
    from rivetkit.traces.schema import CHUNK

    assert chunks == [CHUNK.encode(build_chunk(recorder, s)) for s in sealed]
    if current is not None:
        records.append([record_fields(e) for e in current.records])
    await recorder.close()
    return seen, records, chunks, dict(recorder.store.data)


async def test_twins_record_and_store_the_same() -> None:
    pure, compiled = both_twins("_spans", PURE)
    assert pure is not compiled
    py_result = await run_twin(pure)
    cy_result = await run_twin(compiled)
    seen, records, chunks, stored = py_result
    assert seen[0] is True and seen[1][0] == 1 and seen[2] is True
    assert len(chunks) > 3 and len(stored) > 3  # sealed by size, by bucket, by the flush
    assert cy_result[0] == seen
    assert cy_result[1] == records
    assert cy_result[2] == chunks
    assert cy_result[3] == stored
    # The empty records list every recorder with no chunk open shares was never added to.
    from rivetkit.traces import recorder as recorder_module

    for module in (pure, compiled):
        fresh = module.SpanRecorder()
        assert fresh._records == [] and fresh._records is module.SpanRecorder()._records
    assert recorder_module._NO_RECORDS == []


async def test_running_spans_bound_is_the_same() -> None:
    results = []
    for spans in both_twins("_spans", PURE):
        recorder = recorder_on(spans, max_bytes=1 << 20)
        started = [recorder.start("action", "x") for _ in range(10_003)]
        running = recorder.running()
        for span in reversed(started):  # the 3 oldest were forgotten: their end does nothing
            span.end()
        chunks = [*recorder.pending, recorder.current()]
        ended = sum(1 for chunk in chunks for entry in chunk.records if type(entry) is not tuple)
        results.append((len(running), running[0].seq, ended, recorder.running()))
        recorder.closed = True
    assert results[0] == results[1] == (10_000, 4, 10_000, [])


@pytest.fixture(params=TWIN_IDS)
def spans(request: pytest.FixtureRequest) -> ModuleType:
    """The span twin under test."""
    return twin(request.param, "_spans", PURE)


async def test_children_in_tasks(spans: ModuleType) -> None:
    recorder = recorder_on(spans)
    parent = recorder.start("action", "parent")

    async def child() -> tuple[Any, Any]:
        span = recorder.start("queue.receive", "jobs")
        span.end()
        return span.parent_seq, span.trace_seq

    assert await asyncio.create_task(child()) == (parent.seq, parent.seq)
    parent.end()
    assert spans.current_span() is None
    root = recorder.start("action", "root")
    assert root.parent_seq is None and root.trace_seq == root.seq and root.parent_id is None
    root.end()
    # A span of another recorder is not a parent across recorders.
    other = recorder_on(spans)
    outer = other.start("action", "outer")
    mine = recorder.start("action", "mine")
    assert mine.parent_seq is None
    mine.end()
    outer.end()
    recorder.closed = other.closed = True


async def test_clock_is_read_twice_per_span(spans: ModuleType) -> None:
    recorder = recorder_on(spans)
    clock = recorder.clock_ns
    before = clock.now
    span = recorder.start("action", "x")
    span.end()
    assert (span.start_ns, span.end_ns) == (before + 1_000_000, before + 2_000_000)
    recorder.closed = True


async def test_a_span_ends_in_the_recorder_that_started_it(spans: ModuleType) -> None:
    first, second = recorder_on(spans), recorder_on(spans)
    span = first.start("action", "x")
    second.end(span)
    assert first.running() == [] and second.running() == []
    assert list(first._records) == [span] and not second._records
    first.closed = second.closed = True


async def test_ids_bases_are_the_same() -> None:
    """``id_base`` is kept mod 2**64 and ``trace_base`` must be 8 bytes, in both twins (the
    compiled one keeps them as C integers: no objects per recorder); the bucket's end reads
    the same before and after a chunk opens."""
    pure, compiled = both_twins("_spans", PURE)
    seen = []
    for module in (pure, compiled):
        recorder = recorder_on(module)
        before = (recorder.id_base, recorder.trace_base, recorder._bucket_end_ns)
        recorder.id_base = 2**64 + 5
        masked = (recorder.id_base, recorder.span_id_of(1))
        recorder.id_base = -1
        wrapped = (recorder.id_base, recorder.span_id_of(1))
        errors = []
        for bad in (b"1234567", b"123456789", "12345678", None):
            with pytest.raises(ValueError, match="trace_base must be 8 bytes"):
                recorder.trace_base = bad
            errors.append(recorder.trace_base)
        recorder.trace_base = b"\xff" * 8
        fresh = module.SpanRecorder()
        fresh_values = (fresh.id_base, fresh.trace_base, fresh._bucket_end_ns)
        recorder.instant("action", "a")
        seen.append(
            (
                before,
                masked,
                wrapped,
                errors,
                recorder.trace_base,
                recorder.trace_id_of(2),
                fresh_values,
                recorder._bucket_end_ns,
            )
        )
    assert seen[0] == seen[1]
    assert seen[0][1] == (5, (6).to_bytes(8, "big")) and seen[0][2][0] == 2**64 - 1
    assert seen[0][6] == (0, bytes(8), 0) and seen[0][7] > 0


async def test_seed_sets_both_id_bases_alike() -> None:
    """``seed(bits)``: ``id_base`` the low 64 bits, ``trace_base`` the next 64 as big-endian
    bytes, in both twins (a new recorder's one random draw); what it sets reads as the
    properties set one by one would."""
    pure, compiled = both_twins("_spans", PURE)
    for bits in (0, 1, (0x0102030405060708 << 64) | 0xFFFF_FFFF_FFFF_FFFF, 2**130 + 3, -1):
        seen = []
        for module in (pure, compiled):
            recorder = module.SpanRecorder()
            recorder.seed(bits)
            by_hand = module.SpanRecorder()
            by_hand.id_base = bits
            by_hand.trace_base = ((bits >> 64) & (2**64 - 1)).to_bytes(8, "big")
            assert (recorder.id_base, recorder.trace_base) == (by_hand.id_base, by_hand.trace_base)
            seen.append((recorder.id_base, recorder.trace_base, recorder.trace_id_of(3)))
        assert seen[0] == seen[1]

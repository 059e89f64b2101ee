"""Chunks as stored, and the trace query: records of a time range as a ``ReadRangeWire``.

The query follows ``@rivetkit/traces``' ``readRangeWire``: ``limit`` is capped at
:data:`MAX_READ_LIMIT` (``clamped`` then true, as it is when the range holds more spans
than ``limit``); records are kept when ``start_ms <= time < end_ms``; spans that started
before the range and were still running when the last chunk before it was written come
back as ``base_chunks`` (their start record alone), so a reader can show them whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from rivetkit.traces.attrs import error_attrs
from rivetkit.traces.recorder import BUCKET_SECONDS, Sealed, Span
from rivetkit.traces.schema import (
    CHUNK,
    DATA_PREFIX,
    ActiveSpanRef,
    Chunk,
    KeyValue,
    ReadRangeWire,
    Record,
    SpanEnd,
    SpanRecordKey,
    SpanSnapshot,
    SpanStart,
    SpanStatus,
    SpanStatusCode,
    SpanUpdate,
    chunk_key,
    parse_chunk_key,
)

if TYPE_CHECKING:
    from rivetkit.traces.recorder import ActorTraces

__all__ = ["MAX_READ_LIMIT", "build_chunk", "read_range_wire"]

#: Largest ``limit`` a query honours (RivetKit's ``maxReadLimit``).
MAX_READ_LIMIT: Final = 10_000
_AFTER_MAX_CHUNK_ID: Final = 1 << 32
_NS: Final = 1_000_000_000

ChunkId = tuple[int, int]


def build_chunk(traces: ActorTraces, sealed: Sealed, *, whole: bool = False) -> Chunk:
    """The schema ``Chunk`` of a sealed (or the current) chunk of ``traces``.

    ``whole`` (for exporters): each span that ended in the chunk with its start record,
    even when an earlier chunk holds it, and nothing of the spans still running.

    An ended span gives its ``SpanStart`` (unless a chunk sealed while it ran holds it; a
    span that began in an earlier bucket gets a ``SpanSnapshot`` instead, which carries its
    start time), then for a failure a ``SpanUpdate`` (``error.type``, ``error.message``),
    then its ``SpanEnd`` (status ``ERROR`` with the error type after a failure).
    """
    strings: list[str] = []
    ids: dict[str, int] = {}

    def intern(text: str) -> int:
        found = ids.get(text)
        if found is None:
            found = ids[text] = len(strings)
            strings.append(text)
        return found

    def kvs(attrs: tuple[tuple[str, bytes], ...]) -> list[KeyValue]:
        return [KeyValue(intern(k), v) for k, v in attrs]

    base = sealed.bucket * _NS
    records: list[Record] = []
    span_id_of = traces.span_id_of

    def start_of(span: Span, at: int) -> None:
        name, attrs, _ = span.info
        name_id = intern(name)
        attributes = kvs(attrs + span.extra if span.extra else attrs)
        span_id = span_id_of(span.seq)
        trace_id = traces.trace_id_of(span.trace_seq)
        parent = None if span.parent_seq is None else span_id_of(span.parent_seq)
        if span.start_ns >= base:
            body: Any = SpanStart(
                trace_id, span_id, parent, name_id, 0, None, 0, attributes, 0, [], 0
            )
            records.append(Record(span.start_ns - base, body))
        else:
            body = SpanSnapshot(
                trace_id,
                span_id,
                parent,
                name_id,
                0,
                span.start_ns,
                None,
                0,
                attributes,
                0,
                [],
                0,
                None,
            )
            records.append(Record(at - base, body))

    for entry in sealed.records:
        if type(entry) is tuple:  # (STARTED, span): the start of a span still running
            if whole:
                continue
            span = entry[1]
            start_of(span, max(span.start_ns, base))
            continue
        span = entry
        if whole or span.start_ref is None:
            start_of(span, span.end_ns)
        span_id = span_id_of(span.seq)
        status = None
        if span.error is not None:
            attrs, kind = error_attrs(span.error)
            status = SpanStatus(SpanStatusCode.ERROR, kind)
            records.append(Record(span.end_ns - base, SpanUpdate(span_id, kvs(attrs), 0, None)))
        records.append(Record(span.end_ns - base, SpanEnd(span_id, status)))
    active = []
    for span in () if whole else sealed.active:
        where = span.start_ref
        if where is not None:
            key = SpanRecordKey(DATA_PREFIX, where[0], where[1], where[2])
            active.append(ActiveSpanRef(span_id_of(span.seq), key, None))
    return Chunk(base, strings, records, active)


def _max_ns(chunk: Chunk) -> int:
    return (
        chunk.base_unix_ns + chunk.records[-1].time_offset_ns
        if chunk.records
        else chunk.base_unix_ns
    )


def _filtered(chunk: Chunk, start_ns: int, end_ns: int) -> Chunk | None:
    base = chunk.base_unix_ns
    kept = [r for r in chunk.records if start_ns <= base + r.time_offset_ns < end_ns]
    if not kept:
        return None
    return Chunk(base, chunk.strings, kept, chunk.active_spans)


def _decode(data: bytes) -> Chunk | None:
    try:
        return CHUNK.decode(data)
    except Exception:
        return None


async def _latest_on_disk_before(
    traces: ActorTraces, cursor: ChunkId
) -> tuple[ChunkId, Chunk] | None:
    end = chunk_key(*cursor)
    while True:
        entries = await traces.store.list(chunk_key(0, 0), end, reverse=True, limit=10)
        if not entries:
            return None
        for key, value in entries:
            parsed = parse_chunk_key(key)
            chunk = _decode(value) if parsed is not None else None
            if parsed is None or chunk is None:
                end = key
                continue
            return parsed, chunk


async def read_range_wire(
    traces: ActorTraces, start_ms: int, end_ms: int, limit: int
) -> ReadRangeWire:
    """Records with ``start_ms <= time < end_ms`` (epoch milliseconds) of at most ``limit``
    spans, stored or still in memory, as the inspector's trace query answers them."""
    start_ms, end_ms = int(start_ms), int(end_ms)
    if limit <= 0 or end_ms <= start_ms:
        return ReadRangeWire(start_ms, end_ms, 0, False, [], [])
    limit_clamped = limit > MAX_READ_LIMIT
    limit = min(limit, MAX_READ_LIMIT)
    start_ns, end_ns = start_ms * 1_000_000, end_ms * 1_000_000
    memory: dict[ChunkId, Chunk] = {}
    for sealed in traces.pending:
        memory[(sealed.bucket, sealed.chunk_id)] = build_chunk(traces, sealed)
    current = traces.current()
    current_id = None
    if current is not None:
        current_id = (current.bucket, current.chunk_id)
        memory[current_id] = build_chunk(traces, current)

    # The last chunk before the range: its running spans are the range's base records.
    start_bucket = start_ms // 1000 // BUCKET_SECONDS * BUCKET_SECONDS
    cursor: ChunkId = (start_bucket, _AFTER_MAX_CHUNK_ID)
    previous: Chunk | None = None
    while True:
        in_memory = max((k for k in memory if k < cursor and k != current_id), default=None)
        on_disk = await _latest_on_disk_before(traces, cursor)
        candidates: list[tuple[ChunkId, Chunk]] = []
        if in_memory is not None:
            candidates.append((in_memory, memory[in_memory]))
        if on_disk is not None:
            candidates.append(on_disk)
        if not candidates:
            break
        key, chunk = max(candidates, key=lambda item: item[0])
        if _max_ns(chunk) < start_ns:
            previous = chunk
            break
        cursor = key

    base_chunks: list[Chunk] = []
    for ref in previous.active_spans if previous is not None else ():
        where = ref.latest_snapshot_key or ref.start_key
        source = memory.get((where.bucket_start_sec, where.chunk_id))
        if source is None:
            raw = await traces.store.list(
                chunk_key(where.bucket_start_sec, where.chunk_id),
                chunk_key(where.bucket_start_sec, where.chunk_id + 1),
            )
            source = _decode(raw[0][1]) if raw else None
        if source is None or where.record_index >= len(source.records):
            continue
        record = source.records[where.record_index]
        base_chunks.append(Chunk(source.base_unix_ns, source.strings, [record], []))

    chunks: list[Chunk] = []
    seen: set[ChunkId] = set()
    end_bucket = end_ms // 1000 // BUCKET_SECONDS * BUCKET_SECONDS
    disk = await traces.store.list(
        chunk_key(start_bucket, 0), chunk_key(end_bucket + BUCKET_SECONDS, 0)
    )
    for raw_key, value in disk:
        parsed = parse_chunk_key(raw_key)
        stored = _decode(value) if parsed is not None else None
        if parsed is None or stored is None:
            continue
        seen.add(parsed)
        kept = _filtered(stored, start_ns, end_ns)
        if kept is not None:
            chunks.append(kept)
    for ident, in_memory_chunk in memory.items():  # pending (oldest first), then current
        if ident in seen:
            continue
        kept = _filtered(in_memory_chunk, start_ns, end_ns)
        if kept is not None:
            chunks.append(kept)

    spans: set[bytes] = set()
    over = False
    for chunk in chunks:
        for record in chunk.records:
            span_id = record.body.span_id
            if span_id in spans:
                continue
            if len(spans) >= limit:
                over = True
                break
            spans.add(span_id)
        if over:
            break
    return ReadRangeWire(start_ms, end_ms, limit, limit_clamped or over, base_chunks, chunks)

"""Chunks as stored, and the trace query: records of a time range as a ``ReadRangeWire``.

The query follows ``@rivetkit/traces``' ``readRangeWire``: ``limit`` is capped at
:data:`MAX_READ_LIMIT` (``clamped`` then true, as it is when the range holds more spans
than ``limit``); records are kept when ``start_ms <= time < end_ms``; spans that started
before the range and were still running when the last chunk before it was written come
back as ``base_chunks`` (their start record alone), so a reader can show them whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from rivetkit.traces.recorder import BUCKET_SECONDS, START, UPDATE, Sealed
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


def build_chunk(sealed: Sealed) -> Chunk:
    """The schema ``Chunk`` of recorded tuples (see :mod:`rivetkit.traces.recorder`)."""
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

    def status(value: tuple[int, str | None] | None) -> SpanStatus | None:
        return None if value is None else SpanStatus(SpanStatusCode(value[0]), value[1])

    base = sealed.bucket * _NS
    records = []
    for rec in sealed.records:
        kind = rec[0]
        body: Any
        if kind == START:
            _, _, span_id, trace_id, parent_id, name, attrs = rec
            body = SpanStart(
                trace_id, span_id, parent_id, intern(name), 0, None, 0, kvs(attrs), 0, [], 0
            )
        elif kind == UPDATE:
            body = SpanUpdate(rec[2], kvs(rec[3]), 0, status(rec[4]))
        else:
            body = SpanEnd(rec[2], status(rec[3]))
        records.append(Record(rec[1] - base, body))
    active = [
        ActiveSpanRef(span_id, SpanRecordKey(DATA_PREFIX, b, c, i), None)
        for span_id, (b, c, i) in sealed.active
    ]
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
        memory[(sealed.bucket, sealed.chunk_id)] = build_chunk(sealed)
    current = traces.current()
    current_id = None
    if current is not None:
        current_id = (current.bucket, current.chunk_id)
        memory[current_id] = build_chunk(current)

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

"""The bytes of npm ``@rivetkit/traces@2.3.19`` (its ``schemas/v1.bare``) and its KV keys.

Traces live in the actor's KV under RivetKit's prefix ``[7, 1]`` (``TRACES_PREFIX`` of
:mod:`rivetkit.runtime.keys`), one entry per chunk of records:

* key: ``[7, 1]`` + the FoundationDB tuple ``(1, bucket_start_sec, chunk_id)`` (``1`` is the
  traces package's data prefix; a bucket is an hour of wall-clock time, ``chunk_id`` orders
  the chunks of a bucket);
* value: vbare (2-byte little-endian version 1) then the BARE ``Chunk``.

The inspector's trace query answers a vbare ``ReadRangeWire`` (version 1) made of the same
chunks. Field names are the schema's in snake_case; the wire order is the field order.
"""

from __future__ import annotations

import enum
from typing import Final, NamedTuple

from rivetkit.protocol.bare import codec_for
from rivetkit.protocol.schema import U32, U64
from rivetkit.protocol.vbare import Versioned
from rivetkit.runtime.keys import TRACES_PREFIX

__all__ = [
    "CHUNK",
    "DATA_PREFIX",
    "READ_RANGE",
    "ActiveSpanRef",
    "Chunk",
    "KeyValue",
    "ReadRangeWire",
    "Record",
    "RecordBody",
    "SpanEnd",
    "SpanEvent",
    "SpanLink",
    "SpanRecordKey",
    "SpanSnapshot",
    "SpanStart",
    "SpanStatus",
    "SpanStatusCode",
    "SpanUpdate",
    "chunk_key",
    "parse_chunk_key",
]

#: The traces package's key prefix of data chunks (first element of the tuple).
DATA_PREFIX = 1
ERROR_CODE = "invalid_trace_data"


class KeyValue(NamedTuple):
    """An attribute: an index into the chunk's string table, and a CBOR value."""

    key: U32
    value: bytes


class SpanStatusCode(enum.IntEnum):
    """A span's status code (OTLP: 0 unset, 1 ok, 2 error)."""

    UNSET = 0
    OK = 1
    ERROR = 2


class SpanStatus(NamedTuple):
    """A span's status."""

    code: SpanStatusCode
    message: str | None


class SpanLink(NamedTuple):
    """A link to another span."""

    trace_id: bytes
    span_id: bytes
    trace_state: str | None
    attributes: list[KeyValue]
    dropped_attributes_count: U32


class SpanStart(NamedTuple):
    """A span began (its time is the record's)."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    name: U32
    kind: U32
    trace_state: str | None
    flags: U32
    attributes: list[KeyValue]
    dropped_attributes_count: U32
    links: list[SpanLink]
    dropped_links_count: U32


class SpanUpdate(NamedTuple):
    """Attributes or status set on a running span."""

    span_id: bytes
    attributes: list[KeyValue]
    dropped_attributes_count: U32
    status: SpanStatus | None


class SpanEvent(NamedTuple):
    """An event on a running span."""

    span_id: bytes
    name: U32
    attributes: list[KeyValue]
    dropped_attributes_count: U32


class SpanEnd(NamedTuple):
    """A span ended."""

    span_id: bytes
    status: SpanStatus | None


class SpanSnapshot(NamedTuple):
    """The whole of a long-running span, so a reader need not go back to its start."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    name: U32
    kind: U32
    start_time_unix_ns: U64
    trace_state: str | None
    flags: U32
    attributes: list[KeyValue]
    dropped_attributes_count: U32
    links: list[SpanLink]
    dropped_links_count: U32
    status: SpanStatus | None


RecordBody = SpanStart | SpanEvent | SpanUpdate | SpanEnd | SpanSnapshot


class Record(NamedTuple):
    """One record: nanoseconds after its chunk's ``base_unix_ns``, and what happened."""

    time_offset_ns: U64
    body: RecordBody


class SpanRecordKey(NamedTuple):
    """Where a record is: chunk key parts and the record's index in the chunk."""

    prefix: U32
    bucket_start_sec: U64
    chunk_id: U32
    record_index: U32


class ActiveSpanRef(NamedTuple):
    """A span still running when a chunk was written, and where its start is."""

    span_id: bytes
    start_key: SpanRecordKey
    latest_snapshot_key: SpanRecordKey | None


class Chunk(NamedTuple):
    """A stored chunk: records of one bucket, with their string table."""

    base_unix_ns: U64
    strings: list[str]
    records: list[Record]
    active_spans: list[ActiveSpanRef]


class ReadRangeWire(NamedTuple):
    """The answer of a trace query (the inspector's ``TraceQueryResponse`` payload)."""

    start_time_ms: U64
    end_time_ms: U64
    limit: U32
    clamped: bool
    base_chunks: list[Chunk]
    chunks: list[Chunk]


#: ``Chunk`` values at ``[7, 1] + key``: vbare version 1.
CHUNK: Versioned[Chunk] = Versioned(
    "traces Chunk",
    codec_for(Chunk, ERROR_CODE),
    1,
    {1: codec_for(Chunk, ERROR_CODE)},
    {},
    error_code=ERROR_CODE,
)
#: ``ReadRangeWire``: vbare version 1.
READ_RANGE: Versioned[ReadRangeWire] = Versioned(
    "traces ReadRangeWire",
    codec_for(ReadRangeWire, ERROR_CODE),
    1,
    {1: codec_for(ReadRangeWire, ERROR_CODE)},
    {},
    error_code=ERROR_CODE,
)
#: One record alone (its encoded size is what the chunk-size bounds count).
RECORD = codec_for(Record, ERROR_CODE)


def _pack_int(value: int) -> bytes:
    # FoundationDB tuple layer: 0x14 is zero; 0x14 + n is a positive integer of n bytes.
    if value == 0:
        return b"\x14"
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes((0x14 + len(raw),)) + raw


#: ``_pack_int``'s first byte for a positive integer of ``n`` bytes, by ``n`` (1 to 8).
_SIZE_CODES: Final[list[bytes]] = [b""] + [bytes((0x14 + n,)) for n in range(1, 9)]

#: The last bucket whose keys were made, and their prefix (every actor writes in the hour's).
_last_bucket: tuple[int | None, bytes] = (None, b"")


def chunk_key(bucket_start_sec: int, chunk_id: int) -> bytes:
    """The actor KV key of a chunk: ``[7, 1]`` + tuple ``(1, bucket_start_sec, chunk_id)``."""
    global _last_bucket
    last = _last_bucket
    if last[0] == bucket_start_sec and type(bucket_start_sec) is int:
        prefix = last[1]
    else:
        prefix = TRACES_PREFIX + _pack_int(DATA_PREFIX) + _pack_int(bucket_start_sec)
        _last_bucket = (bucket_start_sec, prefix)
    if 0 < chunk_id < 1 << 64 and type(chunk_id) is int:  # (_pack_int, without its frame)
        size = (chunk_id.bit_length() + 7) >> 3
        return prefix + _SIZE_CODES[size] + chunk_id.to_bytes(size, "big")
    return prefix + _pack_int(chunk_id)


def parse_chunk_key(key: bytes) -> tuple[int, int] | None:
    """``(bucket_start_sec, chunk_id)`` of a chunk key; None for anything else."""
    if not key.startswith(TRACES_PREFIX):
        return None
    pos = len(TRACES_PREFIX)
    values: list[int] = []
    while pos < len(key):
        code = key[pos]
        size = code - 0x14
        if not 0 <= size <= 8 or pos + 1 + size > len(key):
            return None
        values.append(int.from_bytes(key[pos + 1 : pos + 1 + size], "big"))
        pos += 1 + size
    if len(values) != 3 or values[0] != DATA_PREFIX:
        return None
    return values[1], values[2]

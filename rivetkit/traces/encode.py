"""The stored bytes of a sealed chunk, written directly (the records' shapes are known).

:func:`encode_chunk` gives exactly ``CHUNK.encode(build_chunk(traces, sealed))`` (vbare
version 1, then BARE ``Chunk``; a test checks the two agree) without building a schema
object per record, and without the generic codec, whose pure twin would cost tens of
microseconds per span. BARE: ``u32``/``u64`` little-endian fixed width, ``uint``
(lengths, union tags, enums) LEB128, ``data``/``str`` a length then the bytes,
``optional`` a 0/1 byte then the value.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Final

from rivetkit.protocol.bare_prims import string as _text
from rivetkit.protocol.bare_prims import uint as _uint
from rivetkit.traces.attrs import error_attrs
from rivetkit.traces.schema import DATA_PREFIX

if TYPE_CHECKING:
    from rivetkit.traces.recorder import ActorTraces, Attrs, Sealed, Span, SpanInfo

__all__ = ["encode_chunk"]

_U64: Final = struct.Struct("<Q")
_U32: Final = struct.Struct("<I")
_REF: Final = struct.Struct("<IQII")
_ZERO32: Final = b"\x00\x00\x00\x00"
# SpanStart/SpanSnapshot tail after the attributes: dropped count, no links, dropped links.
_NO_LINKS: Final = _ZERO32 + b"\x00" + _ZERO32
_VERSION: Final = b"\x01\x00"
#: ``uint`` of 0 to 127: one byte.
_SMALL: Final = [bytes((i,)) for i in range(128)]


#: Per span info (by id, the info kept to check it): the string table and the ``SpanStart``
#: tail (the bytes after the parent field) of a chunk whose entries are all plain spans of
#: that info (see :meth:`SpanRecorder.encode_records`, given the tail itself: no call per
#: chunk): its strings are then the info's alone, interned in the same order. Infos are
#: shared by every recorder (the span twins cache them by kind and name), so a short-lived
#: actor's one chunk finds them made.
_ONE_INFO: dict[int, tuple[SpanInfo, bytes, bytes]] = {}
#: More infos than this (names beyond the twins' cache, made anew per span): cleared.
_ONE_INFO_MAX: Final = 8192


class _NotPlain(Exception):
    """An entry that only the general path encodes."""


def _one_info(info: SpanInfo) -> tuple[SpanInfo, bytes, bytes]:
    """The string table and tail of a chunk of plain spans of ``info`` (see
    :data:`_ONE_INFO`), made as the general path makes them."""
    entry = _ONE_INFO.get(id(info))
    if entry is not None and entry[0] is info:
        return entry
    strings: list[str] = []
    ids: dict[str, int] = {}
    for text in (info[0], *(key for key, _ in info[1])):
        if text not in ids:
            ids[text] = len(strings)
            strings.append(text)
    attrs = [_uint(len(info[1]))]
    for key, value in info[1]:
        attrs += (_U32.pack(ids[key]), _uint(len(value)), value)
    tail = _U32.pack(ids[info[0]]) + _ZERO32 + b"\x00" + _ZERO32 + b"".join(attrs) + _NO_LINKS
    table = _uint(len(strings)) + b"".join([_text(text) for text in strings])
    if len(_ONE_INFO) >= _ONE_INFO_MAX:
        _ONE_INFO.clear()
    entry = _ONE_INFO[id(info)] = (info, table, tail)
    return entry


def _not_plain(entry: Any, parts: list[bytes]) -> int:
    raise _NotPlain


def encode_chunk(traces: ActorTraces, sealed: Sealed) -> bytes:
    """The vbare ``Chunk`` bytes of ``sealed`` (see :func:`rivetkit.traces.wire.build_chunk`
    for the records each entry gives)."""
    records = sealed.records
    if records and not sealed.active:
        # The common chunk (a short-lived actor's, a busy action's): plain spans of one
        # info, nothing running. Its bytes from the cached table and tail, no interning.
        info = getattr(records[0], "info", None)
        if info is not None and (
            len(records) == 1 or all(getattr(entry, "info", None) is info for entry in records)
        ):
            entry = _ONE_INFO.get(id(info))  # (_one_info's lookup, without its frame)
            if entry is None or entry[0] is not info:
                entry = _one_info(info)
            _, table, tail = entry
            base = sealed.bucket * 1_000_000_000
            parts: list[bytes] = []
            try:
                count = traces.encode_records(records, base, tail, _not_plain, parts)
            except _NotPlain:
                pass
            else:
                # (_uint's common case, without its frame)
                size = _SMALL[count] if count < 128 else _uint(count)
                return b"".join([_VERSION, _U64.pack(base), table, size, *parts, b"\x00"])
    return _encode_chunk(traces, sealed)


def _encode_chunk(traces: ActorTraces, sealed: Sealed) -> bytes:
    """:func:`encode_chunk`, any chunk."""
    strings: list[str] = []
    ids: dict[str, int] = {}
    # Per span info: the bytes after the parent field (name id, kind, flags, attributes).
    tails: dict[int, bytes] = {}

    def intern(text: str) -> int:
        found = ids.get(text)
        if found is None:
            found = ids[text] = len(strings)
            strings.append(text)
        return found

    def attrs_bytes(attrs: Attrs) -> bytes:
        parts = [_uint(len(attrs))]
        for key, value in attrs:
            parts.append(_U32.pack(intern(key)))
            parts.append(_uint(len(value)))
            parts.append(value)
        return b"".join(parts)

    def tail_of(span: Span, snapshot_start: int | None) -> bytes:
        # name, kind, (snapshot: start time), traceState none, flags, attributes, ...
        info = span.info
        if span.extra is None and snapshot_start is None:
            found = tails.get(id(info))
            if found is not None:
                return found
        attrs = info[1] + span.extra if span.extra else info[1]
        head = _U32.pack(intern(info[0])) + _ZERO32
        if snapshot_start is not None:
            head += _U64.pack(snapshot_start)
        tail = head + b"\x00" + _ZERO32 + attrs_bytes(attrs) + _NO_LINKS
        if span.extra is None and snapshot_start is None:
            tails[id(info)] = tail
        return tail

    base = sealed.bucket * 1_000_000_000
    span_id_of = traces.span_id_of
    trace_id_of = traces.trace_id_of
    parts: list[bytes] = []
    pack64 = _U64.pack

    def start_of(span: Span, at: int) -> None:
        parent = span.parent_seq
        ids_part = (
            b"\x10"
            + trace_id_of(span.trace_seq)
            + b"\x08"
            + span_id_of(span.seq)
            + (b"\x00" if parent is None else b"\x01\x08" + span_id_of(parent))
        )
        if span.start_ns >= base:  # SpanStart (tag 0)
            parts.append(pack64(span.start_ns - base) + b"\x00" + ids_part + tail_of(span, None))
        else:  # SpanSnapshot (tag 4), no status
            parts.append(
                pack64(at - base) + b"\x04" + ids_part + tail_of(span, span.start_ns) + b"\x00"
            )

    def other(entry: Any, out: list[bytes]) -> int:
        """The records of an entry that is not the common case; returns how many."""
        if type(entry) is tuple:  # (STARTED, span)
            span = entry[1]
            start_of(span, max(span.start_ns, base))
            return 1
        span = entry
        count = 0
        if span.start_ref is None:
            start_of(span, span.end_ns)
            count += 1
        end_at = pack64(span.end_ns - base)
        own_id = b"\x08" + span_id_of(span.seq)
        if span.error is None:
            out.append(end_at + b"\x03" + own_id + b"\x00")  # SpanEnd, no status
            return count + 1
        attrs, kind = error_attrs(span.error)
        # SpanUpdate (tag 2): attributes, dropped 0, no status; then SpanEnd with ERROR.
        out.append(end_at + b"\x02" + own_id + attrs_bytes(attrs) + _ZERO32 + b"\x00")
        out.append(end_at + b"\x03" + own_id + b"\x01\x02\x01" + _text(kind))
        return count + 2

    def plain_tail(span: Span) -> bytes:
        tail = tails.get(id(span.info))
        return tail if tail is not None else tail_of(span, None)

    # The common case (an ended root span with no error nor extra attributes, started in
    # this bucket: an action's span), SpanStart then SpanEnd, is made by the span twin.
    count = traces.encode_records(sealed.records, base, plain_tail, other, parts)
    active = []
    for span in sealed.active:
        where = span.start_ref
        if where is not None:
            ref = _REF.pack(DATA_PREFIX, where[0], where[1], where[2])
            active.append(b"\x08" + span_id_of(span.seq) + ref + b"\x00")
    return b"".join(
        [
            _VERSION,
            pack64(base),
            _uint(len(strings)),
            *(_text(s) for s in strings),
            _uint(count),
            *parts,
            _uint(len(active)),
            *active,
        ]
    )

"""Pure-Python twin of the span hot path (the compiled one is ``rivetkit._speedups._spans``).

:class:`SpanRecorder` holds what an action's span costs on its path: :meth:`~SpanRecorder.start`
reads the clock, makes a :class:`Span` and makes it the task's current span (a
:mod:`contextvars` variable, so spans started under it are its children);
:meth:`~SpanRecorder.end` reads the clock again and appends the span to the current chunk's
records. Nothing else (ids, records, bytes) is made here: the chunk's writer makes them from
the span's numbers (:mod:`rivetkit.traces.encode`). :class:`rivetkit.traces.recorder.ActorTraces`
adds sealing and storing (``_seal``, ``_chunk_opened``) on top.

The twins behave the same for the same calls and clock; the compiled one keeps the running
spans in a linked list instead of a dict, and reads the wall clock in C when the clock is
:func:`time.time_ns`.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, Final

from rivetkit.traces.attrs import Attrs, attrs_size, encode_attrs

__all__ = [
    "BUCKET_SECONDS",
    "MAX_ACTIVE_SPANS",
    "MAX_CHUNK_BYTES",
    "Span",
    "SpanRecorder",
    "current_span",
]

#: Width of a bucket (RivetKit's default): chunk keys group records by the hour.
BUCKET_SECONDS: Final = 3600
#: Largest estimated chunk (RivetKit's ``maxChunkBytes`` is 96 KiB).
MAX_CHUNK_BYTES: Final = 64 * 1024
#: More running spans than this: the oldest are forgotten (never ended). RivetKit's default.
MAX_ACTIVE_SPANS: Final = 10_000

_BUCKET_NS: Final = BUCKET_SECONDS * 1_000_000_000
_MASK64: Final = (1 << 64) - 1
_U64: Final = struct.Struct("<Q")
#: A start record's ids: trace id's number, the span id's length (8), the span id, no parent.
_IDS: Final = struct.Struct(">QBQB")
#: An end record after its time: tag SpanEnd (3), the span id's length, the id, no status.
_END_IDS: Final = struct.Struct(">BBQB")
#: How many names of one kind have their span info cached (for all recorders).
_INFO_CACHE: Final = 4096

#: A span's name, attributes and estimated stored size (start + end records).
SpanInfo = tuple[str, Attrs, int]
#: Where a span's start record is: (bucket_start_sec, chunk_id, record_index).
StartRef = tuple[int, int, int]

_new = object.__new__

#: The records of every recorder with no chunk open (never added to: see ``Span.end``).
_NO_RECORDS: Final[list[Any]] = []

#: The span infos of every recorder, by kind then name: an info depends on its kind and name
#: only and is never changed, so a new actor's first span of a kind and name finds it made.
_SHARED_INFO: dict[str, dict[str, SpanInfo]] = {}

_current: ContextVar[Span | None] = ContextVar("rivetkit_trace_span", default=None)


def current_span() -> Span | None:
    """The span the running task is in (None: none)."""
    return _current.get()


class Span:
    """A span (see :meth:`SpanRecorder.start`): times and ids, turned into records when its
    chunk is written."""

    __slots__ = (
        "_owner",
        "_token",
        "end_ns",
        "error",
        "extra",
        "info",
        "parent_seq",
        "seq",
        "start_ns",
        "start_ref",
        "trace_seq",
    )

    def __init__(
        self,
        owner: SpanRecorder,
        seq: int,
        start_ns: int,
        info: SpanInfo,
        trace_seq: int,
        parent_seq: int | None,
    ) -> None:
        self._owner = owner
        self.seq = seq
        self.start_ns = start_ns
        self.info = info
        self.trace_seq = trace_seq
        self.parent_seq = parent_seq
        self.end_ns = 0
        self.error: BaseException | None = None
        self.extra: Attrs | None = None
        #: Where its start record was written while it ran (None: with its end).
        self.start_ref: StartRef | None = None
        self._token: Token[Span | None] | None = None

    @property
    def span_id(self) -> bytes:
        """The span's 8-byte id."""
        return self._owner.span_id_of(self.seq)

    @property
    def trace_id(self) -> bytes:
        """The 16-byte id of the span's trace."""
        return self._owner.trace_id_of(self.trace_seq)

    @property
    def parent_id(self) -> bytes | None:
        """The parent span's id (None: a root span)."""
        return None if self.parent_seq is None else self._owner.span_id_of(self.parent_seq)

    def fail(self, error: BaseException) -> None:
        """Mark the span failed: it ends with status ``ERROR``."""
        self.error = error

    def end(self) -> None:
        """End the span (once; later calls do nothing)."""
        # The recorder's side of it is here: one Python call less on an action's path.
        token = self._token
        if token is not None:
            self._token = None
            try:  # noqa: SIM105 - cheaper than contextlib.suppress on this path
                _current.reset(token)
            except ValueError:  # ended in another context than the one it started in
                pass
        owner = self._owner
        if owner._open.pop(self.seq, None) is None:
            return  # ended already, or forgotten (MAX_ACTIVE_SPANS)
        now = owner.clock_ns()
        size = self.info[2]
        if owner._records and (
            now >= owner._bucket_end_ns or owner._size + size > owner.chunk_target
        ):
            # (A span that began in the bucket before is written as a SpanSnapshot.)
            owner._seal()
        self.end_ns = now
        if self.extra is not None:
            size += attrs_size(self.extra)
        if self.error is not None:
            size += 200
        records = owner._records
        if not records:  # (an empty list may be shared: a chunk's own list is made here)
            owner._open_chunk(now)
            owner._records = [self]
        else:
            records.append(self)
        owner._size += size


class SpanRecorder:
    """The recording half of an actor's trace recorder: spans started and ended, the records
    of the chunk being filled (ended spans, in end order) and its estimated size.

    ``clock_ns`` is the wall clock in epoch nanoseconds; ``chunk_target`` the estimated size
    at which a chunk is sealed. A subclass seals and stores: ``_seal()`` is called when a
    span's end would pass the chunk target or the hour bucket, ``_chunk_opened()`` when the
    first record of a chunk arrives. Span ids are ``(id_base + seq) mod 2**64``, trace ids
    ``trace_base + seq`` (8 bytes each).
    """

    __slots__ = (
        "_bucket",
        "_bucket_end_ns",
        "_chunk_id",
        "_id_base",
        "_info",
        "_open",
        "_records",
        "_seq",
        "_size",
        "_trace_base",
        "chunk_target",
        "clock_ns",
        "closed",
    )

    def __init__(self) -> None:
        self.clock_ns: Callable[[], int] = time.time_ns
        self.chunk_target = MAX_CHUNK_BYTES
        self.closed = False
        self._id_base = 0
        self._trace_base = bytes(8)
        self._seq = 0
        self._bucket = -1
        self._bucket_end_ns = 0
        self._chunk_id = -1
        #: The current chunk's records; an empty list is never added to (it may be shared
        #: by every recorder with no chunk open: the first record makes the chunk's list).
        self._records: list[Any] = _NO_RECORDS
        self._size = 0
        self._open: dict[int, Span] = {}
        self._info: dict[str, dict[str, SpanInfo]] = _SHARED_INFO

    @property
    def id_base(self) -> int:
        """The base of span ids (``0 <= id_base < 2**64``; set: taken mod ``2**64``)."""
        return self._id_base

    @id_base.setter
    def id_base(self, value: int) -> None:
        self._id_base = value & _MASK64

    @property
    def trace_base(self) -> bytes:
        """The first 8 bytes of every trace id (set: 8 bytes, else ValueError)."""
        return self._trace_base

    @trace_base.setter
    def trace_base(self, value: bytes) -> None:
        if not isinstance(value, bytes) or len(value) != 8:
            raise ValueError("trace_base must be 8 bytes")
        self._trace_base = value

    def seed(self, bits: int) -> None:
        """Set both id bases from ``bits`` (a new recorder's 128 random bits): ``id_base``
        its low 64 bits, ``trace_base`` the next 64 (big-endian bytes)."""
        self._id_base = bits & _MASK64
        self._trace_base = ((bits >> 64) & _MASK64).to_bytes(8, "big")

    def span_id_of(self, seq: int) -> bytes:
        """The id of this recorder's span number ``seq``."""
        return ((self.id_base + seq) & _MASK64).to_bytes(8, "big")

    def trace_id_of(self, seq: int) -> bytes:
        """The id of the trace whose root is this recorder's span number ``seq``."""
        return self.trace_base + seq.to_bytes(8, "big")

    def encode_records(
        self,
        records: list[Any],
        base: int,
        tail_of: Callable[[Span], bytes] | bytes,
        other: Callable[[Any, list[bytes]], int],
        parts: list[bytes],
    ) -> int:
        """Append the record bytes of a chunk's entries (``base``: its bucket start in epoch
        nanoseconds) to ``parts``; returns how many records they are.

        An ended root span with no error nor extra attributes, started in the bucket and
        not written before (an action's span, the common case) is made here: its
        ``SpanStart`` (``tail_of(span)``: the bytes after its parent field; ``tail_of`` may
        be those bytes themselves, when every such span has the same) then its ``SpanEnd``.
        Every other entry goes to ``other(entry, parts)``, which appends its records and
        returns how many.
        """
        count = 0
        pack64 = _U64.pack
        pack_ids = _IDS.pack
        pack_end = _END_IDS.pack
        head = b"\x00\x10" + self.trace_base  # SpanStart tag, trace id's length and base
        id_base = self.id_base
        last_info: Any = None
        tail = b""
        ask: Callable[[Span], bytes] | None = None
        if isinstance(tail_of, bytes):  # (the same tail for every plain span: never asked)
            tail = tail_of
        else:
            ask = tail_of
        for entry in records:
            if (
                type(entry) is Span
                and entry.start_ref is None
                and entry.error is None
                and entry.extra is None
                and entry.parent_seq is None
                and entry.start_ns >= base
            ):
                # tail_of gives the same bytes for the same info (and interns nothing after
                # its first call for it): asked once per run of the same info.
                if ask is not None and entry.info is not last_info:
                    tail = ask(entry)
                    last_info = entry.info
                span_id = (id_base + entry.seq) & _MASK64
                parts.append(
                    pack64(entry.start_ns - base)
                    + head
                    + pack_ids(entry.trace_seq, 8, span_id, 0)
                    + tail
                    + pack64(entry.end_ns - base)
                    + pack_end(3, 8, span_id, 0)
                )
                count += 2
            else:
                count += other(entry, parts)
        return count

    def running(self) -> list[Span]:
        """The spans started and not ended (nor forgotten), oldest first."""
        return list(self._open.values())

    def _span_info(self, kind: str, name: str) -> SpanInfo:
        key = "rivet.queue.name" if kind == "queue.receive" else f"rivet.{kind}.name"
        attrs = encode_attrs({"rivet.invocation.type": kind, key: name})
        info = (f"{kind} {name}", attrs, 80 + len(kind) + len(name) + attrs_size(attrs))
        names = self._info.setdefault(kind, {})
        if len(names) < _INFO_CACHE:
            names[name] = info
        return info

    def start(self, kind: str, name: str, extra: dict[str, Any] | None = None) -> Span:
        """Start a span ``"{kind} {name}"`` (attributes ``rivet.invocation.type`` and
        ``rivet.{kind}.name``, plus ``extra``), child of the task's current span, and make
        it the current one until it ends.

        Nothing is written yet: the span's records are made when its chunk is written.
        """
        now = self.clock_ns()
        try:
            info = self._info[kind][name]
        except KeyError:
            info = self._span_info(kind, name)
        self._seq = seq = self._seq + 1
        # Span's fields set here rather than by its __init__: one Python call less.
        span = _new(Span)
        span._owner = self
        span.seq = seq
        span.start_ns = now
        span.info = info
        parent = _current.get()
        if parent is not None and parent._owner is self:
            span.trace_seq = parent.trace_seq
            span.parent_seq = parent.seq
        else:
            span.trace_seq = seq
            span.parent_seq = None
        span.end_ns = 0
        span.error = span.extra = span.start_ref = None
        if extra:
            span.extra = encode_attrs(extra)
        running = self._open
        running[seq] = span
        if len(running) > MAX_ACTIVE_SPANS:
            del running[next(iter(running))]
        span._token = _current.set(span)
        return span

    def end(self, span: Span) -> None:
        """End ``span`` (see :meth:`Span.end`; in the recorder that started it)."""
        span.end()

    def instant(self, kind: str, name: str, extra: dict[str, Any] | None = None) -> None:
        """A span that starts and ends now."""
        self.start(kind, name, extra).end()

    def _open_chunk(self, now: int) -> None:
        """Number a new chunk whose first record is at ``now``."""
        bucket = now // _BUCKET_NS * BUCKET_SECONDS
        since_ms = (now - bucket * 1_000_000_000) // 1_000_000
        self._chunk_id = since_ms if bucket != self._bucket else max(self._chunk_id + 1, since_ms)
        self._bucket = bucket
        self._bucket_end_ns = (bucket + BUCKET_SECONDS) * 1_000_000_000
        self._chunk_opened()

    def _chunk_opened(self) -> None:
        """A new chunk got its first record (a subclass arms its age timer)."""

    def _seal(self, *, with_running: bool = False) -> None:
        """Close the current chunk (here: drop its records; a subclass stores them)."""
        self._records = _NO_RECORDS
        self._size = 0

"""One actor's spans, recorded in the storage layout of npm ``@rivetkit/traces@2.3.19``.

Recording costs little on the path it measures (an action): :meth:`ActorTraces.start`
reads the clock, makes a :class:`Span` and makes it the task's current span (a
:mod:`contextvars` variable, so spans started under it, such as the action of a schedule
run, are its children in its trace); :meth:`Span.end` reads the clock again and appends
the span to the current chunk. No ids are drawn, nothing is encoded, no I/O.

The chunk is *sealed* when it is :data:`CHUNK_AGE` seconds old (a timer), when its
estimated size reaches the chunk target, when the hour bucket changes, and when the actor
stops. Sealing adds the start records of spans still running. A background task then turns
the chunk into records (``SpanStart``, ``SpanUpdate`` with ``error.*`` attributes and
``SpanEnd`` with status ``ERROR`` for a failed span, ``SpanEnd``; see
:func:`rivetkit.traces.wire.build_chunk`) and bytes (:mod:`rivetkit.traces.encode`) and
writes them at ``[7, 1] + (1, bucket, chunk_id)``, deleting the oldest chunks in the same
atomic write while the stored total would pass ``max_bytes`` (the bound: oldest dropped).
Sealed chunks not yet written, and the current one, stay readable.

A chunk's id is the milliseconds since its bucket's start when it was opened (at least the
previous id + 1), so ids grow across wakes and processes without reading the store first;
RivetKit's readers only need their order. Span ids are a random per-recorder base plus a
sequence number; a root span's trace id is 8 random bytes per recorder plus its number.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from random import getrandbits
from typing import Any, Final, NamedTuple, Protocol

from rivetkit.errors import RivetError
from rivetkit.protocol.values import cbor_dumps_raw
from rivetkit.runtime.keys import TRACES_PREFIX
from rivetkit.traces.schema import chunk_key, parse_chunk_key

__all__ = [
    "BUCKET_SECONDS",
    "CHUNK_AGE",
    "DEFAULT_MAX_BYTES",
    "ActorTraces",
    "Sealed",
    "Span",
    "TraceStore",
    "current_span",
]

logger = logging.getLogger("rivetkit.traces")

#: Width of a bucket (RivetKit's default): chunk keys group records by the hour.
BUCKET_SECONDS: Final = 3600
#: A chunk is sealed (and written) at most this many seconds after its first record.
CHUNK_AGE: Final = 5.0
#: Default bound of an actor's stored traces (``ActorOptions.traces_max_bytes``).
DEFAULT_MAX_BYTES: Final = 1024 * 1024
#: Largest estimated chunk (RivetKit's ``maxChunkBytes`` is 96 KiB).
MAX_CHUNK_BYTES: Final = 64 * 1024
#: Sealed chunks waiting for the writer beyond this (a store that does not keep up): the
#: oldest waiting one is dropped.
MAX_PENDING: Final = 32
#: More running spans than this: the oldest are forgotten (never ended). RivetKit's default.
MAX_ACTIVE_SPANS: Final = 10_000

_BUCKET_NS: Final = BUCKET_SECONDS * 1_000_000_000
#: Span ids are ``(id base + sequence number) mod 2**64`` (the base random per recorder).
_MASK64: Final = (1 << 64) - 1

Attrs = tuple[tuple[str, bytes], ...]
#: Where a span's start record is: (bucket_start_sec, chunk_id, record_index).
StartRef = tuple[int, int, int]
#: A span's name, attributes and estimated stored size (start + end records).
SpanInfo = tuple[str, Attrs, int]

#: Record marker: the start of a span still running when its chunk was sealed.
STARTED: Final = "started"

_current: ContextVar[Span | None] = ContextVar("rivetkit_trace_span", default=None)


def current_span() -> Span | None:
    """The span the running task is in (None: none)."""
    return _current.get()


class TraceStore(Protocol):
    """The actor KV the traces use (a driver bound to one actor)."""

    async def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        """Apply ``deletes`` then ``puts`` atomically."""
        ...

    async def list(
        self, start: bytes, end: bytes | None, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` in key order."""
        ...


class Sealed(NamedTuple):
    """A chunk whose records are final: waiting to be written (or being read).

    ``records`` holds ended :class:`Span` objects (their start, unless written before, and
    their end) and ``(STARTED, span)`` pairs (the start of a span running at the seal);
    ``active`` the spans running at the seal, whose start records a reader may need.
    """

    bucket: int
    chunk_id: int
    records: list[Any]
    active: list[Span]


class Span:
    """A span (see :meth:`ActorTraces.start`): times and ids, turned into records when its
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
        self, owner: ActorTraces, seq: int, start_ns: int, info: SpanInfo, parent: Span | None
    ) -> None:
        self._owner = owner
        self.seq = seq
        self.start_ns = start_ns
        self.info = info
        self.trace_seq: int
        if parent is not None and parent._owner is owner:
            self.trace_seq = parent.trace_seq
            self.parent_seq: int | None = parent.seq
        else:
            self.trace_seq = seq
            self.parent_seq = None
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
        self._owner.end(self)


def encode_attrs(attributes: dict[str, Any]) -> Attrs:
    """Attributes as ``(key, CBOR value)`` pairs; values CBOR cannot hold are left out."""
    out = []
    for key, value in attributes.items():
        try:
            out.append((key, cbor_dumps_raw(value)))
        except Exception:
            continue
    return tuple(out)


def error_attrs(error: BaseException) -> tuple[Attrs, str]:
    """``error.type``/``error.message`` attributes of a failure, and the status message."""
    if isinstance(error, RivetError):
        kind = f"{error.group}.{error.code}"
        message = error.message
    else:
        kind = type(error).__name__
        message = str(error)[:500]
    return encode_attrs({"error.type": kind, "error.message": message}), kind


def _attrs_size(attrs: Attrs) -> int:
    return sum(len(k) + len(v) + 6 for k, v in attrs)


class ActorTraces:
    """The trace recorder of one actor generation.

    ``store`` reaches the actor's KV; ``max_bytes`` bounds what is stored (oldest chunks
    deleted first); ``clock_ns`` is the wall clock in epoch nanoseconds (spans carry wall
    times); ``resource`` is the OTLP resource attributes the trace query reports.
    """

    def __init__(
        self,
        store: TraceStore,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock_ns: Callable[[], int] = time.time_ns,
        resource: dict[str, Any] | None = None,
        chunk_age: float = CHUNK_AGE,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.clock_ns = clock_ns
        self.resource = resource or {}
        self._chunk_age = chunk_age
        # Chunks stay well under the bound, so dropping one drops a small part of it.
        self.chunk_target = max(512, min(MAX_CHUNK_BYTES, max_bytes // 8))
        self._id_base = getrandbits(64)
        self._trace_base = getrandbits(64).to_bytes(8, "big")
        self._seq = 0
        self._bucket = -1
        self._bucket_end_ns = 0
        self._chunk_id = -1
        self._records: list[Any] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._open: dict[int, Span] = {}
        self._info: dict[str, dict[str, SpanInfo]] = {}
        #: Sealed chunks not yet written, oldest first.
        self.pending: list[Sealed] = []
        self._writer: asyncio.Task[None] | None = None
        # (key, size) of the stored chunks, in key order; None until first read.
        self._stored: list[tuple[bytes, int]] | None = None
        self._stored_bytes = 0
        self.closed = False
        self.write_error: BaseException | None = None

    def span_id_of(self, seq: int) -> bytes:
        """The id of this recorder's span number ``seq``."""
        return ((self._id_base + seq) & _MASK64).to_bytes(8, "big")

    def trace_id_of(self, seq: int) -> bytes:
        """The id of the trace whose root is this recorder's span number ``seq``."""
        return self._trace_base + seq.to_bytes(8, "big")

    # -- recording -------------------------------------------------------------------------

    def _span_info(self, kind: str, name: str) -> SpanInfo:
        key = "rivet.queue.name" if kind == "queue.receive" else f"rivet.{kind}.name"
        attrs = encode_attrs({"rivet.invocation.type": kind, key: name})
        info = (f"{kind} {name}", attrs, 80 + len(kind) + len(name) + _attrs_size(attrs))
        names = self._info.setdefault(kind, {})
        if len(names) < 4096:
            names[name] = info
        return info

    def start(self, kind: str, name: str, extra: dict[str, Any] | None = None) -> Span:
        """Start a span ``"{kind} {name}"`` (attributes ``rivet.invocation.type`` and
        ``rivet.{kind}.name``, plus ``extra``), child of the task's current span, and make
        it the current one until it ends.

        Nothing is written yet: the span's records are made when it ends (or when its
        chunk is sealed while it runs).
        """
        now = self.clock_ns()
        names = self._info.get(kind)
        info = names.get(name) if names is not None else None
        if info is None:
            info = self._span_info(kind, name)
        self._seq = seq = self._seq + 1
        span = Span(self, seq, now, info, _current.get())
        if extra:
            span.extra = encode_attrs(extra)
        running = self._open
        running[seq] = span
        if len(running) > MAX_ACTIVE_SPANS:
            del running[next(iter(running))]
        span._token = _current.set(span)
        return span

    def end(self, span: Span) -> None:
        """End ``span`` (see :meth:`Span.end`)."""
        token = span._token
        if token is not None:
            span._token = None
            try:  # noqa: SIM105 - cheaper than contextlib.suppress on this path
                _current.reset(token)
            except ValueError:  # ended in another context than the one it started in
                pass
        if self._open.pop(span.seq, None) is None:
            return  # ended already, or forgotten (MAX_ACTIVE_SPANS)
        now = self.clock_ns()
        size = span.info[2]
        if self._records and (now >= self._bucket_end_ns or self._size + size > self.chunk_target):
            # (A span that began in the bucket before is written as a SpanSnapshot.)
            self._seal()
        span.end_ns = now
        if span.extra is not None:
            size += _attrs_size(span.extra)
        if span.error is not None:
            size += 200
        records = self._records
        if not records:
            self._open_chunk(now)
        records.append(span)
        self._size += size

    def instant(self, kind: str, name: str, extra: dict[str, Any] | None = None) -> None:
        """A span that starts and ends now."""
        self.end(self.start(kind, name, extra))

    def _open_chunk(self, now: int) -> None:
        bucket = now // _BUCKET_NS * BUCKET_SECONDS
        since_ms = (now - bucket * 1_000_000_000) // 1_000_000
        self._chunk_id = since_ms if bucket != self._bucket else max(self._chunk_id + 1, since_ms)
        self._bucket = bucket
        self._bucket_end_ns = (bucket + BUCKET_SECONDS) * 1_000_000_000
        if not self.closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._timer = loop.call_later(self._chunk_age, self._age_out, self._chunk_id)

    def _age_out(self, chunk_id: int) -> None:
        self._timer = None
        if chunk_id == self._chunk_id:
            self._seal()

    def _with_running(self, records: list[Any], mark: bool) -> list[Span]:
        """Put the starts of running spans not written yet first in ``records`` (so the
        i-th of them is the chunk's record i); ``mark``: remember where (a seal)."""
        running = list(self._open.values())
        starts: list[Any] = []
        for span in running:
            if span.start_ref is None:
                if mark:
                    span.start_ref = (self._bucket, self._chunk_id, len(starts))
                starts.append((STARTED, span))
        records[:0] = starts
        return running

    def _seal(self, *, with_running: bool = False) -> None:
        """Close the current chunk and hand it to the writer (``with_running``: even when
        it holds nothing but the starts of running spans)."""
        if not self._records:
            if not with_running or all(s.start_ref is not None for s in self._open.values()):
                return
            self._open_chunk(self.clock_ns())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        records = self._records
        self._records = []
        self._size = 0
        if self.closed:  # the actor has stopped: its KV is not ours any more
            return
        running = self._with_running(records, True)
        pending = self.pending
        pending.append(Sealed(self._bucket, self._chunk_id, records, running))
        if len(pending) > MAX_PENDING:
            del pending[1]  # pending[0] may be the one being written
        if self._writer is None or self._writer.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._writer = loop.create_task(self._write_pending())

    def current(self) -> Sealed | None:
        """The chunk being filled, with the starts of running spans, as a snapshot (None:
        nothing recorded and nothing running)."""
        records = list(self._records)
        bucket, chunk_id = self._bucket, self._chunk_id
        if not records:
            if not self._open:
                return None
            now = self.clock_ns()
            bucket = now // _BUCKET_NS * BUCKET_SECONDS
            chunk_id = max(chunk_id + 1, (now - bucket * 1_000_000_000) // 1_000_000)
        running = self._with_running(records, False)
        return Sealed(bucket, chunk_id, records, running)

    # -- storing ---------------------------------------------------------------------------

    async def _load_stored(self) -> list[tuple[bytes, int]]:
        stored = self._stored
        if stored is None:
            end = TRACES_PREFIX[:-1] + bytes((TRACES_PREFIX[-1] + 1,))
            entries = await self.store.list(TRACES_PREFIX, end)
            stored = self._stored = [(k, len(v)) for k, v in entries if parse_chunk_key(k)]
            self._stored_bytes = sum(size for _, size in stored)
        return stored

    async def _write_pending(self) -> None:
        while self.pending:
            sealed = self.pending[0]
            try:
                await self._write(sealed)
            except Exception as exc:
                self.write_error = exc
                logger.warning("writing a trace chunk failed (dropped): %s", exc)
            from rivetkit.traces import export  # it imports this module

            if export.exporting():
                await export.export_sealed(self, sealed)
            self.pending.pop(0)

    async def _write(self, sealed: Sealed) -> None:
        from rivetkit.traces.encode import encode_chunk  # it imports this module

        data = encode_chunk(self, sealed)
        key = chunk_key(sealed.bucket, sealed.chunk_id)
        stored = await self._load_stored()
        deletes: list[bytes] = []
        total = self._stored_bytes + len(data)
        kept = [entry for entry in stored if entry[0] != key]
        total -= sum(size for k, size in stored if k == key)
        while kept and total > self.max_bytes:
            old, size = kept.pop(0)
            deletes.append(old)
            total -= size
        if len(data) > self.max_bytes:
            return  # a single chunk over the bound is not kept at all
        await self.store.write([(key, data)], deletes)
        kept.append((key, len(data)))
        kept.sort()
        self._stored = kept
        self._stored_bytes = total

    async def flush(self) -> None:
        """Seal the current chunk (with the starts of running spans) and wait until every
        sealed chunk is written."""
        self._seal(with_running=True)
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush (for at most ``timeout`` seconds: a store that hangs does not hold the
        actor's stop; what is not written then is lost), then record nothing more."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except asyncio.TimeoutError:
            logger.warning("trace chunks not written within %g s of the stop: dropped", timeout)
            if self._writer is not None:
                self._writer.cancel()
            self.pending.clear()
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

"""One actor's spans, recorded in the storage layout of npm ``@rivetkit/traces@2.3.19``.

What happens on a span (all of it synchronous and in memory, no I/O, no encoding):

* :meth:`ActorTraces.start` appends a ``SpanStart`` record to the current chunk and makes
  the span the current one of the task (a :mod:`contextvars` variable), so spans started
  under it (an action run by a schedule) are its children, in its trace;
* :meth:`Span.end` appends a ``SpanEnd`` (status ``ERROR`` after :meth:`Span.fail`, with a
  ``SpanUpdate`` carrying ``error.type`` and ``error.message`` first).

Records are plain tuples until their chunk is *sealed*: when it is :data:`CHUNK_AGE`
seconds old (a timer), when its estimated size reaches the chunk target, when the hour
bucket changes, and when the actor stops. A background task then encodes the sealed chunk
(:mod:`rivetkit.traces.schema`) and writes it at ``[7, 1] + (1, bucket, chunk_id)``,
deleting the oldest chunks in the same atomic write while the stored total would pass
``max_bytes`` (the bound: oldest dropped). Sealed chunks not yet written stay readable.

A chunk's id is the milliseconds since its bucket's start when it was opened (at least the
previous id + 1), so ids grow across wakes and processes without reading the store first;
RivetKit's readers only need their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from random import getrandbits
from typing import Any, Final, NamedTuple, Protocol

from rivetkit.errors import RivetError
from rivetkit.protocol.values import cbor_dumps_raw
from rivetkit.runtime.keys import TRACES_PREFIX
from rivetkit.traces.schema import CHUNK, chunk_key, parse_chunk_key

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
#: More running spans than this: the oldest are forgotten (never ended). RivetKit's default.
MAX_ACTIVE_SPANS: Final = 10_000

# Record tuples: (kind, unix_ns, span_id, ...):
#   START: (0, ns, span_id, trace_id, parent_id | None, name, attrs)
#   UPDATE: (2, ns, span_id, attrs, status)
#   END: (3, ns, span_id, status)
# attrs: tuple of (key, cbor bytes); status: None or (code, message).
START: Final = 0
UPDATE: Final = 2
END: Final = 3
_BUCKET_NS: Final = BUCKET_SECONDS * 1_000_000_000

Attrs = tuple[tuple[str, bytes], ...]
#: Where a span's start record is: (bucket_start_sec, chunk_id, record_index).
StartRef = tuple[int, int, int]

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
    """A chunk whose records are final: waiting to be written (or being read)."""

    bucket: int
    chunk_id: int
    records: list[tuple[Any, ...]]
    active: list[tuple[bytes, StartRef]]


class Span:
    """A running span (see :meth:`ActorTraces.start`)."""

    __slots__ = ("_owner", "_token", "error", "span_id", "trace_id")

    def __init__(self, owner: ActorTraces, span_id: bytes, trace_id: bytes) -> None:
        self._owner = owner
        self.span_id = span_id
        self.trace_id = trace_id
        self.error: BaseException | None = None
        self._token: Token[Span | None] | None = None

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
        self._bucket = -1
        self._chunk_id = -1
        self._records: list[tuple[Any, ...]] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._active: dict[bytes, StartRef] = {}
        self._attr_cache: dict[tuple[str, str], tuple[str, Attrs, int]] = {}
        #: Sealed chunks not yet written, oldest first.
        self.pending: list[Sealed] = []
        self._writer: asyncio.Task[None] | None = None
        # (key, size) of the stored chunks, in key order; None until first read.
        self._stored: list[tuple[bytes, int]] | None = None
        self._stored_bytes = 0
        self.closed = False
        self.write_error: BaseException | None = None

    # -- recording -------------------------------------------------------------------------

    def _name_attrs(self, kind: str, name: str) -> tuple[str, Attrs, int]:
        """The span name, attributes and estimated start-record size of ``kind``/``name``."""
        cached = self._attr_cache.get((kind, name))
        if cached is None:
            key = "rivet.queue.name" if kind == "queue.receive" else f"rivet.{kind}.name"
            attrs = encode_attrs({"rivet.invocation.type": kind, key: name})
            size = 64 + sum(len(k) + len(v) + 6 for k, v in attrs)
            cached = (f"{kind} {name}", attrs, size)
            if len(self._attr_cache) < 4096:
                self._attr_cache[(kind, name)] = cached
        return cached

    def start(self, kind: str, name: str, extra: dict[str, Any] | None = None) -> Span:
        """Start a span ``"{kind} {name}"`` (attributes ``rivet.invocation.type`` and
        ``rivet.{kind}.name``, plus ``extra``), child of the task's current span, and make
        it the current one until it ends."""
        now = self.clock_ns()
        span_name, attrs, size = self._name_attrs(kind, name)
        if extra:
            more = encode_attrs(extra)
            attrs += more
            size += sum(len(k) + len(v) + 6 for k, v in more)
        parent = _current.get()
        span_id = getrandbits(64).to_bytes(8, "big")
        if parent is not None and parent._owner is self:
            trace_id = parent.trace_id
            parent_id: bytes | None = parent.span_id
        else:
            trace_id = getrandbits(128).to_bytes(16, "big")
            parent_id = None
        span = Span(self, span_id, trace_id)
        index = self._append(
            (START, now, span_id, trace_id, parent_id, span_name, attrs), now, size
        )
        active = self._active
        active[span_id] = (self._bucket, self._chunk_id, index)
        if len(active) > MAX_ACTIVE_SPANS:
            del active[next(iter(active))]
        span._token = _current.set(span)
        return span

    def end(self, span: Span) -> None:
        """End ``span`` (see :meth:`Span.end`)."""
        token = span._token
        if token is not None:
            span._token = None
            with contextlib.suppress(ValueError):  # ended in another context than its start
                _current.reset(token)
        if self._active.pop(span.span_id, None) is None:
            return  # ended already, or forgotten (MAX_ACTIVE_SPANS)
        now = self.clock_ns()
        error = span.error
        status = None
        if error is not None:
            attrs, message = error_attrs(error)
            status = (2, message)
            self._append((UPDATE, now, span.span_id, attrs, None), now, 40 + len(message))
        self._append((END, now, span.span_id, status), now, 20)

    def instant(self, kind: str, name: str, extra: dict[str, Any] | None = None) -> None:
        """A span that starts and ends now."""
        span = self.start(kind, name, extra)
        span.end()

    def _append(self, record: tuple[Any, ...], now: int, size: int) -> int:
        bucket = now // _BUCKET_NS * BUCKET_SECONDS
        if bucket != self._bucket or self._size + size > self.chunk_target:
            self._seal()
        records = self._records
        if not records:
            self._open(bucket, now)
        records.append(record)
        self._size += size
        return len(records) - 1

    def _open(self, bucket: int, now: int) -> None:
        since_ms = (now - bucket * 1_000_000_000) // 1_000_000
        self._chunk_id = since_ms if bucket != self._bucket else max(self._chunk_id + 1, since_ms)
        self._bucket = bucket
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

    def _seal(self) -> None:
        """Close the current chunk and hand it to the writer."""
        if not self._records:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.closed:  # the actor has stopped: its KV is not ours any more
            self._records = []
            self._size = 0
            return
        self.pending.append(
            Sealed(self._bucket, self._chunk_id, self._records, list(self._active.items()))
        )
        self._records = []
        self._size = 0
        if self._writer is None or self._writer.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._writer = loop.create_task(self._write_pending())

    def current(self) -> Sealed | None:
        """The chunk being filled, as a snapshot (None: empty)."""
        if not self._records:
            return None
        return Sealed(self._bucket, self._chunk_id, list(self._records), list(self._active.items()))

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
            self.pending.pop(0)

    async def _write(self, sealed: Sealed) -> None:
        from rivetkit.traces.wire import build_chunk  # wire imports this module

        data = CHUNK.encode(build_chunk(sealed))
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
        """Seal the current chunk and wait until every sealed chunk is written."""
        self._seal()
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        """Flush, then record nothing more (the actor stops)."""
        await self.flush()
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stored_keys(self) -> Iterable[bytes]:
        """Keys of the chunks known to be stored (after the first write or read)."""
        return [k for k, _ in self._stored or ()]

"""One actor's spans, recorded in the storage layout of npm ``@rivetkit/traces@2.3.19``.

Recording costs little on the path it measures (an action): :meth:`ActorTraces.start`
reads the clock, makes a :class:`Span` and makes it the task's current span (a
:mod:`contextvars` variable, so spans started under it, such as the action of a schedule
run, are its children in its trace); :meth:`Span.end` reads the clock again and appends
the span to the current chunk. No ids are drawn, nothing is encoded, no I/O. That half,
:class:`SpanRecorder`, is a hot-path twin (``rivetkit._speedups._spans``, compiled, or
:mod:`rivetkit.traces._spans_py`); :class:`TraceStorage` below seals and stores, and
:class:`ActorTraces` is the two together.

The chunk is *sealed* when it is :data:`CHUNK_AGE` seconds old (one loop timer for every
recorder of the loop, :mod:`rivetkit.traces.aging`: up to its ``SLOT_WIDTH`` later), when its
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
RivetKit's readers only need their order. The first write of a generation, which lists the
stored chunks anyway, moves its ids past the stored ones of the bucket when they would meet (a
wake within the millisecond of the last chunk, a clock stepped back). Span ids are a random
per-recorder base plus a sequence number; a root span's trace id is 8 random bytes per
recorder plus its number.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from random import getrandbits
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, cast

from rivetkit import _twins
from rivetkit.runtime.keys import TRACES_PREFIX
from rivetkit.traces import aging as _aging
from rivetkit.traces.aging import AgeSlot
from rivetkit.traces.attrs import Attrs, encode_attrs, error_attrs
from rivetkit.traces.schema import chunk_key, parse_chunk_key
from rivetkit.traces.store import DONE, DriverStore

if TYPE_CHECKING:
    from rivetkit.traces._spans_py import (
        BUCKET_SECONDS,
        MAX_ACTIVE_SPANS,
        MAX_CHUNK_BYTES,
        Span,
        SpanInfo,
        SpanRecorder,
        StartRef,
        current_span,
    )
else:
    _spans = _twins.load("_spans", "rivetkit.traces._spans_py")
    BUCKET_SECONDS = _spans.BUCKET_SECONDS
    MAX_ACTIVE_SPANS = _spans.MAX_ACTIVE_SPANS
    MAX_CHUNK_BYTES = _spans.MAX_CHUNK_BYTES
    Span = _spans.Span
    SpanRecorder = _spans.SpanRecorder
    current_span = _spans.current_span
    from rivetkit.traces._spans_py import SpanInfo, StartRef  # type aliases only

__all__ = [
    "BUCKET_SECONDS",
    "CHUNK_AGE",
    "DEFAULT_MAX_BYTES",
    "MAX_ACTIVE_SPANS",
    "MAX_CHUNK_BYTES",
    "ActorTraces",
    "Attrs",
    "Sealed",
    "Span",
    "SpanInfo",
    "StartRef",
    "TraceStorage",
    "TraceStore",
    "current_span",
    "encode_attrs",
    "error_attrs",
]

logger = logging.getLogger("rivetkit.traces")

#: A chunk is sealed (and written) this many seconds after its first record at the latest
#: (plus up to :data:`rivetkit.traces.aging.SLOT_WIDTH`: its deadline's slot).
CHUNK_AGE: Final = 5.0
#: Default bound of an actor's stored traces (``ActorOptions.traces_max_bytes``).
DEFAULT_MAX_BYTES: Final = 1024 * 1024
#: Sealed chunks waiting for the writer beyond this (a store that does not keep up): the
#: oldest waiting one is dropped.
MAX_PENDING: Final = 32

_BUCKET_NS: Final = BUCKET_SECONDS * 1_000_000_000
#: The end of the traces' key range (exclusive).
_TRACES_END: Final = TRACES_PREFIX[:-1] + bytes((TRACES_PREFIX[-1] + 1,))

#: Record marker: the start of a span still running when its chunk was sealed.
STARTED: Final = "started"


_late_modules: dict[str, ModuleType] = {}


def _late(name: str) -> ModuleType:
    """``rivetkit.traces.<name>``, a module that imports this one (:mod:`.export`,
    :mod:`.encode`), imported at its first use and kept: a ``from ... import`` in a function
    runs the import machinery at every call (a package's ``_handle_fromlist``, in Python),
    twice per stopping actor."""
    module = _late_modules.get(name)
    if module is None:
        module = _late_modules[name] = importlib.import_module(f"rivetkit.traces.{name}")
    return module


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


class ActorIdentity(Protocol):
    """Who an actor is, for its traces' resource attributes."""

    @property
    def actor_id(self) -> str:
        """The actor's id."""
        ...

    @property
    def name(self) -> str:
        """The actor's name."""
        ...

    @property
    def key(self) -> list[str]:
        """The actor's key."""
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


_new_tuple: Final = tuple.__new__

#: The pending chunks of every recorder that has sealed none (never added to: see ``_seal``).
_NO_PENDING: Final[list[Sealed]] = []
#: The records of a recorder with no chunk open, once one was sealed (never added to: the
#: recording half makes a chunk's list at its first record).
_NO_RECORDS: Final[list[Any]] = []
#: The stored chunks of every recorder whose actor has none stored (never changed in place).
_NONE_STORED: Final[list[tuple[bytes, int]]] = []


class TraceStorage:
    """Sealing and storing, mixed into a :class:`SpanRecorder` twin (see :class:`ActorTraces`).

    ``store`` reaches the actor's KV; ``max_bytes`` bounds what is stored (oldest chunks
    deleted first); ``clock_ns`` is the wall clock in epoch nanoseconds (spans carry wall
    times); ``resource`` is the OTLP resource attributes the trace query reports, or
    ``actor`` (``(actor_id, name, key)``, or an object with those three attributes, such as
    the store) the actor's, made into that dict only when asked (:attr:`resource`: a live
    actor keeps what it holds anyway, not a dict).
    """

    if not TYPE_CHECKING:  # (no __dict__ of its own: ActorTraces lists the fields in slots;
        __slots__ = ()  # mypy would read this empty tuple as the fields' list)

    if TYPE_CHECKING:  # the recording half's fields (SpanRecorder)
        clock_ns: Callable[[], int]
        chunk_target: int
        closed: bool
        id_base: int
        trace_base: bytes
        _bucket: int
        _chunk_id: int
        _records: list[Any]
        _size: int

        def running(self) -> list[Span]: ...
        def seed(self, bits: int) -> None: ...
        def _open_chunk(self, now: int) -> None: ...

    def __init__(
        self,
        store: TraceStore,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock_ns: Callable[[], int] = time.time_ns,
        resource: dict[str, Any] | None = None,
        chunk_age: float = CHUNK_AGE,
        actor: tuple[str, str, list[str]] | ActorIdentity | None = None,
    ) -> None:
        super().__init__()
        # Every field is set here: ActorTraces keeps them in slots (no __dict__ per actor),
        # which hide the class attributes below.
        self.store = store
        self.max_bytes = max_bytes
        if self.clock_ns is not clock_ns:  # (the recording half starts on time.time_ns)
            self.clock_ns = clock_ns
        self._resource = resource if resource else actor
        self._chunk_age = chunk_age
        self._age_slot = None
        self._writer = None
        self._stored = None
        self._stored_bytes = 0
        self.write_error = None
        self._checked = False
        # Chunks stay well under the bound, so dropping one drops a small part of it.
        if max_bytes != DEFAULT_MAX_BYTES:  # (its target is where the recording half starts)
            target = max(512, min(MAX_CHUNK_BYTES, max_bytes // 8))
            if target != MAX_CHUNK_BYTES:
                self.chunk_target = target
        self.seed(getrandbits(128))  # (both id bases: one draw, no property setters)
        #: Sealed chunks not yet written, oldest first (the shared empty list until the
        #: first seal: only :meth:`_seal` adds to it, and gives the recorder its own first).
        self.pending: list[Sealed] = _NO_PENDING

    # The fields below and their first values (set by __init__ too: see ActorTraces).
    max_bytes: int = DEFAULT_MAX_BYTES
    _chunk_age: float = CHUNK_AGE
    _resource: dict[str, Any] | tuple[str, str, list[str]] | ActorIdentity | None = None
    #: The age slot (:mod:`rivetkit.traces.aging`) the open chunk waits in, if any.
    _age_slot: AgeSlot | None = None
    _writer: asyncio.Task[None] | None = None
    #: (key, size) of the stored chunks, in key order; None until first read. Never changed
    #: in place (a write sets a new list), so none stored is one shared empty list.
    _stored: list[tuple[bytes, int]] | None = None
    _stored_bytes: int = 0
    write_error: BaseException | None = None
    #: Whether the chunk ids were checked against the stored ones (before the first write).
    _checked: bool = False

    @property
    def resource(self) -> dict[str, Any]:
        """The OTLP resource attributes the trace query and the exporter report (the
        actor's are made here, when asked: few recorders are ever asked)."""
        made = self._resource
        if made is None:
            return {}
        if isinstance(made, dict):
            return made
        if type(made) is tuple:
            actor_id, name, key = made
        else:
            identity = cast("ActorIdentity", made)
            actor_id, name, key = identity.actor_id, identity.name, identity.key
        return {
            "service.name": "rivetkit",
            "rivet.actor.id": actor_id,
            "rivet.actor.name": name,
            "rivet.actor.key": "/".join(key),
        }

    def preload(self) -> Awaitable[None]:
        """Read which chunks are stored now (a new actor starts; awaitable): none, with nothing
        awaited, when the driver knows the KV empty (the embedded one, of an actor it just
        made), where the first write's listing would cost a store trip. Only this recorder
        writes the actor's chunks from here on, so what it read stays exact. A failing read
        is left to the first write to retry (its chunk dropped if that fails too)."""
        if self._stored is None:
            store = self.store
            if type(store) is not DriverStore or not store.driver.kv_known_empty(store.actor_id):
                return self._list_stored()
            self._stored = _NONE_STORED
            self._stored_bytes = 0
        return DONE

    async def _list_stored(self) -> None:
        try:
            entries = await self.store.list(TRACES_PREFIX, _TRACES_END)
        except Exception as exc:
            logger.debug("listing the stored trace chunks failed: %s", exc)
            return
        if self._stored is None:  # (not read meanwhile by a write)
            self._set_stored(entries)

    # -- sealing ---------------------------------------------------------------------------

    def _chunk_opened(self) -> None:
        if not self.closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            ages = _aging._last
            if ages is None or ages.age != self._chunk_age or ages._loop_ref() is not loop:
                ages = _aging.ages_of(loop, self._chunk_age)
            # (ages.add's common case, a slot open already, without its frame)
            now = loop.time()
            slot = ages._slots.get(-int(-(now + ages.age) // _aging.SLOT_WIDTH))
            if slot is None:
                self._age_slot = ages.add(self, now)
            else:
                slot[self] = None
                self._age_slot = slot

    def _age_out(self) -> None:
        """The current chunk is old enough (its age slot ended): seal it."""
        self._age_slot = None
        self._seal()

    def _with_running(self, records: list[Any], mark: bool) -> list[Span]:
        """Put the starts of running spans not written yet first in ``records`` (so the
        i-th of them is the chunk's record i); ``mark``: remember where (a seal)."""
        running = self.running()
        if running:
            self._put_starts(records, running, mark)
        return running

    def _put_starts(self, records: list[Any], running: list[Span], mark: bool) -> None:
        starts: list[Any] = []
        for span in running:
            if span.start_ref is None:
                if mark:
                    span.start_ref = (self._bucket, self._chunk_id, len(starts))
                starts.append((STARTED, span))
        records[:0] = starts

    def _seal(self, *, with_running: bool = False, spawn: bool = True) -> None:
        """Close the current chunk and hand it to the writer (``with_running``: even when
        it holds nothing but the starts of running spans; ``spawn``: start a writer task
        if none runs, else the caller writes :attr:`pending` itself)."""
        if not self._records:
            if not with_running or all(s.start_ref is not None for s in self.running()):
                return
            self._open_chunk(self.clock_ns())
        slot = self._age_slot
        if slot is not None:
            self._age_slot = None
            slot.pop(self, None)
        # (an empty list may be shared by recorders: never added to, so a new one here)
        records = self._records if self._records else []
        self._records = _NO_RECORDS
        self._size = 0
        if self.closed:  # the actor has stopped: its KV is not ours any more
            return
        running = self.running()
        if running:  # (not a frame per seal for none)
            self._put_starts(records, running, True)
        pending = self.pending
        if pending is _NO_PENDING:
            pending = self.pending = []
        # (tuple.__new__: a NamedTuple's own __new__ is a Python frame)
        pending.append(_new_tuple(Sealed, (self._bucket, self._chunk_id, records, running)))
        if len(pending) > MAX_PENDING:
            del pending[1]  # pending[0] may be the one being written
        if spawn and (self._writer is None or self._writer.done()):
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
            if not self.running():
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
            entries = await self.store.list(TRACES_PREFIX, _TRACES_END)
            stored = self._set_stored(entries)
        return stored

    def _set_stored(self, entries: list[tuple[bytes, bytes]]) -> list[tuple[bytes, int]]:
        if entries:
            stored = [(k, len(v)) for k, v in entries if parse_chunk_key(k)]
            self._stored_bytes = sum(size for _, size in stored)
        else:
            stored = _NONE_STORED
            self._stored_bytes = 0
        self._stored = stored
        return stored

    async def _write_pending(self) -> None:
        try:
            while self.pending:
                sealed = self.pending[0]
                try:
                    await self._write(sealed)
                except Exception as exc:
                    self.write_error = exc
                    logger.warning("writing a trace chunk failed (dropped): %s", exc)
                sealed = self.pending[0]  # (renumbered by the first write if it had to be)
                export = _late("export")
                if export.exporting():
                    await export.export_sealed(cast("ActorTraces", self), sealed)
                self.pending.pop(0)
        finally:
            # The writer that ends lets go of its task (an ended writer reads as none): a
            # done task and its coroutine, ~700 B, were kept as long as the actor lived.
            if self._writer is asyncio.current_task():
                self._writer = None

    async def _write(self, sealed: Sealed) -> None:
        stored = await self._load_stored()
        if not self._checked:
            self._clear_of(stored)  # (a listing: no frame to spare here)
            sealed = self.pending[0]
        plan = self._plan(sealed, stored)
        if plan is None:
            return  # a single chunk over the bound is not kept at all
        key, data, deletes, kept, total = plan
        await self.store.write([(key, data)], deletes)
        self._stored_written(key, data, kept, total)

    def _plan(
        self, sealed: Sealed, stored: list[tuple[bytes, int]]
    ) -> tuple[bytes, bytes, list[bytes], list[tuple[bytes, int]], int] | None:
        """What writing ``sealed`` takes: ``(key, data, deletes, kept, total)`` (the oldest
        chunks deleted while the stored total would pass the bound), or None when the chunk
        alone is over the bound (not kept at all)."""
        encode = _late_modules.get("encode") or _late("encode")
        traces: ActorTraces = self  # type: ignore[assignment]  # (typing.cast is a call)
        data = encode.encode_chunk(traces, sealed)
        key = chunk_key(sealed.bucket, sealed.chunk_id)
        deletes: list[bytes] = []
        total = self._stored_bytes + len(data)
        if not stored:  # (a new actor's first chunk)
            kept: list[tuple[bytes, int]] = []
        else:
            kept = [entry for entry in stored if entry[0] != key]
            total -= sum(size for k, size in stored if k == key)
        while kept and total > self.max_bytes:
            old, size = kept.pop(0)
            deletes.append(old)
            total -= size
        if len(data) > self.max_bytes:
            return None
        return key, data, deletes, kept, total

    def _clear_of(self, stored: list[tuple[bytes, int]]) -> None:
        """Before this recorder's first write: number its chunks above the ones stored in
        the same bucket, so that none of them replaces a chunk of an earlier generation.

        A chunk's id is the millisecond of the bucket it opened in, so a generation that
        starts within the millisecond of the previous one's last chunk (or behind a clock
        stepped back) would reuse its key. Renumbering shifts every id of ours in that
        bucket by the same amount, with the recorder's own and the start refs of its spans:
        the chunks keep their order and their references."""
        self._checked = True
        top: dict[int, int] = {}  # bucket -> highest stored chunk id
        for key, _ in stored:
            where = parse_chunk_key(key)
            if where is not None and where[1] > top.get(where[0], -1):
                top[where[0]] = where[1]
        if not top:
            return
        low: dict[int, int] = {}  # bucket -> lowest chunk id of ours
        ours = [(s.bucket, s.chunk_id) for s in self.pending]
        if self._records:
            ours.append((self._bucket, self._chunk_id))
        for bucket, chunk_id in ours:
            if chunk_id < low.get(bucket, chunk_id + 1):
                low[bucket] = chunk_id
        shifts = {b: top[b] + 1 - first for b, first in low.items() if top.get(b, -1) >= first}
        if not shifts:
            return
        logger.debug("trace chunk ids moved past the stored ones: %s", shifts)
        self.pending[:] = [
            s._replace(chunk_id=s.chunk_id + shifts[s.bucket]) if s.bucket in shifts else s
            for s in self.pending
        ]
        if self._bucket in shifts:
            self._chunk_id += shifts[self._bucket]
        spans: list[Any] = list(self.running())
        for sealed in self.pending:
            spans.extend(sealed.active)
            spans.extend(sealed.records)
        spans.extend(self._records)
        seen: set[int] = set()
        for entry in spans:
            span = entry[1] if type(entry) is tuple else entry
            ref = span.start_ref
            if ref is not None and ref[0] in shifts and id(span) not in seen:
                seen.add(id(span))
                span.start_ref = (ref[0], ref[1] + shifts[ref[0]], ref[2])

    def _stored_written(
        self, key: bytes, data: bytes, kept: list[tuple[bytes, int]], total: int
    ) -> None:
        kept.append((key, len(data)))
        kept.sort()
        self._stored = kept
        self._stored_bytes = total

    def _hand_over(self) -> bool:
        """Hand :attr:`pending` to the store's ``put_soon`` (a stopping actor, no writer task
        running): no coroutine, future or deadline timer per stop, and the puts of every
        actor stopping in one turn of the loop reach the store together. The store runs
        operations in submission order, so a later read or write of the actor's KV (the next
        generation's, a destroy's) comes after them. True when nothing is left pending;
        False when the rest must be written and awaited as before: a store without
        ``put_soon`` or refusing it, stored chunks not listed yet, old chunks to delete, an
        exporter to feed."""
        store = self.store
        # (a DriverStore's put_soon is its driver's, asked here without the store's frame)
        direct = type(store) is DriverStore
        put_soon = None if direct else getattr(store, "put_soon", None)
        stored = self._stored
        if (put_soon is None and not direct) or stored is None:
            return False
        export = _late_modules.get("export") or _late("export")
        if export._exporters:  # (export.exporting(), without its frame)
            return False
        if not self._checked:
            if stored:
                self._clear_of(stored)
            else:  # (nothing stored: nothing to clear of)
                self._checked = True
        pending = self.pending
        while pending:
            if stored:
                plan = self._plan(pending[0], stored)
            else:  # (a new actor's first chunk: _plan's steps without its frame)
                sealed = pending[0]
                encode = _late_modules.get("encode") or _late("encode")
                data = encode.encode_chunk(self, sealed)
                plan = None
                if len(data) <= self.max_bytes:
                    key = chunk_key(sealed.bucket, sealed.chunk_id)
                    plan = (key, data, [], [], self._stored_bytes + len(data))
            if plan is not None:
                key, data, deletes, kept, total = plan
                if deletes:
                    return False
                try:
                    if put_soon is None:  # (direct; typing.cast would be a call)
                        own: DriverStore = store  # type: ignore[assignment]
                        taken = own.driver.kv_put_soon(own.actor_id, [(key, data)], self._put_done)
                    else:
                        taken = put_soon([(key, data)], self._put_done)
                except Exception as exc:  # as a failing write: the chunk is dropped
                    self._put_done(False, exc)
                else:
                    if not taken:
                        return False
                    if kept:
                        self._stored_written(key, data, kept, total)
                    else:  # (_stored_written's steps for the only chunk kept)
                        self._stored = [(key, len(data))]
                        self._stored_bytes = total
                    stored = self._stored
            pending.pop(0)
        return True

    def _put_done(self, ok: bool, error: Any) -> None:
        """The store's answer to a chunk handed over by :meth:`_hand_over`."""
        if not ok:
            self.write_error = error
            logger.warning("writing a trace chunk failed (dropped): %s", error)

    async def flush(self) -> None:
        """Seal the current chunk (with the starts of running spans) and wait until every
        sealed chunk is written."""
        self._seal(with_running=True)
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush (for at most ``timeout`` seconds: a store that hangs does not hold the
        actor's stop; what is not written then is lost), then record nothing more."""
        writer = self._writer
        deadline: float | None = None  # loop time; read only when something is awaited
        if writer is None or writer.done():
            # No writer task runs: the last chunks go to the store's put_soon when it has
            # one (nothing awaited), else the stop writes them itself (no task per stop).
            # Meanwhile its own task is the writer, so that a chunk sealed by a span ending
            # now is written by it too, and a flush waits for it.
            self._seal(with_running=True, spawn=False)
            if self.pending and not self._hand_over():
                loop = asyncio.get_running_loop()
                if asyncio.current_task() is not None:
                    deadline = loop.time() + timeout
                    await self._write_own(deadline, timeout)
                else:  # (a coroutine driven by hand: a writer task, as a seal starts)
                    self._writer = loop.create_task(self._write_pending())
        else:
            self._seal(with_running=True)
        # A writer task already running: waited on itself (no task of its own either).
        writer = self._writer
        if writer is not None and not writer.done():
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + timeout
            while writer is not None and not writer.done():
                done, _ = await asyncio.wait((writer,), timeout=max(0.0, deadline - loop.time()))
                if not done:
                    logger.warning(
                        "trace chunks not written within %g s of the stop: dropped", timeout
                    )
                    writer.cancel()
                    self.pending.clear()
                    break
                writer = self._writer
        self.closed = True
        slot = self._age_slot
        if slot is not None:
            self._age_slot = None
            slot.pop(self, None)

    async def _write_own(self, deadline: float, timeout: float) -> None:
        """Write :attr:`pending` in the calling task, by ``deadline`` (loop time).

        The deadline cancels the task's write, as ``asyncio.timeout_at`` would (Python
        3.11+; not in 3.10): a cancellation from elsewhere still propagates."""
        task = asyncio.current_task()
        assert task is not None
        self._writer = task
        loop = asyncio.get_running_loop()
        cancelling = getattr(task, "cancelling", None)
        before = cancelling() if cancelling is not None else 0
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        handle = loop.call_at(deadline, expire)
        try:
            await self._write_pending()
        except asyncio.CancelledError:
            if not expired:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None and uncancel() > before:
                raise  # cancelled from elsewhere too
            logger.warning("trace chunks not written within %g s of the stop: dropped", timeout)
            self.pending.clear()
        finally:
            handle.cancel()
            if self._writer is task:
                self._writer = None


class ActorTraces(TraceStorage, SpanRecorder):
    """The trace recorder of one actor generation: the selected twin of the recording half
    (:class:`SpanRecorder`: :meth:`start`, :meth:`end`, :meth:`instant`) with
    :class:`TraceStorage` (sealing, writing, :meth:`flush`, :meth:`close`)."""

    # TraceStorage's fields in slots: a recorder per live actor carries no __dict__ (-248 B).
    __slots__ = (
        "_age_slot",
        "_checked",
        "_chunk_age",
        "_resource",
        "_stored",
        "_stored_bytes",
        "_writer",
        "max_bytes",
        "pending",
        "store",
        "write_error",
    )

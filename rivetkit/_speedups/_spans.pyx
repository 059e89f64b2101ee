# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.traces._spans_py` (the span hot path).

Same API and behaviour. A :class:`Span` is a C struct with the fields its writer reads; the
running spans are a doubly linked list through the spans themselves (start order, no dict);
the current-span variable is set and reset through the C API; when the clock is
:func:`time.time_ns` the wall clock is read in C (``clock_gettime(CLOCK_REALTIME)``, what
``time.time_ns`` reads), else the clock given is called.
"""

cimport cython

import struct
import time
from contextvars import ContextVar

from cpython.contextvars cimport PyContextVar_Reset, PyContextVar_Set, get_value
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from libc.string cimport memcpy
from cpython.object cimport PyObject

# rivetkit.traces.attrs is imported at first use: rivetkit.traces imports this module, so a
# module-level import would be circular when this module is imported first.


def _encode_attrs(attributes):
    from rivetkit.traces.attrs import encode_attrs as encode

    return encode(attributes)


def _attrs_size(attrs):
    from rivetkit.traces.attrs import attrs_size as size

    return size(attrs)

cdef extern from *:
    """
    #if defined(_WIN32)
    #include <windows.h>
    static long long rk_spans_wall_ns(void) {
        FILETIME ft;
        GetSystemTimePreciseAsFileTime(&ft);
        unsigned long long t = ((unsigned long long)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
        return (long long)((t - 116444736000000000ULL) * 100ULL);
    }
    #else
    #include <time.h>
    static long long rk_spans_wall_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
    }
    #endif
    """
    long long rk_spans_wall_ns() nogil

__all__ = [
    "BUCKET_SECONDS",
    "MAX_ACTIVE_SPANS",
    "MAX_CHUNK_BYTES",
    "Span",
    "SpanRecorder",
    "current_span",
]

BUCKET_SECONDS = 3600
MAX_CHUNK_BYTES = 64 * 1024
MAX_ACTIVE_SPANS = 10_000

cdef long long _BUCKET_NS = 3600 * 1_000_000_000
cdef Py_ssize_t _MAX_ACTIVE = 10_000
cdef Py_ssize_t _INFO_CACHE = 4096
# The span infos of every recorder, by kind then name: an info depends on its kind and name
# only and is never changed, so a new actor's first span of a kind and name finds it made.
cdef dict _SHARED_INFO = {}
# The records of every recorder with no chunk open (never added to: see _end).
cdef list _NO_RECORDS = []
cdef object _MASK64 = (1 << 64) - 1
cdef object _time_ns = time.time_ns

_current = ContextVar("rivetkit_trace_span", default=None)
cdef object _var = _current


def current_span():
    """The span the running task is in (None: none)."""
    return get_value(_var, None)


@cython.freelist(256)
cdef class Span:
    """A span (see :meth:`SpanRecorder.start`): times and ids, turned into records when its
    chunk is written."""

    cdef SpanRecorder _owner
    cdef object _token
    cdef Span _prev
    cdef Span _next
    cdef bint _running
    cdef unsigned long long _seq
    cdef unsigned long long _trace_seq
    cdef unsigned long long _parent_seq  # 0: none (numbers start at 1)
    cdef public long long start_ns
    cdef public long long end_ns
    cdef public object info
    cdef public object error
    cdef public object extra
    cdef public object start_ref

    def __init__(self, SpanRecorder owner, seq, start_ns, info, trace_seq, parent_seq):
        self._owner = owner
        self._seq = seq
        self.start_ns = start_ns
        self.info = info
        self._trace_seq = trace_seq
        self._parent_seq = 0 if parent_seq is None else parent_seq

    @property
    def seq(self):
        """The span's number in its recorder (from 1)."""
        return self._seq

    @property
    def trace_seq(self):
        """The number of its trace's root span."""
        return self._trace_seq

    @property
    def parent_seq(self):
        """The number of its parent span (None: a root span)."""
        return None if self._parent_seq == 0 else self._parent_seq

    @property
    def span_id(self):
        """The span's 8-byte id."""
        return self._owner.span_id_of(self._seq)

    @property
    def trace_id(self):
        """The 16-byte id of the span's trace."""
        return self._owner.trace_id_of(self._trace_seq)

    @property
    def parent_id(self):
        """The parent span's id (None: a root span)."""
        return None if self._parent_seq == 0 else self._owner.span_id_of(self._parent_seq)

    def fail(self, error):
        """Mark the span failed: it ends with status ``ERROR``."""
        self.error = error

    def end(self):
        """End the span (once; later calls do nothing)."""
        self._owner._end(self)


cdef inline void _put_u64le(unsigned char* out, unsigned long long value) noexcept:
    cdef int i
    for i in range(8):
        out[i] = <unsigned char>(value >> (8 * i))


cdef inline void _put_u64be(unsigned char* out, unsigned long long value) noexcept:
    cdef int i
    for i in range(8):
        out[7 - i] = <unsigned char>(value >> (8 * i))


cdef bytes _plain_pair(
    Span span, long long base, unsigned long long id_base, bytes trace_base, bytes tail
):
    """SpanStart then SpanEnd of a plain root span, as the pure twin's concatenation."""
    cdef Py_ssize_t tail_len = len(tail)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 55 + tail_len)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    cdef unsigned long long span_id = id_base + span._seq  # wraps mod 2**64
    _put_u64le(p, <unsigned long long>(span.start_ns - base))
    p[8] = 0x00
    p[9] = 0x10
    memcpy(p + 10, PyBytes_AS_STRING(trace_base), 8)
    _put_u64be(p + 18, span._trace_seq)
    p[26] = 0x08
    _put_u64be(p + 27, span_id)
    p[35] = 0x00
    memcpy(p + 36, PyBytes_AS_STRING(tail), tail_len)
    p += 36 + tail_len
    _put_u64le(p, <unsigned long long>(span.end_ns - base))
    p[8] = 0x03
    p[9] = 0x08
    _put_u64be(p + 10, span_id)
    p[18] = 0x00
    return out


cdef class SpanRecorder:
    """The recording half of an actor's trace recorder: spans started and ended, the records
    of the chunk being filled (ended spans, in end order) and its estimated size.

    ``clock_ns`` is the wall clock in epoch nanoseconds; ``chunk_target`` the estimated size
    at which a chunk is sealed. A subclass seals and stores: ``_seal()`` is called when a
    span's end would pass the chunk target or the hour bucket, ``_chunk_opened()`` when the
    first record of a chunk arrives. Span ids are ``(id_base + seq) mod 2**64``, trace ids
    ``trace_base + seq`` (8 bytes each).
    """

    # (8 bytes a field but the two flags, side by side; the ids are C integers, not objects,
    # and the bucket's end is computed: a recorder per live actor, 16 B less than before)
    cdef object _clock
    cdef bint _c_clock
    cdef public bint closed
    cdef public Py_ssize_t chunk_target
    cdef unsigned long long _id_base
    cdef unsigned long long _trace_base
    cdef unsigned long long _seq_c
    cdef public long long _bucket
    cdef public long long _chunk_id
    cdef public list _records
    cdef public Py_ssize_t _size
    cdef public dict _info
    cdef Span _head
    cdef Span _tail
    cdef Py_ssize_t _count

    def __init__(self):
        self.clock_ns = _time_ns
        self.chunk_target = MAX_CHUNK_BYTES
        self.closed = False
        self._id_base = 0
        self._trace_base = 0
        self._seq_c = 0
        self._bucket = -1
        self._chunk_id = -1
        # An empty records list is never added to: every recorder with no chunk open shares one.
        self._records = _NO_RECORDS
        self._size = 0
        self._info = _SHARED_INFO
        self._head = None
        self._tail = None
        self._count = 0

    @property
    def clock_ns(self):
        """The wall clock, epoch nanoseconds."""
        return self._clock

    @clock_ns.setter
    def clock_ns(self, clock):
        self._clock = clock
        self._c_clock = clock is _time_ns

    @property
    def _seq(self):
        return self._seq_c

    @property
    def id_base(self):
        """The base of span ids (``0 <= id_base < 2**64``; set: taken mod ``2**64``)."""
        return self._id_base

    @id_base.setter
    def id_base(self, value):
        self._id_base = value & _MASK64

    @property
    def trace_base(self):
        """The first 8 bytes of every trace id (set: 8 bytes, else ValueError)."""
        cdef bytes out = PyBytes_FromStringAndSize(NULL, 8)
        _put_u64be(<unsigned char*>PyBytes_AS_STRING(out), self._trace_base)
        return out

    @trace_base.setter
    def trace_base(self, value):
        if not isinstance(value, bytes) or len(value) != 8:
            raise ValueError("trace_base must be 8 bytes")
        self._trace_base = int.from_bytes(value, "big")

    @property
    def _bucket_end_ns(self):
        return 0 if self._bucket == -1 else self._bucket * 1_000_000_000 + _BUCKET_NS

    cdef inline long long _now(self) except? -1:
        if self._c_clock:
            return rk_spans_wall_ns()
        return self._clock()

    def seed(self, bits):
        """Set both id bases from ``bits`` (a new recorder's 128 random bits): ``id_base``
        its low 64 bits, ``trace_base`` the next 64 (big-endian bytes)."""
        self._id_base = bits & _MASK64
        self._trace_base = (bits >> 64) & _MASK64

    def span_id_of(self, seq):
        """The id of this recorder's span number ``seq``."""
        return ((self._id_base + seq) & _MASK64).to_bytes(8, "big")

    def trace_id_of(self, seq):
        """The id of the trace whose root is this recorder's span number ``seq``."""
        return self.trace_base + seq.to_bytes(8, "big")

    def encode_records(self, list records, long long base, tail_of, other, list parts):
        """Append the record bytes of a chunk's entries (``base``: its bucket start in epoch
        nanoseconds) to ``parts``; returns how many records they are.

        An ended root span with no error nor extra attributes, started in the bucket and
        not written before (an action's span, the common case) is made here: its
        ``SpanStart`` (``tail_of(span)``: the bytes after its parent field; ``tail_of`` may
        be those bytes themselves, when every such span has the same) then its ``SpanEnd``.
        Every other entry goes to ``other(entry, parts)``, which appends its records and
        returns how many.
        """
        cdef Py_ssize_t count = 0
        cdef Span span
        cdef object last_info = None
        cdef bytes tail = None
        cdef bytes trace_base = self.trace_base
        cdef unsigned long long id_base = self._id_base
        cdef bint given = isinstance(tail_of, bytes)
        if given:  # (the same tail for every plain span: never asked)
            tail = <bytes>tail_of
        for entry in records:
            if type(entry) is Span:
                span = <Span>entry
                if (
                    span.start_ref is None
                    and span.error is None
                    and span.extra is None
                    and span._parent_seq == 0
                    and span.start_ns >= base
                ):
                    # tail_of gives the same bytes for the same info (and interns nothing
                    # after its first call for it): asked once per run of the same info.
                    if span.end_ns < base:  # (a wall clock stepped back) as struct.pack
                        raise struct.error("argument out of range")
                    if not given and span.info is not last_info:
                        tail = tail_of(span)
                        last_info = span.info
                    parts.append(_plain_pair(span, base, id_base, trace_base, tail))
                    count += 2
                    continue
            count += other(entry, parts)
        return count

    def running(self):
        """The spans started and not ended (nor forgotten), oldest first."""
        cdef list out = []
        cdef Span span = self._head
        while span is not None:
            out.append(span)
            span = span._next
        return out

    def _span_info(self, kind, name):
        key = "rivet.queue.name" if kind == "queue.receive" else f"rivet.{kind}.name"
        attrs = _encode_attrs({"rivet.invocation.type": kind, key: name})
        info = (f"{kind} {name}", attrs, 80 + len(kind) + len(name) + _attrs_size(attrs))
        names = self._info.setdefault(kind, {})
        if len(names) < _INFO_CACHE:
            names[name] = info
        return info

    cdef inline void _unlink(self, Span span):
        cdef Span prev = span._prev
        cdef Span nxt = span._next
        if prev is None:
            self._head = nxt
        else:
            prev._next = nxt
        if nxt is None:
            self._tail = prev
        else:
            nxt._prev = prev
        span._prev = None
        span._next = None
        span._running = False
        self._count -= 1

    def start(self, kind, name, extra=None):
        """Start a span ``"{kind} {name}"`` (attributes ``rivet.invocation.type`` and
        ``rivet.{kind}.name``, plus ``extra``), child of the task's current span, and make
        it the current one until it ends.

        Nothing is written yet: the span's records are made when its chunk is written.
        """
        cdef long long now = self._now()
        cdef PyObject* found = PyDict_GetItem(self._info, kind)
        cdef object info
        if found is not NULL:
            found = PyDict_GetItem(<dict>found, name)
        if found is NULL:
            info = self._span_info(kind, name)
        else:
            info = <object>found
        self._seq_c += 1
        cdef Span span = Span.__new__(Span)
        span._owner = self
        span._seq = self._seq_c
        span.start_ns = now
        span.info = info
        span._running = True  # (its other fields start as None and 0)
        parent = get_value(_var, None)
        if parent is not None and type(parent) is Span and (<Span>parent)._owner is self:
            span._trace_seq = (<Span>parent)._trace_seq
            span._parent_seq = (<Span>parent)._seq
        else:
            span._trace_seq = span._seq
            span._parent_seq = 0
        if extra:
            span.extra = _encode_attrs(extra)
        cdef Span tail = self._tail
        if tail is None:
            self._head = span
        else:
            tail._next = span
            span._prev = tail
        self._tail = span
        self._count += 1
        if self._count > _MAX_ACTIVE:
            self._unlink(self._head)
        span._token = PyContextVar_Set(_var, span)
        return span

    def end(self, Span span):
        """End ``span`` (see :meth:`Span.end`; in the recorder that started it)."""
        span._owner._end(span)

    cdef _end(self, Span span):
        token = span._token
        if token is not None:
            span._token = None
            try:
                PyContextVar_Reset(_var, token)
            except ValueError:  # ended in another context than the one it started in
                pass
        if not span._running:
            return  # ended already, or forgotten (MAX_ACTIVE_SPANS)
        self._unlink(span)
        cdef long long now = self._now()
        cdef Py_ssize_t size = (<tuple>span.info)[2]
        if self._records and (
            now >= self._bucket * 1_000_000_000 + _BUCKET_NS
            or self._size + size > self.chunk_target
        ):
            # (A span that began in the bucket before is written as a SpanSnapshot.)
            self._seal()
        span.end_ns = now
        if span.extra is not None:
            size += _attrs_size(span.extra)
        if span.error is not None:
            size += 200
        if not self._records:  # (an empty list may be shared: a chunk's own list is made here)
            self._open_chunk(now)
            self._records = [span]
        else:
            self._records.append(span)
        self._size += size

    def instant(self, kind, name, extra=None):
        """A span that starts and ends now."""
        self._end(self.start(kind, name, extra))

    @cython.cdivision(False)  # floor division, as in Python
    def _open_chunk(self, long long now):
        """Number a new chunk whose first record is at ``now``."""
        cdef long long bucket = now // _BUCKET_NS * BUCKET_SECONDS
        cdef long long since_ms = (now - bucket * 1_000_000_000) // 1_000_000
        if bucket != self._bucket:
            self._chunk_id = since_ms
        else:
            self._chunk_id = max(self._chunk_id + 1, since_ms)
        self._bucket = bucket
        self._chunk_opened()

    def _chunk_opened(self):
        """A new chunk got its first record (a subclass arms its age timer)."""

    def _seal(self, *, with_running=False):
        """Close the current chunk (here: drop its records; a subclass stores them)."""
        self._records = _NO_RECORDS
        self._size = 0

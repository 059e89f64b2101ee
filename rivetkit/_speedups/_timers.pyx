# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.runtime._timers_py` (timer bookkeeping).

Same API and behaviour: a binary min-heap of C structs (deadline, sequence, key, token)
with lazy deletion; keys live in a Python dict mapping key -> token, a float of the deadline
made for that arm (one object per armed key, not a (deadline, sequence) tuple and an int):
a heap entry is live while its token is the key's. The heap is compacted (and its array
shrunk) when stale entries outnumber live ones, and emptied with the last live key, so it
never keeps departed keys alive for long.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_FromDouble


cdef struct _Entry:
    double when
    unsigned long long seq
    PyObject* key   # a strong reference owned by the heap
    PyObject* token  # the float stored for the key by this arm (a strong reference)


cdef inline bint _less(_Entry* a, _Entry* b):
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


cdef class TimerQueue:
    """Deadlines by key; the earliest first."""

    cdef _Entry* _heap
    cdef Py_ssize_t _size
    cdef Py_ssize_t _capacity
    cdef dict _deadlines
    cdef unsigned long long _seq

    def __cinit__(self):
        self._capacity = 64
        self._heap = <_Entry*>PyMem_Malloc(self._capacity * sizeof(_Entry))
        if self._heap == NULL:
            raise MemoryError()
        self._size = 0
        self._deadlines = {}
        self._seq = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._heap != NULL:
            for i in range(self._size):
                Py_XDECREF(self._heap[i].key)
                Py_XDECREF(self._heap[i].token)
            PyMem_Free(self._heap)

    cdef int _push(self, double when, unsigned long long seq, object key, object token) except -1:
        cdef _Entry* grown
        cdef Py_ssize_t i, parent
        cdef _Entry item
        if self._size == self._capacity:
            grown = <_Entry*>PyMem_Realloc(self._heap, 2 * self._capacity * sizeof(_Entry))
            if grown == NULL:
                raise MemoryError()
            self._heap = grown
            self._capacity *= 2
        Py_INCREF(key)
        Py_INCREF(token)
        item.when = when
        item.seq = seq
        item.key = <PyObject*>key
        item.token = <PyObject*>token
        i = self._size
        self._size += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _less(&item, &self._heap[parent]):
                break
            self._heap[i] = self._heap[parent]
            i = parent
        self._heap[i] = item
        return 0

    cdef void _sift_down(self, Py_ssize_t i, _Entry item):
        # Put ``item`` at ``i`` and move it down to its place.
        cdef Py_ssize_t child
        while True:
            child = 2 * i + 1
            if child >= self._size:
                break
            if child + 1 < self._size and _less(&self._heap[child + 1], &self._heap[child]):
                child += 1
            if not _less(&self._heap[child], &item):
                break
            self._heap[i] = self._heap[child]
            i = child
        self._heap[i] = item

    cdef _Entry _pop(self):
        # The caller owns the returned entry's key and token references.
        cdef _Entry top = self._heap[0]
        self._size -= 1
        if self._size > 0:
            self._sift_down(0, self._heap[self._size])
        return top

    cdef bint _is_live(self, _Entry* entry):
        return PyDict_GetItem(self._deadlines, <object>entry.key) == entry.token

    def arm(self, key, double when):
        """Set ``key``'s deadline to ``when`` (replacing any earlier one)."""
        token = PyFloat_FromDouble(when)  # a new object: this arm's own
        self._seq += 1
        self._deadlines[key] = token
        self._push(when, self._seq, key, token)
        self._maybe_compact()

    def cancel(self, key):
        """Forget ``key``'s deadline; True when it had one."""
        if self._deadlines.pop(key, None) is None:
            return False
        self._maybe_compact()
        return True

    def deadline(self, key):
        """``key``'s deadline, or None."""
        return self._deadlines.get(key)

    def next_deadline(self):
        """The earliest deadline, or None when empty."""
        cdef _Entry entry
        while self._size > 0:
            if self._is_live(&self._heap[0]):
                return self._heap[0].when
            entry = self._pop()
            Py_XDECREF(entry.key)
            Py_XDECREF(entry.token)
        return None

    def pop_due(self, double now):
        """Remove and return the keys whose deadline is ``<= now``, earliest first."""
        cdef list due = []
        cdef _Entry entry
        while self._size > 0 and self._heap[0].when <= now:
            entry = self._pop()
            key = <object>entry.key
            live = self._is_live(&entry)
            Py_XDECREF(entry.key)
            Py_XDECREF(entry.token)
            if live:
                del self._deadlines[key]
                due.append(key)
        if due:
            self._maybe_compact()
        return due

    cdef int _maybe_compact(self) except -1:
        cdef Py_ssize_t live = len(self._deadlines)
        if live == 0:
            # Fresh containers: a dict never shrinks, and keys must not outlive their use.
            self._clear_heap()
            self._resize(64)
            self._deadlines = {}
        elif self._size > 64 and self._size > 2 * live:
            self._compact()
        return 0

    cdef void _clear_heap(self):
        cdef Py_ssize_t i
        for i in range(self._size):
            Py_XDECREF(self._heap[i].key)
            Py_XDECREF(self._heap[i].token)
        self._size = 0

    cdef int _resize(self, Py_ssize_t capacity) except -1:
        # Shrink (only) when the array is over four times what is needed.
        cdef _Entry* smaller
        if capacity < 64:
            capacity = 64
        if self._capacity <= 4 * capacity or capacity < self._size:
            return 0
        smaller = <_Entry*>PyMem_Realloc(self._heap, capacity * sizeof(_Entry))
        if smaller == NULL:
            raise MemoryError()
        self._heap = smaller
        self._capacity = capacity
        return 0

    cdef int _compact(self) except -1:
        # Keep the live entries (each key's latest arm), then restore the heap order.
        cdef Py_ssize_t i, kept = 0
        self._deadlines = dict(self._deadlines)  # sized for what is left
        for i in range(self._size):
            if self._is_live(&self._heap[i]):
                self._heap[kept] = self._heap[i]
                kept += 1
            else:
                Py_XDECREF(self._heap[i].key)
                Py_XDECREF(self._heap[i].token)
        self._size = kept
        for i in range(kept // 2 - 1, -1, -1):
            self._sift_down(i, self._heap[i])
        self._resize(2 * kept)
        return 0

    def __len__(self):
        return len(self._deadlines)

    def __contains__(self, key):
        return key in self._deadlines

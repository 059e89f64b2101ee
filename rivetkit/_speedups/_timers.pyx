# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.runtime._timers_py` (timer bookkeeping).

Same API and behaviour: a binary min-heap of C structs (deadline, sequence, key slot) with
lazy deletion; keys live in a Python dict mapping key -> (deadline, sequence).
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.dict cimport PyDict_GetItem


cdef struct _Entry:
    double when
    unsigned long long seq
    PyObject* key   # a strong reference owned by the heap


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
            PyMem_Free(self._heap)

    cdef int _push(self, double when, unsigned long long seq, object key) except -1:
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
        item.when = when
        item.seq = seq
        item.key = <PyObject*>key
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

    cdef _Entry _pop(self):
        # The caller owns the returned entry's key reference.
        cdef _Entry top = self._heap[0]
        cdef _Entry last
        cdef Py_ssize_t i = 0, child
        self._size -= 1
        if self._size > 0:
            last = self._heap[self._size]
            while True:
                child = 2 * i + 1
                if child >= self._size:
                    break
                if child + 1 < self._size and _less(&self._heap[child + 1], &self._heap[child]):
                    child += 1
                if not _less(&self._heap[child], &last):
                    break
                self._heap[i] = self._heap[child]
                i = child
            self._heap[i] = last
        return top

    cdef bint _is_live(self, _Entry* entry):
        cdef PyObject* found = PyDict_GetItem(self._deadlines, <object>entry.key)
        if found == NULL:
            return False
        return (<tuple>found)[1] == entry.seq

    def arm(self, key, double when):
        """Set ``key``'s deadline to ``when`` (replacing any earlier one)."""
        self._seq += 1
        self._deadlines[key] = (when, self._seq)
        self._push(when, self._seq, key)
        if self._size > 64 and self._size > 2 * len(self._deadlines):
            self._compact()

    def cancel(self, key):
        """Forget ``key``'s deadline; True when it had one."""
        return self._deadlines.pop(key, None) is not None

    def deadline(self, key):
        """``key``'s deadline, or None."""
        entry = self._deadlines.get(key)
        return None if entry is None else entry[0]

    def next_deadline(self):
        """The earliest deadline, or None when empty."""
        cdef _Entry entry
        while self._size > 0:
            if self._is_live(&self._heap[0]):
                return self._heap[0].when
            entry = self._pop()
            Py_XDECREF(entry.key)
        return None

    def pop_due(self, double now):
        """Remove and return the keys whose deadline is ``<= now``, earliest first."""
        cdef list due = []
        cdef _Entry entry
        while self._size > 0 and self._heap[0].when <= now:
            entry = self._pop()
            key = <object>entry.key
            Py_XDECREF(entry.key)
            found = self._deadlines.get(key)
            if found is not None and (<tuple>found)[1] == entry.seq:
                del self._deadlines[key]
                due.append(key)
        return due

    cdef _compact(self):
        cdef Py_ssize_t i
        for i in range(self._size):
            Py_XDECREF(self._heap[i].key)
        self._size = 0
        for key, (when, seq) in sorted(self._deadlines.items(), key=lambda kv: kv[1]):
            self._push(when, seq, key)

    def __len__(self):
        return len(self._deadlines)

    def __contains__(self, key):
        return key in self._deadlines

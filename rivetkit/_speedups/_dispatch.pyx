# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.runtime._dispatch_py` (action dispatch).

Same API: ``ActionTable(actions, warn_after=None, on_slow=None)`` with
``call(name, ctx, args)``, ``is_async(name)``, ``names()`` and ``blocking``. Entries are
typed objects so a call costs one dict lookup and one vectorcall (plus two reads of the coarse monotonic
clock for a sync action when ``warn_after`` is set).
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.time cimport PyTime_AsSecondsDouble, PyTime_MonotonicRaw

cdef extern from *:
    """
    #include <time.h>
    /* The coarse monotonic clock (a few ms of resolution, a fraction of the cost of the
       precise one) where the platform has it; enough for a threshold of ~0.1 s. */
    #if defined(CLOCK_MONOTONIC_COARSE)
    #define RK_HAS_COARSE 1
    static inline double rk_coarse_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    #else
    #define RK_HAS_COARSE 0
    static inline double rk_coarse_now(void) { return 0.0; }
    #endif
    """
    const int RK_HAS_COARSE
    double rk_coarse_now() noexcept nogil


cdef inline double _now() noexcept:
    if RK_HAS_COARSE:
        return rk_coarse_now()
    return PyTime_AsSecondsDouble(PyTime_MonotonicRaw())

from rivetkit.runtime._dispatch_py import action_not_found, bad_arguments


cdef class _Entry:
    cdef object fn
    cdef bint is_async
    cdef object validate


cdef class ActionTable:
    """The actions of one actor definition, by wire name."""

    cdef dict _entries
    cdef bint _timed
    cdef double _warn_after
    cdef object _on_slow
    # True when one of the actions is a blocking one (its actor needs a BlockingGate).
    cdef readonly bint blocking

    def __init__(self, actions, warn_after=None, on_slow=None):
        cdef _Entry entry
        self._timed = warn_after is not None and on_slow is not None
        self._warn_after = float(warn_after) if self._timed else 0.0
        self._on_slow = on_slow
        self._entries = {}
        self.blocking = False
        for name, spec in actions.items():
            if getattr(spec, "blocking", False):
                self.blocking = True
            entry = _Entry.__new__(_Entry)
            entry.fn = spec.fn
            entry.is_async = bool(spec.is_async)
            entry.validate = spec.validate
            self._entries[name] = entry

    cdef _Entry _lookup(self, name):
        cdef PyObject* found = PyDict_GetItem(self._entries, name)
        if found == NULL:
            raise action_not_found(name)
        return <_Entry>found

    def is_async(self, name):
        """True when ``name`` is an async action (raises for an unknown name)."""
        return self._lookup(name).is_async

    def call(self, name, ctx, list args):
        """Validate ``args`` and call the action: its result (sync) or coroutine (async)."""
        cdef _Entry entry = self._lookup(name)
        cdef Py_ssize_t i, n
        cdef tuple call_args
        cdef double started
        cdef double took
        cdef bint timed
        if entry.validate is not None:
            args = entry.validate(args)
        n = len(args)
        call_args = PyTuple_New(n + 1)
        Py_INCREF(ctx)
        PyTuple_SET_ITEM(call_args, 0, ctx)
        for i in range(n):
            item = args[i]
            Py_INCREF(item)
            PyTuple_SET_ITEM(call_args, i + 1, item)
        timed = self._timed and not entry.is_async
        if timed:
            started = _now()
        try:
            output = entry.fn(*call_args)
        except TypeError as exc:
            error = bad_arguments(name, entry.fn, args, exc)
            if error is None:
                raise
            raise error from None
        if timed:
            took = _now() - started
            if took > self._warn_after:
                self._on_slow(name, took)
        return output

    def names(self):
        """The wire names, in definition order."""
        return list(self._entries)

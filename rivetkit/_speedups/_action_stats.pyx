# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.metrics._action_stats_py` (the action recorder).

Same API and behaviour; each action's row is a C array of bucket counts and a double sum.
The clock is read in C: on x86 Linux, when the kernel itself keeps time with the TSC
(``current_clocksource`` is ``tsc``: invariant and synchronised across cores), the time-stamp
counter, calibrated once against the monotonic clock (reading it costs a fraction of a
``clock_gettime`` in a VM); otherwise the monotonic clock. :meth:`ActionStats.start` returns
that clock's reading (ticks or seconds); only :meth:`ActionStats.ok` of the same twin
interprets it, so the twins need not share a clock.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject

cdef extern from *:
    """
    #if defined(_WIN32)
    #include <windows.h>
    static double rk_metrics_mono(void) {
        LARGE_INTEGER freq, count;
        QueryPerformanceFrequency(&freq);
        QueryPerformanceCounter(&count);
        return (double)count.QuadPart / (double)freq.QuadPart;
    }
    #else
    #include <time.h>
    static double rk_metrics_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    #endif

    #if defined(__linux__) && (defined(__x86_64__) || defined(__i386__)) \
        && (defined(__GNUC__) || defined(__clang__))
    #include <x86intrin.h>
    #define RK_METRICS_HAVE_TSC 1
    #endif

    static int rk_metrics_tsc = 0;          /* 1: readings are TSC ticks since rk_metrics_tsc0 */
    static double rk_metrics_unit = 1.0;    /* seconds per reading unit */
    static unsigned long long rk_metrics_tsc0 = 0;

    /* Calibrate the TSC against the monotonic clock for ~2 ms (once); 1 when in use. */
    static int rk_metrics_use_tsc(void) {
    #ifdef RK_METRICS_HAVE_TSC
        double m0 = rk_metrics_mono(), m1;
        unsigned long long t0 = __rdtsc(), t1;
        do {
            m1 = rk_metrics_mono();
            t1 = __rdtsc();
        } while (m1 - m0 < 0.002);
        if (t1 <= t0) return 0;
        rk_metrics_unit = (m1 - m0) / (double)(t1 - t0);
        rk_metrics_tsc0 = t0;
        rk_metrics_tsc = 1;
        return 1;
    #else
        return 0;
    #endif
    }

    static inline double rk_metrics_now(void) {
    #ifdef RK_METRICS_HAVE_TSC
        if (rk_metrics_tsc) return (double)(__rdtsc() - rk_metrics_tsc0);
    #endif
        return rk_metrics_mono();
    }
    """
    double rk_metrics_now() nogil
    int rk_metrics_use_tsc() nogil
    double rk_metrics_unit


cdef bint _clock_ready = False


cdef void _init_clock():
    global _clock_ready
    if _clock_ready:
        return
    _clock_ready = True
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            trusted = f.read().strip() == "tsc"
    except OSError:
        trusted = False
    if trusted:
        rk_metrics_use_tsc()


def clock_kind():
    """``"tsc"`` or ``"monotonic"``: what :meth:`ActionStats.start` reads (once a recorder
    exists)."""
    return "tsc" if _clock_ready and rk_metrics_unit != 1.0 else "monotonic"


cdef class _Row:
    cdef long long* counts
    cdef Py_ssize_t width
    cdef double total

    def __cinit__(self, Py_ssize_t width):
        self.counts = <long long*>PyMem_Malloc(width * sizeof(long long))
        if self.counts == NULL:
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(width):
            self.counts[i] = 0
        self.width = width
        self.total = 0.0

    def __dealloc__(self):
        PyMem_Free(self.counts)


cdef class ActionStats:
    """Call counts and latency buckets per action name."""

    cdef double* _bounds
    cdef Py_ssize_t _n
    cdef dict _rows
    cdef readonly bint timed

    def __cinit__(self, bounds, timed=True):
        values = [float(b) for b in bounds]
        if not values:
            raise ValueError("at least one bucket bound is needed")
        self._n = len(values)
        self._bounds = <double*>PyMem_Malloc(self._n * sizeof(double))
        if self._bounds == NULL:
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self._n):
            self._bounds[i] = values[i]
        self._rows = {}
        self.timed = bool(timed)
        if self.timed:
            _init_clock()

    def __dealloc__(self):
        PyMem_Free(self._bounds)

    def start(self):
        """The clock before a call (0.0 when untimed)."""
        if self.timed:
            return rk_metrics_now()
        return 0.0

    def ok(self, str action, double started):
        """Record one call of ``action`` that began at ``started`` (from :meth:`start`)."""
        cdef PyObject* found = PyDict_GetItem(self._rows, action)
        cdef _Row row
        if found == NULL:
            row = _Row(self._n + 1)
            PyDict_SetItem(self._rows, action, row)
        else:
            row = <_Row>found
        cdef double elapsed
        cdef Py_ssize_t i = 0
        if self.timed:
            elapsed = (rk_metrics_now() - started) * rk_metrics_unit
            if elapsed < 0.0:
                elapsed = 0.0
            while i < self._n and elapsed > self._bounds[i]:
                i += 1
            row.counts[i] += 1
            row.total += elapsed
        else:
            row.counts[self._n] += 1

    def names(self):
        """The actions recorded so far."""
        return list(self._rows)

    def row(self, str action):
        """``(bucket counts, sum of latencies)`` of ``action``, or None if never recorded."""
        cdef PyObject* found = PyDict_GetItem(self._rows, action)
        if found == NULL:
            return None
        cdef _Row row = <_Row>found
        return [row.counts[i] for i in range(row.width)], row.total

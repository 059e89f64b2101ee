# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.server._sendmany_py`: the same writes, made with the GIL
released (two threads share the writes of one large flush)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport EINTR, errno

cdef extern from "<unistd.h>" nogil:
    ssize_t write(int fd, const void* buf, size_t count)

cdef extern from *:
    """
    static inline Py_ssize_t rk_claim(Py_ssize_t* next, Py_ssize_t step) {
        return __atomic_fetch_add(next, step, __ATOMIC_RELAXED);
    }
    """
    Py_ssize_t rk_claim(Py_ssize_t* next, Py_ssize_t step) nogil

__all__ = ["CHUNK", "SendJob"]

CHUNK = 16
cdef Py_ssize_t _CHUNK = 16


cdef class SendJob:
    """The writes of one flush: ``datas[i]`` to ``fds[i]``, one ``write`` each (see the pure
    twin)."""

    cdef list _datas  # holds every buffer while the GIL is released
    cdef Py_ssize_t _count
    cdef Py_ssize_t _next
    cdef int* _fd
    cdef const char** _buf
    cdef Py_ssize_t* _size
    cdef Py_ssize_t* _result

    def __init__(self, fds, datas):
        cdef Py_ssize_t i, count
        cdef object item
        if type(fds) is not list or type(datas) is not list:
            raise TypeError("SendJob takes two lists")
        if len(fds) != len(datas):
            raise IndexError("SendJob: the lists differ in length")
        for item in fds:
            if type(item) is not int:
                raise TypeError(f"SendJob writes to int descriptors, not {type(item).__name__}")
        for item in datas:
            if type(item) is not bytes:
                raise TypeError(f"SendJob writes bytes, not {type(item).__name__}")
        count = len(fds)
        self._datas = list(datas)
        self._count = count
        self._next = 0
        self._fd = <int*>PyMem_Malloc((count or 1) * sizeof(int))
        self._buf = <const char**>PyMem_Malloc((count or 1) * sizeof(char*))
        self._size = <Py_ssize_t*>PyMem_Malloc((count or 1) * sizeof(Py_ssize_t))
        self._result = <Py_ssize_t*>PyMem_Malloc((count or 1) * sizeof(Py_ssize_t))
        if self._fd == NULL or self._buf == NULL or self._size == NULL or self._result == NULL:
            raise MemoryError()
        for i in range(count):
            self._fd[i] = fds[i]
            item = self._datas[i]
            self._buf[i] = PyBytes_AS_STRING(item)
            self._size[i] = PyBytes_GET_SIZE(item)
            self._result[i] = self._size[i]

    def __dealloc__(self):
        PyMem_Free(self._fd)
        PyMem_Free(self._buf)
        PyMem_Free(self._size)
        PyMem_Free(self._result)

    def run(self):
        """Make writes until none is left (several threads may run it at once)."""
        cdef Py_ssize_t start, stop, i
        cdef ssize_t written
        with nogil:
            while True:
                start = rk_claim(&self._next, _CHUNK)
                if start >= self._count:
                    break
                stop = start + _CHUNK
                if stop > self._count:
                    stop = self._count
                for i in range(start, stop):
                    while True:
                        written = write(self._fd[i], self._buf[i], <size_t>self._size[i])
                        if written >= 0 or errno != EINTR:
                            break
                    self._result[i] = written if written >= 0 else -errno

    def left(self):
        """What did not leave whole, once every ``run`` returned: ``[i, written or -errno,
        ...]`` by index."""
        cdef Py_ssize_t i
        cdef list left = []
        for i in range(self._count):
            if self._result[i] != self._size[i]:
                left.append(i)
                left.append(self._result[i])
        return left

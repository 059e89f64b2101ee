# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.server._sendmany_py`: the same writes, with the GIL
released (two threads can share the writes of one large flush)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport EINTR, errno

cdef extern from "<unistd.h>" nogil:
    ssize_t write(int fd, const void* buf, size_t count)

__all__ = ["send_many"]


def send_many(list fds not None, list datas not None, Py_ssize_t start, Py_ssize_t stop):
    """Write ``datas[i]`` to ``fds[i]``, one ``write`` each, for ``i`` in ``range(start,
    stop)``; what did not leave whole, flat: ``[i, written or -errno, ...]`` (see the pure
    twin)."""
    cdef Py_ssize_t count = stop - start
    cdef Py_ssize_t i, j
    cdef ssize_t written
    cdef int* fd
    cdef const char** buf
    cdef Py_ssize_t* size
    cdef ssize_t* result
    cdef object data
    cdef list left = []
    if count <= 0:
        return left
    if start < 0 or stop > len(fds) or stop > len(datas):
        raise IndexError("send_many: range out of the lists")
    fd = <int*>PyMem_Malloc(count * sizeof(int))
    buf = <const char**>PyMem_Malloc(count * sizeof(char*))
    size = <Py_ssize_t*>PyMem_Malloc(count * sizeof(Py_ssize_t))
    result = <ssize_t*>PyMem_Malloc(count * sizeof(ssize_t))
    try:
        if fd == NULL or buf == NULL or size == NULL or result == NULL:
            raise MemoryError()
        for j in range(count):
            data = fds[start + j]
            if type(data) is not int:
                raise TypeError(f"send_many writes to int descriptors, not {type(data).__name__}")
            fd[j] = data
            data = datas[start + j]
            if type(data) is not bytes:
                raise TypeError(f"send_many writes bytes, not {type(data).__name__}")
            buf[j] = PyBytes_AS_STRING(data)
            size[j] = PyBytes_GET_SIZE(data)
        # ``datas`` holds a reference to every buffer while the GIL is released.
        with nogil:
            for j in range(count):
                while True:
                    written = write(fd[j], buf[j], <size_t>size[j])
                    if written >= 0 or errno != EINTR:
                        break
                result[j] = written if written >= 0 else -errno
        for j in range(count):
            if result[j] != size[j]:
                left.append(start + j)
                left.append(result[j])
        return left
    finally:
        PyMem_Free(fd)
        PyMem_Free(buf)
        PyMem_Free(size)
        PyMem_Free(result)

# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.runtime._queuescan_py` (queue key scanning).

Same API: ``message_key``, ``message_id``, ``peek_name``, ``scan``; keys and names are read
from the bytes in C.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcmp

from rivetkit.errors import ProtocolError, RivetError

PREFIX = b"\x05\x01\x02"
KEY_LENGTH = 11
MESSAGE_VERSION = 4


def message_key(message_id):
    """The KV key of queue message ``message_id`` (ids start at 1)."""
    if not 0 <= message_id < (1 << 64):
        raise ValueError(f"queue message id out of range: {message_id}")
    cdef uint64_t ident = message_id
    cdef char buf[11]
    cdef int i
    buf[0] = 5
    buf[1] = 1
    buf[2] = 2
    for i in range(8):
        buf[10 - i] = <char>(ident & 0xFF)
        ident >>= 8
    return PyBytes_FromStringAndSize(buf, 11)


cdef uint64_t _message_id(object key) except? 0xFFFFFFFFFFFFFFFF:
    cdef const uint8_t* data
    cdef uint64_t ident = 0
    cdef int i
    if not isinstance(key, bytes):
        key = bytes(key)
    data = <const uint8_t*>PyBytes_AS_STRING(key)
    if PyBytes_GET_SIZE(key) != KEY_LENGTH or data[0] != 5 or data[1] != 1 or data[2] != 2:
        raise RivetError(
            "queue", "invalid_message_key", f"not a queue message key: {bytes(key).hex()}"
        )
    for i in range(3, 11):
        ident = (ident << 8) | data[i]
    return ident


def message_id(key):
    """The id in a queue message key; ``queue/invalid_message_key`` if it is not one."""
    return _message_id(key)


cdef str _peek_name(object value):
    cdef const uint8_t* data
    cdef Py_ssize_t size, pos = 2, end
    cdef uint64_t length = 0
    cdef int shift = 0
    cdef uint8_t byte
    if not isinstance(value, bytes):
        value = bytes(value)
    data = <const uint8_t*>PyBytes_AS_STRING(value)
    size = PyBytes_GET_SIZE(value)
    if size < 3 or data[0] != MESSAGE_VERSION or data[1] != 0:
        raise ProtocolError("not a v4 queue message", code="invalid_persisted_data")
    while True:
        if pos >= size or shift > 63:
            raise ProtocolError("bad queue message name length", code="invalid_persisted_data")
        byte = data[pos]
        pos += 1
        length |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            break
        shift += 7
    if length > <uint64_t>(size - pos):
        raise ProtocolError("queue message name runs past the end", code="invalid_persisted_data")
    end = pos + <Py_ssize_t>length
    try:
        return (<const char*>data)[pos:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(
            "queue message name is not UTF-8", code="invalid_persisted_data"
        ) from None


def peek_name(value):
    """The name of an encoded ``QueueMessage`` (vbare v4) without decoding the rest."""
    return _peek_name(value)


def scan(entries, names, Py_ssize_t limit, decode):
    """Up to ``limit`` ``(id, decode(value))`` pairs, in key order, optionally by name."""
    cdef list found = []
    cdef uint64_t ident
    if limit <= 0:
        return found
    for key, value in entries:
        ident = _message_id(key)
        if names is not None and _peek_name(value) not in names:
            continue
        found.append((ident, decode(value)))
        if len(found) >= limit:
            break
    return found

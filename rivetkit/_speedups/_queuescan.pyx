# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.runtime._queuescan_py` (queue key scanning).

Same API: ``message_key``, ``message_id``, ``peek_name``, ``scan``; keys and names are read
from the bytes in C.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcmp, memcpy

from rivetkit.errors import ProtocolError, RivetError
from rivetkit.runtime._queuescan_py import KEY_LENGTH, MESSAGE_VERSION, PREFIX

# The constants are the pure twin's (defined once), read into C at import.
cdef bytes _PREFIX = PREFIX
cdef Py_ssize_t _PREFIX_LENGTH = len(PREFIX)
cdef Py_ssize_t _KEY_LENGTH = KEY_LENGTH
cdef int _MESSAGE_VERSION = MESSAGE_VERSION
cdef enum:
    # message_key builds the key in a stack buffer of this size.
    _MAX_KEY_LENGTH = 16
if _KEY_LENGTH > _MAX_KEY_LENGTH:
    raise ImportError(f"queue message keys of {KEY_LENGTH} bytes do not fit the compiled twin")


def message_key(message_id):
    """The KV key of queue message ``message_id`` (ids start at 1)."""
    if not 0 <= message_id < (1 << 64):
        raise ValueError(f"queue message id out of range: {message_id}")
    cdef uint64_t ident = message_id
    cdef char buf[_MAX_KEY_LENGTH]
    cdef int i
    memcpy(buf, PyBytes_AS_STRING(_PREFIX), _PREFIX_LENGTH)
    for i in range(8):
        buf[_KEY_LENGTH - 1 - i] = <char>(ident & 0xFF)
        ident >>= 8
    return PyBytes_FromStringAndSize(buf, _KEY_LENGTH)


cdef uint64_t _message_id(object key) except? 0xFFFFFFFFFFFFFFFF:
    cdef const uint8_t* data
    cdef uint64_t ident = 0
    cdef int i
    if not isinstance(key, bytes):
        key = bytes(key)
    data = <const uint8_t*>PyBytes_AS_STRING(key)
    if (
        PyBytes_GET_SIZE(key) != _KEY_LENGTH
        or memcmp(data, PyBytes_AS_STRING(_PREFIX), _PREFIX_LENGTH) != 0
    ):
        raise RivetError(
            "queue", "invalid_message_key", f"not a queue message key: {bytes(key).hex()}"
        )
    for i in range(_PREFIX_LENGTH, _KEY_LENGTH):
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
    if size < 3 or data[0] != _MESSAGE_VERSION or data[1] != 0:
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

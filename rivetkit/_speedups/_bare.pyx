# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of :mod:`rivetkit.protocol._bare_py` (the BARE codec engine).

Same public API and behaviour: ``compile_plan(plan, error_code)`` returns a ``Codec`` with
``encode(value, prefix=b"")`` and ``decode(data, offset=0)``. The plan is compiled once into a
tree of typed nodes; encoding writes into a growable C buffer and decoding reads a C pointer
with explicit bounds checks, so no Python-level work is done per primitive.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_SET_ITEM
from libc.math cimport isinf
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol import plan as _P

cdef extern from "Python.h":
    object PyType_GenericAlloc(PyTypeObject* tp, Py_ssize_t nitems)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL
    unsigned long long PyLong_AsUnsignedLongLong(object v) except? <unsigned long long>-1
    long long PyLong_AsLongLong(object v) except? -1
    object PyLong_FromUnsignedLongLong(unsigned long long v)
    object PyLong_FromLongLong(long long v)
    double PyFloat_AsDouble(object v) except? -1.0
    bint PyBool_Check(object v)
    bint PyLong_Check(object v)
    bint PyFloat_Check(object v)
    bint PyUnicode_CheckExact(object v)
    bint PyBytes_CheckExact(object v)

# Kinds, mirrored from rivetkit.protocol.plan (checked at import below).
cdef enum:
    K_UINT = 0
    K_INT = 1
    K_U8 = 2
    K_U16 = 3
    K_U32 = 4
    K_U64 = 5
    K_I8 = 6
    K_I16 = 7
    K_I32 = 8
    K_I64 = 9
    K_F32 = 10
    K_F64 = 11
    K_BOOL = 12
    K_STR = 13
    K_DATA = 14
    K_VOID = 15
    K_FIXED = 16
    K_OPTIONAL = 17
    K_LIST = 18
    K_MAP = 19
    K_STRUCT = 20
    K_UNION = 21
    K_ENUM = 22

assert (_P.UINT, _P.INT, _P.U8, _P.U16, _P.U32, _P.U64, _P.I8, _P.I16, _P.I32, _P.I64,
        _P.F32, _P.F64, _P.BOOL, _P.STR, _P.DATA, _P.VOID, _P.FIXED, _P.OPTIONAL, _P.LIST,
        _P.MAP, _P.STRUCT, _P.UNION, _P.ENUM) == tuple(range(23)), "plan kinds changed"

cdef Py_ssize_t MAX_EMPTY_ELEMENTS = _P.MAX_EMPTY_ELEMENTS
cdef int64_t I64_MAX = 0x7FFFFFFFFFFFFFFF
cdef int64_t I64_MIN = -I64_MAX - 1

_KIND_NAMES = {K_U8: "u8", K_U16: "u16", K_U32: "u32", K_U64: "u64",
               K_I8: "i8", K_I16: "i16", K_I32: "i32", K_I64: "i64"}
cdef long long _SIGNED_LOW[4]
cdef long long _SIGNED_HIGH[4]
cdef unsigned long long _UNSIGNED_HIGH[4]
_SIGNED_LOW[:] = [-0x80, -0x8000, -0x80000000, I64_MIN]
_SIGNED_HIGH[:] = [0x7F, 0x7FFF, 0x7FFFFFFF, I64_MAX]
_UNSIGNED_HIGH[:] = [0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF]


class _Bad(Exception):
    """Internal: a decode failure, turned into a ProtocolError with the codec's code."""


# ---------------------------------------------------------------------------------------------
# Plan nodes

cdef class _Node:
    cdef int kind
    cdef Py_ssize_t width       # FIXED byte count, fixed-int byte width, STRUCT field count
    cdef Py_ssize_t min_size
    cdef _Node inner            # OPTIONAL / LIST element / MAP key
    cdef _Node value            # MAP value
    cdef object cls             # STRUCT record class, ENUM class
    cdef PyTypeObject* cls_type
    cdef list fields            # STRUCT field nodes
    cdef dict tag_by_type       # UNION: member class -> (tag, node)
    cdef list members           # UNION member nodes by tag / ENUM members by value
    cdef str names


cdef _Node _build(tuple plan):
    cdef _Node node = _Node.__new__(_Node)
    cdef int kind = plan[0]
    a = plan[1]
    b = plan[2]
    node.kind = kind
    node.min_size = _P.min_size(plan)
    if kind in (K_U8, K_I8):
        node.width = 1
    elif kind in (K_U16, K_I16):
        node.width = 2
    elif kind in (K_U32, K_I32, K_F32):
        node.width = 4
    elif kind in (K_U64, K_I64, K_F64):
        node.width = 8
    elif kind == K_FIXED:
        node.width = a
    elif kind == K_OPTIONAL or kind == K_LIST:
        node.inner = _build(a)
    elif kind == K_MAP:
        node.inner = _build(a)
        node.value = _build(b)
    elif kind == K_STRUCT:
        node.cls = a
        node.cls_type = <PyTypeObject*>a
        node.fields = [_build(field) for _, field in b]
        node.width = len(node.fields)
        if not issubclass(a, tuple):
            raise TypeError(f"struct class {a!r} must be a tuple subclass")
    elif kind == K_UNION:
        node.members = []
        node.tag_by_type = {}
        for tag, (member_cls, member_plan) in enumerate(a):
            member = _build(member_plan)
            node.members.append(member)
            node.tag_by_type[member_cls] = (tag, member)
        node.names = " | ".join(member_cls.__name__ for member_cls, _ in a)
    elif kind == K_ENUM:
        node.cls = a
        node.members = list(a)
        if [int(m) for m in node.members] != list(range(len(node.members))):
            raise ValueError(f"enum {a.__name__} values must be 0..n-1")
    elif kind < 0 or kind > K_ENUM:
        raise ValueError(f"unknown plan kind {kind!r}")
    return node


# ---------------------------------------------------------------------------------------------
# Encoding

cdef enum:
    STACK_BUFFER = 512


cdef struct _Out:
    char* buf
    Py_ssize_t length
    Py_ssize_t capacity
    int on_heap


cdef int _reserve(_Out* out, Py_ssize_t extra) except -1:
    cdef Py_ssize_t needed = out.length + extra
    cdef Py_ssize_t capacity
    cdef char* grown
    if needed <= out.capacity:
        return 0
    capacity = out.capacity * 2
    if capacity < needed:
        capacity = needed + 64
    if out.on_heap:
        grown = <char*>PyMem_Realloc(out.buf, capacity)
        if grown == NULL:
            raise MemoryError()
    else:
        grown = <char*>PyMem_Malloc(capacity)
        if grown == NULL:
            raise MemoryError()
        memcpy(grown, out.buf, out.length)
        out.on_heap = 1
    out.buf = grown
    out.capacity = capacity
    return 0


cdef inline int _put_byte(_Out* out, uint8_t byte) except -1:
    if out.length >= out.capacity:
        _reserve(out, 1)
    out.buf[out.length] = <char>byte
    out.length += 1
    return 0


cdef inline int _put_uint(_Out* out, uint64_t value) except -1:
    if out.length + 10 > out.capacity:
        _reserve(out, 10)
    while value > 0x7F:
        out.buf[out.length] = <char>((value & 0x7F) | 0x80)
        out.length += 1
        value >>= 7
    out.buf[out.length] = <char>value
    out.length += 1
    return 0


cdef inline int _put_bytes(_Out* out, const char* data, Py_ssize_t size) except -1:
    if out.length + size > out.capacity:
        _reserve(out, size)
    memcpy(out.buf + out.length, data, size)
    out.length += size
    return 0


cdef inline int _put_le(_Out* out, uint64_t value, Py_ssize_t width) except -1:
    cdef Py_ssize_t i
    if out.length + width > out.capacity:
        _reserve(out, width)
    for i in range(width):
        out.buf[out.length + i] = <char>(value & 0xFF)
        value >>= 8
    out.length += width
    return 0


cdef inline int _check_int_type(object value, str what) except -1:
    if not PyLong_Check(value) or PyBool_Check(value):
        raise EncodeError(f"{what} expects an int, got {type(value).__name__}")
    return 0


cdef uint64_t _as_unsigned(object value, uint64_t high, str what) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t result
    _check_int_type(value, what)
    try:
        result = PyLong_AsUnsignedLongLong(value)
    except OverflowError:
        raise EncodeError(f"{what} value {value} is out of range [0, {high}]") from None
    if result > high:
        raise EncodeError(f"{what} value {value} is out of range [0, {high}]")
    return result


cdef int64_t _as_signed(object value, int64_t low, int64_t high, str what) except? -1:
    cdef int64_t result
    _check_int_type(value, what)
    try:
        result = PyLong_AsLongLong(value)
    except OverflowError:
        raise EncodeError(f"{what} value {value} is out of range [{low}, {high}]") from None
    if result < low or result > high:
        raise EncodeError(f"{what} value {value} is out of range [{low}, {high}]")
    return result


cdef int _put_data(_Out* out, object value, str what, Py_ssize_t fixed) except -1:
    cdef const char* ptr
    cdef Py_ssize_t size
    if not PyBytes_CheckExact(value):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"{what} expects bytes, got {type(value).__name__}")
        value = bytes(value)
    ptr = PyBytes_AS_STRING(value)
    size = PyBytes_GET_SIZE(value)
    if fixed >= 0:
        if size != fixed:
            raise EncodeError(f"data[{fixed}] expects exactly {fixed} bytes, got {value!r}")
    else:
        _put_uint(out, <uint64_t>size)
    _put_bytes(out, ptr, size)
    return 0


cdef int _encode(_Node node, object value, _Out* out) except -1:
    cdef int kind = node.kind
    cdef Py_ssize_t size, i
    cdef const char* ptr
    cdef int64_t signed
    cdef uint64_t raw
    cdef double number
    cdef float single
    cdef uint32_t bits32
    cdef PyObject* entry
    cdef _Node child

    if kind == K_STR:
        if not PyUnicode_CheckExact(value):
            raise EncodeError(f"str expects a str, got {type(value).__name__}")
        ptr = PyUnicode_AsUTF8AndSize(value, &size)
        _put_uint(out, <uint64_t>size)
        _put_bytes(out, ptr, size)
    elif kind == K_STRUCT:
        if type(value) is not node.cls:
            raise EncodeError(f"expected {node.cls.__name__}, got {type(value).__name__}")
        for i in range(node.width):
            _encode(<_Node>node.fields[i], <object>PyTuple_GET_ITEM(value, i), out)
    elif kind == K_DATA:
        _put_data(out, value, "data", -1)
    elif kind == K_UINT:
        _put_uint(out, _as_unsigned(value, 0xFFFFFFFFFFFFFFFF, "uint"))
    elif kind == K_INT:
        signed = _as_signed(value, I64_MIN, I64_MAX, "int")
        _put_uint(out, (<uint64_t>signed << 1) ^ <uint64_t>(signed >> 63))
    elif kind >= K_U8 and kind <= K_U64:
        raw = _as_unsigned(value, _UNSIGNED_HIGH[kind - K_U8], _KIND_NAMES[kind])
        _put_le(out, raw, node.width)
    elif kind >= K_I8 and kind <= K_I64:
        signed = _as_signed(
            value, _SIGNED_LOW[kind - K_I8], _SIGNED_HIGH[kind - K_I8], _KIND_NAMES[kind]
        )
        _put_le(out, <uint64_t>signed, node.width)
    elif kind == K_BOOL:
        if value is True:
            _put_byte(out, 1)
        elif value is False:
            _put_byte(out, 0)
        else:
            raise EncodeError(f"bool expects True or False, got {value!r}")
    elif kind == K_OPTIONAL:
        if value is None:
            _put_byte(out, 0)
        else:
            _put_byte(out, 1)
            _encode(node.inner, value, out)
    elif kind == K_LIST:
        if type(value) is not list and not isinstance(value, (list, tuple)):
            raise EncodeError(f"list expects a list, got {type(value).__name__}")
        size = len(value)
        _put_uint(out, <uint64_t>size)
        child = node.inner
        for item in value:
            _encode(child, item, out)
    elif kind == K_MAP:
        if not isinstance(value, dict):
            raise EncodeError(f"map expects a dict, got {type(value).__name__}")
        _put_uint(out, <uint64_t>len(value))
        for key, item in (<dict>value).items():
            _encode(node.inner, key, out)
            _encode(node.value, item, out)
    elif kind == K_UNION:
        entry = PyDict_GetItem(node.tag_by_type, type(value))
        if entry == NULL:
            raise EncodeError(f"expected one of {node.names}, got {type(value).__name__}")
        _put_uint(out, <uint64_t>(<object>PyTuple_GET_ITEM(<object>entry, 0)))
        _encode(<_Node>PyTuple_GET_ITEM(<object>entry, 1), value, out)
    elif kind == K_FIXED:
        _put_data(out, value, "fixed", node.width)
    elif kind == K_F64 or kind == K_F32:
        if not (PyFloat_Check(value) or PyLong_Check(value)) or PyBool_Check(value):
            raise EncodeError(f"float expects a number, got {type(value).__name__}")
        number = PyFloat_AsDouble(value)
        if kind == K_F64:
            memcpy(&raw, &number, 8)
            _put_le(out, raw, 8)
        else:
            single = <float>number
            if isinf(single) and not isinf(number):
                raise EncodeError("float too large to pack with f format")
            memcpy(&bits32, &single, 4)
            _put_le(out, <uint64_t>bits32, 4)
    elif kind == K_ENUM:
        if type(value) is not node.cls:
            raise EncodeError(f"expected {node.cls.__name__}, got {value!r}")
        _put_uint(out, <uint64_t>(<long long>value))
    elif kind == K_VOID:
        pass
    return 0


# ---------------------------------------------------------------------------------------------
# Decoding

cdef struct _In:
    const uint8_t* data
    Py_ssize_t pos
    Py_ssize_t end


cdef enum:
    STR_CACHE_SIZE = 1024  # a power of two
    STR_CACHE_MAX_LEN = 32

# Short ASCII strings repeat a lot on the wire (action, event and header names): a small
# direct-mapped cache hands out the same str object instead of decoding it again.
cdef PyObject* _str_cache[STR_CACHE_SIZE]


cdef object _decode_str(const char* data, Py_ssize_t size):
    cdef uint32_t digest = 2166136261u
    cdef uint8_t seen = 0
    cdef uint8_t byte
    cdef Py_ssize_t i
    cdef PyObject* cached
    if size > STR_CACHE_MAX_LEN or size == 0:
        return PyUnicode_DecodeUTF8(data, size, NULL)
    for i in range(size):
        byte = <uint8_t>data[i]
        seen |= byte
        digest = (digest ^ byte) * 16777619u
    if seen & 0x80:
        return PyUnicode_DecodeUTF8(data, size, NULL)
    i = digest & (STR_CACHE_SIZE - 1)
    cached = _str_cache[i]
    if (
        cached != NULL
        and PyUnicode_GET_LENGTH(<object>cached) == size
        and memcmp(PyUnicode_DATA(<object>cached), data, size) == 0
    ):
        return <object>cached
    result = PyUnicode_DecodeUTF8(data, size, NULL)
    Py_INCREF(result)
    Py_XDECREF(cached)
    _str_cache[i] = <PyObject*>result
    return result


cdef int _short() except -1:
    raise _Bad("input ends too early")


cdef uint64_t _get_uint(_In* src) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t result = 0
    cdef uint64_t byte
    cdef int shift = 0
    cdef Py_ssize_t start = src.pos
    while True:
        if src.pos >= src.end:
            _short()
        byte = src.data[src.pos]
        src.pos += 1
        if shift == 63 and (byte & 0x7F) > 1:
            if byte & 0x80:
                raise _Bad("varint is longer than 10 bytes")
            raise _Bad("varint overflows 64 bits")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _Bad("varint is longer than 10 bytes")
    if byte == 0 and src.pos - start > 1:
        raise _Bad("varint is not minimally encoded")
    return result


cdef inline uint64_t _get_le(_In* src, Py_ssize_t width) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t result = 0
    cdef Py_ssize_t i
    if src.end - src.pos < width:
        _short()
    for i in range(width):
        result |= (<uint64_t>src.data[src.pos + i]) << (8 * i)
    src.pos += width
    return result


cdef inline Py_ssize_t _get_length(_In* src, str what) except -1:
    cdef uint64_t length = _get_uint(src)
    if length > <uint64_t>(src.end - src.pos):
        raise _Bad(f"{what} length {length} runs past the end of the input")
    return <Py_ssize_t>length


cdef int _check_count(uint64_t count, Py_ssize_t item_min, Py_ssize_t remaining) except -1:
    if item_min > 0:
        if count > <uint64_t>(remaining // item_min):
            raise _Bad(f"count {count} needs more bytes than the {remaining} left")
    elif count > <uint64_t>MAX_EMPTY_ELEMENTS:
        raise _Bad(f"count {count} of zero-size elements is too large")
    return 0


cdef object _decode(_Node node, _In* src):
    cdef int kind = node.kind
    cdef Py_ssize_t size, i, count
    cdef uint64_t raw
    cdef int64_t signed
    cdef uint8_t byte
    cdef double number
    cdef float single
    cdef uint32_t bits32
    cdef list items
    cdef dict mapping
    cdef _Node child

    if kind == K_STR:
        size = _get_length(src, "str")
        result = _decode_str(<const char*>src.data + src.pos, size)
        src.pos += size
        return result
    if kind == K_STRUCT:
        # A record is a tuple subclass with no extra slots: allocate it at its final size and
        # fill it in place, as tuple's own constructor does.
        result = PyType_GenericAlloc(node.cls_type, node.width)
        for i in range(node.width):
            item = _decode(<_Node>node.fields[i], src)
            Py_INCREF(item)
            PyTuple_SET_ITEM(result, i, item)
        return result
    if kind == K_DATA:
        size = _get_length(src, "data")
        result = PyBytes_FromStringAndSize(<const char*>src.data + src.pos, size)
        src.pos += size
        return result
    if kind == K_UINT:
        return PyLong_FromUnsignedLongLong(_get_uint(src))
    if kind == K_INT:
        raw = _get_uint(src)
        return PyLong_FromLongLong(<int64_t>((raw >> 1) ^ (0 - (raw & 1))))
    if kind >= K_U8 and kind <= K_U64:
        return PyLong_FromUnsignedLongLong(_get_le(src, node.width))
    if kind >= K_I8 and kind <= K_I64:
        raw = _get_le(src, node.width)
        if node.width < 8 and raw >> (8 * node.width - 1):
            raw |= (<uint64_t>0xFFFFFFFFFFFFFFFF) << (8 * node.width)
        return PyLong_FromLongLong(<int64_t>raw)
    if kind == K_BOOL:
        if src.pos >= src.end:
            _short()
        byte = src.data[src.pos]
        src.pos += 1
        if byte > 1:
            raise _Bad(f"bool byte must be 0 or 1, got {byte}")
        return byte == 1
    if kind == K_OPTIONAL:
        if src.pos >= src.end:
            _short()
        byte = src.data[src.pos]
        src.pos += 1
        if byte == 0:
            return None
        if byte != 1:
            raise _Bad(f"optional tag must be 0 or 1, got {byte}")
        return _decode(node.inner, src)
    if kind == K_LIST:
        raw = _get_uint(src)
        child = node.inner
        _check_count(raw, child.min_size, src.end - src.pos)
        count = <Py_ssize_t>raw
        items = PyList_New(count)
        for i in range(count):
            item = _decode(child, src)
            Py_INCREF(item)
            PyList_SET_ITEM(items, i, item)
        return items
    if kind == K_MAP:
        raw = _get_uint(src)
        _check_count(raw, node.inner.min_size + node.value.min_size, src.end - src.pos)
        mapping = {}
        for i in range(<Py_ssize_t>raw):
            key = _decode(node.inner, src)
            if key in mapping:
                raise _Bad(f"duplicate map key {key!r}")
            mapping[key] = _decode(node.value, src)
        return mapping
    if kind == K_UNION:
        raw = _get_uint(src)
        if raw >= <uint64_t>len(node.members):
            raise _Bad(f"unknown union tag {raw} (expected {node.names})")
        return _decode(<_Node>node.members[<Py_ssize_t>raw], src)
    if kind == K_FIXED:
        if src.end - src.pos < node.width:
            raise _Bad(f"data[{node.width}] runs past the end of the input")
        result = PyBytes_FromStringAndSize(<const char*>src.data + src.pos, node.width)
        src.pos += node.width
        return result
    if kind == K_F64:
        raw = _get_le(src, 8)
        memcpy(&number, &raw, 8)
        return number
    if kind == K_F32:
        bits32 = <uint32_t>_get_le(src, 4)
        memcpy(&single, &bits32, 4)
        return <double>single
    if kind == K_ENUM:
        raw = _get_uint(src)
        if raw >= <uint64_t>len(node.members):
            raise _Bad(f"unknown {node.cls.__name__} value {raw}")
        return node.members[<Py_ssize_t>raw]
    return None  # VOID


# ---------------------------------------------------------------------------------------------
# Public API

cdef class Codec:
    """Encoder and strict decoder for one plan.

    ``error_code`` is the ``protocol`` error code raised on bad input (for example
    ``invalid_persisted_data``).
    """

    cdef _Node _root
    cdef Py_ssize_t _size_hint
    cdef readonly object plan
    cdef readonly str error_code

    def __init__(self, plan, error_code="invalid_data"):
        self.plan = plan
        self.error_code = error_code
        self._root = _build(plan)
        self._size_hint = 64

    def encode(self, value, bytes prefix=b""):
        """Encode ``value`` after ``prefix`` (e.g. a vbare version); EncodeError on a misfit."""
        return self._encode_with(value, prefix)

    def decode(self, data, Py_ssize_t offset=0):
        """Decode the whole of ``data[offset:]``; raise ProtocolError on any bad input."""
        return self._decode_at(data, offset)

    cdef bytes _encode_with(self, object value, bytes prefix):
        # Small values are written into a stack buffer; _reserve moves to the heap on growth.
        cdef char stack[STACK_BUFFER]
        cdef _Out out
        out.buf = stack
        out.capacity = STACK_BUFFER
        out.length = 0
        out.on_heap = 0
        if self._size_hint > STACK_BUFFER:
            out.buf = <char*>PyMem_Malloc(self._size_hint)
            if out.buf == NULL:
                raise MemoryError()
            out.capacity = self._size_hint
            out.on_heap = 1
        try:
            _put_bytes(&out, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix))
            try:
                _encode(self._root, value, &out)
            except (UnicodeEncodeError, OverflowError, TypeError) as exc:
                raise EncodeError(str(exc)) from None
            if out.length > self._size_hint:
                self._size_hint = out.length + (out.length >> 3)
            return PyBytes_FromStringAndSize(out.buf, out.length)
        finally:
            if out.on_heap:
                PyMem_Free(out.buf)

    cdef object _decode_at(self, object data, Py_ssize_t offset):
        cdef _In src
        if not PyBytes_CheckExact(data):
            data = bytes(data)
        src.data = <const uint8_t*>PyBytes_AS_STRING(data)
        src.end = PyBytes_GET_SIZE(data)
        if offset < 0 or offset > src.end:
            raise ProtocolError("input ends too early", code=self.error_code)
        src.pos = offset
        try:
            value = _decode(self._root, &src)
        except _Bad as exc:
            raise ProtocolError(str(exc), code=self.error_code) from None
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"invalid UTF-8 in str: {exc.reason}", code=self.error_code
            ) from None
        if src.pos != src.end:
            raise ProtocolError(
                f"{src.end - src.pos} trailing bytes after the value", code=self.error_code
            )
        return value


cdef class Versioned:
    """vbare: a 2-byte little-endian version, then the BARE body of that version.

    ``readers`` maps each readable version to its :class:`Codec` (or a custom reader);
    ``fallbacks`` optionally maps a version to a second reader tried when its codec rejects
    the bytes; ``upgrades[v]`` turns a version ``v`` value into a version ``v + 1`` value.
    :meth:`decode` reads any supported version and upgrades step by step; :meth:`encode`
    always writes ``latest_version`` with ``latest``.
    """

    cdef readonly str name
    cdef readonly Codec latest
    cdef readonly int latest_version
    cdef readonly dict readers
    cdef readonly dict upgrades
    cdef readonly dict fallbacks
    cdef readonly str error_code
    cdef bytes _prefix
    cdef Codec _latest_reader  # the latest version's codec when it is a plain Codec

    def __init__(self, name, Codec latest, int latest_version, readers, upgrades, *,
                 error_code, fallbacks=None):
        self.name = name
        self.latest = latest
        self.latest_version = latest_version
        self.readers = dict(readers)
        self.upgrades = dict(upgrades)
        self.fallbacks = dict(fallbacks or {})
        self.error_code = error_code
        self._prefix = latest_version.to_bytes(2, "little")
        reader = self.readers.get(latest_version)
        self._latest_reader = reader if type(reader) is Codec else None
        for version in self.readers:
            for step in range(version, latest_version):
                if step not in self.upgrades:
                    raise ValueError(f"{name}: no upgrade from v{step} to v{step + 1}")

    def __class_getitem__(cls, item):
        return cls

    def encode(self, value):
        """Write ``value`` at the latest version, with its prefix."""
        return self.latest._encode_with(value, self._prefix)

    def decode(self, data):
        """Read any supported version and upgrade it to the latest."""
        cdef int version
        if PyBytes_CheckExact(data) and PyBytes_GET_SIZE(data) >= 2:
            version = (<const uint8_t*>PyBytes_AS_STRING(data))[0] | (
                (<const uint8_t*>PyBytes_AS_STRING(data))[1] << 8
            )
            if version == self.latest_version and self._latest_reader is not None:
                try:
                    return self._latest_reader._decode_at(data, 2)
                except ProtocolError:
                    if version not in self.fallbacks:
                        raise
        version, value = self._decode_raw(data)
        while version < self.latest_version:
            value = self.upgrades[version](value)
            version += 1
        return value

    def decode_raw(self, data):
        """Read the value at the version the bytes carry, without upgrading it."""
        return self._decode_raw(data)

    cdef tuple _decode_raw(self, object data):
        cdef int version
        cdef PyObject* found
        if not PyBytes_CheckExact(data):
            data = bytes(data)
        if PyBytes_GET_SIZE(data) < 2:
            raise ProtocolError(
                "input is shorter than its 2-byte version prefix", code=self.error_code
            )
        version = (<const uint8_t*>PyBytes_AS_STRING(data))[0] | (
            (<const uint8_t*>PyBytes_AS_STRING(data))[1] << 8
        )
        found = PyDict_GetItem(self.readers, version)
        if found == NULL:
            supported = ", ".join(str(v) for v in sorted(self.readers))
            raise ProtocolError(
                f"{self.name}: unsupported version {version} (supported: {supported})",
                code=self.error_code,
            )
        reader = <object>found
        if type(reader) is not Codec:
            return version, reader(data, 2)
        try:
            return version, (<Codec>reader)._decode_at(data, 2)
        except ProtocolError as exc:
            fallback = self.fallbacks.get(version)
            if fallback is None:
                raise
            return version, fallback(data, 2, exc)


def compile_plan(plan, error_code="invalid_data"):
    """Return a :class:`Codec` for ``plan``."""
    return Codec(plan, error_code)

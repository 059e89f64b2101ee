# Included by _bare.pyx (one extension module; the include only keeps files small).
# The encoder: plan nodes and values into a growable C buffer.

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

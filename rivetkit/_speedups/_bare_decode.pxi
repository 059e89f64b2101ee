# Included by _bare.pyx (one extension module; the include only keeps files small).
# The strict decoder: bytes into values, every read bounds-checked.

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

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


include "_bare_encode.pxi"
include "_bare_decode.pxi"


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

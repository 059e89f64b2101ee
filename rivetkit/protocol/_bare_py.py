"""Pure-Python twin of the BARE codec engine (compiled twin: ``rivetkit._speedups._bare``).

:func:`compile_plan` turns a plan (see :mod:`rivetkit.protocol.plan`) into a :class:`Codec`.
Each plan node becomes a pair of closures, so a codec does no plan interpretation per value.
Decoding is strict, like RivetKit's own readers: varints must be minimal, bools and optional
tags must be 0 or 1, map keys must be unique and the whole input must be consumed. Any bad
input raises :class:`~rivetkit.errors.ProtocolError` carrying the codec's error code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, Union

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol import plan as P

T = TypeVar("T")
Encoder = Callable[[Any, bytearray], None]
Decoder = Callable[[bytes, int], tuple[Any, int]]

U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

_FIXED: dict[int, tuple[struct.Struct, int, int]] = {
    P.U8: (struct.Struct("<B"), 0, 0xFF),
    P.U16: (struct.Struct("<H"), 0, 0xFFFF),
    P.U32: (struct.Struct("<I"), 0, 0xFFFFFFFF),
    P.U64: (struct.Struct("<Q"), 0, U64_MAX),
    P.I8: (struct.Struct("<b"), -0x80, 0x7F),
    P.I16: (struct.Struct("<h"), -0x8000, 0x7FFF),
    P.I32: (struct.Struct("<i"), -0x80000000, 0x7FFFFFFF),
    P.I64: (struct.Struct("<q"), I64_MIN, I64_MAX),
}
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


class _Bad(Exception):
    """Internal: a decode failure, turned into a ProtocolError with the codec's code."""


def _write_uint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_uint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _Bad("varint is longer than 10 bytes")
    if byte == 0:
        raise _Bad("varint is not minimally encoded")
    if result > U64_MAX:
        raise _Bad("varint overflows 64 bits")
    return result, pos


def _check_int(value: Any, low: int, high: int, what: str) -> int:
    if (type(value) is not int and not isinstance(value, int)) or isinstance(value, bool):
        raise EncodeError(f"{what} expects an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise EncodeError(f"{what} value {value} is out of range [{low}, {high}]")
    return int(value)


def _build(node: P.Node) -> tuple[Encoder, Decoder]:
    kind, a, b = node

    if kind == P.UINT:

        def enc(value: Any, out: bytearray) -> None:
            _write_uint(_check_int(value, 0, U64_MAX, "uint"), out)

        return enc, _read_uint

    if kind == P.INT:

        def enc(value: Any, out: bytearray) -> None:
            v = _check_int(value, I64_MIN, I64_MAX, "int")
            _write_uint(((v << 1) ^ (v >> 63)) & U64_MAX, out)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            raw, pos = _read_uint(data, pos)
            return (raw >> 1) ^ -(raw & 1), pos

        return enc, dec

    if kind in _FIXED:
        packer, low, high = _FIXED[kind]
        pack, unpack_from, size = packer.pack, packer.unpack_from, packer.size
        name = _KIND_NAMES[kind]

        def enc(value: Any, out: bytearray) -> None:
            out += pack(_check_int(value, low, high, name))

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            return unpack_from(data, pos)[0], pos + size

        return enc, dec

    if kind in (P.F32, P.F64):
        packer = _F32 if kind == P.F32 else _F64
        fpack, funpack_from, fsize = packer.pack, packer.unpack_from, packer.size

        def enc(value: Any, out: bytearray) -> None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise EncodeError(f"float expects a number, got {type(value).__name__}")
            out += fpack(value)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            return funpack_from(data, pos)[0], pos + fsize

        return enc, dec

    if kind == P.BOOL:

        def enc(value: Any, out: bytearray) -> None:
            if value is True:
                out.append(1)
            elif value is False:
                out.append(0)
            else:
                raise EncodeError(f"bool expects True or False, got {value!r}")

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            byte = data[pos]
            if byte > 1:
                raise _Bad(f"bool byte must be 0 or 1, got {byte}")
            return byte == 1, pos + 1

        return enc, dec

    if kind == P.STR:

        def enc(value: Any, out: bytearray) -> None:
            if type(value) is not str:
                raise EncodeError(f"str expects a str, got {type(value).__name__}")
            raw = value.encode()
            _write_uint(len(raw), out)
            out += raw

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            length, pos = _read_uint(data, pos)
            end = pos + length
            if end > len(data):
                raise _Bad(f"str length {length} runs past the end of the input")
            return data[pos:end].decode(), end

        return enc, dec

    if kind == P.DATA:

        def enc(value: Any, out: bytearray) -> None:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise EncodeError(f"data expects bytes, got {type(value).__name__}")
            _write_uint(len(value), out)
            out += value

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            length, pos = _read_uint(data, pos)
            end = pos + length
            if end > len(data):
                raise _Bad(f"data length {length} runs past the end of the input")
            return bytes(data[pos:end]), end

        return enc, dec

    if kind == P.FIXED:
        width: int = a

        def enc(value: Any, out: bytearray) -> None:
            if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != width:
                raise EncodeError(f"data[{width}] expects exactly {width} bytes, got {value!r}")
            out += value

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            end = pos + width
            if end > len(data):
                raise _Bad(f"data[{width}] runs past the end of the input")
            return bytes(data[pos:end]), end

        return enc, dec

    if kind == P.VOID:

        def enc(value: Any, out: bytearray) -> None:
            return None

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            return None, pos

        return enc, dec

    if kind == P.OPTIONAL:
        inner_enc, inner_dec = _build(a)

        def enc(value: Any, out: bytearray) -> None:
            if value is None:
                out.append(0)
            else:
                out.append(1)
                inner_enc(value, out)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            tag = data[pos]
            if tag == 0:
                return None, pos + 1
            if tag != 1:
                raise _Bad(f"optional tag must be 0 or 1, got {tag}")
            return inner_dec(data, pos + 1)

        return enc, dec

    if kind == P.LIST:
        item_enc, item_dec = _build(a)
        item_min = P.min_size(a)

        def enc(value: Any, out: bytearray) -> None:
            if not isinstance(value, (list, tuple)):
                raise EncodeError(f"list expects a list, got {type(value).__name__}")
            _write_uint(len(value), out)
            for item in value:
                item_enc(item, out)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            count, pos = _read_uint(data, pos)
            _check_count(count, item_min, len(data) - pos)
            items: list[Any] = []
            append = items.append
            for _ in range(count):
                item, pos = item_dec(data, pos)
                append(item)
            return items, pos

        return enc, dec

    if kind == P.MAP:
        key_enc, key_dec = _build(a)
        val_enc, val_dec = _build(b)
        pair_min = P.min_size(a) + P.min_size(b)

        def enc(value: Any, out: bytearray) -> None:
            if not isinstance(value, dict):
                raise EncodeError(f"map expects a dict, got {type(value).__name__}")
            _write_uint(len(value), out)
            for key, val in value.items():
                key_enc(key, out)
                val_enc(val, out)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            count, pos = _read_uint(data, pos)
            _check_count(count, pair_min, len(data) - pos)
            result: dict[Any, Any] = {}
            for _ in range(count):
                key, pos = key_dec(data, pos)
                if key in result:
                    raise _Bad(f"duplicate map key {key!r}")
                result[key], pos = val_dec(data, pos)
            return result, pos

        return enc, dec

    if kind == P.STRUCT:
        cls: type[tuple[Any, ...]] = a
        fields = [_build(field) for _, field in b]
        encoders = [e for e, _ in fields]
        decoders = [d for _, d in fields]
        count = len(fields)
        new = tuple.__new__

        def enc(value: Any, out: bytearray) -> None:
            if type(value) is not cls:
                raise EncodeError(f"expected {cls.__name__}, got {type(value).__name__}")
            for field_enc, field in zip(encoders, value):
                field_enc(field, out)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            values = [None] * count
            for i, field_dec in enumerate(decoders):
                values[i], pos = field_dec(data, pos)
            return new(cls, values), pos

        return enc, dec

    if kind == P.UNION:
        members = [(member_cls, _build(member)) for member_cls, member in a]
        by_type = {member_cls: (tag, e) for tag, (member_cls, (e, _)) in enumerate(members)}
        member_decoders = [d for _, (_, d) in members]
        names = " | ".join(member_cls.__name__ for member_cls, _ in members)

        def enc(value: Any, out: bytearray) -> None:
            entry = by_type.get(type(value))
            if entry is None:
                raise EncodeError(f"expected one of {names}, got {type(value).__name__}")
            _write_uint(entry[0], out)
            entry[1](value, out)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            tag, pos = _read_uint(data, pos)
            if tag >= len(member_decoders):
                raise _Bad(f"unknown union tag {tag} (expected {names})")
            return member_decoders[tag](data, pos)

        return enc, dec

    if kind == P.ENUM:
        enum_cls = a
        enum_members = list(enum_cls)
        if [int(m) for m in enum_members] != list(range(len(enum_members))):
            raise ValueError(f"enum {enum_cls.__name__} values must be 0..n-1")

        def enc(value: Any, out: bytearray) -> None:
            if type(value) is not enum_cls:
                raise EncodeError(f"expected {enum_cls.__name__}, got {value!r}")
            _write_uint(int(value), out)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            raw, pos = _read_uint(data, pos)
            if raw >= len(enum_members):
                raise _Bad(f"unknown {enum_cls.__name__} value {raw}")
            return enum_members[raw], pos

        return enc, dec

    raise ValueError(f"unknown plan kind {kind!r}")


def _check_count(count: int, item_min: int, remaining: int) -> None:
    if item_min > 0:
        if count * item_min > remaining:
            raise _Bad(f"count {count} needs more bytes than the {remaining} left")
    elif count > P.MAX_EMPTY_ELEMENTS:
        raise _Bad(f"count {count} of zero-size elements is too large")


_KIND_NAMES = {
    P.U8: "u8",
    P.U16: "u16",
    P.U32: "u32",
    P.U64: "u64",
    P.I8: "i8",
    P.I16: "i16",
    P.I32: "i32",
    P.I64: "i64",
}


class Codec:
    """Encoder and strict decoder for one plan.

    ``error_code`` is the ``protocol`` error code raised on bad input (for example
    ``invalid_persisted_data``).
    """

    __slots__ = ("_dec", "_enc", "error_code", "plan")

    def __init__(self, plan: P.Node, error_code: str = "invalid_data") -> None:
        self.plan = plan
        self.error_code = error_code
        self._enc, self._dec = _build(plan)

    def encode(self, value: Any, prefix: bytes = b"") -> bytes:
        """Encode ``value`` after ``prefix`` (e.g. a vbare version); EncodeError on a misfit."""
        out = bytearray(prefix)
        try:
            self._enc(value, out)
        except (struct.error, UnicodeEncodeError, OverflowError, TypeError) as exc:
            raise EncodeError(str(exc)) from None
        return bytes(out)

    def decode(self, data: bytes, offset: int = 0) -> Any:
        """Decode the whole of ``data[offset:]``; raise ProtocolError on any bad input."""
        if not isinstance(data, bytes):
            data = bytes(data)
        try:
            value, pos = self._dec(data, offset)
        except _Bad as exc:
            raise ProtocolError(str(exc), code=self.error_code) from None
        except (IndexError, struct.error):
            raise ProtocolError("input ends too early", code=self.error_code) from None
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"invalid UTF-8 in str: {exc.reason}", code=self.error_code
            ) from None
        if pos != len(data):
            raise ProtocolError(
                f"{len(data) - pos} trailing bytes after the value", code=self.error_code
            )
        return value


def compile_plan(plan: P.Node, error_code: str = "invalid_data") -> Codec:
    """Return a :class:`Codec` for ``plan``."""
    return Codec(plan, error_code)


#: A custom reader of one version's body: ``(data, offset) -> value``.
Reader = Callable[[bytes, int], Any]
#: Tried when a version's codec rejects the bytes: ``(data, offset, error) -> value``.
Fallback = Callable[[bytes, int, ProtocolError], Any]
Upgrade = Callable[[Any], Any]


class Versioned(Generic[T]):
    """vbare: a 2-byte little-endian version, then the BARE body of that version.

    ``readers`` maps each readable version to its :class:`Codec` (or a custom reader);
    ``fallbacks`` optionally maps a version to a second reader tried when its codec rejects
    the bytes; ``upgrades[v]`` turns a version ``v`` value into a version ``v + 1`` value.
    :meth:`decode` reads any supported version and upgrades step by step; :meth:`encode`
    always writes ``latest_version`` with ``latest``.
    """

    __slots__ = (
        "_prefix",
        "error_code",
        "fallbacks",
        "latest",
        "latest_version",
        "name",
        "readers",
        "upgrades",
    )

    def __init__(
        self,
        name: str,
        latest: Codec,
        latest_version: int,
        readers: Mapping[int, Union[Codec, Reader]],  # noqa: UP007 - also read by Cython
        upgrades: Mapping[int, Upgrade],
        *,
        error_code: str,
        fallbacks: Mapping[int, Fallback] | None = None,
    ) -> None:
        self.name = name
        self.latest = latest
        self.latest_version = latest_version
        self.readers = dict(readers)
        self.upgrades = dict(upgrades)
        self.fallbacks = dict(fallbacks or {})
        self.error_code = error_code
        self._prefix = latest_version.to_bytes(2, "little")
        for version in self.readers:
            for step in range(version, latest_version):
                if step not in self.upgrades:
                    raise ValueError(f"{name}: no upgrade from v{step} to v{step + 1}")

    def encode(self, value: T) -> bytes:
        """Write ``value`` at the latest version, with its prefix."""
        return self.latest.encode(value, self._prefix)

    def decode(self, data: bytes) -> T:
        """Read any supported version and upgrade it to the latest."""
        version, value = self.decode_raw(data)
        while version < self.latest_version:
            value = self.upgrades[version](value)
            version += 1
        return value  # type: ignore[no-any-return]

    def decode_raw(self, data: bytes) -> tuple[int, Any]:
        """Read the value at the version the bytes carry, without upgrading it."""
        if len(data) < 2:
            raise ProtocolError(
                "input is shorter than its 2-byte version prefix", code=self.error_code
            )
        version = data[0] | (data[1] << 8)
        reader = self.readers.get(version)
        if reader is None:
            supported = ", ".join(str(v) for v in sorted(self.readers))
            raise ProtocolError(
                f"{self.name}: unsupported version {version} (supported: {supported})",
                code=self.error_code,
            )
        if not isinstance(reader, Codec):
            return version, reader(data, 2)
        try:
            return version, reader.decode(data, 2)
        except ProtocolError as exc:
            fallback = self.fallbacks.get(version)
            if fallback is None:
                raise
            return version, fallback(data, 2, exc)

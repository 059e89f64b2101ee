"""The BARE engine, over both twins: known bytes, strictness, errors, round trips."""

from __future__ import annotations

import enum
from types import ModuleType
from typing import Annotated, Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import strategy_for

from conftest import compiled_twin
from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol import _bare_py
from rivetkit.protocol import plan as P
from rivetkit.protocol.schema import (
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    UNION,
    Fixed,
    Int,
    Uint,
    plan_of,
)


class Color(enum.IntEnum):
    RED = 0
    GREEN = 1
    BLUE = 2


class Empty(NamedTuple):
    pass


class Point(NamedTuple):
    x: I32
    y: I32


class Named(NamedTuple):
    name: str


Shape = Point | Named | Empty


class Everything(NamedTuple):
    """One field of every kind, to exercise the whole engine at once."""

    a_uint: Uint
    an_int: Int
    a_u8: U8
    a_u16: U16
    a_u32: U32
    a_u64: U64
    an_i8: I8
    an_i16: I16
    an_i32: I32
    an_i64: I64
    an_f32: F32
    an_f64: F64
    a_bool: bool
    a_str: str
    some_data: bytes
    fixed: Annotated[bytes, Fixed(4)]
    maybe: str | None
    items: list[Point]
    mapping: dict[str, U16]
    shape: Shape
    only: Annotated[Named, UNION]
    color: Color


def codec(engine: ModuleType, tp: Any, code: str = "invalid_data") -> Any:
    return engine.compile_plan(plan_of(tp), code)


# -------------------------------------------------------------------------------------------
# Known bytes


KNOWN: list[tuple[Any, Any, str]] = [
    (Uint, 0, "00"),
    (Uint, 127, "7f"),
    (Uint, 128, "8001"),
    (Uint, 300, "ac02"),
    (Uint, (1 << 64) - 1, "ffffffffffffffffff01"),
    (Int, 0, "00"),
    (Int, -1, "01"),
    (Int, 1, "02"),
    (Int, -(1 << 63), "ffffffffffffffffff01"),
    (U8, 255, "ff"),
    (U16, 0x1234, "3412"),
    (U32, 1, "01000000"),
    (U64, 1 << 63, "0000000000000080"),
    (I8, -1, "ff"),
    (I16, -2, "feff"),
    (I32, -(1 << 31), "00000080"),
    (I64, 15000, "983a000000000000"),
    (F32, 1.5, "0000c03f"),
    (F64, -2.0, "00000000000000c0"),
    (bool, True, "01"),
    (bool, False, "00"),
    (str, "", "00"),
    (str, "héllo", "0668c3a96c6c6f"),
    (bytes, b"\x00\xff", "0200ff"),
    (Annotated[bytes, Fixed(4)], b"\x01\x02\x03\x04", "01020304"),
    (str | None, None, "00"),
    (str | None, "a", "010161"),
    (list[U8], [1, 2], "020102"),
    (dict[str, str], {"a": "b", "c": "d"}, "020161016201630164"),
    (Shape, Point(1, -1), "0001000000ffffffff"),
    (Shape, Named("n"), "01016e"),
    (Shape, Empty(), "02"),
    (Annotated[Named, UNION], Named("n"), "00016e"),
    (Color, Color.BLUE, "02"),
]


@pytest.mark.parametrize(("tp", "value", "hex_bytes"), KNOWN)
def test_known_bytes(engine: ModuleType, tp: Any, value: Any, hex_bytes: str) -> None:
    c = codec(engine, tp)
    assert c.encode(value).hex() == hex_bytes
    decoded = c.decode(bytes.fromhex(hex_bytes))
    assert decoded == value
    assert type(decoded) is type(value)


def test_prefix_and_offset(engine: ModuleType) -> None:
    c = codec(engine, Point)
    raw = c.encode(Point(1, 2), b"\x04\x00")
    assert raw[:2] == b"\x04\x00"
    assert c.decode(raw, 2) == Point(1, 2)
    assert c.decode(bytearray(raw[2:])) == Point(1, 2)
    assert c.decode(memoryview(raw[2:])) == Point(1, 2)


# -------------------------------------------------------------------------------------------
# Bad input: one error type, at once


MALFORMED: list[tuple[Any, str, str]] = [
    (Uint, "", "ends too early"),
    (Uint, "80", "ends too early"),
    (Uint, "8000", "minimal"),
    (Uint, "ff" * 10 + "01", "longer than 10 bytes"),
    (Uint, "ffffffffffffffffff02", "overflows"),
    (U32, "010203", "ends too early"),
    (bool, "02", "0 or 1"),
    (str | None, "02", "0 or 1"),
    (str, "05616263", "past the end"),
    (str, "02c328", "UTF-8"),
    (bytes, "ffffffffffffffff7f", "past the end"),
    (Annotated[bytes, Fixed(4)], "010203", "past the end"),
    (list[U32], "ffffffff0f", "more bytes"),
    (list[Empty], "ffffffff0f", "too large"),
    (dict[str, str], "02016101620163", "ends too early"),
    (dict[str, str], "020161016201610163", "duplicate"),
    (Shape, "03", "unknown union tag"),
    (Color, "03", "unknown Color value"),
    (U8, "0101", "trailing"),
]


@pytest.mark.parametrize(("tp", "hex_bytes", "fragment"), MALFORMED)
def test_malformed(engine: ModuleType, tp: Any, hex_bytes: str, fragment: str) -> None:
    c = codec(engine, tp, "invalid_persisted_data")
    data = bytes.fromhex(hex_bytes)
    with pytest.raises(ProtocolError) as info:
        c.decode(data)
    assert info.value.group == "protocol"
    assert info.value.code == "invalid_persisted_data"
    assert fragment in info.value.message


def test_huge_counts_do_not_allocate(engine: ModuleType) -> None:
    # A count near 2**64 with a handful of bytes must fail fast, not allocate or loop.
    for tp in (list[str], list[Empty], dict[str, str], list[list[U8]]):
        with pytest.raises(ProtocolError):
            codec(engine, tp).decode(bytes.fromhex("ffffffffffffffffff01") + b"\x00" * 8)


def test_offset_past_end(engine: ModuleType) -> None:
    with pytest.raises(ProtocolError):
        codec(engine, U8).decode(b"\x01", 5)


BAD_VALUES: list[tuple[Any, Any]] = [
    (Uint, -1),
    (Uint, 1 << 64),
    (Uint, True),
    (Uint, 1.0),
    (Uint, "1"),
    (Int, 1 << 63),
    (U8, 256),
    (U16, -1),
    (I8, 128),
    (I64, -(1 << 63) - 1),
    (F32, 1e300),
    (F64, "x"),
    (F64, True),
    (bool, 1),
    (str, b"x"),
    (str, "\ud800"),
    (bytes, "x"),
    (Annotated[bytes, Fixed(4)], b"abc"),
    (list[U8], {1, 2}),
    (dict[str, str], [("a", "b")]),
    (Point, (1, 2)),
    (Point, Named("x")),
    (Shape, (1, 2)),
    (Color, 1),
]


@pytest.mark.parametrize(("tp", "value"), BAD_VALUES)
def test_encode_rejects_misfits(engine: ModuleType, tp: Any, value: Any) -> None:
    with pytest.raises(EncodeError):
        codec(engine, tp).encode(value)


def test_plan_rejects_unsized_int() -> None:
    class Bad(NamedTuple):
        n: int

    with pytest.raises(TypeError, match="width"):
        plan_of(Bad)


# -------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=strategy_for(Everything))
def test_round_trip(engine: ModuleType, value: Everything) -> None:
    c = codec(engine, Everything)
    raw = c.encode(value)
    assert c.decode(raw) == value
    assert c.encode(c.decode(raw)) == raw


def _outcome(c: Any, data: bytes) -> tuple[str, Any]:
    try:
        return ("ok", c.decode(data))
    except ProtocolError as exc:
        return ("error", (exc.group, exc.code))


def _twins_or_skip() -> tuple[ModuleType, ModuleType]:
    compiled = compiled_twin()
    if compiled is None:
        from rivetkit import _twins

        if _twins.SPEEDUPS_REQUIRED:
            pytest.fail("RIVETKIT_REQUIRE_SPEEDUPS=1 but the compiled twin is not built")
        pytest.skip("compiled twin not built")
    return _bare_py, compiled


@settings(max_examples=300)
@given(value=strategy_for(Everything))
def test_differential_encode(value: Everything) -> None:
    pure, compiled = _twins_or_skip()
    a, b = codec(pure, Everything), codec(compiled, Everything)
    raw = a.encode(value)
    assert b.encode(value) == raw
    assert b.decode(raw) == a.decode(raw) == value


@settings(max_examples=1000)
@given(data=st.binary(max_size=64))
def test_differential_garbage(data: bytes) -> None:
    pure, compiled = _twins_or_skip()
    for tp in (Everything, Shape, list[Point], dict[str, U16], str | None, Uint, Int):
        assert _outcome(codec(pure, tp), data) == _outcome(codec(compiled, tp), data)


@settings(max_examples=300)
@given(value=strategy_for(Everything), cut=st.integers(min_value=0, max_value=400))
def test_differential_truncated(value: Everything, cut: int) -> None:
    pure, compiled = _twins_or_skip()
    raw = codec(pure, Everything).encode(value)
    data = raw[: min(cut, len(raw) - 1)]
    outcome = _outcome(codec(pure, Everything), data)
    assert outcome[0] == "error"
    assert outcome == _outcome(codec(compiled, Everything), data)


def test_twins_share_the_plan_kinds() -> None:
    _, compiled = _twins_or_skip()
    assert P.ENUM == 22
    assert compiled.compile_plan(plan_of(Point)).plan == plan_of(Point)

"""Declare BARE schemas as annotated record classes and derive codec plans from them.

A schema type is a :class:`typing.NamedTuple` whose fields carry their BARE type in the
annotation; the field order is the wire order. Python types map as follows:

* ``str`` -> ``str``; ``bool`` -> ``bool``; ``bytes`` -> ``data``; ``float`` -> ``f64``;
* ``Annotated[int, U16]`` (and the aliases below) -> fixed-width or varint integers;
  a bare ``int`` is refused, because BARE has no default width;
* ``Annotated[bytes, Fixed(4)]`` -> ``data[4]``; ``Annotated[Any, DATA]`` -> ``data`` holding
  a value whose Python type is left open (CBOR payloads);
* ``T | None`` -> ``optional<T>``; ``list[T]`` -> ``list<T>``; ``dict[K, V]`` -> ``map<K><V>``;
* another record class -> ``struct``; an empty record class -> a ``void`` union member;
* ``A | B | C`` of record classes -> ``union`` with tags in that order
  (``Annotated[A, UNION]`` for a one-member union);
* an :class:`enum.IntEnum` with values ``0..n-1`` -> ``enum``.

Field names are snake_case; :func:`wire_name` gives the camelCase name the RivetKit schemas use.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Annotated, Any

from rivetkit.protocol import plan as P


class Wire:
    """Annotation marker naming the BARE primitive of a field."""

    __slots__ = ("kind", "width")

    def __init__(self, kind: int, width: int = 0) -> None:
        self.kind = kind
        self.width = width

    def __repr__(self) -> str:
        return f"Wire({self.kind}, {self.width})"


def Fixed(width: int) -> Wire:
    """Marker for ``data[width]``."""
    return Wire(P.FIXED, width)


DATA = Wire(P.DATA)
#: Marks a union explicitly; needed for a one-member union, which Python folds into its member.
UNION = Wire(P.UNION)

Uint = Annotated[int, Wire(P.UINT)]
Int = Annotated[int, Wire(P.INT)]
U8 = Annotated[int, Wire(P.U8)]
U16 = Annotated[int, Wire(P.U16)]
U32 = Annotated[int, Wire(P.U32)]
U64 = Annotated[int, Wire(P.U64)]
I8 = Annotated[int, Wire(P.I8)]
I16 = Annotated[int, Wire(P.I16)]
I32 = Annotated[int, Wire(P.I32)]
I64 = Annotated[int, Wire(P.I64)]
F32 = Annotated[float, Wire(P.F32)]
F64 = Annotated[float, Wire(P.F64)]

_plans: dict[Any, P.Node] = {}
_list_aliases: set[type] = set()
RecordT = typing.TypeVar("RecordT", bound=type)


def list_alias(cls: RecordT) -> RecordT:
    """Mark a one-field record that stands for a schema alias of a list.

    A union member such as ``type ToRivetEvents list<EventWrapper>`` is declared as a record
    with one list field; its bytes are the list's. The mark only tells value converters (the
    vectors' conventions) to show it as the bare list.
    """
    _list_aliases.add(cls)
    return cls


def is_list_alias(cls: type) -> bool:
    """True for a record marked with :func:`list_alias`."""
    return cls in _list_aliases


def is_record(tp: Any) -> bool:
    """True for a NamedTuple record class."""
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def record_fields(cls: type) -> list[tuple[str, Any]]:
    """``(field_name, annotation)`` pairs of a record class in wire order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return [(name, hints[name]) for name in cls._fields]  # type: ignore[attr-defined]


def plan_of(tp: Any) -> P.Node:
    """Return the codec plan for a Python type annotation (cached per record class)."""
    cached = _plans.get(tp) if isinstance(tp, type) else None
    if cached is not None:
        return cached
    node = _plan(tp)
    if isinstance(tp, type):
        _plans[tp] = node
    return node


def _plan(tp: Any) -> P.Node:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        base, *markers = args
        wire = next((m for m in markers if isinstance(m, Wire)), None)
        if wire is None:
            return plan_of(base)
        if wire.kind == P.FIXED:
            return (P.FIXED, wire.width, None)
        if wire.kind == P.UNION:
            options = typing.get_args(base) or (base,)
            return (P.UNION, tuple((m, plan_of(m)) for m in options), None)
        return (wire.kind, None, None)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) < len(args):
            inner = members[0] if len(members) == 1 else typing.Union[tuple(members)]  # noqa: UP007
            return (P.OPTIONAL, plan_of(inner), None)
        if not all(is_record(m) for m in members):
            raise TypeError(f"union members must be record classes: {tp!r}")
        return (P.UNION, tuple((m, plan_of(m)) for m in members), None)
    if origin is list:
        return (P.LIST, plan_of(args[0]), None)
    if origin is dict:
        return (P.MAP, plan_of(args[0]), plan_of(args[1]))
    if tp is str:
        return (P.STR, None, None)
    if tp is bool:
        return (P.BOOL, None, None)
    if tp is bytes:
        return (P.DATA, None, None)
    if tp is float:
        return (P.F64, None, None)
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return (P.ENUM, tp, None)
    if is_record(tp):
        fields = tuple((name, plan_of(hint)) for name, hint in record_fields(tp))
        return (P.STRUCT, tp, fields)
    raise TypeError(f"no BARE type for annotation {tp!r}; give ints a width such as U32")


def wire_name(field: str) -> str:
    """camelCase wire name of a snake_case field (``has_initialized`` -> ``hasInitialized``)."""
    head, *rest = field.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)

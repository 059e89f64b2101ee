"""Hypothesis strategies built generically from schema records.

``strategy_for(tp)`` walks the codec plan of any schema type (a record class, a union alias, an
annotated primitive, ``T | None``, ``list[T]``, ``dict[K, V]``, an ``IntEnum``) and returns a
strategy producing values that the type's codec accepts: integers within each width, text,
bytes, ``None``, short lists and dicts, records, union members and enum members.

Lists and maps are kept small (``max_items``) because schemas nest lists several levels deep.
Floats exclude NaN so that round-tripped values compare equal.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from rivetkit.protocol import plan as P
from rivetkit.protocol.schema import plan_of

__all__ = ["strategy_for", "strategy_for_plan"]

_INT_RANGES: dict[int, tuple[int, int]] = {
    P.UINT: (0, (1 << 64) - 1),
    P.INT: (-(1 << 63), (1 << 63) - 1),
    P.U8: (0, 0xFF),
    P.U16: (0, 0xFFFF),
    P.U32: (0, 0xFFFFFFFF),
    P.U64: (0, (1 << 64) - 1),
    P.I8: (-0x80, 0x7F),
    P.I16: (-0x8000, 0x7FFF),
    P.I32: (-0x80000000, 0x7FFFFFFF),
    P.I64: (-(1 << 63), (1 << 63) - 1),
}


def strategy_for(tp: Any, *, max_items: int = 3, max_bytes: int = 32) -> st.SearchStrategy[Any]:
    """A strategy for values of the schema type ``tp`` (anything ``plan_of`` accepts)."""
    return strategy_for_plan(plan_of(tp), max_items=max_items, max_bytes=max_bytes)


def strategy_for_plan(
    node: P.Node, *, max_items: int = 3, max_bytes: int = 32
) -> st.SearchStrategy[Any]:
    """A strategy for values of a codec plan node (see :mod:`rivetkit.protocol.plan`)."""

    def build(node: P.Node) -> st.SearchStrategy[Any]:
        kind, a, b = node
        if kind in _INT_RANGES:
            low, high = _INT_RANGES[kind]
            return st.integers(min_value=low, max_value=high)
        if kind == P.F32:
            return st.floats(width=32, allow_nan=False)
        if kind == P.F64:
            return st.floats(allow_nan=False)
        if kind == P.BOOL:
            return st.booleans()
        if kind == P.STR:
            return st.text(max_size=max_bytes)
        if kind == P.DATA:
            return st.binary(max_size=max_bytes)
        if kind == P.FIXED:
            return st.binary(min_size=a, max_size=a)
        if kind == P.VOID:
            return st.none()
        if kind == P.OPTIONAL:
            return st.none() | build(a)
        if kind == P.LIST:
            return st.lists(build(a), max_size=max_items)
        if kind == P.MAP:
            return st.dictionaries(build(a), build(b), max_size=max_items)
        if kind == P.STRUCT:
            cls = a
            if not b:
                return st.just(cls())
            return st.tuples(*(build(field) for _, field in b)).map(
                lambda values, cls=cls: cls(*values)
            )
        if kind == P.UNION:
            return st.one_of(*(build(member) for _, member in a))
        if kind == P.ENUM:
            return st.sampled_from(list(a))
        raise ValueError(f"no strategy for plan kind {kind!r}")

    return build(node)

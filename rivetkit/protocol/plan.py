"""Codec plans: the plain-data description of a BARE type that both codec twins compile.

A plan node is a tuple ``(kind, a, b)``:

========== ===================================================================
kind       a, b
========== ===================================================================
primitives ``None, None`` (``UINT`` .. ``DATA``, ``VOID``)
FIXED      ``n`` (byte length of ``data[n]``), ``None``
OPTIONAL   inner node, ``None``
LIST       element node, ``None``
MAP        key node, value node
STRUCT     the record class (a ``tuple`` subclass), ``((field_name, node), ...)``
UNION      ``((member_class, member_node), ...)`` in tag order, ``None``
ENUM       the ``IntEnum`` class (values ``0 .. n-1``), ``None``
========== ===================================================================

Plans are built by :mod:`rivetkit.protocol.schema` from annotated record classes; the twins
(:mod:`rivetkit.protocol._bare_py` and ``rivetkit._speedups._bare``) turn them into codecs.
"""

from __future__ import annotations

from typing import Any

UINT = 0
INT = 1
U8 = 2
U16 = 3
U32 = 4
U64 = 5
I8 = 6
I16 = 7
I32 = 8
I64 = 9
F32 = 10
F64 = 11
BOOL = 12
STR = 13
DATA = 14
VOID = 15
FIXED = 16
OPTIONAL = 17
LIST = 18
MAP = 19
STRUCT = 20
UNION = 21
ENUM = 22

#: Largest element count accepted for a list or map whose elements may take zero bytes.
MAX_EMPTY_ELEMENTS = 1 << 16

Node = tuple[int, Any, Any]


def min_size(node: Node) -> int:
    """The fewest bytes an encoded value of ``node`` can take (guards list/map counts)."""
    kind, a, b = node
    if kind in (UINT, INT, U8, I8, BOOL, STR, DATA, OPTIONAL, LIST, MAP, UNION, ENUM):
        return 1
    if kind in (U16, I16):
        return 2
    if kind in (U32, I32, F32):
        return 4
    if kind in (U64, I64, F64):
        return 8
    if kind == FIXED:
        return int(a)
    if kind == STRUCT:
        return sum(min_size(field) for _, field in b)
    return 0  # VOID

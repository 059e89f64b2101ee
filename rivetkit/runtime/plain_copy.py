"""A deep copy of plain data, without :func:`copy.deepcopy`'s per-value calls.

An actor's constant ``state`` (and ``vars``, ``conn_state``) is deep-copied for each new actor
(connection). Such constants are nearly always plain data: dicts and lists of strings, numbers,
booleans, None and bytes. :func:`plain_copy` copies those itself, with exactly
:func:`copy.deepcopy`'s result (scalars are returned as they are, as ``deepcopy`` does; a
container met twice, shared or a cycle, sends the whole value to ``deepcopy``, which keeps the
sharing); any other value goes to :func:`copy.deepcopy`.
"""

from __future__ import annotations

import copy
from typing import Any, Final

__all__ = ["plain_copy"]

#: The types ``deepcopy`` returns as they are (exact types: subclasses go to ``deepcopy``).
_ATOMIC: Final = frozenset({str, int, float, bool, type(None), bytes})
#: Nesting beyond this goes to ``deepcopy`` (which then behaves as it always did).
_MAX_DEPTH: Final = 64


class _NotPlain(Exception):
    """The value is not plain data: ``deepcopy`` copies it."""


def plain_copy(value: Any) -> Any:
    """``copy.deepcopy(value)``, faster for plain data (see the module docstring)."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is dict:
        for key, item in value.items():
            if type(key) not in _ATOMIC or type(item) not in _ATOMIC:
                break
        else:  # a flat dict of scalars: its shallow copy is its deep copy
            return value.copy()
    try:
        return _copy(value, set(), 0)
    except _NotPlain:
        return copy.deepcopy(value)


def _copy(value: Any, seen: set[int], depth: int) -> Any:
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if (kind is not dict and kind is not list) or depth >= _MAX_DEPTH or id(value) in seen:
        raise _NotPlain
    seen.add(id(value))
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) not in _ATOMIC:
                raise _NotPlain
            out[key] = _copy(item, seen, depth + 1)
        return out
    return [_copy(item, seen, depth + 1) for item in value]

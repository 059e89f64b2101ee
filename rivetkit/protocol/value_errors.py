"""Which part of a value an encoding refuses, and the errors that say so.

An action's output that its client's encoding cannot carry is refused with
``actor/invalid_output``; the message names the first offending part (``output['when']``),
its type, and the values that do travel. :func:`find_unencodable` finds that part by encoding
each leaf (and each dict key) alone with the same encoder the response uses, so it reports
exactly what the encoder refused.

What travels (the JSON-compat layer of :mod:`rivetkit.protocol.values`):

* every encoding: ``None``, ``bool``, ``int`` (any size), ``float``, ``str``, ``bytes``,
  ``list``/``tuple`` (a tuple arrives as a list), ``set``/``frozenset`` (arrives as a set) and
  ``dict``, nested up to :data:`~rivetkit.protocol.values.MAX_DEPTH` levels;
* json: dict keys that are ``str`` (``int``, ``float``, ``bool`` and ``None`` keys arrive as
  their JSON text: ``1`` becomes ``"1"``); no NaN or infinity; nothing else;
* cbor and bare: any dict key of those types, NaN and infinities, and the types ``cbor2``
  encodes itself (timezone-aware ``datetime``, ``Decimal``, ``UUID``, ...), which a
  RivetKit TypeScript client may not decode.
"""

from __future__ import annotations

from typing import Any, Final

from rivetkit.errors import RivetError
from rivetkit.protocol.trees import json_dumps
from rivetkit.protocol.values import MAX_DEPTH, cbor_dumps, encode_json_compat

__all__ = ["TRAVELLING_VALUES", "find_unencodable", "invalid_output", "locate_unencodable"]

#: One sentence on the values every encoding carries, for error messages.
TRAVELLING_VALUES: Final = (
    "values that travel in every encoding are None, bool, int, float, str, bytes, and lists, "
    "tuples (arriving as lists), sets and dicts with str keys of them; "
    "see docs/concepts/values.md"
)

_JSON_KEYS: Final = (str, int, float, bool, type(None))
_CONTAINERS: Final = (dict, list, tuple, set, frozenset)


def _leaf_problem(value: Any, encoding: str) -> str | None:
    """Why ``encoding`` refuses the non-container ``value``; None when it takes it."""
    try:
        if encoding == "json":
            json_dumps(encode_json_compat(value))
        else:
            cbor_dumps(value)
    except Exception:
        name = "JSON" if encoding == "json" else "CBOR"
        return f"is of type {type(value).__name__} ({value!r:.60}), which {name} cannot carry"
    return None


def _key_problem(key: Any, encoding: str) -> str | None:
    if encoding == "json":
        if isinstance(key, _JSON_KEYS):
            return None
        return f"has a {type(key).__name__} key ({key!r:.60}); JSON keys are str"
    try:
        cbor_dumps({key: None})
    except Exception:
        return f"has a {type(key).__name__} key ({key!r:.60}), which CBOR cannot carry"
    return None


def find_unencodable(value: Any, encoding: str, root: str = "output") -> str | None:
    """``"<path> <reason>"`` for the first part of ``value`` that ``encoding`` refuses.

    ``encoding`` is ``"json"``, ``"cbor"`` or ``"bare"`` (bare carries user values as CBOR).
    The path starts at ``root`` (``output['items'][2]``). None when no part is refused.
    """
    found = locate_unencodable(value, encoding, root)
    return None if found is None else f"{found[0]} {found[1]}"


def locate_unencodable(value: Any, encoding: str, root: str = "output") -> tuple[str, str] | None:
    """``(path, reason)`` for the first part of ``value`` that ``encoding`` refuses, or None."""
    return _walk(value, root, encoding, set(), 0)


def _walk(
    value: Any, path: str, encoding: str, active: set[int], depth: int
) -> tuple[str, str] | None:
    if not isinstance(value, _CONTAINERS):
        problem = _leaf_problem(value, encoding)
        return None if problem is None else (path, problem)
    if id(value) in active:
        return path, "is a container that holds itself (a reference cycle)"
    if depth >= MAX_DEPTH:
        return path, f"nests deeper than {MAX_DEPTH} levels"
    active.add(id(value))
    try:
        if isinstance(value, dict):
            for key, item in value.items():
                problem = _key_problem(key, encoding)
                if problem is not None:
                    return path, problem
                found = _walk(item, f"{path}[{key!r}]", encoding, active, depth + 1)
                if found is not None:
                    return found
        else:
            for i, item in enumerate(value):
                found = _walk(item, f"{path}[{i}]", encoding, active, depth + 1)
                if found is not None:
                    return found
    finally:
        active.discard(id(value))
    return None


def invalid_output(action: str, output: Any, encoding: str, error: BaseException) -> RivetError:
    """``actor/invalid_output``: the output of ``action`` cannot be sent in ``encoding``.

    The message names the offending part of ``output`` (found by :func:`find_unencodable`;
    the encoder's own words when no single part is to blame) and the values that travel;
    ``metadata`` is ``{"path": <path or None>, "encoding": encoding}``.
    """
    try:
        found = locate_unencodable(output, encoding)
    except RecursionError:
        found = None
    path = None if found is None else found[0]
    what = str(error) if found is None else f"{found[0]} {found[1]}"
    return RivetError(
        "actor",
        "invalid_output",
        f"the output of action {action!r} cannot be encoded as {encoding}: {what}; "
        f"{TRAVELLING_VALUES}",
        metadata={"path": path, "encoding": encoding},
    )

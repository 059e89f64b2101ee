"""Definition-time checks of the authoring API: actor names, callable arities, and values
that persisted state may hold (plain CBOR data).

:mod:`rivetkit.actor` runs them when an actor is defined, so a misuse fails there, naming the
culprit.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, Final

import cbor2

__all__ = ["ACTOR_NAME_PATTERN", "check_actor_name", "check_arity", "check_cbor_value"]

#: Actor names: 1 to 128 ASCII letters, digits, ``_``, ``.``, ``-``, starting with a letter or
#: digit. Such a name is a URL path segment as is (no ``.``/``..``, nothing to escape).
ACTOR_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_actor_name(name: object) -> str:
    """``name`` if it is a valid actor name (:data:`ACTOR_NAME_PATTERN`); raise otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"an actor name must be a str, got {type(name).__name__} {name!r}")
    if ACTOR_NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"invalid actor name {name!r}: use 1 to 128 ASCII letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_arity(fn: Callable[..., Any], n: int, label: str, names: tuple[str, ...]) -> None:
    """Raise TypeError (naming ``label`` and ``names``) if ``fn`` cannot take ``n`` positional
    arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # no introspectable signature: the call itself will tell
    try:
        sig.bind(*range(n))
    except TypeError as exc:
        raise TypeError(
            f"{label}: must accept {n} positional argument{'s' if n != 1 else ''} "
            f"({', '.join(names)}), but {fn!r} has the signature {sig} ({exc})"
        ) from None


_CBOR_SCALARS: Final = (type(None), bool, int, float, str, bytes)


def check_cbor_value(value: Any, label: str) -> None:
    """Check that ``value`` is plain CBOR data: what persisted state may hold.

    Allowed: None, bool, int, float, str, bytes, lists of them and dicts whose keys are
    scalars, nested to any depth without cycles. Tuples, sets and other objects are refused
    because they would not come back as themselves after a save and a load.

    :raises TypeError: naming the path of the first offending value, e.g.
        ``state['items'][2]``
    """
    _walk_cbor(value, label, set())
    try:
        cbor2.dumps(value)
    except Exception as exc:  # pragma: no cover - the walk admits only encodable values
        raise TypeError(f"{label} is not CBOR-encodable: {exc}") from exc


def _walk_cbor(value: Any, path: str, active: set[int]) -> None:
    t = type(value)
    if t in _CBOR_SCALARS:
        return
    if t is list or t is dict:
        if id(value) in active:
            raise TypeError(f"{path} contains a reference cycle")
        active.add(id(value))
        if t is list:
            for i, item in enumerate(value):
                _walk_cbor(item, f"{path}[{i}]", active)
        else:
            for key, item in value.items():
                if type(key) not in _CBOR_SCALARS:
                    raise TypeError(
                        f"{path} has a key of type {type(key).__name__} ({key!r}); "
                        "keys must be str, int, float, bool, bytes or None"
                    )
                _walk_cbor(item, f"{path}[{key!r}]", active)
        active.discard(id(value))
        return
    raise TypeError(
        f"{path} is not CBOR-encodable: {t.__name__} {value!r:.80} (allowed: None, bool, int, "
        "float, str, bytes, list, dict)"
    )

"""Each compiled twin exports the public API of its pure twin: same names, same signatures.

The pairs are found where the package binds them, every ``_twins.load("<compiled>",
"<pure>")`` call under ``rivetkit/``, so a new hot path is checked without editing this file,
and every ``.pyx`` in ``rivetkit/_speedups`` must belong to a pair.

Names are always compared (module level and each public class's attributes). Signatures are
compared where Cython exposes them (functions and methods: parameter names, kinds and
defaults; Cython drops annotations, so those are not compared). Cython cannot expose the
constructor of a ``cdef class`` (its ``__init__`` reads as ``(self, /, *args, **kwargs)``),
so constructors are checked by calling them instead (see ``test_constructors_take_the_same``).
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conftest import both_twins

PACKAGE = Path(__file__).resolve().parent.parent / "rivetkit"
LOAD_CALL = re.compile(r"""_twins\.load\(\s*["'](\w+)["']\s*,\s*["']([\w.]+)["']\s*\)""")

#: Public names only the pure twin has, each with the reason it needs no compiled twin.
PURE_ONLY: dict[str, dict[str, str]] = {
    "_bare": {
        # Integer bounds the compiled twin holds as C constants; callers keep their own.
        "U64_MAX": "constant",
        "I64_MIN": "constant",
        "I64_MAX": "constant",
    },
}

#: Dunder methods that are part of a class's public API.
PUBLIC_DUNDERS = {"__call__", "__contains__", "__iter__", "__len__", "__getitem__"}


def twin_pairs() -> dict[str, str]:
    """``{compiled stem: pure module}`` as bound by the selectors under ``rivetkit/``."""
    pairs: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        for compiled, pure in LOAD_CALL.findall(path.read_text(encoding="utf-8")):
            assert pairs.setdefault(compiled, pure) == pure, f"{compiled} bound to two modules"
    return pairs


PAIRS = twin_pairs()


def is_typing_helper(value: object) -> bool:
    """Type aliases and type variables: annotations for the pure twin, not API."""
    if isinstance(value, (TypeVar, types.GenericAlias)):
        return True
    return type(value).__module__ in {"typing", "_collections_abc", "collections.abc"}


def public_names(module: types.ModuleType, *homes: str) -> set[str]:
    """The names ``module`` (or its twin, named in ``homes``) defines for its users; imports
    from elsewhere and typing helpers are left out. A compiled twin may re-export what its
    pure twin defines (the error builders of ``_dispatch``): that counts as its own."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or name == "annotations" or isinstance(value, types.ModuleType):
            continue
        if is_typing_helper(value):
            continue
        home = getattr(value, "__module__", None)
        if (inspect.isclass(value) or callable(value)) and home not in {module.__name__, *homes}:
            continue  # imported from elsewhere (the errors module, the stdlib)
        names.add(name)
    return names


def class_names(cls: type) -> set[str]:
    """The public attributes of ``cls`` (methods, properties, slots), ``object``'s left out."""
    return {
        name
        for name in dir(cls)
        if (not name.startswith("_") or name in PUBLIC_DUNDERS) and not hasattr(object, name)
    }


def readable_signature(obj: Any) -> inspect.Signature | None:
    """``obj``'s signature, or None where it cannot be read (a C slot, a ``cdef`` init)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    kinds = [p.kind for p in signature.parameters.values()]
    if inspect.Parameter.VAR_POSITIONAL in kinds and inspect.Parameter.VAR_KEYWORD in kinds:
        return None  # Cython's placeholder for what it cannot describe
    return signature


def shape(signature: inspect.Signature, dunder: bool) -> list[tuple[str, Any, str]]:
    """What both twins can state about a signature: names, kinds and defaults. A C slot
    (``__len__``, ``__contains__``) takes its arguments positionally, under its own names:
    only their number counts."""
    return [
        (
            "" if dunder else p.name,
            None if dunder else p.kind,
            "-" if p.default is inspect.Parameter.empty else repr(p.default),
        )
        for p in signature.parameters.values()
    ]


def test_every_compiled_module_has_a_pure_twin() -> None:
    stems = {p.stem for p in (PACKAGE / "_speedups").glob("*.pyx")}
    assert stems, "no .pyx sources found"
    assert stems == set(PAIRS)


@pytest.fixture(params=sorted(PAIRS))
def pair(request: pytest.FixtureRequest) -> tuple[str, types.ModuleType, types.ModuleType]:
    """``(stem, pure, compiled)`` for one twin pair."""
    stem = request.param
    pure, compiled = both_twins(stem, PAIRS[stem])
    return stem, pure, compiled


def test_same_public_names(pair: tuple[str, types.ModuleType, types.ModuleType]) -> None:
    stem, pure, compiled = pair
    allowed = set(PURE_ONLY.get(stem, {}))
    assert public_names(pure) - allowed == public_names(compiled, pure.__name__)
    declared = getattr(pure, "__all__", None)
    if declared is not None:
        assert set(declared) <= public_names(compiled, pure.__name__)


def test_pure_only_names_are_not_imported_from_the_pure_twin() -> None:
    # The allowance above holds only while no module reaches for those names.
    for stem, names in PURE_ONLY.items():
        pure = PAIRS[stem]
        for path in PACKAGE.rglob("*.py"):
            if path.stem == pure.rsplit(".", 1)[1]:
                continue
            text = path.read_text(encoding="utf-8")
            for name in names:
                assert not re.search(rf"from {re.escape(pure)} import [^\n]*\b{name}\b", text), (
                    f"{path} imports {name} from {pure}: give the compiled twin {name} too"
                )


def test_same_signatures(pair: tuple[str, types.ModuleType, types.ModuleType]) -> None:
    _, pure, compiled = pair
    compared = 0
    for name in sorted(public_names(compiled, pure.__name__)):
        ours, theirs = getattr(pure, name), getattr(compiled, name)
        if inspect.isclass(ours):
            assert class_names(ours) == class_names(theirs), name
            members = [
                (f"{name}.{m}", getattr(ours, m), getattr(theirs, m)) for m in class_names(ours)
            ]
        elif callable(ours):
            members = [(name, ours, theirs)]
        else:
            assert type(ours) is type(theirs) and ours == theirs, name  # a shared constant
            continue
        for label, a, b in members:
            if not callable(a) or not callable(b):
                continue
            left, right = readable_signature(a), readable_signature(b)
            if left is None or right is None:
                continue  # a slot holding a callable, or a signature Cython cannot expose
            dunder = label.endswith("__")
            assert shape(left, dunder) == shape(right, dunder), label
            compared += 1
    if any(callable(getattr(pure, n)) for n in public_names(compiled, pure.__name__)):
        assert compared, "no signature could be compared"


def test_constructors_take_the_same(
    pair: tuple[str, types.ModuleType, types.ModuleType],
) -> None:
    """The ``cdef class`` constructors hide their signature: the pure one's required
    parameters must be refused the same way by both when missing."""
    _, pure, compiled = pair
    for name in sorted(public_names(compiled, pure.__name__)):
        ours, theirs = getattr(pure, name), getattr(compiled, name)
        if not inspect.isclass(ours) or issubclass(ours, BaseException):
            continue
        signature = readable_signature(ours)
        assert signature is not None, name
        required = [
            p
            for p in signature.parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if not required:
            ours(), theirs()  # both build with no arguments
            continue
        for cls in (ours, theirs):
            with pytest.raises(TypeError):
                cls()
        too_many = [None] * (len(signature.parameters) + 1)
        if all(p.kind is not p.VAR_POSITIONAL for p in signature.parameters.values()):
            for cls in (ours, theirs):
                with pytest.raises(TypeError):
                    cls(*too_many)


def test_pairs_import() -> None:
    for compiled, pure in PAIRS.items():
        importlib.import_module(pure)
        assert compiled.startswith("_")

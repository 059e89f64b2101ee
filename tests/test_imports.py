"""Every module of ``rivetkit/`` imports alone, and the layer rules of DESIGN.md §2 hold.

Each module is imported in a fresh interpreter (one subprocess per module, two at a time), so
an import cycle or a missing import that another module happened to satisfy shows up, as in
multidict's ``tests/test_circular_imports.py``. The subprocess reports ``sys.modules``; the
rules below say which modules a layer must never load, even indirectly:

- the runtime loads no server, no ASGI stack and no concrete driver;
- ``dispatch/`` loads no server and no storage;
- ``protocol/`` loads no runtime;
- ``rivetkit.client`` loads no runtime, server or driver module;
- the two drivers do not load each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rivetkit"

# The package's own modules that only run something (``python -m rivetkit``).
NOT_IMPORTABLE = {"rivetkit.__main__"}

SERVER = ("rivetkit.server",)
ASGI = ("uvicorn", "starlette")
CONCRETE_DRIVERS = ("rivetkit.drivers.embedded", "rivetkit.drivers.engine")
STORAGE = ("sqlite3", "_sqlite3", "apsw", "rivetkit.drivers.embedded")
RUNTIME = ("rivetkit.runtime",)
DRIVERS = ("rivetkit.drivers",)

#: (layer prefix, modules it must never load, the rule in words)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("rivetkit.runtime", SERVER + ASGI + CONCRETE_DRIVERS, "the runtime loads no server/driver"),
    ("rivetkit.dispatch", SERVER + STORAGE, "dispatch loads no server and no storage"),
    ("rivetkit.protocol", RUNTIME, "protocol loads no runtime"),
    ("rivetkit.client", RUNTIME + SERVER + DRIVERS, "the client loads no runtime/server/driver"),
    ("rivetkit.drivers.embedded", ("rivetkit.drivers.engine",), "drivers do not load each other"),
    ("rivetkit.drivers.engine", ("rivetkit.drivers.embedded",), "drivers do not load each other"),
]

PROBE = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"


def module_name(path: Path) -> str:
    """The dotted name of a module file (or package ``__init__``) under ``rivetkit/``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> list[str]:
    """Every importable module of the package: the ``.py`` files and the built twins."""
    names = {module_name(p) for p in PACKAGE.rglob("*.py")}
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    names |= {
        module_name(p.with_name(p.name.split(".")[0] + ".py")) for p in PACKAGE.rglob("*" + suffix)
    }
    return sorted(names - NOT_IMPORTABLE)


MODULES = all_modules()


def loaded_by(name: str) -> list[str] | str:
    """``sys.modules`` after importing ``name`` alone, or the error output if it failed."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, name],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    if result.returncode != 0:
        return result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.fixture(scope="module")
def imports() -> dict[str, list[str] | str]:
    """What each module loads, imported alone, two interpreters at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(MODULES, pool.map(loaded_by, MODULES), strict=True))


def in_layer(module: str, prefix: str) -> bool:
    """True when ``module`` is ``prefix`` or lies under it."""
    return module == prefix or module.startswith(prefix + ".")


def test_every_module_is_found() -> None:
    for expected in ("rivetkit", "rivetkit.client", "rivetkit.runtime", "rivetkit.protocol.bare"):
        assert expected in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_alone_and_keeps_its_layer(
    name: str, imports: dict[str, list[str] | str]
) -> None:
    loaded = imports[name]
    assert not isinstance(loaded, str), f"`import {name}` fails alone:\n{loaded}"
    for prefix, forbidden, rule in RULES:
        if not in_layer(name, prefix):
            continue
        wrong = sorted(m for m in loaded if any(in_layer(m, f) for f in forbidden))
        assert not wrong, f"{rule}: `import {name}` loads {wrong}"


@pytest.mark.parametrize("name", ["rivetkit.client", "rivetkit.protocol.bare"])
def test_top_level_package_is_lazy(name: str, imports: dict[str, list[str] | str]) -> None:
    """``rivetkit/__init__.py`` does not drag the actor API, dispatch or the runtime along."""
    loaded = imports[name]
    assert not isinstance(loaded, str), loaded
    heavy = ("rivetkit.actor", "rivetkit.registry", "rivetkit.dispatch", "rivetkit.runtime")
    assert not [m for m in loaded if any(in_layer(m, h) for h in heavy)]


def test_top_level_exports_still_work() -> None:
    code = (
        "import rivetkit, rivetkit.actor, rivetkit.registry\n"
        "from rivetkit import *\n"
        "from rivetkit import actor, setup, ActorDefinition, UserError, Request\n"
        "assert callable(actor) and rivetkit.actor is actor, rivetkit.actor\n"
        "assert isinstance(actor('x'), ActorDefinition)\n"
        "assert set(rivetkit.__all__) <= set(dir(rivetkit))\n"
        "assert all(hasattr(rivetkit, n) for n in rivetkit.__all__)\n"
        "assert isinstance(rivetkit.SPEEDUPS, bool)\n"
        "from rivetkit import _twins\n"
        "print(rivetkit.SPEEDUPS, ' '.join(sorted(_twins.compiled)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    speedups, *selected = result.stdout.split()
    if os.environ.get("RIVETKIT_PURE") == "1":
        assert speedups == "False"
    # SPEEDUPS looks at every twin: each compiled module (one per .pyx) was selected.
    assert selected == sorted(p.stem for p in (PACKAGE / "_speedups").glob("*.pyx"))


def test_unknown_top_level_name() -> None:
    import rivetkit

    with pytest.raises(AttributeError, match="no_such_name"):
        rivetkit.no_such_name  # noqa: B018

"""The configuration reference lists every environment variable the package reads and every
actor option.

A new ``os.environ``/``os.getenv`` lookup of a ``RIVET*`` name (or the few others the
runtime honours), or a new ``ActorOptions`` field, that docs/reference/configuration.md does
not mention fails here, so the reference cannot fall behind the code.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import rivetkit
from rivetkit.options import ActorOptions

ROOT = Path(__file__).resolve().parent.parent
#: The package under test (the checkout's, or an installed one under make test-installed).
PACKAGE = Path(rivetkit.__file__).resolve().parent
PAGE = ROOT / "docs" / "reference" / "configuration.md"

pytestmark = pytest.mark.skipif(
    not PAGE.is_file(), reason="docs/ is not next to the tests (installed-package run)"
)

# A string literal that names an environment variable of ours: RIVET_*, RIVETKIT_*,
# _RIVET_*, or the RIVET__ prefix the engine spawner filters out.
_NAME = re.compile(r"[\"'](_?RIVET(?:KIT)?_[A-Z0-9_]*)[\"']")
# Variables of others that the runtime reads on purpose.
_OTHERS = ("NODE_ENV",)


def _names_in_code() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names.update(_NAME.findall(text))
        for other in _OTHERS:
            if f'environ.get("{other}"' in text or f'getenv("{other}"' in text:
                names.add(other)
    return names


def test_the_code_reads_the_variables_we_know() -> None:
    names = _names_in_code()
    # A sanity floor: the scan must find the well-known ones, or it scans nothing.
    assert {"RIVET_ENDPOINT", "RIVETKIT_PURE", "RIVET_EXPOSE_ERRORS"} <= names


@pytest.mark.parametrize("name", sorted(_names_in_code()))
def test_every_environment_variable_is_documented(name: str) -> None:
    page = PAGE.read_text(encoding="utf-8")
    shown = name + "*" if name.endswith("__") else name
    assert f"`{shown}`" in page, f"{name} is read by rivetkit but not listed in {PAGE.name}"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ActorOptions)])
def test_every_actor_option_is_documented_with_its_default(field: str) -> None:
    page = PAGE.read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("|") and f"`{field}`" in line]
    assert rows, f"ActorOptions.{field} is not in the actor options table of {PAGE.name}"
    default = getattr(ActorOptions(), field)
    shown = f"`{default!r}`"
    assert any(shown in row for row in rows), f"ActorOptions.{field}: default {shown} not shown"

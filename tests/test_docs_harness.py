"""The runner of the documentation's examples (``docs/conftest.py``) keeps its promises.

Pages written for the test run in a temporary folder with a copy of the runner, by a real
pytest in a subprocess: blocks share a module namespace per page, run in page order; a block
with top-level ``await`` runs on the page's loop, one without may call ``asyncio.run``;
invisible blocks run and skipped ones do not; ``docs_serve`` serves a registry that the async
and the blocking client reach through ``RIVET_ENDPOINT``, which is restored after the page;
a failing block is reported with its page and line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "docs" / "conftest.py"

pytestmark = pytest.mark.skipif(
    not RUNNER.exists(), reason="docs/conftest.py is not here (an installed-package run)"
)

FENCE = "`" * 3

SERVED = f"""
# A served page

{FENCE}python
import asyncio
import dataclasses
import os
from typing import Any, TypedDict

from rivetkit import actor, setup


class Shape(TypedDict):
    sides: int


@dataclasses.dataclass
class Point:
    x: int


assert __name__.startswith("docs_page_"), __name__
assert dataclasses.asdict(Point(1)) == {{"x": 1}}
counter = actor("counter", state={{"count": 0}})


@counter.action
def increment(c: Any, amount: int) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


registry = setup(use=[counter])
order = ["first"]
{FENCE}

<!-- invisible-code-block: python
url = await docs_serve(registry)
order.append("invisible")
-->

<!-- skip: next -->
{FENCE}python
raise AssertionError("a skipped block ran")
{FENCE}

{FENCE}python
from rivetkit.client import Client

assert os.environ["RIVET_ENDPOINT"] == url
async with Client() as client:
    assert await client.counter.get_or_create("k").increment(2) == 2
order.append("await")
{FENCE}

{FENCE}python
from rivetkit.client import SyncClient


async def main() -> int:
    async with Client() as client:
        return int(await client.counter.get_or_create("k").increment(3))


assert asyncio.run(main()) == 5  # no loop is running in a block without top-level await
with SyncClient() as sync_client:
    assert sync_client.counter.get_or_create("k").increment(1) == 6
order.append("plain")
{FENCE}

{FENCE}python
assert order == ["first", "invisible", "await", "plain"], order
{FENCE}
"""

AFTER = f"""
# The page after

{FENCE}python
import os

assert os.environ.get("RIVET_ENDPOINT") == "http://before.invalid", os.environ.get(
    "RIVET_ENDPOINT"
)
assert "order" not in globals()  # a namespace of its own
{FENCE}
"""

FAILING = f"""
# A failing page

Some prose.

{FENCE}python
x = 1
{FENCE}

{FENCE}python
y = x + 1
raise ValueError("broken example")
{FENCE}
"""


def run_pages(tmp_path: Path, pages: dict[str, str]) -> subprocess.CompletedProcess[str]:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(RUNNER, docs / "conftest.py")
    (docs / "__init__.py").write_text("")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    for name, text in pages.items():
        (docs / name).write_text(textwrap.dedent(text))
    env = dict(os.environ, RIVET_ENDPOINT="http://before.invalid")
    env.pop("RIVET_ENGINE", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "docs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pages_run_in_order_with_a_served_registry(tmp_path: Path) -> None:
    result = run_pages(tmp_path, {"a_served.md": SERVED, "b_after.md": AFTER})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Sybil counts the skip directive as an example of its own; the skipped block never ran.
    assert "8 passed" in output, output


def test_a_failing_block_names_its_page_and_line(tmp_path: Path) -> None:
    result = run_pages(tmp_path, {"failing.md": FAILING})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed, 1 passed" in output, output
    line = FAILING.splitlines().index('raise ValueError("broken example")') + 1
    assert f"failing.md:{line}: ValueError" in output, output

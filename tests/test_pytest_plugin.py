"""The pytest plugin (entry point ``pytest11``): the ``rivet_test`` fixture, tried in a pytest
run of its own on a small test file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_TESTS = """
import pytest
from rivetkit import actor, setup

counter = actor("counter", state={"count": 0})


@counter.action
def increment(c, amount: int = 1) -> int:
    c.state["count"] += amount
    return c.state["count"]


registry = setup(use=[counter])


@pytest.mark.asyncio
async def test_with_the_fixture(rivet_test, tmp_path):
    async with rivet_test(registry) as t:
        assert await t.counter.get_or_create(["k"]).increment(5) == 5
    assert (tmp_path / "rivetkit-1").is_dir()  # the store was kept under tmp_path
    async with rivet_test(registry, tmp_path / "rivetkit-1") as t:  # and it survives
        assert await t.counter.get_or_create(["k"]).increment(1) == 6


def test_without_it():
    assert True
"""

INI = """[pytest]
asyncio_default_fixture_loop_scope = function
"""


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    (tmp_path / "pytest.ini").write_text(INI)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_fixture_works_in_a_user_test_run(tmp_path: Path) -> None:
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_plugin_can_be_disabled(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "-p", "no:rivetkit")
    assert result.returncode == 1
    assert "fixture 'rivet_test' not found" in result.stdout
    assert "1 passed" in result.stdout  # a test that does not use it is unaffected

"""Typed actors and typed client calls (issue 16, point 4).

At run time: ``ActorContext[S, V, CS]`` and ``Connection[CS]`` subscript (annotations that
pydantic or ``typing.get_type_hints`` evaluates), an action's context annotation is never
evaluated by validation (it may name something imported for type checkers only), and the
context object is the same untyped one whatever the annotation says.

Under ``mypy --strict`` (one run of the venv's mypy over the files of ``tests/typing_cases/``
plus the Python blocks of ``docs/getting-started.md``, from a temporary directory, so the
package is found through its install like in a user's project): the good files pass, and each
line marked ``# E: <code>`` in a bad file is reported with that error code (or one of
``a|b``), and no other line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pytest

from rivetkit import ActorContext, Connection, actor, setup
from rivetkit.errors import RivetError
from rivetkit.testing import setup_test

if TYPE_CHECKING:  # a name that exists for type checkers only
    from decimal import Decimal as NotAtRunTime

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "typing_cases"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
EXPECTED = re.compile(r"#\s*E:\s*([a-z|-]+)")


class Counter(TypedDict):
    count: int


class Session(TypedDict):
    user: str


# -- at run time -----------------------------------------------------------------------------


def test_context_and_connection_subscript_at_run_time() -> None:
    for alias in (ActorContext[Counter], ActorContext[Counter, dict[str, int], Session]):
        assert typing.get_origin(alias) is ActorContext
    assert typing.get_origin(Connection[Session]) is Connection

    def increment(c: ActorContext[Counter], amount: int) -> int:
        return amount

    hints = typing.get_type_hints(increment)
    assert typing.get_args(hints["c"])[0] is Counter


def typed_registry() -> Any:
    counter = actor("counter", state={"count": 0})

    @counter.action
    def increment(c: ActorContext[Counter], amount: int) -> int:
        c.state["count"] += amount
        return c.state["count"]

    # The context's annotation names something that exists for type checkers only.
    @counter.action
    def whoami(c: ActorContext[NotAtRunTime], suffix: str) -> str:
        return type(c).__name__ + suffix

    @counter.on_connect
    def on_connect(c: ActorContext[Counter, Any, Session], conn: Connection[Session]) -> None:
        conn.state = {"user": "ada"}

    return setup(use=[counter])


@pytest.mark.asyncio
async def test_typed_actions_validate_their_arguments_not_their_context() -> None:
    async with setup_test(typed_registry()) as client:
        counter = client.counter.get_or_create(["typed"])
        assert await counter.increment(2) == 2
        assert await counter.increment("3") == 5  # validated and converted, as before
        with pytest.raises(RivetError) as info:
            await counter.increment("x")
        assert (info.value.code, info.value.metadata["field"]) == ("validation_error", "amount")
        assert await counter.whoami("!") == "ActorContext!"


def test_typed_case_actor_is_a_valid_definition() -> None:
    """The typed actor that mypy checks also defines at run time (hook arities included)."""
    spec = importlib.util.spec_from_file_location("typing_good_actor", CASES / "good_actor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [d.name for d in module.registry] == ["counter"]


# -- under mypy --strict ---------------------------------------------------------------------


def python_blocks(markdown: str) -> str:
    """The visible ```python fences of a page, in order, as one module."""
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", markdown, flags=re.M | re.S)
    return "\n\n".join(blocks)


def expected_errors(path: Path) -> dict[int, set[str]]:
    """``{line: codes}`` for each line of ``path`` marked ``# E: <code>[|<code>...]``."""
    marks: dict[int, set[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        found = EXPECTED.search(line)
        if found:
            marks[number] = set(found.group(1).split("|"))
    return marks


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """One mypy --strict run over every case; ``{file name: [error lines]}``."""
    work = tmp_path_factory.mktemp("typing")
    for case in sorted(CASES.glob("*.py")):
        if case.name != "__init__.py":
            shutil.copy(case, work / case.name)
    if GETTING_STARTED.exists():
        source = python_blocks(GETTING_STARTED.read_text())
        (work / "getting_started.py").write_text(source)
        if source.strip():
            (work / "getting_started_wrong.py").write_text(source + WRONG_CALL)
    files = sorted(p.name for p in work.glob("*.py"))
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        pytest.skip("mypy is not installed in this environment (the test extra has it)")
    command = [str(mypy), "--strict", "--no-incremental", "--show-error-codes", "--no-pretty"]
    result = subprocess.run(
        [*command, *files], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    errors: dict[str, list[str]] = {name: [] for name in files}
    for line in result.stdout.splitlines():
        name = line.split(":", 1)[0]
        if name in errors and ": error:" in line:
            errors[name].append(line)
    return work, errors


def reported(lines: list[str]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for line in lines:
        found = re.match(r"[^:]+:(\d+):(?:\d+:)? error: .*\[([a-z-]+)\]$", line)
        assert found, line
        out.setdefault(int(found.group(1)), set()).add(found.group(2))
    return out


# Appended to the Getting started page's code: one call with a wrong argument type.
WRONG_CALL = """

async def wrong_call() -> None:
    async with Client() as client:
        await client.counter.get_or_create("my-counter").call(increment, "five")
"""

GOOD = ["good_actor.py", "good_client.py"]
BAD = ["bad_calls.py", "bad_state.py"]


@pytest.mark.parametrize("name", GOOD)
def test_typed_file_passes_mypy_strict(
    name: str, mypy_run: tuple[Path, dict[str, list[str]]]
) -> None:
    assert mypy_run[1][name] == []


@pytest.mark.parametrize("name", BAD)
def test_each_mistake_is_a_mypy_error_on_its_line(
    name: str, mypy_run: tuple[Path, dict[str, list[str]]]
) -> None:
    work, errors = mypy_run
    expected = expected_errors(work / name)
    assert expected, f"{name} marks no expected error"
    got = reported(errors[name])
    assert set(got) == set(expected), "\n".join(errors[name])
    for line, codes in expected.items():
        assert codes & got[line], f"line {line}: expected one of {codes}, got {got[line]}"


def test_getting_started_examples_pass_mypy_strict(
    mypy_run: tuple[Path, dict[str, list[str]]],
) -> None:
    work, errors = mypy_run
    if "getting_started.py" not in errors:
        pytest.skip("docs/getting-started.md is missing")
    source = (work / "getting_started.py").read_text()
    if not source.strip():
        pytest.skip("docs/getting-started.md has no Python example yet")
    assert errors["getting_started.py"] == [], source


def test_getting_started_with_a_wrong_argument_fails_mypy_strict(
    mypy_run: tuple[Path, dict[str, list[str]]],
) -> None:
    work, errors = mypy_run
    if "getting_started_wrong.py" not in errors:
        pytest.skip("docs/getting-started.md has no Python example yet")
    last = len((work / "getting_started_wrong.py").read_text().splitlines())
    got = reported(errors["getting_started_wrong.py"])
    assert set(got) == {last}, errors["getting_started_wrong.py"]
    assert got[last] & {"arg-type", "call-overload"}, errors["getting_started_wrong.py"]

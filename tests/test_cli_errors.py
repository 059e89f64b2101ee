"""``rivetkit serve`` targets and errors: ``module:attr`` (uvicorn's habit) is served, and every
failure is one line saying how to fix it, with no traceback unless asked for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_server_cli import free_port, wait_healthy

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parent.parent

APP = """
from rivetkit import actor, setup

counter = actor("counter", state={"n": 0})


@counter.action
def add(c, amount: int) -> int:
    c.state["n"] += amount
    return c.state["n"]


my_registry = setup(use=[counter])
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with ``pkg/app.py`` (registry ``my_registry``) and a few broken modules."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "app.py").write_text(APP)
    (tmp_path / "helper.py").write_text("def boom():\n    return 1 / 0\n\n\nboom()\n")
    (tmp_path / "broken.py").write_text("import helper\n")
    (tmp_path / "syntax.py").write_text("x = (\n")
    (tmp_path / "plain.py").write_text("x = 1\n")
    (tmp_path / "main.py").write_text(APP.replace("my_registry", "registry"))
    return tmp_path


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``rivetkit serve ARGS`` run to completion: ``(status, stderr)``."""
    result = subprocess.run(
        [sys.executable, "-m", "rivetkit", "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    return result.returncode, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("rivetkit: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    "target", ["pkg.app:my_registry", "pkg/app.py:my_registry", "main", "main:registry"]
)
def test_module_and_file_targets_are_served(project: Path, target: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rivetkit", "serve", target, "--port", str(port)],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_healthy(port, proc)  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{port}/gateway/counter/action/add?rvt-method=getOrCreate"
        assert httpx.post(url, json={"args": [2]}).json() == {"output": 2}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (["nope.py"], 2, "no such file: nope.py"),
        (["pkg.nothing:registry"], 2, "no module named 'pkg.nothing'"),
        (
            ["pkg.app"],
            2,
            "pkg.app has no `registry`; it defines 'my_registry': "
            "rivetkit serve pkg.app:my_registry",
        ),
        (
            ["pkg/app.py"],
            2,
            "pkg/app.py has no `registry`; it defines 'my_registry': "
            "rivetkit serve pkg/app.py:my_registry",
        ),
        (["plain.py"], 2, "plain.py has no `registry`; make one with"),
        (["pkg/app.py:counter"], 2, "is of type ActorDefinition, not a registry"),
        (
            ["broken.py"],
            1,
            "importing broken.py failed at helper.py:2: ZeroDivisionError: "
            "division by zero (full traceback: RIVETKIT_TRACEBACK=1)",
        ),
        (["syntax.py"], 1, "importing syntax.py failed at syntax.py:1: SyntaxError:"),
        (["pkg.app:my_registry", "--port", "abc"], 2, "argument --port: invalid int value"),
        (["pkg.app:my_registry", "--port", "70000"], 2, "invalid --port 70000"),
        (["pkg.app:my_registry", "--log-format", "xml"], 2, "argument --log-format"),
        (
            ["pkg.app:my_registry", "--reload", "--reload-dir", "nowhere"],
            2,
            "--reload-dir nowhere: no such folder",
        ),
    ],
)
def test_errors_are_one_line(project: Path, args: list[str], status: int, expected: str) -> None:
    code, stderr = run(project, *args)
    assert code == status, stderr
    assert expected in one_error_line(stderr)


def test_traceback_on_request(project: Path) -> None:
    for env, args in (({"RIVETKIT_TRACEBACK": "1"}, []), ({}, ["--log-level", "debug"])):
        code, stderr = run(project, "broken.py", *args, env=env)
        assert code == 1
        assert "Traceback (most recent call last)" in stderr
        assert (
            stderr.rstrip()
            .splitlines()[-1]
            .startswith("rivetkit: error: importing broken.py failed at helper.py:2")
        )


def test_port_in_use(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for extra in ([], ["--reload"]):
            code, stderr = run(project, "pkg.app:my_registry", "--port", str(port), *extra)
            assert code == 1
            line = one_error_line(stderr)
            assert f"cannot listen on 127.0.0.1:{port}" in line
            assert "choose --port (0: any free port)" in line


def test_data_dir_locked(project: Path) -> None:
    port = free_port()
    data = project / "data"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rivetkit",
            "serve",
            "pkg.app:my_registry",
            "--port",
            str(port),
            "--data",
            str(data),
        ],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_healthy(port, first)  # type: ignore[arg-type]
        code, stderr = run(
            project,
            "pkg.app:my_registry",
            "--port",
            "0",
            "--data",
            str(data),
            "--log-level",
            "error",
        )
        assert code == 1
        assert "is in use by another rivetkit process" in one_error_line(stderr)
    finally:
        first.terminate()
        first.wait(30)


def test_inspect_errors_are_one_line(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rivetkit", "inspect"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "rivetkit inspect token ACTOR_ID" in one_error_line(result.stderr)
    result = subprocess.run(
        [sys.executable, "-m", "rivetkit", "inspect", "token", "nope", "--data", "missing"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert "check ACTOR_ID and --data" in one_error_line(result.stderr)

"""``rivetkit serve --reload`` with real processes: a code change restarts the server on the
same port with the actors' state saved; a syntax error leaves the running server alone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from test_server_cli import free_port, wait_healthy

from rivetkit.reload import child_argv, syntax_errors

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parent.parent

APP = """
from rivetkit import actor, setup

counter = actor("counter", state={{"n": 0}})


@counter.action
def add(c, amount: int) -> int:
    c.state["n"] += amount
    return c.state["n"]


@counter.action
def version(c) -> int:
    return {version}


registry = setup(use=[counter])
"""


def call(port: int, action: str, *args: int) -> object:
    url = (
        f"http://127.0.0.1:{port}/gateway/counter/action/{action}"
        "?rvt-method=getOrCreate&rvt-key=reload"
    )
    response = httpx.post(url, json={"args": list(args)}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["output"]


def poll(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


@pytest.fixture
def reloading(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path, Path]]:
    app = tmp_path / "app.py"
    app.write_text(APP.format(version=1))
    log = tmp_path / "server.log"
    port = free_port()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rivetkit",
                "serve",
                "app.py",
                "--reload",
                "--port",
                str(port),
                "--data",
                str(tmp_path / "data"),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
    try:
        yield proc, port, app, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:  # the children too, should any be left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def test_reload_keeps_state_and_survives_a_syntax_error(
    reloading: tuple[subprocess.Popen[bytes], int, Path, Path],
) -> None:
    proc, port, app, log = reloading
    wait_healthy(port, proc)  # type: ignore[arg-type]
    assert call(port, "add", 5) == 5
    assert call(port, "version") == 1

    app.write_text(APP.format(version=2))
    poll(lambda: call(port, "version") == 2)
    assert call(port, "add", 0) == 5  # saved before the restart, loaded after it

    app.write_text(APP.format(version=2) + "\ndef broken(:\n")
    poll(lambda: "SyntaxError" in log.read_text())
    error_lines = [line for line in log.read_text().splitlines() if "SyntaxError" in line]
    assert len(error_lines) == 1
    assert "app.py:" in error_lines[0] and "keeps running the previous code" in error_lines[0]
    assert call(port, "version") == 2  # the running server was left alone
    assert proc.poll() is None

    app.write_text(APP.format(version=3))
    poll(lambda: call(port, "version") == 3)
    assert call(port, "add", 1) == 6

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("restarting the server") == 2
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)


def test_reload_waits_after_an_import_error(
    reloading: tuple[subprocess.Popen[bytes], int, Path, Path],
) -> None:
    proc, port, app, log = reloading
    wait_healthy(port, proc)  # type: ignore[arg-type]
    app.write_text(APP.format(version="1 // 0") + "\nundefined_name\n")
    poll(lambda: "waiting for a change" in log.read_text())
    assert "NameError" in log.read_text() and proc.poll() is None
    app.write_text(APP.format(version=4))
    poll(lambda: call(port, "version") == 4)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_child_argv_drops_the_reload_options() -> None:
    argv = ["serve", "app.py", "--reload", "--reload-dir", "src", "--reload-dir=lib", "--port", "1"]
    assert child_argv(argv, 7)[1:] == [
        "-m",
        "rivetkit",
        "serve",
        "app.py",
        "--port",
        "1",
        "--fd",
        "7",
    ]


def test_syntax_errors(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("x = 1\n")
    bad.write_text("x = 1\ny = (\n")
    (errors,) = syntax_errors([good, bad, tmp_path / "gone.py"])
    assert errors.endswith("bad.py:2: SyntaxError: '(' was never closed")


def test_a_connection_comes_back_after_a_reload(
    reloading: tuple[subprocess.Popen[bytes], int, Path, Path],
) -> None:
    import asyncio

    from rivetkit.client import Client

    proc, port, app, _ = reloading
    wait_healthy(port, proc)  # type: ignore[arg-type]

    async def scenario() -> None:
        async with Client(f"http://127.0.0.1:{port}") as client:
            handle = client.counter.get_or_create("reload")
            async with handle.connect() as conn:
                assert await conn.add(1) == 1
                app.write_text(APP.format(version=5))
                deadline = time.monotonic() + 30
                while True:  # the same connection object, reopened by the client
                    try:
                        if await asyncio.wait_for(conn.version(), 5) == 5:
                            break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                    await asyncio.sleep(0.1)
                assert await conn.add(1) == 2

    asyncio.run(scenario())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0

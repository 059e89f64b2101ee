"""The ``rivetkit`` command: --version, serve, the data directory lock, graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "app.py"
INCREMENT = (
    "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate"
    "&rvt-runner=default&rvt-key=cli&rvt-crash-policy=sleep"
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rivetkit(
    *args: str, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.Popen[str]:
    """``python -m rivetkit ARGS`` from the checkout, output piped; ``env`` adds variables."""
    env = {**os.environ, **(env or {})}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "rivetkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        **kwargs,
    )


def wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not become healthy")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    port = free_port()
    data = tmp_path / "data"
    proc = rivetkit("serve", str(APP), "--port", str(port), "--data", str(data))
    try:
        wait_healthy(port, proc)
        yield proc, port, data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rivetkit", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    assert result.stdout.startswith("rivetkit ")
    assert "speedups: on" in result.stdout or "speedups: off" in result.stdout
    pure = subprocess.run(
        [sys.executable, "-m", "rivetkit", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "RIVETKIT_PURE": "1", "RIVETKIT_REQUIRE_SPEEDUPS": ""},
    )
    assert "speedups: off" in pure.stdout


def test_usage_errors(tmp_path: Path) -> None:
    # An engine that does not answer: one clear line, status 1 (tests/test_engine_cli.py
    # covers engine mode against the real engine).
    engine = rivetkit("serve", str(APP), "--engine", f"http://127.0.0.1:{free_port()}")
    _, err = engine.communicate(timeout=30)
    assert engine.returncode == 1, err
    assert "rivetkit: error: the engine at" in err and "did not answer" in err
    missing = rivetkit("serve", str(tmp_path / "nope.py"))
    _, err = missing.communicate(timeout=30)
    assert missing.returncode == 2 and "no such file" in err
    no_registry = tmp_path / "empty.py"
    no_registry.write_text("x = 1\n")
    bad = rivetkit("serve", f"{no_registry}:x")
    _, err = bad.communicate(timeout=30)
    assert bad.returncode == 2 and "not a registry" in err
    assert "Traceback" not in err


def test_serve_lock_and_graceful_stop(
    server: tuple[subprocess.Popen[str], int, Path],
) -> None:
    proc, port, data = server
    base = f"http://127.0.0.1:{port}"
    assert httpx.post(base + INCREMENT, json={"args": [5]}).json() == {"output": 5}
    assert httpx.post(base + INCREMENT, json={"args": [2]}).json() == {"output": 7}
    # a second server on the same data directory refuses, in one readable line
    second = rivetkit("serve", str(APP), "--port", str(free_port()), "--data", str(data))
    _, err = second.communicate(timeout=30)
    assert second.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("rivetkit: error: ")
    assert "in use by another rivetkit process" in lines[-1]
    assert "Traceback" not in err
    # SIGTERM: graceful, state flushed (the save throttle has not run yet)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert "Traceback" not in err
    # log lines: time, level, logger, message
    assert any(" INFO    rivetkit.cli: serving " in line for line in err.splitlines())
    # a new server on the same data sees the saved count
    port2 = free_port()
    again = rivetkit("serve", str(APP), "--port", str(port2), "--data", str(data))
    try:
        wait_healthy(port2, again)
        url = f"http://127.0.0.1:{port2}" + INCREMENT.replace("increment", "getCount")
        assert httpx.post(url, json={"args": []}).json() == {"output": 7}
        again.send_signal(signal.SIGINT)
        again.communicate(timeout=30)
        assert again.returncode == 0
    finally:
        if again.poll() is None:
            again.kill()
            again.communicate()


def test_app_serves_every_example(server: tuple[subprocess.Popen[str], int, Path]) -> None:
    """``examples/app.py`` holds every example of DESIGN.md §4, notes (``c.db``) included."""
    _, port, _ = server
    base = f"http://127.0.0.1:{port}"
    query = "?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=app"

    def call(actor: str, action: str, *args: object) -> object:
        reply = httpx.post(f"{base}/gateway/{actor}/action/{action}{query}", json={"args": args})
        assert reply.status_code == 200, reply.text
        return reply.json()["output"]

    first = call("notes", "add", "milk")
    second = call("notes", "add", "bread")
    assert call("notes", "list") == [{"id": first, "text": "milk"}, {"id": second, "text": "bread"}]
    assert call("counter", "increment", 1) == 1
    assert call("worker", "processed") == 0
    assert call("timer", "fired") == []


def test_test_token_override_warns_at_start(tmp_path: Path) -> None:
    """``_RIVET_TEST_INSPECTOR_TOKEN`` is for tests only: ``rivetkit serve`` says so at start,
    before any inspector request."""
    port = free_port()
    proc = rivetkit(
        "serve",
        str(APP),
        "--port",
        str(port),
        "--data",
        str(tmp_path / "data"),
        env={"_RIVET_TEST_INSPECTOR_TOKEN": "test-token"},
    )
    try:
        wait_healthy(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    warning = [line for line in err.splitlines() if "_RIVET_TEST_INSPECTOR_TOKEN" in line]
    assert warning and "never set it in production" in warning[0]
    assert "WARNING" in warning[0]

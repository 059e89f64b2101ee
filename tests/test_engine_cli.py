"""``rivetkit serve --engine`` as a process, driven by the official TypeScript client.

``rivetkit serve examples/app.py --engine URL --pool default --port 0`` joins the session's
real engine (tests/engine_fixtures.py); ``tests/interop/interop.mjs`` (npm rivetkit@2.3.19)
then talks to the actors through the engine's gateway, in every encoding; SIGTERM drains the
envoy and exits 0. ``--engine-spawn`` is checked when the engine's fixed ports are free.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_fixtures import INTEROP, ROOT

from rivetkit.client import SyncClient
from rivetkit.drivers.engine import LocalEngine
from rivetkit.drivers.engine.spawn import port_free

APP = ROOT / "examples" / "app.py"


class Serve:
    """A ``rivetkit serve`` child whose output is collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rivetkit", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no line matching {pattern!r}:\n{self.output}")
            time.sleep(0.02)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self._reader.join(5)
        return status


def _get(url: str) -> tuple[int, str]:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:  # logged just before uvicorn listens
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture
def served(rivet_engine: LocalEngine) -> Iterator[tuple[Serve, str]]:
    serve = Serve(str(APP), "--engine", rivet_engine.endpoint, "--pool", "default", "--port", "0")
    try:
        match = serve.wait_for(r"health and metrics on (http://127\.0\.0\.1:\d+)")
        yield serve, match.group(1)
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()


def test_serve_engine_with_the_official_client(
    served: tuple[Serve, str], rivet_engine: LocalEngine
) -> None:
    serve, local = served
    assert _get(f"{local}/health") == (200, "ok")
    status, metrics = _get(f"{local}/metrics")
    assert status == 200 and "rivetkit_envoy_connected 1" in metrics
    assert _get(f"{local}/gateway/x/action/y")[0] == 404
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "rivetkit").is_dir():
        message = "the interop client needs node and `npm install` in tests/interop"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for encoding in ("bare", "json", "cbor"):
        result = subprocess.run(
            [node, "interop.mjs", rivet_engine.endpoint, encoding],
            cwd=INTEROP,
            capture_output=True,
            text=True,
            timeout=180,
        )
        summary = [line for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
        assert result.returncode == 0, "\n".join(
            [*summary, result.stderr[-2000:], serve.output[-3000:]]
        )
        assert result.stdout.rstrip().endswith(" 0 failed")
    _, metrics = _get(f"{local}/metrics")
    assert re.search(r"rivetkit_tunnel_http_requests_total [1-9]", metrics), metrics
    assert serve.stop() == 0, serve.output
    assert "envoy stopped" in serve.output


def test_serve_engine_spawn(tmp_path: Path) -> None:
    from engine_fixtures import engine_binary

    binary = engine_binary()
    if not all(port_free("127.0.0.1", port) for port in (6420, 6421, 6430)):
        pytest.skip("the engine's fixed ports 6420, 6421 and 6430 are in use")
    env_binary = os.environ.get("RIVET_ENGINE_BINARY")
    os.environ["RIVET_ENGINE_BINARY"] = str(binary)
    try:
        serve = Serve(str(APP), "--engine-spawn", "--data", str(tmp_path / "data"), "--port", "0")
    finally:
        if env_binary is None:
            del os.environ["RIVET_ENGINE_BINARY"]
        else:
            os.environ["RIVET_ENGINE_BINARY"] = env_binary
    try:
        match = serve.wait_for(r"health and metrics on (http://127\.0\.0\.1:\d+)")
        assert _get(f"{match.group(1)}/health") == (200, "ok")
        # Clients keep their default endpoint, the engine on 127.0.0.1:6420.
        with SyncClient("http://127.0.0.1:6420", encoding="json") as client:
            assert client.counter.get_or_create(["spawned"]).increment(3) == 3
        assert (tmp_path / "data" / "engine" / "config.json").is_file()
    finally:
        status = serve.stop()
    assert status == 0, serve.output
    assert port_free("127.0.0.1", 6420), "the spawned engine is still running"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--namespace", "no-such-namespace"], "namespace 'no-such-namespace' does not exist"),
        (["--engine", "http://127.0.0.1:9"], "the engine at http://127.0.0.1:9 did not answer"),
    ],
    ids=["unknown-namespace", "unreachable"],
)
def test_serve_engine_refused_at_startup(
    rivet_engine: LocalEngine, args: list[str], message: str
) -> None:
    """A refusal ends the process at once with a readable error, not a retry loop."""
    engine = ["--engine", rivet_engine.endpoint] if "--engine" not in args else []
    serve = Serve(str(APP), *engine, *args, "--pool", "default", "--port", "0")
    try:
        status = serve.process.wait(60)
    except subprocess.TimeoutExpired:
        serve.process.kill()
        pytest.fail(f"still running after a refusal:\n{serve.output}")
    serve._reader.join(5)
    assert status not in (0, None), serve.output
    assert message in serve.output, serve.output
    assert "Traceback" not in serve.output, serve.output

"""Helpers of the tests that run ``rivetkit serve examples/app.py`` (embedded, or as an envoy
of the session's engine) and drive it with a script of ``tests/interop`` (the official
TypeScript client, npm rivetkit@2.3.19)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_fixtures import INTEROP, ROOT, free_port, new_pool
from test_engine_cli import Serve, _get

from rivetkit.drivers.engine import LocalEngine

APP = ROOT / "examples" / "app.py"

__all__ = ["APP", "node", "run_script", "serve_embedded", "serve_on_engine"]


def node() -> str:
    """The ``node`` binary; the test skips without it or ``npm install`` (fails under CI)."""
    found = shutil.which("node")
    if found is None or not (INTEROP / "node_modules" / "rivetkit").is_dir():
        message = "the interop client needs node and `npm install` in tests/interop"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_script(script: str, endpoint: str, *args: str, serve: Serve, passed: int = 12) -> None:
    """Run ``tests/interop/<script>`` against ``endpoint`` in bare, json and cbor; it must end
    with ``<passed> passed, 0 failed`` (its summary and the server's output otherwise)."""
    result = subprocess.run(
        [node(), script, endpoint, *args, "bare", "json", "cbor"],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert result.returncode == 0, "\n".join(
        [*summary, result.stderr[-2000:], serve.output[-3000:]]
    )
    assert result.stdout.rstrip().endswith(f"{passed} passed, 0 failed"), result.stdout


def _killed(serve: Serve) -> None:
    if serve.process.poll() is None:
        serve.process.kill()
        serve.process.wait()


@contextlib.contextmanager
def serve_embedded(data: Path) -> Iterator[tuple[Serve, str]]:
    """``rivetkit serve examples/app.py`` on a free port with its data in ``data``: the
    server and its endpoint."""
    port = free_port()
    serve = Serve(str(APP), "--port", str(port), "--data", str(data))
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert _get(f"{endpoint}/health") == (200, "ok"), serve.output
        yield serve, endpoint
    finally:
        _killed(serve)


@contextlib.contextmanager
def serve_on_engine(engine: LocalEngine, data: Path) -> Iterator[tuple[Serve, str]]:
    """``rivetkit serve examples/app.py`` as an envoy of ``engine`` in a new pool: the server
    and the pool."""
    pool = new_pool()
    serve = Serve(
        str(APP), "--engine", engine.endpoint, "--pool", pool, "--port", "0",
        "--data", str(data),
    )  # fmt: skip
    try:
        serve.wait_for(r"health and metrics on http://127\.0\.0\.1:\d+")
        yield serve, pool
    finally:
        _killed(serve)

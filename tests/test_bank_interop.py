"""The bank example through the official TypeScript client (npm rivetkit@2.3.19).

``tests/interop/bank.mjs`` drives ``bank.transfer`` (which calls the ``account`` actors
through ``c.client()``) in bare, json and cbor against ``rivetkit serve examples/app.py``,
first embedded, then as an envoy of the session's real engine
(``--engine URL --pool P``, the client going through the engine's gateway): the transfer
moves the money, ``user/insufficient_funds`` reaches the TypeScript caller with its metadata,
bad amounts are refused, and the same over a connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_fixtures import INTEROP, ROOT, free_port, new_pool
from test_engine_cli import Serve, _get

from rivetkit.client import SyncClient
from rivetkit.drivers.engine import LocalEngine

APP = ROOT / "examples" / "app.py"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "rivetkit").is_dir():
        message = "the interop client needs node and `npm install` in tests/interop"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node


def _run_bank(endpoint: str, *args: str, serve: Serve) -> None:
    result = subprocess.run(
        [_node(), "bank.mjs", endpoint, *args, "bare", "json", "cbor"],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert result.returncode == 0, "\n".join(
        [*summary, result.stderr[-2000:], serve.output[-3000:]]
    )
    assert result.stdout.rstrip().endswith("12 passed, 0 failed"), result.stdout


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Serve, str]]:
    port = free_port()
    serve = Serve(str(APP), "--port", str(port), "--data", str(tmp_path / "data"))
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert _get(f"{endpoint}/health") == (200, "ok"), serve.output
        yield serve, endpoint
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()


def test_bank_embedded_with_the_official_client(embedded: tuple[Serve, str]) -> None:
    serve, endpoint = embedded
    _run_bank(endpoint, serve=serve)
    assert serve.stop() == 0, serve.output


@pytest.fixture
def on_engine(rivet_engine: LocalEngine, tmp_path: Path) -> Iterator[tuple[Serve, str]]:
    pool = new_pool()
    serve = Serve(
        str(APP), "--engine", rivet_engine.endpoint, "--pool", pool, "--port", "0",
        "--data", str(tmp_path / "data"),
    )  # fmt: skip
    try:
        serve.wait_for(r"health and metrics on http://127\.0\.0\.1:\d+")
        yield serve, pool
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()


def test_bank_on_the_engine_with_the_official_client(
    on_engine: tuple[Serve, str], rivet_engine: LocalEngine
) -> None:
    serve, pool = on_engine
    _run_bank(rivet_engine.endpoint, "--pool", pool, serve=serve)
    # The Python client through the gateway sees the same bank.
    with SyncClient(rivet_engine.endpoint, pool=pool) as client:
        client.account.get_or_create(["py-a"]).deposit(9)
        bank = client.bank.get_or_create(["py"])
        assert bank.transfer("py-a", "py-b", 4) == {"from": 5, "to": 4}
        assert client.account.get(["py-b"]).balance() == 4
    assert serve.stop() == 0, serve.output
    assert "envoy stopped" in serve.output

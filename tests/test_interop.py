"""The official TypeScript client (npm rivetkit@2.3.19) against our server, in every encoding.

``tests/interop/interop.mjs`` drives a real ``rivetkit serve examples/app.py`` on 127.0.0.1:
actions, errors, create/get/getForId, connections, events, chat params and refused connections,
in bare, json and cbor. ``make test`` (and so CI) installs its npm dependencies first.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT / "tests" / "interop"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_node() -> str:
    node = shutil.which("node")
    ready = node is not None and (INTEROP / "node_modules" / "rivetkit").is_dir()
    if not ready:
        message = (
            "the interop client needs node and `npm install` in tests/interop (make test does it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rivetkit", "serve", str(ROOT / "examples" / "app.py"),
         "--host", "127.0.0.1", "--port", str(port), "--data", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the server did not start:\n{output}")
            time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.parametrize("encoding", ["bare", "json", "cbor"])
def test_official_client(server: str, encoding: str) -> None:
    node = _require_node()
    result = subprocess.run(
        [node, "interop.mjs", server, encoding],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=180,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert result.returncode == 0, "\n".join([*summary, result.stderr[-2000:]])
    assert result.stdout.rstrip().endswith(" 0 failed")

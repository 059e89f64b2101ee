"""``rivetkit serve`` logging: --log-level, --log-format json (actor and request fields),
--access-log, request ids carried into the actor's own log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server_cli import free_port, wait_healthy

from rivetkit.logs import (
    JsonFormatter,
    RequestContext,
    configure_logging,
    reset_request_context,
    set_request_context,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parent.parent

APP = """
import logging

from rivetkit import actor, setup

logging.getLogger("myapp").debug("debug line of the app")
logging.getLogger("myapp").info("info line of the app")

counter = actor("counter", state={"n": 0})


@counter.action
def add(c, amount: int) -> int:
    c.state["n"] += amount
    c.log.info("added %d", amount)
    return c.state["n"]


@counter.action
def fail(c) -> None:
    raise ValueError("broken on purpose")


registry = setup(use=[counter])
"""

ADD = "/gateway/counter/action/add?rvt-method=getOrCreate&rvt-key=a,b"


def serve(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], int]:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rivetkit", "serve", "app.py", "--port", str(port), *options],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wait_healthy(port, proc)  # type: ignore[arg-type]
    return proc, port


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc, port = serve(tmp_path, "--log-format", "json", "--access-log")
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_json_lines_with_actor_and_request_fields(
    json_server: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = json_server
    base = f"http://127.0.0.1:{port}"
    response = httpx.post(base + ADD, json={"args": [2]}, headers={"x-rivet-ray-id": "ray-1"})
    assert response.json() == {"output": 2}
    assert httpx.post(base + ADD, json={"args": [3]}).json() == {"output": 5}
    fail = ADD.replace("/add", "/fail")
    assert httpx.post(base + fail, json={"args": []}).status_code == 500
    lines: list[dict[str, Any]] = [json.loads(line) for line in stop(proc).splitlines()]
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line), line
        assert line["ts"].endswith("Z")
    added = [line for line in lines if "added" in line["message"]]
    assert len(added) == 2
    first, second = added
    assert first["actor"] == "counter" and first["key"] == "a/b" and first["actor_id"]
    assert first["request_id"] == "ray-1"
    assert second["request_id"] not in ("ray-1", None)
    access = [line for line in lines if line["logger"] == "rivetkit.access"]
    assert len(access) == 4  # the health check, two adds, the failure
    posts = [line for line in access if line["message"].startswith("POST ")]
    assert posts[0]["message"].startswith("POST /gateway/counter/action/add 200 ")
    assert posts[0]["message"].endswith("request_id=ray-1")
    assert posts[1]["request_id"] == second["request_id"]
    assert posts[2]["message"].startswith("POST /gateway/counter/action/fail 500 ")
    failures = [line for line in lines if "exception" in line]
    assert failures and "ValueError: broken on purpose" in failures[0]["exception"]
    assert failures[0]["actor"] == "counter"
    assert all("rvt-" not in line["message"] for line in access)  # no query strings


def test_log_levels_and_access_log_off_by_default(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    proc, port = serve(tmp_path / "w")
    httpx.post(f"http://127.0.0.1:{port}{ADD}", json={"args": [1]})
    err = stop(proc)
    assert "info line of the app" in err and "debug line of the app" not in err
    assert "rivetkit.access" not in err and "serving" in err
    assert "[counter a/b " in err  # the actor's line, in text

    proc, port = serve(tmp_path / "w", "--log-level", "warning")
    httpx.post(f"http://127.0.0.1:{port}{ADD}", json={"args": [1]})
    err = stop(proc)
    assert "INFO" not in err and "serving" not in err

    proc, _ = serve(tmp_path / "w", "--log-level", "debug")
    err = stop(proc)
    assert "debug line of the app" in err


def test_json_formatter_in_process() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("rivetkit.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    token = set_request_context(RequestContext("r-1", actor_id="id-1"))
    try:
        try:
            raise KeyError("k")
        except KeyError:
            logger.exception("it failed: %s", "x", extra={"actor": "counter"})
    finally:
        reset_request_context(token)
        logger.removeHandler(handler)
    logger.info("outside")
    data = json.loads(stream.getvalue().splitlines()[0])
    assert data["message"] == "it failed: x" and data["level"] == "error"
    assert (data["request_id"], data["actor_id"], data["actor"]) == ("r-1", "id-1", "counter")
    assert data["exception"].startswith("Traceback") and "KeyError: 'k'" in data["exception"]


def test_configure_logging_refuses_unknown_values() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("info", "xml")
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud", "text")


def test_websocket_access_lines_only_with_the_access_log() -> None:
    """uvicorn's per-WebSocket INFO lines are access lines: ``[accepted]`` only with
    --access-log and without its query string (tokens); connection open/closed never."""
    from rivetkit.logs import WebSocketAccessFilter, configure_logging

    accepted = '%s - "WebSocket %s" [accepted]'

    def record(msg: str, args: Any = None, level: int = logging.INFO) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, args, None)

    off, on = WebSocketAccessFilter(), WebSocketAccessFilter(access_log=True)
    path = ("127.0.0.1:5", "/gateway/chat/connect?rvt-method=get&rvt-token=secret")
    assert not off.filter(record(accepted, path))
    line = record(accepted, path)
    assert on.filter(line)
    assert line.getMessage() == '127.0.0.1:5 - "WebSocket /gateway/chat/connect" [accepted]'
    for flt in (off, on):
        assert not flt.filter(record("connection open"))
        assert not flt.filter(record("connection closed"))
        assert flt.filter(record("connection open", level=logging.WARNING))
        assert flt.filter(record("Shutting down"))

    root = logging.getLogger()
    server_log = logging.getLogger("uvicorn.error")
    saved = (root.handlers[:], root.level, server_log.filters[:])
    try:
        for access_log in (False, True, False):
            configure_logging("info", access_log=access_log)
            installed = [f for f in server_log.filters if isinstance(f, WebSocketAccessFilter)]
            assert len(installed) == 1 and installed[0].access_log is access_log
    finally:
        root.handlers[:], server_log.filters[:] = saved[0], saved[2]
        root.setLevel(saved[1])

"""HTTP limits of the embedded server: head timeout, header count and size, connection cap,
keep-alive timeout (issue 14, "seen 5").

Before: 1,000 connections sending only a request line stayed open forever, and a request
with 2 MB of headers was answered 200. Each test configures small limits and checks what the
client sees, on real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from server_actors import registry
from test_server_cli import free_port, rivetkit, wait_healthy

from rivetkit.metrics.server import SERVER_COUNTERS
from rivetkit.server import serve_in_background
from rivetkit.server.limits import ServerLimits, connection_cap, parse_size

ROOT = Path(__file__).resolve().parent.parent
HEALTH = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


@contextlib.asynccontextmanager
async def serve(limits: ServerLimits) -> AsyncIterator[tuple[str, int]]:
    async with serve_in_background(registry, limits=limits) as endpoint:
        host, port = endpoint.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


async def response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """Status, head and body of one response (``content-length`` framed)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return status, head, body


async def health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(HEALTH)
    status, _, body = await response(reader)
    assert status != 200 or body == b"ok"
    return status


def error_of(body: bytes) -> tuple[str, str]:
    error: dict[str, Any] = json.loads(body)
    assert set(error) == {"group", "code", "message", "metadata"}
    return error["group"], error["code"]


@pytest.mark.asyncio
async def test_request_line_only_connections_are_closed_after_the_head_timeout() -> None:
    before = SERVER_COUNTERS.header_timeouts
    async with serve(ServerLimits(header_timeout=1.0)) as (host, port):
        streams = []
        for _ in range(1000):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /health HTTP/1.1\r\n")  # and never the headers
            streams.append((reader, writer))
        idle = [await asyncio.open_connection(host, port) for _ in range(5)]  # not a byte

        async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
            status, head, body = await response(reader)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # then closed
            return status, head, body

        answers = await asyncio.gather(*(answer(r) for r, _ in [*streams, *idle]))
        assert {status for status, _, _ in answers} == {408}
        assert all(b"connection: close" in head for _, head, _ in answers)
        assert error_of(answers[0][2]) == ("request", "timeout")
        for _, writer in [*streams, *idle]:
            writer.close()
        # The server still serves.
        reader, writer = await asyncio.open_connection(host, port)
        assert await health(reader, writer) == 200
        writer.close()
    assert SERVER_COUNTERS.header_timeouts - before == 1005


@pytest.mark.asyncio
async def test_a_slow_head_on_a_kept_alive_connection_times_out_too() -> None:
    async with serve(ServerLimits(header_timeout=0.5, keep_alive_timeout=30)) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        assert await health(reader, writer) == 200
        writer.write(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n")  # no end of head
        status, _, body = await response(reader)
        assert status == 408
        assert error_of(body) == ("request", "timeout")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


@pytest.mark.asyncio
async def test_two_megabytes_of_headers_get_431() -> None:
    before = SERVER_COUNTERS.headers_too_large
    async with serve(ServerLimits()) as (host, port):  # the defaults: 100 fields, 64 KiB
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * 2_000_000)
        writer.write(b"\r\n\r\n")
        status, head, body = await response(reader)
        assert status == 431
        assert b"connection: close" in head
        assert error_of(body) == ("request", "header_fields_too_large")
        assert json.loads(body)["metadata"] == {"max_headers": 100, "max_header_bytes": 65536}
        writer.close()

        # Many small fields, whole in one write: 431 as well (a WebSocket upgrade too).
        for target in (b"/health", b"/gateway/counter/connect"):
            reader, writer = await asyncio.open_connection(host, port)
            fields = b"".join(b"x-h%d: %d\r\n" % (i, i) for i in range(150))
            writer.write(
                b"GET " + target + b" HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\n"
                b"upgrade: websocket\r\n" + fields + b"\r\n"
            )
            status, _, _ = await response(reader)
            assert status == 431
            writer.close()

        # At the limits: served.
        reader, writer = await asyncio.open_connection(host, port)
        fields = b"".join(b"x-h%d: %d\r\n" % (i, i) for i in range(99))
        writer.write(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n" + fields + b"\r\n")
        status, _, body = await response(reader)
        assert (status, body) == (200, b"ok")
        writer.close()
    assert SERVER_COUNTERS.headers_too_large - before == 3


@pytest.mark.asyncio
async def test_connections_over_the_cap_are_refused_while_the_others_keep_working() -> None:
    before = SERVER_COUNTERS.connections_refused
    async with serve(ServerLimits(max_connections=10)) as (host, port):
        kept = [await asyncio.open_connection(host, port) for _ in range(10)]
        for reader, writer in kept:
            assert await health(reader, writer) == 200
        # One too many: a clear refusal, then the connection is closed.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(HEALTH)
        status, head, body = await response(reader)
        assert status == 503
        assert b"connection: close" in head
        assert error_of(body) == ("server", "too_many_connections")
        assert json.loads(body)["metadata"] == {"max_connections": 10}
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        # The open ones still work.
        for reader, writer in kept:
            assert await health(reader, writer) == 200
        # One leaves: a newcomer is served.
        kept[0][1].close()
        await kept[0][1].wait_closed()
        for _ in range(100):
            reader, writer = await asyncio.open_connection(host, port)
            served = await health(reader, writer) == 200
            writer.close()
            if served:
                break
            await asyncio.sleep(0.02)
        assert served
        for _, writer in kept[1:]:
            writer.close()
    assert SERVER_COUNTERS.connections_refused - before >= 1


@pytest.mark.asyncio
async def test_idle_kept_alive_connections_are_closed_after_the_keep_alive_timeout() -> None:
    async with serve(ServerLimits(keep_alive_timeout=0.3, header_timeout=30)) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        for _ in range(3):  # requests closer together than the timeout keep it open
            assert await health(reader, writer) == 200
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then idle: closed, no answer
        writer.close()


def test_limits_are_checked_and_sizes_parsed() -> None:
    assert parse_size("16MiB") == 16 * 1024 * 1024
    assert parse_size("64KiB") == 65536
    assert parse_size("500kb") == 500_000
    assert parse_size("1048576") == 1048576
    for bad in ("", "MiB", "12 parsecs", "0", "-1k"):
        with pytest.raises(ValueError):
            parse_size(bad)
    for field, value in (
        ("ws_max_buffer", 0),
        ("header_timeout", 0),
        ("max_headers", -1),
        ("max_connections", 0),
        ("keep_alive_timeout", "5"),
    ):
        with pytest.raises(ValueError, match=field):
            ServerLimits(**{field: value})
    assert connection_cap(1024) == 768
    assert connection_cap(100) == 36
    assert ServerLimits(max_connections=5).resolved().max_connections == 5


def _low_soft_limit() -> None:  # in the child, before exec
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX rlimits")
def test_cli_options_and_the_open_file_limit(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    proc = rivetkit(
        "serve",
        str(ROOT / "examples" / "app.py"),
        "--port",
        str(port),
        "--data",
        str(tmp_path / "data"),
        "--max-headers",
        "5",
        "--header-timeout",
        "0.5",
        "--max-connections",
        "50",
        "--keep-alive-timeout",
        "2",
        "--ws-max-buffer",
        "1MiB",
        preexec_fn=_low_soft_limit,
    )
    try:
        wait_healthy(port, proc)

        async def check() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            fields = b"".join(b"x-h%d: %d\r\n" % (i, i) for i in range(6))
            writer.write(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n" + fields + b"\r\n")
            assert (await response(reader))[0] == 431
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\n")
            assert (await response(reader))[0] == 408
            writer.close()

        asyncio.run(check())
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"open-file limit {hard}; at most 50 connections" in err
    bad = subprocess.run(
        [sys.executable, "-m", "rivetkit", "serve", "x.py", "--ws-max-buffer", "lots"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2
    assert "not a size" in bad.stderr

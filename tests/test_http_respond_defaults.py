"""respond() writes the default headers of each response's own cycle: uvicorn puts a new list
in place every second (the date), and respond() keeps the last list's lines by the list itself."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from rivetkit.server.http_fastpath import http_protocol, respond


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:  # pragma: no cover - keep-alive cycles only
        raise AssertionError("closed")


def _cycle(default_headers: list[tuple[bytes, bytes]], transport: _Transport) -> Any:
    return SimpleNamespace(
        response_started=False,
        disconnected=False,
        flow=SimpleNamespace(write_paused=False),
        access_log=False,
        scope={"method": "POST"},
        default_headers=default_headers,
        keep_alive=True,
        waiting_for_100_continue=False,
        chunked_encoding=None,
        expected_content_length=0,
        transport=transport,
        response_complete=False,
        message_event=asyncio.Event(),
        on_response=lambda: None,
    )


def _defaults(date: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"date", date), (b"server", b"uvicorn")]


def test_each_default_header_list_is_written() -> None:
    if not isinstance(http_protocol(), type):
        pytest.skip("uvicorn's own protocol serves here (no respond())")
    transport = _Transport()
    first, second = (
        _defaults(b"Sun, 06 Dec 2026 04:00:00 GMT"),
        _defaults(b"Sun, 06 Dec 2026 04:00:01 GMT"),
    )
    headers = [(b"content-type", b"application/json")]
    for defaults in (first, first, second, first, list(second)):
        assert respond(_cycle(defaults, transport), 200, headers, b"{}")
    heads = [data.split(b"\r\n")[1].decode() for data in transport.written]
    assert heads == [
        "date: Sun, 06 Dec 2026 04:00:00 GMT",
        "date: Sun, 06 Dec 2026 04:00:00 GMT",
        "date: Sun, 06 Dec 2026 04:00:01 GMT",
        "date: Sun, 06 Dec 2026 04:00:00 GMT",
        "date: Sun, 06 Dec 2026 04:00:01 GMT",
    ]
    assert transport.written[0] == (
        b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 04:00:00 GMT\r\nserver: uvicorn\r\n"
        b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    )


def test_refused_default_headers_stay_refused() -> None:
    if not isinstance(http_protocol(), type):
        pytest.skip("uvicorn's own protocol serves here (no respond())")
    transport = _Transport()
    bad = [(b"date", b"x\r\ny")]  # uvicorn would refuse it: the ASGI messages must go instead
    for _ in range(2):
        assert not respond(_cycle(bad, transport), 200, [], b"")
    assert transport.written == []

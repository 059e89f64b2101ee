"""HeadGuard's parser callbacks that do the base's steps themselves (``on_url``,
``on_header``, ``on_body``, ``on_message_complete``: rivetkit/server/http_guard.py) against
uvicorn's own ``HttpToolsProtocol``: the same byte streams, cut at random points, leave the
same requests (scope, body, flags), the same flow control and the same bytes written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rivetkit.server import http_fastpath
from rivetkit.server.http_guard import split_target
from rivetkit.server.runner import uvicorn_config

PROTOCOL = http_fastpath._build_http_protocol()
pytestmark = pytest.mark.skipif(PROTOCOL is None, reason="uvicorn without httptools")


class Transport:
    """Records what a protocol does to its transport."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.events.append(("write", data))

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


def recording(base: type[Any]) -> type[Any]:
    class Recording(base):  # type: ignore[misc,valid-type]
        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            self.started.append(cycle)

    return Recording


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never run
    raise AssertionError


def run(base: type[Any], chunks: list[bytes]) -> Any:
    """What ``base`` (a protocol class) makes of ``chunks`` received in turn."""

    async def main() -> Any:
        config = uvicorn_config(_app)
        config.load()
        from uvicorn.server import ServerState

        protocol = recording(base)(config=config, server_state=ServerState(), app_state={})
        protocol.started = []
        transport = Transport()
        protocol.connection_made(transport)
        logged: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
        protocol.logger.addHandler(handler)
        try:
            for chunk in chunks:
                if transport.closing:
                    break
                protocol.data_received(chunk)
        finally:
            protocol.logger.removeHandler(handler)
        requests = [
            (
                {k: v for k, v in cycle.scope.items() if k != "extensions"},
                bytes(cycle.body),
                cycle.more_body,
                cycle.message_event.is_set(),
                cycle.waiting_for_100_continue,
                cycle.keep_alive,
            )
            for cycle in protocol.started
        ]
        pipeline = [dict(cycle.scope) for cycle, _ in protocol.pipeline]
        result = (
            requests,
            pipeline,
            transport.events,
            protocol.url,
            protocol.headers,
            protocol.expect_100_continue,
            protocol.flow.read_paused,
            logged,
        )
        protocol.connection_lost(None)
        return result

    return asyncio.run(main())


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_", min_size=1)
_value = st.text(alphabet="abc xyz\t-/;=ABC10", max_size=20).map(str.strip)
_header = st.one_of(
    st.tuples(_token, _value),
    st.tuples(
        st.sampled_from(["Expect", "expect", "EXPECT"]),
        st.sampled_from(
            ["100-continue", "100-Continue", "100-continue  ", "100-continue\t", "other"]
        ),
    ),
)


@st.composite
def request(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD"]))
    path = draw(
        st.sampled_from(
            [
                "/",
                "/a/b?x=1",
                "/gateway/x/action/y?q=%20",
                "/%41b",
                "/a?b?c#d",
                "/p#f?q",
                "http://h:1/p?q",
                "*",
                "/?",
            ]
        )
    )
    headers = draw(st.lists(_header, max_size=6))
    size = draw(st.one_of(st.integers(0, 40), st.sampled_from([70_000])))
    chunked = draw(st.booleans()) and size > 0
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [
        f"{name}: {value}{draw(st.sampled_from(['', ' ', chr(9)]))}" for name, value in headers
    ]
    body = b"b" * size
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        half = size // 2
        body = (
            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], size - half, body[half:])
            if half
            else b"%x\r\n%s\r\n0\r\n\r\n" % (size, body)
        )
    elif size or draw(st.booleans()):
        lines.append(f"Content-Length: {size}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# Bad requests (a 400 and a warning) and an upgrade to something but a WebSocket (a warning).
_ODD_ENDINGS = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
]


@st.composite
def stream(draw: st.DrawFn) -> list[bytes]:
    data = b"".join(draw(st.lists(request(), min_size=1, max_size=3)))
    if draw(st.booleans()):
        data += draw(st.sampled_from(_ODD_ENDINGS))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    chunks, last = [], 0
    for cut in [*cuts, len(data)]:
        if cut > last:
            chunks.append(data[last:cut])
            last = cut
    return chunks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream())
def test_the_guard_reads_requests_as_uvicorn_does(chunks: list[bytes]) -> None:
    base = PROTOCOL.__mro__[2]  # Protocol, HeadGuard, HttpToolsProtocol
    assert base.__name__ == "HttpToolsProtocol"
    ours = run(PROTOCOL, chunks)
    theirs = run(base, chunks)
    assert ours == theirs


def test_a_large_body_pauses_reading_as_uvicorn_does() -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n" + b"x" * 70_000
    chunks = [data[:100], data[100:40_000], data[40_000:]]
    ours = run(PROTOCOL, chunks)
    assert ours == run(PROTOCOL.__mro__[2], chunks)
    assert ours[-2] is True  # read_paused
    assert ours[0][0][1] == b"x" * 70_000


_TARGET_BYTES = [*b"/?#%*:@ \t\x7f\x80\xff", *range(0x21, 0x7F)]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_TARGET_BYTES), max_size=24), st.booleans())
def test_split_target_is_parse_url(tail: list[int], rooted: bool) -> None:
    url = (b"/" if rooted else b"") + bytes(tail)
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        with pytest.raises(httptools.HttpParserInvalidURLError):
            split_target(url)
        return
    assert split_target(url) == (parsed.path, parsed.query or b"")

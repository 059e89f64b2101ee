"""Streamed ``on_request`` responses and Server-Sent Events on the embedded server.

Each behaviour runs on real servers on 127.0.0.1: our uvicorn protocol
(rivetkit.server.http_fastpath) and uvicorn's own httptools and h11 protocols, read with httpx
streaming. The producer is gated by the test (an asyncio.Event per chunk), so that "the first
chunk arrives before the last is produced" is observed without any timing assumption; one test
also measures the gap between chunks the server sleeps between (relative, not absolute).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from test_sse_format import parse_sse

from conftest import eventually
from rivetkit import ActorOptions, Response, RivetError, ServerSentEvent, actor, setup
from rivetkit.server import create_app
from rivetkit.server.runner import Server, bind_socket, uvicorn_config
from rivetkit.testing import setup_test

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Probe:
    """What the test sees of the stream the actor produces."""

    def __init__(self) -> None:
        self.produced: list[int] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.closed = asyncio.Event()
        self.finally_runs = 0

    def gate(self, n: int) -> asyncio.Event:
        return self.gates.setdefault(n, asyncio.Event())


probe = Probe()

streamer = actor("streamer", state={"served": 0}, options=ActorOptions(action_timeout=5))


@streamer.on_request
async def on_request(c: Any, request: Any) -> Any:
    path = request.path
    c.state["served"] += 1
    if path == "/gated":
        # chunk n is produced once the test opened gate n (chunk 0 at once)
        async def gated() -> AsyncIterator[str]:
            for n in range(3):
                if n:
                    await probe.gate(n).wait()
                probe.produced.append(n)
                yield f"chunk-{n}\n"

        return Response(gated(), media_type="text/plain")
    if path == "/paced":

        async def paced() -> AsyncIterator[bytes]:
            for n in range(3):
                if n:
                    await asyncio.sleep(0.2)
                yield b"tick-%d\n" % n

        return Response(paced())
    if path == "/endless":

        async def endless() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x" * 100
                    await asyncio.sleep(0.01)
            finally:
                probe.finally_runs += 1
                probe.closed.set()

        return Response(endless())
    if path == "/fails":

        async def fails() -> AsyncIterator[bytes]:
            yield b"partial"
            await asyncio.sleep(0)
            raise RuntimeError("secret detail of the failure")

        return Response(fails())
    if path == "/sync":
        return Response(iter([b"one,", "two,", bytearray(b"three")]))
    if path == "/bad-chunk":

        async def bad() -> AsyncIterator[Any]:
            yield 42

        return Response(bad())
    if path == "/sse":

        async def events() -> AsyncIterator[Any]:
            yield ServerSentEvent("hello", event="greeting", id="1")
            await probe.gate(1).wait()
            yield ServerSentEvent("line one\nline two", id="2", retry=1500)
            yield {"n": 3}

        return Response.sse(events())
    if path == "/sse-idle":

        async def idle() -> AsyncIterator[Any]:
            yield "first"
            await probe.gate(1).wait()
            yield "second"

        return Response.sse(idle(), keep_alive=0.05)
    if path == "/count":
        return Response.json({"served": c.state["served"]})
    return Response.text("not found", status=404)


registry = setup(use=[streamer])

PROTOCOLS = ["ours", "httptools", "h11"]


@contextlib.asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[str]:
    sock = bind_socket("127.0.0.1", 0)
    server = Server(uvicorn_config(app, graceful_timeout=2, **options), handle_signals=False)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.005)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.request_exit()
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def servers() -> AsyncIterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data:
        app = create_app(registry, data_dir=data)
        await app.startup()
        try:
            async with (
                serve(app) as ours,
                serve(app, http="httptools") as httptools,
                serve(app, http="h11") as h11,
            ):
                yield {"ours": ours, "httptools": httptools, "h11": h11, "app": app}
        finally:
            await app.shutdown()


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    global probe
    probe = Probe()
    yield


def url(servers: dict[str, Any], protocol: str, path: str, key: str = "k") -> str:
    return (
        f"{servers[protocol]}/gateway/streamer/request{path}?rvt-method=getOrCreate&rvt-key={key}"
    )


def instance_of(servers: dict[str, Any], key: str = "k") -> Any:
    runtime = servers["app"].runtime
    return next(i for i in runtime.instances.values() if list(i.key) == [key])


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_chunks_arrive_as_produced(servers: dict[str, Any], protocol: str) -> None:
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url(servers, protocol, "/gated")) as response,
    ):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        assert response.headers["content-type"] == "text/plain"
        assert response.headers["x-rivet-actor-key"] == "k"
        received = []
        lines = response.aiter_lines()
        received.append(await lines.__anext__())
        # The first chunk is here while the last is not produced yet: nothing buffered it.
        assert received == ["chunk-0"] and probe.produced == [0]
        probe.gate(1).set()
        received.append(await lines.__anext__())
        assert probe.produced == [0, 1]
        probe.gate(2).set()
        received.extend([line async for line in lines])
    assert received == ["chunk-0", "chunk-1", "chunk-2"]
    await eventually(lambda: instance_of(servers)._inflight == 0)


async def test_time_between_chunks_is_observed(servers: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url(servers, "ours", "/paced")) as response,
    ):
        async for chunk in response.aiter_raw():
            if chunk:
                arrivals.append(loop.time())
    assert len(arrivals) == 3  # three separate chunks, not one buffered body
    # The server sleeps 0.2 s between chunks; the client sees them apart (a loose bound).
    assert arrivals[1] - arrivals[0] > 0.05 and arrivals[2] - arrivals[1] > 0.05


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_client_disconnect_stops_the_stream(servers: dict[str, Any], protocol: str) -> None:
    key = f"gone-{protocol}"
    async with httpx.AsyncClient() as http:
        async with http.stream("GET", url(servers, protocol, "/endless", key)) as response:
            async for chunk in response.aiter_raw():
                assert chunk
                break
            assert not probe.closed.is_set()
        # Leaving the block closes the connection mid-body: the generator's finally runs.
        await asyncio.wait_for(probe.closed.wait(), 5)
        assert probe.finally_runs == 1
        await eventually(lambda: instance_of(servers, key)._inflight == 0)
        # The actor serves the next request.
        answer = await http.get(url(servers, protocol, "/count", key))
        assert answer.status_code == 200 and answer.json()["served"] == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_error_mid_stream_truncates_the_body(
    servers: dict[str, Any], protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    received = b""
    caplog.set_level(logging.ERROR)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream("GET", url(servers, protocol, "/fails")) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    received += chunk
        assert received == b"partial"  # no traceback, no error body on the wire
        assert any(
            "streamed response failed" in r.getMessage() and r.exc_info for r in caplog.records
        )
        # The server keeps serving (on a new connection).
        answer = await http.get(url(servers, protocol, "/count"))
        assert answer.status_code == 200
    await eventually(lambda: instance_of(servers)._inflight == 0)


async def test_a_chunk_that_is_not_bytes_fails_the_stream(servers: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url(servers, "ours", "/bad-chunk"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sync_iterator_body(servers: dict[str, Any], protocol: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(url(servers, protocol, "/sync"))
    assert response.status_code == 200 and response.content == b"one,two,three"
    assert response.headers["transfer-encoding"] == "chunked"


async def test_head_request_sends_no_body(servers: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.head(url(servers, "ours", "/endless", "head"))
    assert response.status_code == 200 and response.content == b""
    # The stream is closed unread (a generator never started runs no finally): the
    # actor's request ended.
    await eventually(lambda: instance_of(servers, "head")._inflight == 0)
    assert probe.finally_runs == 0


# -- Server-Sent Events ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sse_events_arrive_as_sent(servers: dict[str, Any], protocol: str) -> None:
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url(servers, protocol, "/sse")) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        text = ""
        raw = response.aiter_text()
        while "\n\n" not in text:
            text += await raw.__anext__()
        # The first event is read before the actor produces the second.
        assert parse_sse(text) == [{"event": "greeting", "id": "1", "data": "hello"}]
        probe.gate(1).set()
        text += "".join([part async for part in raw])
    assert text.startswith("event: greeting\nid: 1\ndata: hello\n\n")
    assert "data: line one\ndata: line two\n\n" in text
    assert parse_sse(text)[1:] == [
        {"id": "2", "retry": "1500", "data": "line one\nline two"},
        {"data": '{"n":3}'},
    ]


async def test_sse_keep_alive_comments(servers: dict[str, Any]) -> None:
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url(servers, "ours", "/sse-idle")) as response,
    ):
        text = ""
        raw = response.aiter_text()
        while ": keep-alive\n\n" not in text:
            text += await raw.__anext__()
        probe.gate(1).set()
        text += "".join([part async for part in raw])
    assert [e["data"] for e in parse_sse(text)] == ["first", "second"]


# -- in process ------------------------------------------------------------------------------


async def test_in_process_client_gets_the_whole_body() -> None:
    async with setup_test(registry) as t:
        handle = t.streamer.get_or_create(["in-process"])
        response = await handle.fetch("/paced")
        assert response.status_code == 200
        assert response.content == b"tick-0\ntick-1\ntick-2\n"
        response = await handle.fetch("/sync")
        assert response.content == b"one,two,three"
        probe.gate(1).set()
        response = await handle.fetch("/sse")
        # No connection to cut: a stream failing after its head raises from fetch.
        with pytest.raises(RivetError) as info:
            await handle.fetch("/fails")
        assert (info.value.group, info.value.code) == ("response", "stream_failed")
        assert [e["data"] for e in parse_sse(response.text)] == [
            "hello",
            "line one\nline two",
            '{"n":3}',
        ]


async def test_server_shutdown_stops_a_stream() -> None:
    # graceful_timeout is long: the server ends quickly only because it stops the stream.
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data:
        app = create_app(registry, data_dir=data)
        await app.startup()
        try:
            sock = bind_socket("127.0.0.1", 0)
            server = Server(uvicorn_config(app, graceful_timeout=60), handle_signals=False)
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started:
                await asyncio.sleep(0.005)
            host, port = sock.getsockname()[:2]
            endpoint = f"http://{host}:{port}"
            target = f"{endpoint}/gateway/streamer/request/endless?rvt-method=getOrCreate&rvt-key=s"

            async def read_until_closed() -> None:
                async with httpx.AsyncClient() as http:
                    with pytest.raises(httpx.RemoteProtocolError):
                        async with http.stream("GET", target) as response:
                            async for _ in response.aiter_raw():
                                server.request_exit()

            # Well under the graceful timeout (without the stop, both would wait 60 s).
            await asyncio.wait_for(read_until_closed(), 20)
            await asyncio.wait_for(task, 20)
            sock.close()
            await asyncio.wait_for(probe.closed.wait(), 5)
        finally:
            await app.shutdown()

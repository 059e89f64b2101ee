"""Client time limits (``Client(timeout=)``, per-call ``timeout=``, ``with_timeout``), the sync
``next_event(timeout=)`` regression, ``aclose()``, and connection failures that name the
endpoint, what was tried and the true duration. Real servers on 127.0.0.1; waits for a dead
server run on an injected clock and sleep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rivetkit import Response, actor, setup
from rivetkit.client import ActorError, Client, SyncClient
from rivetkit.server import serve_in_background

slow = actor("slow", state={"n": 0})


@slow.action
async def wait(c: Any, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@slow.action
def ping(c: Any) -> str:
    c.broadcast("pinged", 1)
    return "pong"


@slow.on_request
async def slow_request(c: Any, request: Any) -> Any:
    await asyncio.sleep(float(request.query.get("s", ["0"])[0]))
    return Response.text("slept")


registry = setup(use=[slow])


def assert_timeout(error: ActorError, operation: str, seconds: float) -> None:
    assert (error.group, error.code) == ("client", "timeout")
    assert error.message == f"{operation} did not finish within {seconds:g} s"
    assert error.metadata == {"operation": operation, "timeout": seconds}


@contextlib.asynccontextmanager
async def served(**client_options: Any) -> AsyncIterator[Client]:
    async with (
        serve_in_background(registry) as endpoint,
        Client(str(endpoint), **client_options) as client,
    ):
        yield client


@contextlib.contextmanager
def served_in_thread() -> Iterator[str]:
    """A real server on its own loop in a thread (for the blocking client)."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        async with serve_in_background(registry) as url:
            state["url"] = str(url)
            state["loop"] = asyncio.get_running_loop()
            state["stop"] = asyncio.Event()
            ready.set()
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    try:
        yield state["url"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)


# MARK: async time limits


@pytest.mark.asyncio
async def test_client_timeout_names_the_action_and_cancels_it() -> None:
    async with served(timeout=0.2) as client:
        handle = client.slow.get_or_create(["k"])
        with pytest.raises(ActorError) as info:
            await handle.wait(1)
        assert_timeout(info.value, "action slow.wait(['k'])", 0.2)
        # The client's limit applies to typed calls; a quick call passes.
        with pytest.raises(ActorError) as info:
            await handle.call(wait, 1)
        assert info.value.code == "timeout"
        assert await handle.ping() == "pong"


@pytest.mark.asyncio
async def test_per_call_timeouts() -> None:
    async with served() as client:
        handle = client.slow.get_or_create(["k"])
        with pytest.raises(ActorError) as info:
            await handle.action("wait", 1, timeout=0.2)
        assert_timeout(info.value, "action slow.wait(['k'])", 0.2)
        with pytest.raises(ActorError) as info:
            await handle.wait(1, timeout=0.2)  # keyword-only on attribute calls
        assert info.value.code == "timeout"
        quick = handle.with_timeout(0.2)
        assert quick.timeout == 0.2 and handle.timeout is None
        with pytest.raises(ActorError) as info:
            await quick.call(wait, 1)
        assert info.value.code == "timeout"
        assert await handle.wait(0.3) == "done"  # no limit by default

        with pytest.raises(ActorError) as info:
            await handle.fetch("/x?s=1", timeout=0.2)
        assert_timeout(info.value, "fetch GET /x?s=1 of slow(['k'])", 0.2)
        assert (await handle.fetch("/x?s=0", timeout=5)).text == "slept"

        actor_id = await handle.resolve(timeout=5)
        by_id = client.get_for_id("slow", actor_id)
        with pytest.raises(ActorError) as info:
            await by_id.wait(1, timeout=0.2)
        assert info.value.message.startswith(f"action slow.wait(id={actor_id}) did not")

        with pytest.raises(ValueError, match="positive"):
            await handle.wait(1, timeout=0)


@pytest.mark.asyncio
async def test_connection_action_timeout_keeps_the_connection() -> None:
    async with served() as client, client.slow.get_or_create(["c"]).connect() as conn:
        with pytest.raises(ActorError) as info:
            await conn.wait(1, timeout=0.2)
        assert_timeout(info.value, "action slow.wait(['c']) on a connection", 0.2)
        assert conn.is_connected
        assert await conn.ping() == "pong"
        with pytest.raises(ActorError) as info:
            await conn.next_event("never", timeout=0.1)
        assert_timeout(info.value, "waiting for event 'never' from slow(['c'])", 0.1)


@pytest.mark.asyncio
async def test_timeout_on_a_server_that_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(f"http://127.0.0.1:{port}", timeout=0.2) as client:
            with pytest.raises(ActorError) as info:
                await client.slow.get_or_create(["k"]).resolve()
            assert_timeout(info.value, "resolve slow(['k'])", 0.2)
            with pytest.raises(ActorError) as info:
                await client.metadata()
            assert_timeout(info.value, "GET /metadata", 0.2)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_aclose() -> None:
    async with served() as client:
        conn = await client.slow.get_or_create(["a"]).connect()
        await conn.aclose()
        assert conn.closed
        await client.aclose()
        assert client.closed
        with pytest.raises(ActorError) as info:
            await client.slow.get_or_create(["a"]).ping()
        assert info.value.code == "client_closed"


# MARK: the blocking client


def test_sync_next_event_timeout_regression() -> None:
    with (
        served_in_thread() as url,
        SyncClient(url) as client,
        client.slow.get_or_create(["s"]).connect() as conn,
    ):
        with pytest.raises(ActorError) as info:
            conn.next_event("x", timeout=0.5)
        assert_timeout(info.value, "waiting for event 'x' from slow(['s'])", 0.5)
        conn.on("pinged", lambda *args: None)
        assert conn.ping() == "pong"
        with conn.events("pinged") as stream, pytest.raises(ActorError) as info:
            stream.next(timeout=0.2)
        assert info.value.code == "timeout" and "0.2 s" in info.value.message


def test_sync_timeouts_name_the_call() -> None:
    with served_in_thread() as url, SyncClient(url, timeout=0.3) as client:
        handle = client.slow.get_or_create(["t"])
        with pytest.raises(ActorError) as info:
            handle.wait(1)
        assert info.value.code == "timeout"
        assert "slow" in info.value.message and "0.3 s" in info.value.message
        with pytest.raises(ActorError) as info:
            handle.action("wait", 1, timeout=0.1)
        assert_timeout(info.value, "action slow.wait(['t'])", 0.1)
        assert handle.with_timeout(2).call(ping) == "pong"


# MARK: a dead server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeTime:
    """A clock that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_dead_server_metadata_lookup(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    fake = FakeTime()
    async with Client(endpoint) as client:
        client._session.clock = fake.clock
        client._session.sleep = fake.sleep
        with (
            caplog.at_level(logging.WARNING, logger="rivetkit.client"),
            pytest.raises(ActorError) as info,
        ):
            await client.counter.get_or_create(["k"]).increment(1)
    error = info.value
    assert (error.group, error.code) == ("client", "metadata_lookup_failed")
    elapsed = sum(fake.sleeps)  # the true duration, on the injected clock
    attempts = len(fake.sleeps) + 1
    assert error.metadata == {
        "endpoint": endpoint,
        "operation": "metadata lookup",
        "attempts": attempts,
        "elapsed": elapsed,
    }
    assert f"cannot reach the server at {endpoint}" in error.message
    assert f"failed {attempts} times over {elapsed:.1f} s" in error.message
    assert "RIVET_ENDPOINT" in error.message
    lines = [r.getMessage() for r in caplog.records if r.name == "rivetkit.client"]
    assert len(lines) == attempts - 1
    assert lines[0].startswith(f"{endpoint}: metadata lookup attempt 1 failed")


@pytest.mark.asyncio
async def test_dead_server_action_post() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    async with Client(endpoint, disable_metadata_lookup=True) as client:
        with pytest.raises(ActorError) as info:
            await client.counter.get_or_create(["k"]).increment(1)
    error = info.value
    assert (error.group, error.code) == ("client", "http_request_error")
    assert error.message.startswith(f"cannot reach the server at {endpoint}: POST {endpoint}/")
    assert "1 attempt)" in error.message
    assert error.metadata["endpoint"] == endpoint
    assert error.metadata["operation"] == "gateway request"


@pytest.mark.asyncio
async def test_dead_server_websocket_connect(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    fake = FakeTime()
    async with Client(endpoint, disable_metadata_lookup=True) as client:
        client._session.sleep = fake.sleep
        with caplog.at_level(logging.WARNING, logger="rivetkit.client"):
            conn = client.counter.get_or_create(["k"]).connect()
            while len(fake.sleeps) < 3:
                await asyncio.sleep(0.01)
            with pytest.raises(ActorError) as info:
                await conn.wait_open(timeout=0.01)
            await conn.close()
    error = info.value
    assert (error.group, error.code) == ("client", "connection_open_failed")
    assert error.message.startswith(f"connection to counter(['k']) at {endpoint} not open after")
    assert "failed attempts; last: cannot reach the server at" in error.message
    assert "WebSocket connect to ws://127.0.0.1" in error.message
    assert error.metadata["attempts"] >= 3 and error.metadata["endpoint"] == endpoint
    lines = [r.getMessage() for r in caplog.records if "connect attempt" in r.getMessage()]
    assert lines[0].startswith(f"{endpoint}: connect attempt 1 to counter(['k']) failed")
    assert lines[1].startswith(f"{endpoint}: connect attempt 2 ")


def test_bridge_passes_the_coroutines_own_timeout_error_through() -> None:
    """The old bug: a TimeoutError raised by the operation itself was taken for the
    bridge's own wait and reported as "did not finish within None s"."""
    from rivetkit.client.bridge import LoopThread

    loop = LoopThread()
    try:

        async def own_timeout() -> None:
            raise TimeoutError("inner")

        with pytest.raises(TimeoutError, match="inner"):
            loop.run(own_timeout(), None)

        async def forever() -> None:
            await asyncio.Event().wait()

        with pytest.raises(ActorError) as info:
            loop.run(forever(), 0.05, "the test's wait")
        assert_timeout(info.value, "the test's wait", 0.05)
    finally:
        loop.stop()

"""SyncClient: the blocking API over fakes (the fake WebSocket server runs in its own thread)."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from client_fakes import FakeConnectServer, RecordingTransport, counter_server

from rivetkit.client import ActorError, ActorHandle, SyncActorHandle, SyncClient


class ThreadedServer:
    """A FakeConnectServer running on an event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = FakeConnectServer()
        self.run(self.server.start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    threaded = ThreadedServer()
    yield threaded
    threaded.stop()


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_http_actions_and_errors() -> None:
    transport = RecordingTransport(counter_server())
    with SyncClient("http://127.0.0.1:1", transport=transport) as client:
        counter = client.counter.get_or_create(["k"])
        assert counter.increment(5) == 5
        assert counter.action("increment", 2) == 7
        assert client.get_or_create("counter", "k").echo({"a": [1]}) == [{"a": [1]}]
        with pytest.raises(ActorError) as info:
            counter.fail()
        assert (info.value.group, info.value.code) == ("user", "negative_amount")
        assert client.metadata()["runtime"] == "rivetkit"
        assert counter.name == "counter" and counter.key == ["k"] and counter.actor_id is None
        assert client.encoding == "bare"
    assert transport.lines()[0] == "GET /metadata?namespace=default"


def test_connection_events_and_close(server: ThreadedServer) -> None:
    endpoint = server.server.endpoint
    with SyncClient(endpoint, disable_metadata_lookup=True, encoding="cbor") as client:
        conn = client.counter.get_or_create(["k"]).connect({"user": "u"})
        assert conn.status == "connected" and conn.actor_id == "actor-1"
        got: list[int] = []
        threads: list[str] = []

        def listener(n: int) -> None:
            threads.append(threading.current_thread().name)
            got.append(n)

        off = conn.on("newCount", listener)
        events = conn.events("newCount")
        assert conn.increment(3) == 3
        assert events.next(timeout=5) == ("newCount", [3])
        wait_for(lambda: got == [3])
        assert threads == ["rivetkit-client"]
        off()
        assert conn.increment(1) == 4
        assert next(events) == ("newCount", [4])
        assert got == [3]
        with pytest.raises(ActorError) as info:
            conn.fail("x")
        assert info.value.code == "boom"
        events.close()
        conn.close()
        assert conn.status == "idle"
        with pytest.raises(ActorError):
            conn.increment(1)


def test_connection_as_context_manager_and_iteration(server: ThreadedServer) -> None:
    endpoint = server.server.endpoint
    with (
        SyncClient(endpoint, disable_metadata_lookup=True) as client,
        client.counter.get_or_create(["k"]).connect() as conn,
    ):
        stream = conn.iter_events("newCount")
        for _ in range(3):
            conn.increment(1)
        seen = []
        for event in stream:
            seen.append(event.args[0])
            if len(seen) == 3:
                break
        assert seen == [1, 2, 3]
        waiter = ThreadPoolExecutor(1).submit(conn.next_event, "newCount", 5)
        time.sleep(0.05)
        conn.increment(1)
        assert waiter.result(5) == [4]


def test_blocking_call_from_callback_raises(server: ThreadedServer) -> None:
    endpoint = server.server.endpoint
    with SyncClient(endpoint, disable_metadata_lookup=True) as client:
        conn = client.counter.get_or_create(["k"]).connect()
        errors: list[BaseException] = []

        def listener(n: int) -> None:
            try:
                conn.getCount()
            except RuntimeError as exc:
                errors.append(exc)

        conn.on("newCount", listener)
        conn.increment(1)
        wait_for(lambda: len(errors) == 1)
        conn.close()


def test_many_threads(server: ThreadedServer) -> None:
    endpoint = server.server.endpoint
    with SyncClient(endpoint, disable_metadata_lookup=True, encoding="json") as client:
        conn = client.counter.get_or_create(["k"]).connect()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: conn.increment(1), range(40)))
        assert sorted(results) == list(range(1, 41))
        conn.close()


def test_timeout() -> None:
    # Nothing listens on port 9: the connection retries until the call times out.
    with SyncClient("http://127.0.0.1:9", disable_metadata_lookup=True, timeout=0.2) as client:
        with pytest.raises(ActorError) as info:
            client.counter.get_or_create(["k"]).connect(open_timeout=None).close()
        assert info.value.code == "timeout"


def test_closed_client() -> None:
    client = SyncClient("http://127.0.0.1:1", transport=RecordingTransport(counter_server()))
    client.close()
    client.close()
    with pytest.raises(ActorError) as info:
        client.counter.get_or_create(["k"]).increment(1)
    assert info.value.code == "client_closed"


def test_bad_settings_fail_before_starting_a_thread() -> None:
    before = threading.active_count()
    with pytest.raises(ValueError):
        SyncClient("ftp://x")
    assert threading.active_count() == before


def test_settings_and_state_read_through() -> None:
    transport = RecordingTransport(counter_server())
    client = SyncClient("http://127.0.0.1:1", namespace="ns", encoding="json", transport=transport)
    assert client.namespace == "ns" and client.config.encoding == "json"
    handle = client.counter.get_or_create(["k"], params={"user": "u"})
    assert handle.params == {"user": "u"} and handle.query is handle.handle.query
    assert handle.query.name == "counter"
    assert client.get("counter", "k").params is None
    assert not client.closed
    client.close()
    assert client.closed


def test_connection_closed_and_start(server: ThreadedServer) -> None:
    endpoint = server.server.endpoint
    with SyncClient(endpoint, disable_metadata_lookup=True) as client:
        conn = client.counter.get_or_create(["k"]).connect()
        conn.start()  # already started by connect(): a no-op
        assert not conn.closed and conn.conn_id == conn.connection_id is not None
        conn.close()
        assert conn.closed and conn.status == "idle"


def test_members_carry_the_async_signatures() -> None:
    for name in ("send", "fetch", "connect", "action"):
        sync_sig = inspect.signature(getattr(SyncActorHandle, name))
        async_sig = inspect.signature(getattr(ActorHandle, name))
        assert list(sync_sig.parameters) == list(async_sig.parameters)
    assert SyncActorHandle.send.__doc__ == ActorHandle.send.__doc__
    assert SyncActorHandle.connect.__doc__ != ActorHandle.connect.__doc__

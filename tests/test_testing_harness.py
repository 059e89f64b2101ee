"""setup_test behaves like the server: the real client, the wire encodings, the same errors,
the whole handle API, and a fake clock (``t.advance``) that settles what came due."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError

from rivetkit import ActorOptions, Response, UserError, actor, setup
from rivetkit.client import ActorError, Client, RetryOptions
from rivetkit.errors import RivetError
from rivetkit.server import serve_in_background
from rivetkit.testing import RuntimeClient, TestClient, setup_runtime, setup_test

ENCODINGS = ["json", "cbor", "bare"]

box = actor("box", state={"items": [], "fired": []})


@box.action
def put(c: Any, item: Any) -> int:
    c.state["items"].append(item)
    c.broadcast("put", item)
    return len(c.state["items"])


@box.action
def items(c: Any) -> list[Any]:
    return list(c.state["items"])


@box.action
def echo(c: Any, value: Any) -> Any:
    return value


@box.action
def a_datetime(c: Any) -> Any:
    return dt.datetime(2026, 1, 2, 3, 4, 5)


@box.action
def a_tuple(c: Any) -> Any:
    return (1, "two")


@box.action
def break_state(c: Any) -> None:
    c.state["bad"] = object()


@box.action
def refuse(c: Any) -> None:
    raise UserError("no way", code="no_way", metadata={"why": "test"})


@box.action
async def remind(c: Any, seconds: float, text: str) -> str:
    return str(await c.schedule.after(seconds, "fire", text))


@box.action
def fire(c: Any, text: str) -> None:
    c.state["fired"].append(text)
    c.broadcast("fired", text)


@box.action
def fired(c: Any) -> list[str]:
    return list(c.state["fired"])


@box.on_websocket
async def box_socket(c: Any, ws: Any) -> None:
    await ws.send(f"hello {ws.request.path}")
    async for message in ws:
        if message == "close":
            await ws.close(4000, "asked to")
            return
        await ws.send(str(message).upper())


@box.on_request
def box_request(c: Any, request: Any) -> Any:
    return Response.json({"path": request.path, "count": len(c.state["items"])})


sleepy = actor("sleepy", state={"n": 0}, options=ActorOptions(sleep_timeout=30, action_timeout=10))


@sleepy.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@sleepy.action
async def stall(c: Any) -> None:
    await asyncio.sleep(1000)


@sleepy.action
def nap(c: Any) -> None:
    c.sleep()


worker = actor("worker", state={"done": 0})


@worker.run
async def consume(c: Any) -> None:
    async for job in c.queue.iter(["jobs"], completable=True):
        c.state["done"] += 1
        await job.complete({"doubled": 2 * job.body["x"]})


registry = setup(use=[box, sleepy, worker])


def live_tasks() -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


@pytest.mark.asyncio
async def test_the_test_client_is_the_real_client() -> None:
    async with setup_test(registry) as t:
        assert isinstance(t, Client) and isinstance(t, TestClient)
        assert t.encoding == "json"
        handle = t.box.get_or_create(["a"])
        assert await handle.put("x") == 1
        assert await handle.action("items") == ["x"]
        actor_id = await handle.resolve()
        assert await t.get_for_id("box", actor_id).items() == ["x"]
        created = await t.box.create(["b"])
        assert await created.put(1) == 1 and created.actor_id is not None
        assert actor_id in t.runtime.instances  # the live runtime is there
        with pytest.raises(ActorError) as info:
            await handle.refuse()
        assert isinstance(info.value, RivetError)
        assert (info.value.group, info.value.code, info.value.message) == (
            "user",
            "no_way",
            "no way",
        )
        assert info.value.metadata == {"why": "test"}


@pytest.mark.asyncio
async def test_client_options_pass_through_and_get_fails_fast() -> None:
    retry = RetryOptions(get_attempts=1)
    async with setup_test(registry, retry=retry, encoding="cbor") as t:
        assert t.encoding == "cbor"
        with pytest.raises(ActorError) as info:
            await t.box.get(["missing"]).items()
        assert (info.value.group, info.value.code) == ("actor", "not_found")
    with pytest.raises(ValueError, match="encoding"):
        async with setup_test(registry, encoding="msgpack"):
            pass


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_values_go_through_the_wire_encoding(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        handle = t.box.get_or_create(["v"])
        assert await handle.a_tuple() == [1, "two"]  # a tuple arrives as a list
        assert await handle.echo({"n": 1, "b": b"\x00\x01"}) == {"n": 1, "b": b"\x00\x01"}
        with pytest.raises(ActorError) as info:
            await handle.a_datetime()
        assert (info.value.group, info.value.code) == ("actor", "invalid_output")


@pytest.mark.asyncio
async def test_the_harness_answers_what_the_real_server_answers() -> None:
    """Same group, code, message and metadata for an output the wire cannot carry and for
    state that cannot be saved, in the harness and from ``rivetkit serve``'s app."""

    async def answers(client: Client) -> list[tuple[str, str, str, Any]]:
        handle = client.box.get_or_create(["same"])
        seen = []
        for action in ("a_datetime", "break_state"):
            with pytest.raises(ActorError) as info:
                await handle.action(action)
            error = info.value
            message = re.sub(r"0x[0-9a-f]+", "0x?", error.message)  # object addresses
            seen.append((error.group, error.code, message, error.metadata))
        return seen

    for encoding in ("json", "cbor"):
        async with setup_test(registry, encoding=encoding) as t:
            in_test = await answers(t)
        async with (
            serve_in_background(registry) as endpoint,
            Client(endpoint, encoding=encoding) as client,
        ):
            served = await answers(client)
        assert in_test == served
        assert [a[:2] for a in in_test] == [
            ("actor", "invalid_output"),
            ("actor", "invalid_state"),
        ]
        assert in_test[1][3] == {"path": "state['bad']"}


@pytest.mark.parametrize("encoding", ["json", "cbor"])
@pytest.mark.asyncio
async def test_unsaveable_state_is_refused_and_undone(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        handle = t.box.get_or_create(["s"])
        await handle.put("kept")
        with pytest.raises(ActorError) as info:
            await handle.break_state()
        assert (info.value.code, info.value.metadata) == ("invalid_state", {"path": "state['bad']"})
        assert await handle.items() == ["kept"]


@pytest.mark.asyncio
async def test_connect_events_queue_and_fetch() -> None:
    async with setup_test(registry) as t:
        handle = t.box.get_or_create(["c"])
        async with handle.connect() as conn:
            seen: list[Any] = []
            conn.on("put", seen.append)
            stream = conn.events("put")
            assert await conn.put("one") == 1
            await handle.put("two")  # an HTTP call; the connection still gets the event
            assert [(await stream.__anext__()).args for _ in range(2)] == [["one"], ["two"]]
            assert seen == ["one", "two"]
            waiting = asyncio.ensure_future(conn.next_event("put", timeout=5))
            await t.settle()  # subscribed
            await handle.put("three")
            assert await waiting == ["three"]
        response = await handle.fetch("/hello")
        assert response.status_code == 200
        assert response.json() == {"path": "/hello", "count": 3}
        job = t.worker.get_or_create(["w"])
        result = await job.send("jobs", {"x": 21}, wait=True, timeout=5)
        assert result is not None
        assert (result.status, result.response) == ("completed", {"doubled": 42})


@pytest.mark.asyncio
async def test_raw_websocket_and_what_is_left_open_is_closed_on_exit() -> None:
    async with setup_test(registry) as t:
        handle = t.box.get_or_create(["ws"])
        ws = await handle.websocket("/chat")
        assert await ws.recv() == "hello /chat"
        await ws.send("hi")
        assert await ws.recv() == "HI"
        await ws.send("close")
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "asked to")
        left_open = await handle.websocket("/left-open")
        assert await left_open.recv() == "hello /left-open"
    assert left_open.close_code == 1001  # the harness closed it on exit
    assert t.server.sockets == frozenset()


@pytest.mark.asyncio
async def test_client_method_names_never_become_action_calls() -> None:
    async with setup_test(registry) as t:
        handle = t.box.get_or_create(["g"])
        with pytest.raises(AttributeError):
            handle.next_event  # noqa: B018 (a connection's method, not an action)
    async with setup_runtime(registry) as r:
        assert isinstance(r, RuntimeClient)
        runtime_handle = r.box.get_or_create(["g"])
        with pytest.raises(AttributeError, match="setup_test"):
            runtime_handle.connect  # noqa: B018


@pytest.mark.asyncio
async def test_advance_fires_a_schedule_and_its_event() -> None:
    async with setup_test(registry) as t:
        handle = t.box.get_or_create(["timer"])
        async with handle.connect() as conn:
            fired_events: list[str] = []
            conn.on("fired", fired_events.append)
            before = t.now()
            await handle.remind(3600, "an hour later")
            await t.advance(3599)
            assert await handle.fired() == []
            await t.advance(1)  # due now: fired and finished when advance returns
            assert await handle.fired() == ["an hour later"]
            await t.settle()
            assert fired_events == ["an hour later"]
            assert t.now() - before >= 3600


@pytest.mark.asyncio
async def test_advance_lets_an_idle_actor_sleep_with_its_state_saved() -> None:
    async with setup_test(registry) as t:
        handle = t.sleepy.get_or_create(["z"])
        assert await handle.bump() == 1
        actor_id = await handle.resolve()
        await t.advance(10)
        assert actor_id in t.runtime.instances  # sleep_timeout is 30 s
        await t.advance(25)
        assert actor_id not in t.runtime.instances  # asleep: stopped, state saved
        assert await handle.bump() == 2  # woken with its state


@pytest.mark.asyncio
async def test_a_connection_hibernates_with_its_actor() -> None:
    async with setup_test(registry) as t:
        handle = t.sleepy.get_or_create(["hib"])
        async with handle.connect() as conn:
            assert await conn.bump() == 1
            actor_id = await handle.resolve()
            await t.advance(31)
            assert actor_id in t.runtime.instances  # an open connection keeps it awake
            await conn.nap()  # c.sleep(): the connection hibernates
            await t.settle()
            assert actor_id not in t.runtime.instances  # asleep, the socket kept open
            assert conn.status == "connected"
            assert await conn.bump() == 2  # the message wakes it, on the same socket


@pytest.mark.asyncio
async def test_advance_runs_out_an_action_timeout() -> None:
    async with setup_test(registry) as t:
        handle = t.sleepy.get_or_create(["slow"])
        call = asyncio.ensure_future(handle.stall())
        await t.settle()
        assert not call.done()
        await t.advance(11)  # action_timeout is 10 s
        assert call.done()  # timed out and answered before advance returned
        with pytest.raises(ActorError) as info:
            await call
        assert (info.value.group, info.value.code) == ("actor", "action_timed_out")


@pytest.mark.asyncio
async def test_advance_refuses_to_go_back() -> None:
    async with setup_test(registry) as t:
        with pytest.raises(ValueError, match="forward"):
            await t.advance(-1)


@pytest.mark.asyncio
async def test_exit_closes_connections_and_sockets_and_leaves_no_task() -> None:
    before = set(live_tasks())
    async with setup_test(registry) as t:
        handle = t.box.get_or_create(["bye"])
        conn = handle.connect()
        await conn
        await handle.put(1)
        await t.advance(1)
        loop = asyncio.get_running_loop()
        assert "time" in vars(loop)  # the fake clock is installed...
    assert "time" not in vars(loop)  # ...and removed on exit
    assert set(live_tasks()) <= before
    assert t.closed


def test_advance_under_uvloop_says_why_it_cannot() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with setup_test(registry) as t:
            assert await t.box.get_or_create(["u"]).put(1) == 1  # the harness itself works
            with pytest.raises(RuntimeError, match="uvloop"):
                await t.advance(1)

    uvloop.run(main())

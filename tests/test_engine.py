"""Engine mode end to end: our envoy on the real Rivet Engine (npm ``@rivetkit/engine-cli``).

One engine for the session (``rivet_engine``, tests/engine_fixtures.py) on free loopback ports;
one envoy (a Runtime over an EngineDriver) per module in its own pool. Clients go through the
engine's gateway exactly as they would in production: the Python client, raw httpx and raw
WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from engine_fixtures import EngineEnv as Env
from engine_fixtures import engine_env, envoy, new_pool
from server_actors import load_example
from server_actors import registry as server_registry

from rivetkit import actor, setup
from rivetkit.client import ActorError, Client
from rivetkit.drivers.engine import EngineDriver, EngineError, LocalEngine
from rivetkit.drivers.engine import kv as engine_kv
from rivetkit.runtime.live_actors import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="module")

timer = load_example("timer").timer

probe = actor("probe", state={"n": 0, "wakes": 0})


@probe.on_wake
def probe_wake(c: Any) -> None:
    c.state["wakes"] += 1


@probe.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@probe.action
def info(c: Any) -> dict[str, Any]:
    return {"n": c.state["n"], "wakes": c.state["wakes"], "generation": c.generation}


@probe.action
def nap(c: Any) -> int:
    c.sleep()
    return int(c.state["n"])


@probe.action
def vanish(c: Any) -> None:
    c.destroy()


@probe.action(name="kvRoundTrip")
async def kv_round_trip(c: Any) -> dict[str, Any]:
    await c.kv.put("a", b"1")
    await c.kv.batch_put({f"b/{i:03d}": str(i).encode() for i in range(200)})
    got = await c.kv.get("a")
    listed = await c.kv.list_prefix("b/")
    reverse = await c.kv.list_prefix("b/", reverse=True, limit=3)
    await c.kv.delete_range("b/010", "b/190")
    left = await c.kv.list_prefix("b/")
    await c.kv.delete("a")
    return {
        "got": got.decode(),
        "listed": len(listed),
        "first": listed[0][0].decode(),
        "reverse": [key.decode() for key, _ in reverse],
        "left": len(left),
        "gone": await c.kv.get("a"),
    }


registry = setup(use=[*server_registry.actors.values(), timer, probe])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(rivet_engine: LocalEngine) -> AsyncIterator[Env]:
    async with engine_env(registry, rivet_engine) as env:
        yield env


async def until(predicate: Any, timeout: float = 30.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(interval)


# MARK: actions and connections


@pytest.mark.parametrize("encoding", ["bare", "json", "cbor"])
async def test_counter_actions_and_errors(env: Env, encoding: str) -> None:
    async with env.client(encoding) as client:
        handle = client.counter.get_or_create(["k", encoding])
        assert await handle.increment(5) == 5
        assert await handle.increment() == 6
        assert await handle.getCount() == 6
        with pytest.raises(ActorError) as info:
            await handle.increment(-1)
        assert (info.value.group, info.value.code) == ("user", "negative_amount")
        assert info.value.message == "amount must be >= 0"
        with pytest.raises(ActorError) as info:
            await handle.nope()
        assert (info.value.group, info.value.code) == ("actor", "action_not_found")
        assert await client.counter.get_or_create(["other", encoding]).getCount() == 0
    # The actors run here, placed by the engine.
    assert "running" in env.driver.loaded().values()


async def test_get_or_create_create_get_for_id(env: Env) -> None:
    async with env.client() as client:
        goc = client.counter.get_or_create(["r"])
        actor_id = await goc.resolve()
        assert await goc.resolve() == actor_id
        assert await client.counter.get(["r"]).resolve() == actor_id
        await goc.increment(2)
        by_id = client.get_for_id("counter", actor_id)
        assert await by_id.increment(1) == 3
        created = await client.counter.create(["fresh"])
        assert created.actor_id and created.actor_id != actor_id
        assert await created.increment(4) == 4
        assert await client.counter.get(["fresh"]).getCount() == 4
        with pytest.raises(ActorError) as info:
            await client.counter.create(["fresh"])
        # The engine answers a taken key with duplicate_key, or (when it loses the race with
        # its own key reservation) destroyed_during_creation.
        assert info.value.code in ("duplicate_key", "destroyed_during_creation")
        with pytest.raises(ActorError) as info:
            await client.counter.get(["missing"]).getCount()
        assert (info.value.group, info.value.code) == ("actor", "not_found")
    # The driver's placement methods, over the engine's HTTP API.
    driver = env.driver
    record = await driver.find_actor("counter", ["r"])
    assert record is not None and record.actor_id == actor_id
    assert (await driver.get_actor(actor_id)) is not None
    assert actor_id in {r.actor_id for r in await driver.list_actors("counter")}
    record, created_now = await driver.get_or_create_actor("counter", ["r"], None)
    assert (record.actor_id, created_now) == (actor_id, False)


async def test_connection_events(env: Env) -> None:
    async with env.client("cbor") as client:
        handle = client.counter.get_or_create(["conn"])
        async with handle.connect() as conn, handle.connect() as other:
            mine: list[int] = []
            theirs: list[int] = []
            conn.on("newCount", mine.append)
            other.on("newCount", theirs.append)
            await conn.getCount()
            await other.getCount()
            assert await conn.increment(1) == 1
            assert await handle.increment(10) == 11  # HTTP action, events to both sockets
            await until(lambda: mine == [1, 11] and theirs == [1, 11])
            with pytest.raises(ActorError) as info:
                await conn.increment(-5)
            assert info.value.code == "negative_amount"


async def test_chat_params_and_refusal(env: Env) -> None:
    async with env.client() as client:
        room = client.chat.get_or_create(["room"])
        async with room.connect({"user": "ann"}) as ann, room.connect({"user": "bob"}) as bob:
            heard: list[tuple[str, str]] = []
            bob.on("message", lambda user, text: heard.append((user, text)))
            await bob.history()
            assert await ann.post("hi") == 1
            await until(lambda: heard == [("ann", "hi")])
        with pytest.raises(ActorError) as info:
            await room.connect()
        assert (info.value.group, info.value.code) == ("user", "missing_user")


async def test_raw_http_and_websocket(env: Env) -> None:
    async with env.client() as client:
        actor_id = await client.misc.get_or_create(["raw"]).resolve()
    base = env.engine.endpoint
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.post(f"/gateway/{actor_id}/request/echo?a=1&b=2", content=b"body")
        assert response.status_code == 201
        assert response.content == b"body"
        assert response.headers["x-echo-method"] == "POST"
        assert response.headers["x-echo-query"] == "a=1&b=2"
        assert response.headers["x-rivet-actor"] == actor_id
        # A body the gateway streams to us in chunks.
        big = bytes(range(256)) * 2048

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        response = await http.post(f"/gateway/{actor_id}/request/echo", content=chunks())
        assert response.status_code == 201 and response.content == big
        response = await http.get(f"/gateway/{actor_id}/request/fail")
        assert response.status_code == 500
        assert response.json()["group"] == "core"
        response = await http.get(f"/gateway/{actor_id}/metadata")
        assert response.json()["runtime"] == "rivetkit"
    # The engine's gateway wants a subprotocol on every WebSocket.
    url = base.replace("http://", "ws://") + f"/gateway/{actor_id}/websocket/room"
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol("rivet")]) as ws:
        assert await ws.recv() == "hello /room"
        await ws.send("ping")
        assert await ws.recv() == "ping"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
        await ws.send("bye")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)


# MARK: sleep, wake, destroy


async def test_engine_driven_sleep_and_wake_keep_state(env: Env) -> None:
    async with env.client() as client:
        handle = client.probe.get_or_create(["sleeper"])
        assert await handle.bump() == 1
        assert await handle.bump() == 2
        actor_id = await handle.resolve()
        first = await handle.info()
        # The engine asks the actor to sleep (POST /actors/{id}/sleep).
        await env.driver.api.sleep_actor(actor_id)
        await until(lambda: actor_id not in env.driver.loaded())
        # A request through the gateway wakes it: a new generation, the state kept.
        after = await handle.info()
        assert after["n"] == 2
        assert after["wakes"] == first["wakes"] + 1
        assert after["generation"] > first["generation"]


async def test_actor_sleep_intent(env: Env) -> None:
    async with env.client() as client:
        handle = client.probe.get_or_create(["napper"])
        await handle.bump()
        actor_id = await handle.resolve()
        generation = (await handle.info())["generation"]
        assert await handle.nap() == 1  # c.sleep(): an intent to the engine
        await until(lambda: actor_id not in env.driver.loaded())
        assert await handle.bump() == 2
        assert (await handle.info())["generation"] > generation


async def test_idle_sleep(env: Env) -> None:
    async with env.client() as client:
        handle = client.sleepy.get_or_create(["idle"])
        assert await handle.bump() == 1
        actor_id = await handle.resolve()
        await until(lambda: actor_id not in env.driver.loaded(), timeout=30)
        assert await handle.bump() == 2


async def test_actor_destroy_intent_and_manager_destroy(env: Env) -> None:
    async with env.client() as client:
        handle = client.probe.get_or_create(["doomed"])
        await handle.bump()
        actor_id = await handle.resolve()
        await handle.vanish()  # c.destroy(): StopIntent, then the engine destroys it

        async def destroyed(aid: str) -> bool:
            records = await env.driver.api.get_actors([aid])
            return bool(records) and records[0].destroy_ts is not None

        deadline = time.monotonic() + 30
        while not await destroyed(actor_id):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        with pytest.raises(ActorError) as info:
            await client.get_for_id("probe", actor_id).bump()
        assert info.value.group in ("actor", "guard")
        # A new actor under the same key starts from scratch (the KV went with the old one).
        assert await client.probe.get_or_create(["doomed"]).bump() == 1
        other = await client.probe.create(["doomed-2"])
        await other.bump()
        await env.driver.destroy_actor(other.actor_id)
        assert await destroyed(other.actor_id)
        assert other.actor_id not in env.driver.loaded()


# MARK: KV


async def test_kv_through_the_runtime(env: Env) -> None:
    async with env.client() as client:
        result = await client.probe.get_or_create(["kv"]).kvRoundTrip()
    assert result == {
        "got": "1",
        "listed": 200,
        "first": "b/000",
        "reverse": ["b/199", "b/198", "b/197"],
        "left": 20,
        "gone": None,
    }


async def test_kv_driver_round_trips(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    async with env.client() as client:
        actor_id = await client.counter.get_or_create(["kv-driver"]).resolve()
    driver = env.driver
    prefix = b"\x09test/"
    puts = [(prefix + i.to_bytes(2, "big"), b"v%d" % i) for i in range(300)]
    await driver.kv_write(actor_id, puts=puts)  # split in 128-key requests
    keys = [key for key, _ in puts] + [prefix + b"missing"]
    values = await driver.kv_get(actor_id, keys)
    assert values[:300] == [value for _, value in puts] and values[300] is None
    # Paged listing (small pages force several requests).
    monkeypatch.setattr(engine_kv, "LIST_PAGE", 64)
    listed = await driver.kv_list(actor_id, prefix, prefix + b"\xff")
    assert listed == puts
    assert await driver.kv_list(actor_id, prefix, prefix + b"\xff", reverse=True) == puts[::-1]
    assert await driver.kv_list(actor_id, prefix, prefix + b"\xff", limit=70) == puts[:70]
    assert await driver.kv_list(actor_id, prefix, None, reverse=True, limit=2) == puts[:-3:-1]
    # Range bounds: start included, end excluded; keys with 0x00 and 0xff bytes sort as bytes.
    odd = [(prefix + b"\xff", b"ff"), (prefix + b"\xff\x00", b"ff00"), (prefix + b"\x00", b"00")]
    await driver.kv_write(actor_id, puts=odd)
    tail = await driver.kv_list(actor_id, prefix + b"\x01\x2b", None)
    assert [key for key, _ in tail] == [key for key, _ in puts[299:]] + [
        prefix + b"\xff",
        prefix + b"\xff\x00",
    ]
    # Puts and deletes together: the final state of "deletes, then puts".
    await driver.kv_write(
        actor_id, puts=[(prefix + b"\x00", b"new")], deletes=[prefix + b"\x00", prefix + b"\xff"]
    )
    assert await driver.kv_get(actor_id, [prefix + b"\x00", prefix + b"\xff"]) == [b"new", None]
    await driver.kv_delete_range(actor_id, prefix + b"\x00\x05", prefix + b"\x01\x00")
    remaining = await driver.kv_list(actor_id, prefix, prefix + b"\x01\x00")
    assert [key for key, _ in remaining] == [prefix + b"\x00"] + [key for key, _ in puts[:5]]
    await driver.kv_delete_range(actor_id, prefix, None)
    assert await driver.kv_list(actor_id, prefix, None) == []
    # The engine's own limits come back as KV errors.
    with pytest.raises(Exception) as info:
        await driver.kv_write(actor_id, puts=[(prefix + b"huge", b"x" * (200 * 1024))])
    assert getattr(info.value, "group", None) == "kv"


# MARK: alarms


async def test_alarm_wakes_a_sleeping_actor(env: Env) -> None:
    async with env.client() as client:
        handle = client.timer.get_or_create(["late"])
        await handle.remindIn(1.4, "late")
        actor_id = await handle.resolve()
        # The timer sleeps after 1 s idle; the engine wakes it at the alarm, with no request.
        await until(lambda: actor_id not in env.driver.loaded(), timeout=30)
        await until(lambda: actor_id in env.driver.loaded(), timeout=30)
        await until(
            lambda: (
                (inst := env.runtime.instances.get(actor_id)) is not None
                and inst.state is not None
                and inst.state["fired"] == ["late"]
            ),
            timeout=30,
        )
        assert await handle.fired() == ["late"]


async def test_alarm_fires_while_awake(env: Env) -> None:
    async with env.client() as client:
        handle = client.timer.get_or_create(["soon"])
        async with handle.connect() as conn:  # the connection keeps it awake
            fired: list[str] = []
            conn.on("fired", fired.append)
            await conn.fired()
            await conn.remindIn(0.3, "soon")
            await until(lambda: fired == ["soon"], timeout=30)


# MARK: the envoy session


async def test_reconnect_keeps_serving(env: Env) -> None:
    envoy_client = env.driver.envoy
    assert envoy_client is not None
    connects = envoy_client.stats["connects"]
    async with env.client() as client:
        handle = client.counter.get_or_create(["reconnect"])
        assert await handle.increment(1) == 1
        ws = envoy_client._ws
        assert ws is not None
        ws.transport.abort()  # the socket drops under us
        await until(lambda: envoy_client.stats["connects"] > connects and envoy_client.ready)
        # Same envoy key: the actor stays placed here, with its state.
        assert await handle.increment(1) == 2
    status = env.driver.status()
    assert status["connected"] and status["stats"]["disconnects"] >= 1


async def test_refusals_are_clear(rivet_engine: LocalEngine) -> None:
    driver = EngineDriver(rivet_engine.endpoint, namespace="no-such-namespace", pool=new_pool())
    with pytest.raises(EngineError) as info:
        await driver.start(Runtime(registry, driver))
    assert info.value.code == "namespace_not_found"
    driver = EngineDriver(rivet_engine.endpoint, pool=new_pool(), register_pool=False)
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        await driver.start(Runtime(registry, driver))
    assert "pool is not registered" in info.value.message
    assert time.monotonic() - started < 30  # an answer, not a retry loop
    driver = EngineDriver("http://127.0.0.1:9", pool="p")
    with pytest.raises(EngineError) as info:
        await driver.start(Runtime(registry, driver))
    assert info.value.code == "unreachable"


async def test_graceful_shutdown_saves_and_moves_actors(rivet_engine: LocalEngine) -> None:
    pool = new_pool()
    endpoint = rivet_engine.endpoint
    async with envoy(registry, rivet_engine, pool=pool) as (_, driver):
        async with Client(endpoint, pool=pool, encoding="json") as client:
            handle = client.counter.get_or_create(["drained"])
            assert await handle.increment(7) == 7
            actor_id = await handle.resolve()
        assert driver.loaded() == {actor_id: "running"}
        started = time.monotonic()
    assert time.monotonic() - started < 30  # not the 60 s drain timeout
    api_driver = EngineDriver(endpoint, pool=pool)
    try:
        (record,) = await api_driver.api.get_actors([actor_id])
        assert record.destroy_ts is None  # asleep, not destroyed
        raw = await api_driver.api.request("GET", "/actors", params={"actor_ids": actor_id})
        assert raw["actors"][0]["sleep_ts"] is not None
        assert raw["actors"][0].get("error") in (None, "no_envoys"), json.dumps(raw)
    finally:
        await api_driver.api.aclose()
    # Another envoy of the pool gets the actor back with its saved state.
    async with (
        envoy(registry, rivet_engine, pool=pool),
        Client(endpoint, pool=pool, encoding="json") as client,
    ):
        assert await client.counter.get_or_create(["drained"]).getCount() == 7


async def test_engine_with_a_token(tmp_path: Any) -> None:
    from engine_fixtures import new_engine

    engine = new_engine(tmp_path / "engine", token="s3cret")
    await asyncio.to_thread(engine.start)
    try:
        for token in (None, "wrong"):
            driver = EngineDriver(engine.endpoint, pool="p", token=token)
            with pytest.raises(EngineError) as info:
                await driver.start(Runtime(registry, driver))
            assert info.value.code == "forbidden", info.value
        async with (
            envoy(registry, engine, pool="p", token="s3cret"),
            Client(engine.endpoint, pool="p", token="s3cret", encoding="json") as c,
        ):
            assert await c.counter.get_or_create(["t"]).increment(2) == 2
    finally:
        await asyncio.to_thread(engine.stop)

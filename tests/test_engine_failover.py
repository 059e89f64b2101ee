"""An envoy and its clients that know several engine nodes (issue 21, part F).

* :class:`~rivetkit.drivers.engine.endpoints.Endpoints`: parsing, errors, rotation;
* with the ordinary test engine and a dead port listed first: the driver starts, serves
  actors, the API client and ``c.client()`` (HTTP and WebSocket) move to the live node; every
  node dead: one error naming them all;
* with two engine nodes on PostgreSQL and NATS (``require_cluster_tools(2)``): an in-process
  envoy given ``[B, A]`` connects to B; B is SIGKILLed; the envoy reconnects to A and its
  actors answer through A with their saved state; a ``rivetkit serve --engine A,B`` child
  connects to A; A (the database lease holder) is SIGKILLed; the child reconnects to B and
  its actors answer through B with their saved state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from engine_fixtures import FAST_RETRY, ROOT, answered, envoy, free_port, new_pool
from hypothesis import given
from hypothesis import strategies as st
from test_engine_cli import Serve

from rivetkit import actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.drivers.engine import EngineDriver, LocalEngine
from rivetkit.drivers.engine.actor_calls import EngineActorClient
from rivetkit.drivers.engine.api import EngineApi
from rivetkit.drivers.engine.endpoints import Endpoints, parse_endpoints
from rivetkit.errors import RivetError
from rivetkit.runtime.live_actors import Runtime

counter = actor("counter", state={"count": 0})


@counter.action
async def increment(c: Any, n: int = 1) -> int:
    c.state["count"] += n
    c.broadcast("newCount", c.state["count"])
    await c.save_state(immediate=True)
    return int(c.state["count"])


@counter.action
def count(c: Any) -> int:
    return int(c.state["count"])


caller = actor("caller", state={})


@caller.action
async def bump(c: Any, key: str) -> int:
    """Increment another actor through ``c.client()`` (the engine's gateway)."""
    result: int = await c.client().counter.get_or_create([key]).increment(1)
    return result


registry = setup(use=[counter, caller])

DEAD = "http://127.0.0.1:{}"


# -- Endpoints --------------------------------------------------------------------------------


def test_one_url_stays_one() -> None:
    endpoints = Endpoints("http://127.0.0.1:6420/")
    assert endpoints.urls == ("http://127.0.0.1:6420",)
    assert endpoints.current == "http://127.0.0.1:6420"
    assert endpoints.advance() == "http://127.0.0.1:6420"
    assert endpoints.describe() == "http://127.0.0.1:6420"


def test_comma_separated_and_sequences_parse_alike() -> None:
    text = " http://a:6420 , https://b:6420/,http://a:6420"
    assert parse_endpoints(text) == ("http://a:6420", "https://b:6420")
    assert parse_endpoints(["http://a:6420", "https://b:6420/"]) == parse_endpoints(text)
    assert Endpoints(Endpoints(text)).urls == ("http://a:6420", "https://b:6420")


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ("", "is empty"),
        ("http://a:6420,,http://b:6420", "endpoint 2 of 3 is empty"),
        ([], "no engine endpoint"),
        ("a:6420", "not an http:// or https:// URL"),
        ("ws://a:6420", "not an http:// or https:// URL"),
        ("http://", "not an http:// or https:// URL"),
        ("http://a:6420?x=1", "must not have a query"),
    ],
)
def test_bad_endpoints_are_refused_clearly(urls: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Endpoints(urls)


def test_advance_rotates_and_skips_a_dead_node_once() -> None:
    endpoints = Endpoints("http://a,http://b,http://c")
    assert endpoints.from_current() == ["http://a", "http://b", "http://c"]
    assert endpoints.advance("http://a") == "http://b"
    # A second user noticing the same dead node does not skip the live one.
    assert endpoints.advance("http://a") == "http://b"
    assert endpoints.from_current() == ["http://b", "http://c", "http://a"]
    assert endpoints.advance() == "http://c"
    assert endpoints.advance() == "http://a"


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=20))
def test_rotation_visits_every_node_in_order(size: int, steps: int) -> None:
    urls = [f"http://n{i}:6420" for i in range(size)]
    endpoints = Endpoints(urls)
    for _ in range(steps):
        endpoints.advance(endpoints.current)
    assert endpoints.current == urls[steps % size]
    assert sorted(endpoints.from_current()) == sorted(urls)
    assert endpoints.from_current()[0] == endpoints.current


# -- one real engine, a dead node listed first ------------------------------------------------


@pytest.fixture
def dead_url() -> str:
    return DEAD.format(free_port())


@pytest.mark.asyncio
async def test_api_moves_past_a_dead_node(rivet_engine: LocalEngine, dead_url: str) -> None:
    api = EngineApi([dead_url, rivet_engine.endpoint])
    try:
        assert (await api.health())["status"] == "ok"
        assert api.endpoint == rivet_engine.endpoint
        pool = new_pool()
        assert await api.ensure_pool(pool)  # a PUT, then GETs: all on the live node
    finally:
        await api.aclose()


@pytest.mark.asyncio
async def test_every_node_dead_is_one_clear_error() -> None:
    urls = [DEAD.format(free_port()), DEAD.format(free_port())]
    api = EngineApi(urls)
    try:
        with pytest.raises(RivetError) as caught:
            await api.request("POST", "/actors", body={})
        assert (caught.value.group, caught.value.code) == ("engine", "unreachable")
        assert all(url in caught.value.message for url in urls)
    finally:
        await api.aclose()
    driver = EngineDriver(",".join(urls), pool=new_pool(), connect_timeout=10)
    with pytest.raises(RivetError) as caught:
        await Runtime(registry, driver).start()
    assert caught.value.code == "unreachable"
    assert all(url in caught.value.message for url in urls)


@pytest.mark.asyncio
async def test_envoy_starts_past_a_dead_node_and_serves(
    rivet_engine: LocalEngine, dead_url: str
) -> None:
    pool = new_pool()
    driver = EngineDriver(f"{dead_url},{rivet_engine.endpoint}", pool=pool)
    runtime = Runtime(registry, driver)
    await runtime.start()
    try:
        assert driver.endpoint == rivet_engine.endpoint
        assert driver.endpoints.urls == (dead_url, rivet_engine.endpoint)
        assert driver.status()["connected"]
        async with Client(rivet_engine.endpoint, pool=pool, retry=FAST_RETRY) as client:
            assert await client.counter.get_or_create(["a"]).increment(2) == 2
            # c.client() inside an actor, through the gateway of the node in use.
            assert await client.caller.get_or_create(["c"]).bump("a") == 3
            assert await client.counter.get(["a"]).count() == 3
    finally:
        await runtime.stop()


@pytest.mark.asyncio
async def test_actor_client_moves_past_a_dead_node(
    rivet_engine: LocalEngine, dead_url: str
) -> None:
    """The actors' client made while the dead node is current: HTTP and WebSocket calls
    are opened on the next node."""
    pool = new_pool()
    async with envoy(registry, rivet_engine, pool=pool):
        endpoints = Endpoints([dead_url, rivet_engine.endpoint])
        maker = EngineActorClient(endpoints, namespace="default", token=None, pool=pool)
        try:
            client = maker.shared()
            handle = client.counter.get_or_create(["ws"])
            assert await handle.increment(1) == 1
            assert maker.endpoint == rivet_engine.endpoint
            endpoints.advance()  # the dead node is current again: the WebSocket moves too
            seen: list[int] = []
            async with handle.connect() as conn:
                conn.on("newCount", seen.append)
                assert await conn.increment(1) == 2
            assert endpoints.current == rivet_engine.endpoint
            assert await handle.count() == 2
        finally:
            await maker.aclose()


# -- two engine nodes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Any]:
    from cluster_fixtures import Cluster, require_cluster_tools

    require_cluster_tools(2)
    running = Cluster(2)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@contextlib.asynccontextmanager
async def _clients(*urls: str, pool: str) -> AsyncIterator[list[Client]]:
    retry = RetryOptions(get_attempts=40, get_or_create_attempts=40, interval=0.25)
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Client(url, pool=pool, retry=retry)) for url in urls]


@pytest.mark.asyncio
async def test_envoy_reconnects_to_the_other_node(two_nodes: Any) -> None:
    """Given ``[B, A]`` the envoy connects to B; B is SIGKILLed: the envoy reconnects to A
    and its actors answer through A with their saved state."""
    node_a, node_b = two_nodes.engines
    pool = new_pool()
    driver = EngineDriver([node_b.endpoint, node_a.endpoint], pool=pool)
    runtime = Runtime(registry, driver)
    await runtime.start()
    try:
        assert driver.endpoint == node_b.endpoint
        assert driver.envoy is not None
        async with _clients(node_a.endpoint, pool=pool) as (via_a,):
            handles = [via_a.counter.get_or_create([f"k{i}"]) for i in range(5)]
            for i, handle in enumerate(handles):
                assert await handle.increment(i + 1) == i + 1
            connects = driver.envoy.stats["connects"]
            killed = time.monotonic()
            await asyncio.to_thread(node_b.kill)

            async def moved() -> None:
                assert driver.envoy is not None and driver.envoy.ready
                assert driver.envoy.stats["connects"] > connects
                assert driver.endpoint == node_a.endpoint

            await answered(moved, 60)
            reconnected = time.monotonic() - killed
            for i, handle in enumerate(handles):
                assert await answered(handle.count, 60) == i + 1
                assert await handle.increment(1) == i + 2
            print(
                f"\nnode B SIGKILLed: the envoy was on node A after {reconnected:.1f} s, its "
                f"actors answered through A after {time.monotonic() - killed:.1f} s"
            )
    finally:
        await runtime.stop()
        await asyncio.to_thread(two_nodes.restart, 1)


APP = ROOT / "tests" / "apps" / "engine_app.py"


@pytest.mark.asyncio
async def test_serve_with_two_engine_urls_fails_over(two_nodes: Any) -> None:
    """``rivetkit serve --engine A,B`` connects to A; A (the database lease holder) is
    SIGKILLed: the child reconnects to B and its actors answer through B with their saved
    totals. (Last in the module: node A stays down.)"""
    node_a, node_b = two_nodes.engines
    pool = new_pool()
    api = EngineApi(node_a.endpoint)
    try:
        await api.ensure_pool(pool)
    finally:
        await api.aclose()
    urls = f"{node_a.endpoint},{node_b.endpoint}"
    serve = Serve(str(APP), "--engine", urls, "--pool", pool, "--port", "0")
    try:
        line = await asyncio.to_thread(serve.wait_for, r"health and metrics on")
        assert urls.replace(",", ", ") in line.string
        await asyncio.to_thread(serve.wait_for, rf"envoy: connected to {node_a.endpoint}")
        async with _clients(node_a.endpoint, node_b.endpoint, pool=pool) as (via_a, via_b):
            for i in range(5):
                result = await via_a.tally.get_or_create([f"t{i}"]).add(i + 1)
                assert result["total"] == i + 1
            killed = time.monotonic()
            await asyncio.to_thread(node_a.kill)
            await asyncio.to_thread(serve.wait_for, rf"envoy: connected to {node_b.endpoint}", 120)
            reconnected = time.monotonic() - killed
            for i in range(5):
                handle = via_b.tally.get([f"t{i}"])
                assert (await answered(handle.total, 120))["total"] == i + 1
            assert (await via_b.tally.get(["t0"]).add(10))["total"] == 11
            print(
                f"\nnode A SIGKILLed: `rivetkit serve` was on node B after {reconnected:.1f} s,"
                f" its actors answered through B after {time.monotonic() - killed:.1f} s"
            )
        assert serve.stop() == 0, serve.output
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()

"""The manager API's lifecycle fields (``GET /actors``) as the Rivet Engine reports them.

Engine 2.3.19, read from its ``GET /actors``: a running actor has ``connectable_ts`` set and
``sleep_ts`` null; a sleeping one the reverse; ``start_ts`` is the first start (a wake does not
move it); a destroyed one has ``destroy_ts`` and neither. Embedded mode (a real server on
127.0.0.1) answers the same; engine mode is the engine's own answer about our envoy's actor.
No absolute time is asserted: only which fields are set and how they order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from engine_fixtures import FAST_RETRY, engine_env

from rivetkit import ActorOptions, actor, setup
from rivetkit.client import Client
from rivetkit.drivers.engine import LocalEngine
from rivetkit.runtime.lifecycle_times import LifecycleTimes
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio

#: The fields of the engine's actor JSON (engine 2.3.19); ours has ``error`` too.
ENGINE_FIELDS = {
    "actor_id",
    "name",
    "key",
    "namespace_id",
    "datacenter",
    "runner_name_selector",
    "crash_policy",
    "create_ts",
    "start_ts",
    "pending_allocation_ts",
    "connectable_ts",
    "sleep_ts",
    "reschedule_ts",
    "destroy_ts",
}

dozer = actor("dozer", state={"n": 0}, options=ActorOptions(sleep_timeout=0.2))


@dozer.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


registry = setup(use=[dozer])


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def awake(actor_json: dict[str, Any]) -> bool:
    return actor_json["connectable_ts"] is not None and actor_json["sleep_ts"] is None


def asleep(actor_json: dict[str, Any]) -> bool:
    return actor_json["sleep_ts"] is not None and actor_json["connectable_ts"] is None


async def check_lifecycle(http: httpx.AsyncClient, client: Client, endpoint: str) -> None:
    """Awake, asleep, awake again, destroyed: the fields at each step, on either driver."""
    handle = client.dozer.get_or_create(["life"])
    actor_id = await handle.resolve()

    async def get() -> dict[str, Any]:
        answer = await http.get(f"{endpoint}/actors", params={"actor_ids": actor_id})
        assert answer.status_code == 200, answer.text
        (one,) = answer.json()["actors"]
        assert set(one) >= ENGINE_FIELDS
        return one  # type: ignore[no-any-return]

    async with handle.connect() as conn:  # an open connection holds it awake meanwhile
        assert await conn.bump() == 1
        first = await get()
    assert awake(first), first
    assert first["pending_allocation_ts"] is None and first["destroy_ts"] is None
    assert first["create_ts"] <= first["start_ts"] <= first["connectable_ts"]
    slept: dict[str, Any] = {}

    async def is_asleep() -> bool:
        slept.update(await get())
        return asleep(slept)

    await until(is_asleep)  # no connection, idle for sleep_timeout: asleep
    assert slept["start_ts"] == first["start_ts"]
    assert slept["sleep_ts"] >= first["connectable_ts"]

    async with handle.connect() as conn:
        assert await conn.bump() == 2  # wakes it
        woken = await get()
    assert awake(woken), woken
    assert woken["start_ts"] == first["start_ts"]  # the first start, as the engine keeps it
    assert woken["connectable_ts"] >= slept["sleep_ts"]

    answer = await http.delete(f"{endpoint}/actors/{actor_id}")
    assert answer.status_code == 200, answer.text
    gone: dict[str, Any] = {}

    async def is_destroyed() -> bool:
        gone.update(await get())
        return gone["destroy_ts"] is not None

    await until(is_destroyed)
    assert gone["connectable_ts"] is None and gone["sleep_ts"] is None


async def test_embedded_manager_reports_awake_asleep_and_destroyed() -> None:
    async with (
        serve_in_background(registry) as endpoint,
        httpx.AsyncClient() as http,
        Client(endpoint, retry=FAST_RETRY) as client,
    ):
        await check_lifecycle(http, client, endpoint)


async def test_embedded_actor_not_run_yet_is_reported_asleep() -> None:
    """Created, never started in this process: a request would wake it, so it sleeps."""
    async with serve_in_background(registry) as endpoint, httpx.AsyncClient() as http:
        runtime = endpoint.app.runtime  # type: ignore[attr-defined]
        answer = await http.post(f"{endpoint}/actors", json={"name": "dozer", "key": "cold"})
        assert answer.status_code == 200, answer.text
        created = answer.json()["actor"]
        if created["actor_id"] not in runtime.instances:
            assert asleep(created) and created["start_ts"] is None
            assert created["sleep_ts"] >= created["create_ts"]


async def test_engine_reports_our_actor_awake_asleep_and_destroyed(
    rivet_engine: LocalEngine,
) -> None:
    async with (
        engine_env(registry, rivet_engine) as env,
        env.client() as client,
        httpx.AsyncClient(params={"namespace": "default"}) as http,
    ):
        await check_lifecycle(http, client, rivet_engine.endpoint)


async def test_lifecycle_times_follow_start_stop_and_destroy() -> None:
    now = [1000.0]
    times = LifecycleTimes(lambda: now[0])
    create = 900_000
    assert times.fields("a", create, None) == {
        "start_ts": None,
        "pending_allocation_ts": None,
        "connectable_ts": None,
        "sleep_ts": 1_000_000,  # not run here: asleep since this process started
    }
    times.starting("a")
    starting = times.fields("a", create, None)
    assert starting["connectable_ts"] is None and starting["sleep_ts"] is None
    now[0] = 1001.0
    times.started("a")
    assert times.fields("a", create, None)["connectable_ts"] == 1_001_000
    now[0] = 1002.0
    times.stopping("a")
    assert times.fields("a", create, None)["connectable_ts"] is None
    times.stopped("a")
    assert times.fields("a", create, None) == {
        "start_ts": 1_001_000,
        "pending_allocation_ts": None,
        "connectable_ts": None,
        "sleep_ts": 1_002_000,
    }
    now[0] = 1003.0
    times.starting("a")
    times.started("a")
    assert times.fields("a", create, None)["start_ts"] == 1_001_000  # the first start
    assert times.fields("a", create, None)["sleep_ts"] is None
    destroyed = times.fields("a", create, 1_004_000)
    assert destroyed["connectable_ts"] is None and destroyed["sleep_ts"] is None
    times.forget("a")
    assert times.fields("a", create, 1_004_000)["start_ts"] is None


async def test_lifecycle_times_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from rivetkit.runtime import lifecycle_times

    monkeypatch.setattr(lifecycle_times, "MAX_ACTORS", 3)
    times = LifecycleTimes(lambda: 1000.0)
    times.starting("running")
    times.started("running")
    for actor_id in ("a", "b", "c"):
        times.starting(actor_id)
        times.started(actor_id)
        times.stopped(actor_id)
    # Four kept, over the bound: the longest-asleep ("a") went, the running one stayed.
    assert times.fields("running", 0, None)["connectable_ts"] == 1_000_000
    assert times.fields("a", 0, None)["start_ts"] is None  # forgotten: not run here
    assert times.fields("c", 0, None)["start_ts"] == 1_000_000

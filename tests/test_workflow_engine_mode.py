"""Workflows on the real Rivet Engine (tests/engine_fixtures.py): the history and the state a
step changed are written together through the engine's actor KV, and a workflow sleep survives
the actor going to sleep: the engine's alarm wakes it at the deadline, nobody calls it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from engine_fixtures import envoy, new_pool
from test_engine_db import RETRY, call, until

from rivetkit import actor, setup
from rivetkit.client import Client
from rivetkit.drivers.engine import LocalEngine
from rivetkit.workflow import workflow

pytestmark = pytest.mark.asyncio

wfe = actor("wfe", state={"a": 0, "b": 0})


@wfe.run
@workflow
async def flow(ctx):  # type: ignore[no-untyped-def]
    await ctx.step("a", lambda s: s.state.update(a=s.state["a"] + 1))
    await ctx.sleep("nap", 3.0)
    await ctx.step("b", lambda s: s.state.update(b=s.state["b"] + 1))
    return "done"


@wfe.action
def get(c: Any) -> Any:
    return c.state


registry = setup(use=[wfe])


async def test_workflow_sleeps_with_its_actor_and_the_engine_alarm_wakes_it(
    rivet_engine: LocalEngine,
) -> None:
    pool = new_pool()
    async with (
        envoy(registry, rivet_engine, pool=pool) as (runtime, driver),
        Client(rivet_engine.endpoint, pool=pool, encoding="json", retry=RETRY) as client,
    ):
        handle = client.wfe.get_or_create([pool, "nap"])
        assert await call(handle.get) in ({"a": 0, "b": 0}, {"a": 1, "b": 0})
        actor_id = await handle.resolve()
        started = time.monotonic()
        await until(lambda: runtime.instances.get(actor_id) is not None)
        instance = runtime.instances[actor_id]
        await until(lambda: instance.state["a"] == 1)
        await asyncio.sleep(0.3)  # the sleep entry and the alarm are written
        await driver.api.sleep_actor(actor_id)
        await until(lambda: actor_id not in driver.loaded())
        # Woken by its alarm at the deadline (no request), the workflow finishes.
        await until(lambda: actor_id in driver.loaded(), timeout=60)
        assert time.monotonic() - started >= 2.5
        instance = runtime.instances[actor_id]
        await until(lambda: instance.state["b"] == 1, timeout=30)
        assert await call(handle.get) == {"a": 1, "b": 1}  # each step ran once

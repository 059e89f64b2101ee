"""Traces in engine mode: the registry of tests/test_traces.py as an envoy of the real engine.
Spans go to the actor's engine KV in @rivetkit/traces' layout, survive a sleep and a wake,
and the inspector's trace query answers them through the engine's gateway."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from engine_fixtures import engine_env
from test_traces import registry, spans_of

from rivetkit.drivers.engine import LocalEngine
from rivetkit.runtime.keys import INSPECTOR_TOKEN, TRACES_PREFIX
from rivetkit.traces.schema import CHUNK, SpanStart

pytestmark = pytest.mark.asyncio


async def test_spans_on_the_engine(rivet_engine: LocalEngine) -> None:
    async with engine_env(registry, rivet_engine) as env, env.client() as client:
        handle = client.traced.get_or_create(["engine"])
        assert await handle.increment(2) == 2
        actor_id = await handle.resolve()
        await handle.nap()
        deadline = time.monotonic() + 30
        while actor_id in env.runtime.instances:  # asleep: the last chunk is written
            assert time.monotonic() < deadline, "the actor did not sleep"
            await asyncio.sleep(0.05)
        end = TRACES_PREFIX[:-1] + bytes((TRACES_PREFIX[-1] + 1,))
        entries = await env.driver.kv_list(actor_id, TRACES_PREFIX, end)
        started = {
            chunk.strings[record.body.name]
            for chunk in (CHUNK.decode(value) for _, value in entries)
            for record in chunk.records
            if type(record.body) is SpanStart
        }
        assert {"action increment", "action nap", "hook on_sleep"} <= started
        assert await handle.increment() == 3  # wakes it
        (token,) = await env.driver.kv_get(actor_id, [INSPECTOR_TOKEN])
        assert token is not None
        async with httpx.AsyncClient(base_url=rivet_engine.endpoint, timeout=15) as http:
            response = await http.get(
                f"/gateway/{actor_id}/inspector/traces",
                headers={"Authorization": f"Bearer {token.decode()}"},
            )
        assert response.status_code == 200, response.text
        names = [s["name"] for s in spans_of(response.json())]
        assert names.count("action increment") == 2 and names.count("hook on_wake") == 2

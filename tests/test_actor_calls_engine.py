"""``c.client()`` in engine mode: actors calling actors through the real engine's gateway.

The registry of tests/actor_calls_app.py runs as an envoy (a namespace of its own per test);
the same checks as the embedded tests (tests/test_actor_calls.py): calls, events, queue, a
callee's user error reaching the outer client unchanged, a call to self and a cycle answered
for non-serial actors and refused with ``actor/call_cycle`` for serial ones (the chain
crosses the gateway in a header), and a callee that sleeps between two calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from engine_fixtures import FAST_RETRY, envoy, new_pool
from test_actor_calls import check_calls, check_errors_and_cycles

from rivetkit.client import Client
from rivetkit.drivers.engine import LocalEngine
from tests.actor_calls_app import registry

pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def on_engine(engine: LocalEngine, encoding: str = "json") -> AsyncIterator[Client]:
    namespace = new_pool()
    async with (
        envoy(registry, engine, pool=new_pool(), namespace=namespace, create_namespace=True) as (
            _runtime,
            driver,
        ),
        Client(
            engine.endpoint,
            encoding=encoding,
            namespace=namespace,
            pool=driver.pool,
            retry=FAST_RETRY,
        ) as client,
    ):
        yield client


@pytest.mark.parametrize("encoding", ["json", "bare"])
async def test_calls_through_the_engine(rivet_engine: LocalEngine, encoding: str) -> None:
    async with on_engine(rivet_engine, encoding) as client:
        await check_calls(client)
        await check_errors_and_cycles(client)


async def test_callee_sleeps_and_wakes(rivet_engine: LocalEngine) -> None:
    async with on_engine(rivet_engine) as client:
        a = client.acct.get_or_create(["w"])
        assert await a.bump_sleepy("z") == {"wakes": 1, "n": 1}
        # sleep_timeout is 1 s: after 3 s idle it has slept (its on_wake runs again).
        await asyncio.sleep(3.0)
        assert await a.bump_sleepy("z") == {"wakes": 2, "n": 2}

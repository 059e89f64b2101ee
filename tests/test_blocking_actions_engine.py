"""Blocking actions in engine mode: the registry of tests/test_blocking_actions.py runs as an
envoy of the real engine (a namespace of its own per test). Another actor answers while one
blocks a thread, and the same actor's next call waits for the thread."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from engine_fixtures import FAST_RETRY, envoy, new_pool
from test_blocking_actions import GATES, gates, registry, started

from rivetkit.client import Client
from rivetkit.drivers.engine import LocalEngine

pytestmark = pytest.mark.asyncio

__all__ = ["gates"]  # the autouse fixture, used here too


@contextlib.asynccontextmanager
async def on_engine(engine: LocalEngine) -> AsyncIterator[Client]:
    namespace = new_pool()
    async with (
        envoy(registry, engine, pool=new_pool(), namespace=namespace, create_namespace=True) as (
            _runtime,
            driver,
        ),
        Client(engine.endpoint, namespace=namespace, pool=driver.pool, retry=FAST_RETRY) as client,
    ):
        yield client


async def test_other_actors_answer_while_one_blocks(rivet_engine: LocalEngine) -> None:
    async with on_engine(rivet_engine) as client:
        w = client.worker.get_or_create(["a"])
        o = client.other.get_or_create(["b"])
        assert await o.ping() == "pong"
        await w.read()
        began = time.monotonic()
        blocking = asyncio.ensure_future(w.sleep_for(1.0))
        await started()
        asked = time.monotonic()
        assert await o.ping() == "pong"
        answered = time.monotonic()
        assert not blocking.done()
        assert await blocking == 1
        ended = time.monotonic()
        assert answered - asked < (ended - began) / 2


async def test_the_same_actor_waits_for_the_thread(rivet_engine: LocalEngine) -> None:
    async with on_engine(rivet_engine) as client:
        w = client.worker.get_or_create(["q"])
        await w.read()
        blocking = asyncio.ensure_future(w.held())
        await started()
        reading = asyncio.ensure_future(w.read())
        await asyncio.sleep(0.3)
        assert not reading.done()
        GATES["release"].set()
        assert await blocking == 100
        assert (await reading)["log"] == ["read", "held:start", "held:end", "read"]

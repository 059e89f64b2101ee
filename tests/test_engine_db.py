"""``c.db`` in engine mode: SQLite pages in the actor's engine KV (drivers/engine/sqlkv.py).

On the real engine (tests/engine_fixtures.py): the notes database of ``examples/notes.py``
survives a sleep and a wake, its pages are in the actor's KV under RivetKit's layout
(``[9, 0, 0]`` the file size, ``[9, 1, 0, u32]`` the 4 KiB chunks), a commit too big for one
KV request works, and the database follows the actor to another envoy *process* of the pool
when the first one is stopped or SIGKILLed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from engine_fixtures import QUICK_LOSS, ROOT, envoy, new_engine, new_pool
from server_actors import load_example
from test_engine_cli import Serve

from rivetkit import actor, setup
from rivetkit.client import ActorError, Client, RetryOptions
from rivetkit.db import Database
from rivetkit.drivers.engine import LocalEngine
from rivetkit.drivers.engine.api import EngineApi
from rivetkit.drivers.engine.sqlkv import CHUNK_SIZE, decode_meta, meta_key

NOTES_APP = ROOT / "examples" / "notes.py"
notes = load_example("notes").notes

blobs = actor(
    "blobs",
    db=Database(migrations=["CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB NOT NULL)"]),
)


@blobs.action
async def fill(c: Any, size: int, seed: int) -> str:
    """Insert ``size`` pseudo-random bytes in one transaction; return their sha256."""
    data = random.Random(seed).randbytes(size)
    async with c.db.transaction():
        await c.db.execute("INSERT INTO b (data) VALUES (?)", data)
    return hashlib.sha256(data).hexdigest()


@blobs.action
async def digests(c: Any) -> list[str]:
    rows = await c.db.query("SELECT data FROM b ORDER BY id")
    return [hashlib.sha256(row["data"]).hexdigest() for row in rows]


registry = setup(use=[notes, blobs])

RETRY = RetryOptions(get_attempts=40, get_or_create_attempts=40, interval=0.25)
#: Engine answers meaning "the request reached no actor" (safe to send again); the engine
#: 2.3.19 stalls actor creation for seconds now and then (see test_engine_cli.ENGINE_STALLS).
ENGINE_RETRYABLE = (
    "route_resolve_query_timeout",
    "destroyed_during_creation",
    "actor_ready_timeout",
    "actor_runner_failed",
    "service_unavailable",
    "request_timeout",
)


async def until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(interval)


async def call(fn: Any, *args: Any, timeout: float = 120.0) -> Any:
    """Call ``fn(*args)`` until the engine routes it (it may be moving the actor)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.wait_for(fn(*args), 60)
        except (ActorError, asyncio.TimeoutError, OSError) as exc:
            code = getattr(exc, "code", "timeout")
            retry = not isinstance(exc, ActorError) or code in ENGINE_RETRYABLE
            if not retry or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def stored_size(api: EngineApi, actor_id: str) -> int:
    """The database file size stored at KV ``[9, 0, 0]`` (through the engine's HTTP API)."""
    key = base64.urlsafe_b64encode(meta_key(0)).decode()
    result = await api.request("GET", f"/actors/{actor_id}/kv/keys/{key}")
    return decode_meta(base64.b64decode(result["value"]))


@pytest.mark.asyncio
async def test_notes_survive_sleep_and_wake(rivet_engine: LocalEngine) -> None:
    pool = new_pool()
    async with (
        envoy(registry, rivet_engine, pool=pool) as (_, driver),
        Client(rivet_engine.endpoint, pool=pool, encoding="json", retry=RETRY) as client,
    ):
        handle = client.notes.get_or_create([pool, "sleepy"])
        assert await call(handle.add, "one") == 1
        assert await call(handle.add, "two") == 2
        actor_id = await handle.resolve()
        size = await stored_size(driver.api, actor_id)
        assert size >= 2 * CHUNK_SIZE and size % CHUNK_SIZE == 0

        await driver.api.sleep_actor(actor_id)
        await until(lambda: actor_id not in driver.loaded())
        assert await call(handle.list) == [{"id": 1, "text": "one"}, {"id": 2, "text": "two"}]
        assert await call(handle.add, "three") == 3

        # A commit too big for one KV request (~1.5 MB: several puts, journal first).
        big = client.blobs.get_or_create([pool, "big"])
        first = await call(big.fill, 1_500_000, 1)
        second = await call(big.fill, 200_000, 2)
        big_id = await big.resolve()
        assert await stored_size(driver.api, big_id) > 1_500_000
        await driver.api.sleep_actor(big_id)
        await until(lambda: big_id not in driver.loaded())
        assert await call(big.digests) == [first, second]
        assert await call(handle.list) == [
            {"id": 1, "text": "one"},
            {"id": 2, "text": "two"},
            {"id": 3, "text": "three"},
        ]


async def _envoys(api: EngineApi, pool: str) -> int:
    return sum(
        1
        for item in await api.envoys()
        if item.get("pool_name") == pool and item.get("stop_ts") is None
    )


@pytest.fixture(scope="module")
def quick_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    """An engine that declares a dead envoy lost after 3 s (not 15 s), as in
    test_engine_scale."""
    engine = new_engine(tmp_path_factory.mktemp("quick-engine"), extra_config=QUICK_LOSS)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_notes_follow_the_actor_to_another_process(
    quick_engine: LocalEngine, how: str
) -> None:
    """Process A writes notes, is stopped (SIGTERM: a drain) or SIGKILLed; process B, started
    then in the same pool, serves the same notes (after a kill, once the engine has declared
    A lost)."""
    pool = new_pool()
    endpoint = quick_engine.endpoint
    api = EngineApi(endpoint)
    await api.ensure_pool(pool)
    args = [str(NOTES_APP), "--engine", endpoint, "--pool", pool, "--port", "0"]
    first = Serve(*args)
    second: Serve | None = None
    phase = "start"
    try:
        await asyncio.to_thread(first.wait_for, r"health and metrics on", 60)
        phase = "write"
        async with Client(endpoint, pool=pool, encoding="json", retry=RETRY) as client:
            handle = client.notes.get_or_create([pool])  # keys are namespace-wide
            texts = [f"note {i} " + "x" * (i * 500) for i in range(20)]
            for i, text in enumerate(texts, 1):
                assert await call(handle.add, text) == i
            actor_id = await handle.resolve()

            if how == "kill":
                first.process.send_signal(signal.SIGKILL)
                first.process.wait(30)
            else:
                assert first.stop(60) == 0, first.output
            phase = "move"
            second = Serve(*args)
            await asyncio.to_thread(second.wait_for, r"health and metrics on", 60)
            assert first.process.poll() is not None  # only B can answer now
            rows = await call(client.notes.get_for_id(actor_id).list, timeout=180)
            assert rows == [{"id": i, "text": text} for i, text in enumerate(texts, 1)]
            assert await call(handle.add, "after the move") == len(texts) + 1
        assert second.stop(60) == 0, second.output
    except BaseException:
        print(f"failed in phase {phase}")
        print("A:", first.output)
        print("B:", second.output if second else None)
        raise
    finally:
        for serve in (first, second):
            if serve is not None and serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait()
        await api.aclose()

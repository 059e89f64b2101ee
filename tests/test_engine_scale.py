"""Scale-out on the real engine: two envoy processes in one pool, one of them SIGKILLed.

Two ``rivetkit serve tests/apps/engine_app.py --engine URL --pool P`` processes join one pool
of a dedicated engine (its envoy lost threshold lowered to 3 s, so that a dead process is
noticed quickly); 200 actors are created through the gateway (each acknowledges an ``add``
only once its state is saved); both processes host some. One process is SIGKILLed; every
actor then answers again, from the survivor, with its saved total.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from engine_fixtures import QUICK_LOSS, ROOT, new_engine
from test_engine_cli import Serve

from rivetkit.client import Client, RetryOptions
from rivetkit.drivers.engine.api import EngineApi

APP = ROOT / "tests" / "apps" / "engine_app.py"
ACTORS = 200


async def _envoys(api: EngineApi, pool: str) -> list[str]:
    return [
        item["envoy_key"]
        for item in await api.envoys()
        if item.get("pool_name") == pool and item.get("stop_ts") is None
    ]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_two_processes_one_killed(tmp_path: Path) -> None:
    engine = new_engine(tmp_path / "engine", extra_config=QUICK_LOSS)
    await asyncio.to_thread(engine.start)
    pool = "scale"
    api = EngineApi(engine.endpoint)
    await api.ensure_pool(pool)
    processes = [
        Serve(str(APP), "--engine", engine.endpoint, "--pool", pool, "--port", "0")
        for _ in range(2)
    ]
    try:
        for process in processes:
            await asyncio.to_thread(process.wait_for, r"health and metrics on")
        deadline = time.monotonic() + 10
        while len(await _envoys(api, pool)) < 2:
            assert time.monotonic() < deadline, "the two envoys did not both join"
            await asyncio.sleep(0.05)

        retry = RetryOptions(get_attempts=40, get_or_create_attempts=40, interval=0.25)
        async with Client(engine.endpoint, pool=pool, encoding="json", retry=retry) as client:
            limit = asyncio.Semaphore(16)

            async def add(i: int) -> dict[str, int]:
                async with limit:
                    result: dict[str, int] = await client.tally.get_or_create([f"t{i}"]).add(i)
                    return result

            started = time.monotonic()
            first = await asyncio.gather(*(add(i) for i in range(ACTORS)))
            created_in = time.monotonic() - started
            assert [r["total"] for r in first] == list(range(ACTORS))
            pids = {r["pid"] for r in first}
            assert pids == {p.process.pid for p in processes}, "both processes host actors"

            victim, survivor = processes
            moved = sum(1 for r in first if r["pid"] == victim.process.pid)
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()

            async def total(i: int) -> dict[str, int]:
                async with limit:
                    result: dict[str, int] = await client.tally.get_or_create([f"t{i}"]).total()
                    return result

            started = time.monotonic()
            after = await asyncio.wait_for(asyncio.gather(*(total(i) for i in range(ACTORS))), 120)
            recovered_in = time.monotonic() - started
            assert [r["total"] for r in after] == list(range(ACTORS))
            assert {r["pid"] for r in after} == {survivor.process.pid}
        print(
            f"{ACTORS} actors created in {created_in:.1f} s; {moved} moved from the killed "
            f"process and all answered again in {recovered_in:.1f} s"
        )
        assert survivor.stop() == 0, survivor.output
    finally:
        for process in processes:
            if process.process.poll() is None:
                process.process.kill()
                process.process.wait()
        await api.aclose()
        await asyncio.to_thread(engine.stop)

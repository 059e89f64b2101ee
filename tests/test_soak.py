"""A bounded soak: 10,000 actors, mixed actions, sleeps and wakes, for a fixed time.

The runtime runs in-process (:func:`rivetkit.testing.setup_runtime`, embedded store, a fake wall
clock for schedules). Every actor is created, then put to sleep: that is the baseline (Python
heap blocks, live asyncio tasks). Then, for ``RIVETKIT_SOAK_SECONDS`` (default 6), callers pick random actors and run a random mix: plain and async actions, a sleep
(``c.sleep()``), a schedule fired through the fake clock (which wakes a sleeping actor), and
reads, which wake sleeping actors. At the end every actor sleeps again; then

* every actor's state equals what the load did to it (a model kept by the test);
* the Python heap returns to the baseline within a tolerance (no per-call or per-wake leak),
  measured as ``sys.getallocatedblocks()`` (no overhead; ``RIVETKIT_SOAK_TRACEMALLOC=1`` also
  prints the top allocation sites that grew, with tracemalloc's overhead);
* the asyncio tasks are those of the baseline (no task leak).

``RIVETKIT_SOAK_ACTORS`` changes the number of actors (default 10,000).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sys
import time
import tracemalloc
from collections import Counter
from typing import Any

import pytest

from conftest import eventually, tasks_by_name
from rivetkit import ActorOptions, actor, setup
from rivetkit.testing import RuntimeActorHandle, RuntimeClient, setup_runtime

pytestmark = pytest.mark.asyncio

SECONDS = float(os.environ.get("RIVETKIT_SOAK_SECONDS", "6"))
ACTORS = int(os.environ.get("RIVETKIT_SOAK_ACTORS", "10000"))
SEED = int(os.environ.get("RIVETKIT_SOAK_SEED", random.SystemRandom().randrange(1 << 32)))
CALLERS = 32
TRACE = os.environ.get("RIVETKIT_SOAK_TRACEMALLOC") == "1"
#: Growth of the allocated blocks allowed between the two quiet points: a fixed slack plus a
#: little per actor (caches sized by the number of actors ever seen).
SLACK_BLOCKS = 20_000 + 2 * ACTORS


def build_registry() -> Any:
    soak = actor(
        "soak",
        state={"n": 0, "fired": 0},
        options=ActorOptions(state_save_interval=0.05, sleep_timeout=3600.0),
    )

    @soak.action
    def inc(c: Any, by: int) -> int:
        c.state["n"] += by
        return int(c.state["n"])

    @soak.action
    async def inc_async(c: Any, by: int) -> int:
        await asyncio.sleep(0)
        c.state["n"] += by
        return int(c.state["n"])

    @soak.action
    def get(c: Any) -> dict[str, int]:
        return dict(c.state)

    @soak.action
    def nap(c: Any) -> None:
        c.sleep()

    @soak.action
    async def later(c: Any) -> None:
        await c.schedule.after(1.0, "fire")

    @soak.action
    def fire(c: Any) -> None:
        c.state["fired"] += 1

    return setup(use=[soak])


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def all_asleep(client: RuntimeClient, handles: list[RuntimeActorHandle]) -> None:
    """Put every loaded actor to sleep and wait until none is loaded."""
    placement = client.runtime.driver.placement
    loaded = set(placement.loaded())
    ids = {handle_id: h for h in handles if (handle_id := h._actor_id) in loaded}
    await asyncio.gather(*(h.nap() for h in ids.values()))
    await eventually(lambda: not placement.loaded(), timeout=120)


async def quiet_point() -> tuple[int, Counter[str]]:
    for _ in range(3):
        await asyncio.sleep(0.05)
        gc.collect()
    return sys.getallocatedblocks(), tasks_by_name()


async def test_soak_many_actors_sleep_and_wake() -> None:
    print(f"soak: {ACTORS} actors, {SECONDS} s, seed {SEED} (RIVETKIT_SOAK_SEED replays it)")
    rng = random.Random(SEED)
    clock = FakeClock()
    async with setup_runtime(build_registry(), clock=clock) as client:
        driver: Any = client.runtime.driver
        handles = [client.soak.get_or_create([f"a{i}"]) for i in range(ACTORS)]
        expected = [0] * ACTORS
        fired_due = [0] * ACTORS

        # Create every actor (one call each), a few hundred at a time.
        started = time.monotonic()
        for chunk in range(0, ACTORS, 500):
            await asyncio.gather(*(h.inc(0) for h in handles[chunk : chunk + 500]))
        for h in handles:
            await h.resolve()
            for name in ("inc", "inc_async", "get", "nap", "later"):
                getattr(h, name)  # the handle caches its call functions: not a leak
        created = time.monotonic() - started
        await all_asleep(client, handles)
        asleep = time.monotonic() - started - created

        if TRACE:
            tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot() if TRACE else None
            base_memory, base_tasks = await quiet_point()
            calls = Counter[str]()
            stop_at = time.monotonic() + SECONDS
            pending_fires: list[int] = []

            async def caller(seed: int) -> None:
                local = random.Random(seed)
                while time.monotonic() < stop_at:
                    i = local.randrange(ACTORS)
                    h = handles[i]
                    pick = local.random()
                    if pick < 0.35:
                        by = local.randint(1, 9)
                        expected[i] += by
                        await h.inc(by)
                        calls["inc"] += 1
                    elif pick < 0.6:
                        by = local.randint(1, 9)
                        expected[i] += by
                        await h.inc_async(by)
                        calls["inc_async"] += 1
                    elif pick < 0.75:
                        state = await h.get()
                        assert state["n"] == expected[i] or state["n"] > expected[i] - 100
                        calls["get"] += 1
                    elif pick < 0.95:
                        await h.nap()
                        calls["nap"] += 1
                    else:
                        await h.later()
                        pending_fires.append(i)
                        calls["later"] += 1

            async def alarms() -> None:
                # Fire the due schedules now and then (waking the sleeping actors they target).
                while time.monotonic() < stop_at:
                    await asyncio.sleep(0.5)
                    due = list(pending_fires)
                    del pending_fires[: len(due)]
                    clock.now += 2.0
                    await driver.poll_alarms()
                    for i in due:
                        fired_due[i] += 1

            await asyncio.gather(
                alarms(), *(caller(rng.randrange(1 << 30)) for _ in range(CALLERS))
            )
            # The last schedules, then everything sleeps again.
            clock.now += 2.0
            await driver.poll_alarms()
            for i in pending_fires:
                fired_due[i] += 1
            settled = time.monotonic()
            await all_asleep(client, handles)
            settled = time.monotonic() - settled
            memory, tasks = await quiet_point()
            if before is not None:
                growth = tracemalloc.take_snapshot().compare_to(before, "lineno")
                for stat in growth[:15]:
                    print(stat)
        finally:
            if TRACE:
                tracemalloc.stop()

        total = sum(calls.values())
        print(
            f"soak: created {ACTORS} actors in {created:.1f} s, all asleep in {asleep:.1f} s; "
            f"{total} calls in {SECONDS} s, all asleep again in {settled:.1f} s "
            f"({dict(calls)}); allocated blocks {base_memory} -> {memory}; "
            f"tasks {sum(base_tasks.values())} -> "
            f"{sum(tasks.values())}"
        )
        assert total > 1000
        assert calls["nap"] > 100
        # No task leak: the same tasks as at the baseline.
        assert tasks == base_tasks, (tasks - base_tasks, base_tasks - tasks)
        # The heap returns to the baseline.
        assert memory - base_memory < SLACK_BLOCKS, (base_memory, memory)

        # Every actor woke with exactly the state the load gave it.
        sample = rng.sample(range(ACTORS), min(ACTORS, 500))
        states = await asyncio.gather(*(handles[i].get() for i in sample))
        for i, state in zip(sample, states, strict=True):
            assert state == {"n": expected[i], "fired": fired_due[i]}, (i, state)


async def test_a_wake_survives_an_immediate_sleep() -> None:
    """The race the soak found: a call wakes a sleeping actor, and before the caller resumes,
    another request puts the new instance to sleep and it stops completely. The call wakes the
    actor again instead of failing with ``actor/not_found``."""
    async with setup_runtime(build_registry()) as client:
        handle = client.soak.get_or_create(["race"])
        assert await handle.inc(1) == 1
        actor_id = await handle.resolve()
        runtime = client.runtime
        driver: Any = runtime.driver
        await handle.nap()
        await eventually(lambda: actor_id not in driver.placement.loaded())

        original = driver.ensure_started
        interfere = [True]

        async def ensure_started(aid: str) -> Any:
            record = await original(aid)
            if interfere:
                interfere.pop()
                runtime.instances[aid].request_sleep()  # as a concurrent c.sleep() would
                await eventually(lambda: aid not in driver.placement.loaded())
            return record

        driver.ensure_started = ensure_started
        assert await handle.inc(1) == 2
        assert not interfere

"""Wake and sleep: 10,000 actors each woken, called once and put to sleep, in process.

Setup (not measured): ``setup_runtime`` on a temporary embedded store; 10,000 actors of one
small definition (state ``{"n": <int>}``) are created, called once and put to sleep.

Measured, in the twin this process selected (``RIVETKIT_PURE=1`` for the pure one):

* **wake cycle**: for each actor in turn, one action call on the sleeping actor (the driver
  starts a new generation: snapshot read, start hooks, ready) timed from the call to its
  reply: the *wake latency* p50/p99; then ``c.sleep()``-style ``request_sleep`` without
  waiting. ``wakes/s`` is actors / (time until the last one is asleep again);
* **concurrent wakes**: the same with 64 wake-and-call loops at once (group commit shares
  the writes), wakes/s;
* **memory per awake idle actor** (tracemalloc): 1,000 sleeping actors woken and left idle,
  Python memory traced beyond the all-asleep baseline, per actor; minus its state (the
  decoded state object and the snapshot bytes the instance keeps);
* **memory per sleeping actor**: the same 1,000 put back to sleep, traced memory beyond the
  baseline, per actor, and what the runtime and the driver still hold per actor
  (instances, placement slots, idle timers, alarm entries).

Nothing here asserts a figure. Targets: wake p50 <= 1 ms; <= 4 KiB per awake idle actor
beyond its state; nothing per sleeping actor.

    python benchmarks/bench_wake.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONCURRENCY = 64


def build_registry() -> Any:
    from rivetkit import ActorOptions, actor, setup

    sleeper = actor(
        "sleeper", state={"n": 0}, options=ActorOptions(sleep_timeout=3600.0)
    )  # idle timers armed, never due during the run: sleep is asked for explicitly

    @sleeper.action
    def ping(c: Any) -> int:
        c.state["n"] += 1
        return int(c.generation)

    return setup(use=[sleeper])


async def all_asleep(client: Any) -> None:
    placement = client.runtime.driver.placement
    while placement.loaded():
        await asyncio.sleep(0.001)


def put_to_sleep(client: Any, ids: list[str]) -> None:
    instances = client.runtime.instances
    for actor_id in ids:
        instance = instances.get(actor_id)
        if instance is not None:
            instance.request_sleep()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(count: int, sample: int) -> dict[str, Any]:
    from rivetkit import _twins
    from rivetkit.testing import setup_runtime

    results: dict[str, Any] = {}
    async with setup_runtime(build_registry()) as client:
        runtime = client.runtime
        call = runtime.call_action
        # Setup: create every actor, call it once, put it to sleep.
        ids: list[str] = []
        began = time.perf_counter()
        for i in range(count):
            ids.append(await client.sleeper.get_or_create(f"a{i}").resolve())
        for i in range(0, count, CONCURRENCY):
            chunk = ids[i : i + CONCURRENCY]
            await asyncio.gather(*(call(actor_id, "ping", []) for actor_id in chunk))
        put_to_sleep(client, ids)
        await all_asleep(client)
        results["setup_s"] = time.perf_counter() - began
        results["twin"] = "compiled" if _twins.compiled.get("_timers") else "pure"

        # Wake cycle, one actor at a time.
        latencies: list[float] = []
        perf = time.perf_counter
        began = perf()
        for actor_id in ids:
            t0 = perf()
            await call(actor_id, "ping", [])
            latencies.append(perf() - t0)
            runtime.instances[actor_id].request_sleep()
        await all_asleep(client)
        elapsed = perf() - began
        results["sequential"] = {
            "wakes_per_s": count / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 0.99),
            "mean_ms": 1000 * statistics.fmean(latencies),
        }

        # Concurrent wake cycles.
        concurrent_latencies: list[float] = []

        async def worker(chunk: list[str]) -> None:
            for actor_id in chunk:
                t0 = perf()
                await call(actor_id, "ping", [])
                concurrent_latencies.append(perf() - t0)
                runtime.instances[actor_id].request_sleep()

        began = perf()
        await asyncio.gather(*(worker(ids[k::CONCURRENCY]) for k in range(CONCURRENCY)))
        await all_asleep(client)
        elapsed = perf() - began
        results["concurrent"] = {
            "wakes_per_s": count / elapsed,
            "p50_ms": 1000 * statistics.median(concurrent_latencies),
            "p99_ms": 1000 * percentile(concurrent_latencies, 0.99),
        }

        # Memory: awake idle actors, then the same asleep again.
        chosen = ids[:sample]
        for actor_id in chosen:  # one cycle first: first-touch allocations are not per actor
            await call(actor_id, "ping", [])
        put_to_sleep(client, chosen)
        await all_asleep(client)
        gc.collect()
        tracemalloc.start(1)
        gc.collect()
        baseline = tracemalloc.take_snapshot()
        base_bytes = tracemalloc.get_traced_memory()[0]
        for actor_id in chosen:
            await call(actor_id, "ping", [])
        await asyncio.sleep(0.05)  # throttled saves done: the actors are idle
        while any(i.persistence.busy for i in runtime.instances.values()):
            await asyncio.sleep(0.01)
        gc.collect()
        awake_bytes = tracemalloc.get_traced_memory()[0] - base_bytes
        awake_snapshot = tracemalloc.take_snapshot()
        state_bytes = state_size(runtime.instances[chosen[0]])
        put_to_sleep(client, chosen)
        await all_asleep(client)
        gc.collect()
        asleep_bytes = tracemalloc.get_traced_memory()[0] - base_bytes
        asleep_snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        results["memory"] = {
            "sample": sample,
            "awake_per_actor": awake_bytes / sample,
            "state_per_actor": state_bytes,
            "awake_beyond_state": awake_bytes / sample - state_bytes,
            "asleep_per_actor": asleep_bytes / sample,
            "top_awake": top(awake_snapshot, baseline),
            "top_asleep": top(asleep_snapshot, baseline),
        }
        driver: Any = runtime.driver
        results["kept_while_asleep"] = {
            "runtime.instances": len(runtime.instances),
            "runtime.sleep_timers": len(runtime.sleep_timers),
            "placement slots": len(driver.placement.loaded()),
            "placement tasks": len(driver.placement._tasks),
            "driver alarms": len(driver.alarms),
        }
    return results


def deep_size(value: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``value`` and what it contains (dicts, lists, tuples; shared objects once)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        size += sum(deep_size(item, seen) for item in value)
    return size


def state_size(instance: Any) -> int:
    """Bytes of the actor's state as the instance holds it: the decoded value, and the last
    persisted snapshot (encoded state, input, schedule list) kept to skip unchanged saves."""
    seen: set[int] = set()
    return deep_size(instance.state, seen) + deep_size(instance.persistence.snapshot, seen)


def top(snapshot: Any, baseline: Any, limit: int = 8) -> list[str]:
    stats = snapshot.compare_to(baseline, "lineno")
    return [str(stat) for stat in stats[:limit] if stat.size_diff > 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 actors, 200 for memory")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--verbose", action="store_true", help="top allocations")
    args = parser.parse_args()
    count, sample = (1_000, 200) if args.quick else (10_000, 1_000)
    results = asyncio.run(measure(count, sample))
    results["python"] = platform.python_version()
    results["actors"] = count
    seq, conc, mem = results["sequential"], results["concurrent"], results["memory"]
    print(f"{count:,} actors, twin: {results['twin']} (setup {results['setup_s']:.1f} s)")
    print(
        f"  wake + call + sleep, one at a time: {seq['wakes_per_s']:,.0f} wakes/s, "
        f"wake latency p50 {seq['p50_ms']:.3f} ms, p99 {seq['p99_ms']:.3f} ms "
        f"(target p50 <= 1 ms)"
    )
    print(
        f"  wake + call + sleep, {CONCURRENCY} at a time: {conc['wakes_per_s']:,.0f} wakes/s, "
        f"latency p50 {conc['p50_ms']:.3f} ms, p99 {conc['p99_ms']:.3f} ms"
    )
    print(
        f"  memory per awake idle actor: {mem['awake_per_actor']:,.0f} B, of which state "
        f"{mem['state_per_actor']:,} B: {mem['awake_beyond_state']:,.0f} B beyond its state "
        f"(target <= 4096 B; tracemalloc, {sample:,} actors)"
    )
    print(
        f"  memory per sleeping actor: {mem['asleep_per_actor']:,.1f} B (target: nothing); "
        "kept while asleep: "
        + ", ".join(f"{k} {v}" for k, v in results["kept_while_asleep"].items())
    )
    if args.verbose:
        print("  top allocations, awake:")
        for line in mem["top_awake"]:
            print("    " + line)
        print("  top allocations, asleep again:")
        for line in mem["top_asleep"]:
            print("    " + line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

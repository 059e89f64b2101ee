"""Engine mode on a cluster vs on one node, in one run: ``python benchmarks/bench_cluster.py``.

One throwaway PostgreSQL, one NATS, two Rivet Engine nodes on them (``tests/cluster_fixtures``),
and two pools of ``rivetkit serve --engine`` processes serving ``tests/apps/engine_app.py``
(the ``tally`` actor):

* ``one node``: pool A, one envoy connected to node 0; clients call through node 0 (the
  baseline);
* ``cluster``: pool B, three envoys spread over nodes 0, 1, 0; half the clients call through
  node 0, half through node 1.

Both pools run at once on the same database; the rounds alternate which runs first, and a
figure is the median over rounds. For each pool: HTTP actions/s and WebSocket actions/s of
``--clients`` concurrent callers (each one action in flight, on ``--actors`` actors resolved
beforehand; a client per caller), with the median latency, and the cluster / one-node ratio.
Then the recovery: ``--kill-actors`` actors are created in pool B, the envoy hosting most of
them is SIGKILLed, and the time until every one of its actors answers again (from another
envoy, with its saved total) is reported; the nodes run with a lost threshold of
``--lost-threshold`` ms (the other pegboard thresholds as ``QUICK_LOSS`` in
``tests/engine_fixtures.py``).

Everything listens on 127.0.0.1. On a shared 2-core machine the engine nodes, PostgreSQL,
NATS, the envoys and the clients share the same cores: compare only figures of one run.

    python benchmarks/bench_cluster.py [--rounds 2] [--seconds 4] [--clients 16] [--actors 16]
        [--kill-actors 100] [--lost-threshold 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "ci"))

APP = str(ROOT / "tests" / "apps" / "engine_app.py")

Call = Callable[[int], Awaitable[Any]]


async def run_load(calls: list[Call], seconds: float) -> tuple[float, float]:
    """Each of ``calls`` in a loop for ``seconds``; (actions/s, median latency in ms)."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker(call: Call) -> None:
        i = 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(call) for call in calls))
    elapsed = time.monotonic() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


class Pool:
    """A pool of ``rivetkit serve --engine`` envoys and the clients that call it."""

    def __init__(self, name: str, nodes: list[str], envoy_nodes: list[str], log_dir: Path):
        from cluster import Envoy

        self.name = name
        self.nodes = nodes
        self.envoys = [
            Envoy(i, APP, url, name, log_dir / f"{name}-{i}.log")
            for i, url in enumerate(envoy_nodes)
        ]

    def wait_ready(self) -> None:
        """Wait until every envoy logged its listener."""
        for envoy in self.envoys:
            envoy.wait_ready()

    def stop(self) -> None:
        """SIGKILL what is left (a benchmark needs no drain)."""
        for envoy in self.envoys:
            if envoy.process.poll() is None:
                envoy.process.kill()
                envoy.process.wait()


async def measure(pool: Pool, args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> Any:
    """Resolve ``args.actors`` actors, open clients; return (http load, ws load) coroutines."""
    from rivetkit.client import Client, RetryOptions

    retry = RetryOptions(get_attempts=40, get_or_create_attempts=40, interval=0.25)
    # a Client per caller: one Client's HTTP actions do not scale with concurrent callers
    # (16 callers on one Client got about 40 % of the rate of 16 Clients on the embedded
    # server), and the figure is meant to be the cluster's, not the client's
    clients = [
        await stack.enter_async_context(
            Client(pool.nodes[j % len(pool.nodes)], pool=pool.name, retry=retry)
        )
        for j in range(args.clients)
    ]
    ids = []
    for i in range(args.actors):
        client = clients[i % len(clients)]
        ids.append(await client.tally.get_or_create([f"b{i}"]).resolve())
    # caller j: its own client, through node j mod N, on actor j mod actors
    handles = [clients[j].tally.get_for_id(ids[j % len(ids)]) for j in range(args.clients)]
    for handle in handles:
        await handle.total()
    conns = [await stack.enter_async_context(handle.connect()) for handle in handles]
    for conn in conns:
        await conn.total()

    def http_calls() -> list[Call]:
        return [lambda _i, h=handle: h.total() for handle in handles]

    def ws_calls() -> list[Call]:
        return [lambda _i, c=conn: c.total() for conn in conns]

    return http_calls, ws_calls


async def recovery(pool: Pool, args: argparse.Namespace) -> tuple[int, float]:
    """SIGKILL the envoy hosting most actors; (its actors, seconds until all answer again)."""
    from rivetkit.client import Client, RetryOptions

    retry = RetryOptions(get_attempts=200, get_or_create_attempts=200, interval=0.1)
    limit = asyncio.Semaphore(16)
    async with Client(pool.nodes[-1], pool=pool.name, retry=retry) as client:

        async def add(i: int) -> dict[str, int]:
            async with limit:
                result: dict[str, int] = await client.tally.get_or_create([f"k{i}"]).add(i + 1)
                return result

        first = await asyncio.gather(*(add(i) for i in range(args.kill_actors)))
        by_pid: dict[int, list[int]] = {}
        for i, result in enumerate(first):
            by_pid.setdefault(result["pid"], []).append(i)
        victim_pid, moved = max(by_pid.items(), key=lambda item: len(item[1]))
        victim = next(e for e in pool.envoys if e.process.pid == victim_pid)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed = time.monotonic()

        async def back(i: int) -> None:
            while True:
                try:
                    async with limit:
                        result = await client.tally.get([f"k{i}"]).total()
                except Exception:
                    await asyncio.sleep(0.1)
                    continue
                if result["total"] != i + 1 or result["pid"] == victim_pid:
                    raise RuntimeError(f"actor k{i} came back with {result}")
                return

        await asyncio.wait_for(asyncio.gather(*(back(i) for i in moved)), 300)
        return len(moved), time.monotonic() - killed


async def main_async(args: argparse.Namespace) -> None:
    """Start everything, run the rounds and the recovery, print the table."""
    from cluster_fixtures import Cluster
    from engine_fixtures import QUICK_LOSS

    pegboard = {**QUICK_LOSS["pegboard"], "envoy_lost_threshold": args.lost_threshold}
    cluster = Cluster(2, extra_config={"pegboard": pegboard})
    pools: list[Pool] = []
    try:
        print("starting PostgreSQL, NATS, 2 engine nodes and 4 envoys ...", flush=True)
        await asyncio.to_thread(cluster.start)
        node0, node1 = (engine.endpoint for engine in cluster.engines)
        single = Pool("bench-one", [node0], [node0], cluster.root)
        multi = Pool("bench-cluster", [node0, node1], [node0, node1, node0], cluster.root)
        pools = [single, multi]
        for pool in pools:
            await asyncio.to_thread(pool.wait_ready)
        results: dict[str, dict[str, list[tuple[float, float]]]] = {
            pool.name: {"http": [], "ws": []} for pool in pools
        }
        async with contextlib.AsyncExitStack() as stack:
            loads = {pool.name: await measure(pool, args, stack) for pool in pools}
            for round_ in range(args.rounds):
                order = pools if round_ % 2 == 0 else pools[::-1]
                for kind in ("http", "ws"):
                    for pool in order:
                        http_calls, ws_calls = loads[pool.name]
                        calls = http_calls() if kind == "http" else ws_calls()
                        figure = await run_load(calls, args.seconds)
                        results[pool.name][kind].append(figure)
                        print(
                            f"round {round_ + 1} {kind:4} {pool.name:13} "
                            f"{figure[0]:8.0f}/s  p50 {figure[1]:.1f} ms",
                            flush=True,
                        )
        print("\nrecovery: creating actors, then SIGKILL of one envoy ...", flush=True)
        moved, seconds = await recovery(multi, args)
        print(
            f"\n| {args.clients} callers, 1 action in flight each | one node, 1 envoy "
            f"| 2 nodes, 3 envoys | cluster / one node |"
        )
        print("|---|---|---|---|")
        for kind, label in (("http", "HTTP actions/s"), ("ws", "WebSocket actions/s")):
            one = [rate for rate, _ in results[single.name][kind]]
            many = [rate for rate, _ in results[multi.name][kind]]
            ratio = statistics.median(m / o for m, o in zip(many, one, strict=True))
            p50_one = statistics.median(p for _, p in results[single.name][kind])
            p50_many = statistics.median(p for _, p in results[multi.name][kind])
            print(
                f"| {label} (p50) | {statistics.median(one):.0f} ({p50_one:.1f} ms) "
                f"| {statistics.median(many):.0f} ({p50_many:.1f} ms) | {ratio:.2f} |"
            )
        print(
            f"\nSIGKILL of an envoy: its {moved} actors (of {args.kill_actors}) all answered "
            f"again after {seconds:.1f} s (lost threshold {args.lost_threshold} ms)"
        )
    finally:
        for pool in pools:
            pool.stop()
        await asyncio.to_thread(cluster.stop)


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=16, help="concurrent callers")
    parser.add_argument("--actors", type=int, default=16, help="actors the callers share")
    parser.add_argument("--kill-actors", type=int, default=100)
    parser.add_argument("--lost-threshold", type=int, default=3000, metavar="MS")
    args = parser.parse_args()
    # the engine nodes' warnings (slow commits under load) would bury the table
    logging.getLogger("rivetkit.engine.process").setLevel(logging.ERROR)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

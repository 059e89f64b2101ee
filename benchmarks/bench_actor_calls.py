"""Actor-to-actor calls (``c.client()``) next to direct action calls, in the same run.

Two figures per mode, measured from one client, sequential calls (one in flight):

* ``direct``: ``acct[a].add(1)`` from the client (a sync action: the runtime's fast path);
* ``direct async``: ``acct[a].add_async(1)``, the same as an async action (the outer action
  below is async, so this is the like-for-like baseline);
* ``via c.client()``: ``acct[a].call_add("b", 1)`` from the client: the action calls
  ``acct[b].add(1)`` through ``c.client()`` (so one call of the client makes two action
  calls, the inner one from the actor).

The ratios ``via / direct`` and ``via / direct async`` are the actor-to-actor call rate
relative to a direct call (target: at least 0.5; the inner call repeats the whole path of the
outer one, so about 0.5 is the ceiling when the path dominates). Modes:

* ``embedded``: the client is ``create_app(registry).client()`` (in process, CBOR), and the
  actors' ``c.client()`` is the same in-process client;
* ``engine``: a Rivet Engine spawned on free loopback ports (binary from
  ``tests/interop/node_modules``; skipped without it), the registry as an envoy; the client and
  ``c.client()`` go through the engine's gateway (CBOR).

Times are measured in this run; nothing here asserts a time.

    python benchmarks/bench_actor_calls.py [--quick] [--only embedded,engine] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rivetkit.client import Client  # noqa: E402
from rivetkit.server import create_app  # noqa: E402
from tests.actor_calls_app import registry  # noqa: E402


async def rate(call: Callable[[], Awaitable[Any]], seconds: float) -> float:
    """Calls per second of ``call``, sequential, over about ``seconds`` (after a warm-up)."""
    for _ in range(50):
        await call()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(20):
            await call()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


async def measure(client: Client, seconds: float, rounds: int) -> dict[str, float]:
    """The best of ``rounds`` alternating rounds of each figure."""
    a = client.acct.get_or_create(["a"])
    await client.acct.get_or_create(["b"]).add(0)
    direct: list[float] = []
    direct_async: list[float] = []
    via: list[float] = []
    for _ in range(rounds):
        direct.append(await rate(lambda: a.add(1), seconds))
        direct_async.append(await rate(lambda: a.add_async(1), seconds))
        via.append(await rate(lambda: a.call_add("b", 1), seconds))
    best_direct, best_async, best_via = max(direct), max(direct_async), max(via)
    return {
        "direct_per_s": round(best_direct),
        "direct_async_per_s": round(best_async),
        "via_client_per_s": round(best_via),
        "ratio": round(best_via / best_direct, 3),
        "ratio_async": round(best_via / best_async, 3),
    }


async def embedded(seconds: float, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rivetkit-bench-") as data_dir:
        app = create_app(registry, data_dir=data_dir)
        async with app.lifespan():
            return await measure(app.client(), seconds, rounds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def engine(seconds: float, rounds: int) -> dict[str, float] | None:
    from rivetkit.drivers.engine import EngineDriver, LocalEngine, find_engine_binary
    from rivetkit.runtime.live_actors import Runtime

    binary = find_engine_binary(ROOT / "tests" / "interop")
    if binary is None:
        print("engine: skipped (no engine binary: make interop-deps)", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="rivetkit-bench-engine-") as data_dir:
        spawned = LocalEngine(
            binary,
            data_dir,
            port=free_port(),
            api_peer_port=free_port(),
            metrics_port=free_port(),
        )
        await asyncio.to_thread(spawned.start)
        try:
            driver = EngineDriver(spawned.endpoint, pool="bench")
            runtime = Runtime(registry, driver)
            await runtime.start()
            try:
                async with Client(spawned.endpoint, encoding="cbor", pool="bench") as client:
                    return await measure(client, seconds, rounds)
            finally:
                await runtime.stop()
        finally:
            await asyncio.to_thread(spawned.stop)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    seconds, rounds = (0.5, 1) if args.quick else (2.0, 3)
    only = set(args.only.split(",")) if args.only else {"embedded", "engine"}
    results: dict[str, Any] = {"python": platform.python_version()}
    import rivetkit

    results["speedups"] = rivetkit.SPEEDUPS
    if "embedded" in only:
        results["embedded"] = await embedded(seconds, rounds)
        print("embedded:", results["embedded"])
    if "engine" in only:
        results["engine"] = await engine(seconds, rounds)
        print("engine:  ", results["engine"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    parser.add_argument("--only", help="comma-separated: embedded,engine")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

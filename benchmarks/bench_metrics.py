"""What Prometheus metrics cost on the action path: the same workload with metrics off,
with counters only (``latency=False``) and with counters and latency histograms (the default).

One process per twin (compiled, then pure), each running three runtimes side by side on
embedded stores in temporary directories, one actor each (``inc``: add 1 to the state,
return it). Rounds interleave the three configurations so machine noise hits them alike;
figures are the best round of each, in actions per CPU-second of the event loop's thread
(``time.thread_time``: on a shared, loaded machine wall-clock rates mostly measure the
neighbours). Workloads:

* ``sync action, sequential``: ``await handle.inc()`` in a loop (the ``setup_runtime`` client:
  no network, no encoding; the harshest ratio, since nothing else is on the path);
* ``sync action, 64 concurrent callers``: the same from 64 tasks;
* ``async action, sequential``;
* ``HTTP action (ASGI, in-process)``: ``POST /gateway/{id}/action/inc`` handed straight to
  the server's ASGI app (routing, the ephemeral connection, JSON; no sockets, so the ratio
  is that of the server's own work).

Per workload and twin it prints actions/s of each configuration and the overhead of metrics
relative to ``off`` (``1 - on/off``, in percent); nothing here asserts a time.

    python benchmarks/bench_metrics.py [--quick] [--json FILE] [--twin compiled|pure|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from twin_child import run_twin

CONCURRENCY = 64
CONFIGS = ("off", "counters", "full")


def build_registry() -> Any:
    from rivetkit import ActorOptions, actor, setup

    bench = actor("bench", state={"n": 0}, options=ActorOptions(sleep_timeout=3600.0))

    @bench.action
    def inc(c: Any) -> int:
        c.state["n"] += 1
        return int(c.state["n"])

    @bench.action
    async def ainc(c: Any) -> int:
        c.state["n"] += 1
        return int(c.state["n"])

    return setup(use=[bench])


def options_of(config: str) -> Any:
    from rivetkit.metrics import MetricsOptions

    if config == "off":
        return MetricsOptions(enabled=False)
    return MetricsOptions(latency=config == "full")


async def measure(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    """actions/s per workload and configuration, in this process's twin."""
    from rivetkit.drivers.embedded import EmbeddedDriver
    from rivetkit.runtime.live_actors import Runtime
    from rivetkit.testing import RuntimeClient

    registry = build_registry()
    async with contextlib.AsyncExitStack() as stack:
        handles: dict[str, Any] = {}
        for config in CONFIGS:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rk-metrics-"))
            runtime = Runtime(registry, EmbeddedDriver(data_dir), metrics=options_of(config))
            await runtime.start()
            stack.push_async_callback(runtime.stop)
            assert (runtime.metrics is None) == (config == "off")
            handle = RuntimeClient(runtime).bench.get_or_create(["bench"])
            await handle.inc()
            handles[config] = handle

        def workloads(handle: Any) -> list[tuple[str, Callable[[], Awaitable[Any]], int]]:
            per_caller = max(1, calls // CONCURRENCY)

            async def sequential() -> None:
                for _ in range(calls):
                    await handle.inc()

            async def sequential_async() -> None:
                for _ in range(calls):
                    await handle.ainc()

            async def caller() -> None:
                for _ in range(per_caller):
                    await handle.inc()

            async def concurrent() -> None:
                await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))

            return [
                ("sync action, sequential", sequential, calls),
                (
                    f"sync action, {CONCURRENCY} concurrent callers",
                    concurrent,
                    per_caller * CONCURRENCY,
                ),
                ("async action, sequential", sequential_async, calls),
            ]

        apps: dict[str, tuple[Any, str]] = {}
        for config in CONFIGS:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rk-metrics-"))
            apps[config] = await start_app(registry, data_dir, config)
            stack.push_async_callback(apps[config][0].shutdown)

        def http_workload(config: str) -> tuple[str, Callable[[], Awaitable[Any]], int]:
            app, actor_id = apps[config]
            http_calls = max(1, calls // 4)

            async def run() -> None:
                for _ in range(http_calls):
                    await asgi_action(app, actor_id)

            return ("HTTP action (ASGI, in-process)", run, http_calls)

        best: dict[str, dict[str, float]] = {}
        for _ in range(rounds):
            for config in CONFIGS:
                for name, run, total in [*workloads(handles[config]), http_workload(config)]:
                    start = time.thread_time()
                    await run()
                    rate = total / max(1e-9, time.thread_time() - start)
                    row = best.setdefault(name, {})
                    row[config] = max(row.get(config, 0.0), rate)
        return best


_BODY = b'{"args":[]}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]


async def start_app(registry: Any, data_dir: str, config: str) -> tuple[Any, str]:
    """A started server app whose runtime has ``config``'s metrics, and the id of its
    actor."""
    from rivetkit.metrics import RuntimeMetrics
    from rivetkit.server import create_app

    app = create_app(registry, data_dir=data_dir)
    runtime = app.runtime
    options = options_of(config)
    runtime.metrics = (
        RuntimeMetrics(lambda: runtime.instances, runtime.driver, options)
        if options.enabled
        else None
    )
    await app.startup()
    record, _ = await runtime.driver.get_or_create_actor("bench", ["http"], None)
    status = await asgi_action(app, record.actor_id)
    assert status == 200, status
    return app, record.actor_id


async def asgi_action(app: Any, actor_id: str) -> int:
    """One ``POST /gateway/{actor_id}/action/inc`` through the ASGI app; its status."""
    path = f"/gateway/{actor_id}/action/inc"
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": _HEADERS,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": _BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


def run_child(twin: str, calls: int, rounds: int) -> dict[str, Any]:
    args = ["--calls", str(calls), "--rounds", str(rounds)]
    return run_twin(__file__, twin == "pure", args, timeout=1200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (about a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--twin", choices=("compiled", "pure", "both"), default="both")
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = args.calls or (20_000 if args.quick else 100_000)
    rounds = args.rounds or (5 if args.quick else 9)

    if args.child:
        import rivetkit

        results = asyncio.run(measure(calls, rounds))
        print(json.dumps({"speedups": rivetkit.SPEEDUPS, "results": results}))
        return 0

    twins = ("compiled", "pure") if args.twin == "both" else (args.twin,)
    print(f"python {platform.python_version()} on {platform.machine()}, {calls} calls per "
          f"workload, best of {rounds} interleaved rounds")  # fmt: skip
    rows = []
    for twin in twins:
        try:
            child = run_child(twin, calls, rounds)
        except subprocess.CalledProcessError as exc:
            print(exc.stderr, file=sys.stderr)
            if twin == "compiled":
                print("the compiled twins are not built: run `make venv`", file=sys.stderr)
            return 2
        for name, rates in child["results"].items():
            off = rates["off"]
            counters_cost = 100.0 * (1.0 - rates["counters"] / off)
            full_cost = 100.0 * (1.0 - rates["full"] / off)
            ratio = rates["full"] / off
            print(f"[{twin}] {name}: off {off:,.0f}/s, counters {rates['counters']:,.0f}/s "
                  f"({counters_cost:+.1f}% cost), full {rates['full']:,.0f}/s "
                  f"({full_cost:+.1f}% cost), ratio full/off {ratio:.3f}")  # fmt: skip
            rows.append(
                {
                    "twin": twin,
                    "workload": name,
                    **rates,
                    "counters_cost_pct": counters_cost,
                    "full_cost_pct": full_cost,
                }
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"unit": "actions/s", "results": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

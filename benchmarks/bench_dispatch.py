"""In-process action dispatch through ``setup_runtime``: actions/s, compiled twin vs pure twin.

Workloads, each on one actor of an embedded store in a temporary directory:

* a trivial sync action (``inc``: add 1 to the state, return it) awaited sequentially on one
  handle (``await handle.inc()``);
* the same with 64 concurrent callers on that handle (``asyncio.gather`` of 64 loops);
* a trivial async action, sequentially;
* ``ActionTable.call`` alone (the dispatch twin without the runtime around it).

Each side runs in its own subprocess: the compiled one with ``RIVETKIT_REQUIRE_SPEEDUPS=1``,
the pure one with ``RIVETKIT_PURE=1``, one after the other in this run. Figures are the best
of several repeats; nothing here asserts a time. Per workload it prints

    <workload>: compiled X actions/s, pure Y actions/s, ratio Z

    python benchmarks/bench_dispatch.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
import timeit
from typing import Any

from twin_child import run_twin

CONCURRENCY = 64


def build_registry() -> Any:
    from rivetkit import actor, setup

    bench = actor("bench", state={"n": 0})

    @bench.action
    def inc(c: Any) -> int:
        c.state["n"] += 1
        return int(c.state["n"])

    @bench.action
    async def ainc(c: Any) -> int:
        c.state["n"] += 1
        return int(c.state["n"])

    return setup(use=[bench])


async def measure(calls: int, repeat: int) -> dict[str, float]:
    """actions/s of each workload, in this process (its twin is whatever was selected)."""
    from rivetkit.testing import setup_runtime

    results: dict[str, float] = {}
    async with setup_runtime(build_registry()) as client:
        handle = client.bench.get_or_create(["bench"])
        await handle.inc()

        async def sequential() -> None:
            for _ in range(calls):
                await handle.inc()

        async def sequential_async() -> None:
            for _ in range(calls):
                await handle.ainc()

        per_caller = max(1, calls // CONCURRENCY)

        async def caller() -> None:
            for _ in range(per_caller):
                await handle.inc()

        async def concurrent() -> None:
            await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))

        concurrent_name = f"sync action, {CONCURRENCY} concurrent callers"
        for name, run, total in (
            ("sync action, sequential", sequential, calls),
            (concurrent_name, concurrent, per_caller * CONCURRENCY),
            ("async action, sequential", sequential_async, calls),
        ):
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                await run()
                best = min(best, time.perf_counter() - start)
            results[name] = total / best

        # The dispatch twin alone, on the live instance's table.
        instance = client.runtime.instances[await handle.resolve()]
        table, ctx, no_args = instance.table, instance.context, []
        number = calls * 2
        seconds = min(
            timeit.repeat(lambda: table.call("inc", ctx, no_args), number=number, repeat=repeat)
        )
        results["ActionTable.call alone"] = number / seconds
    return results


def run_child(pure: bool, calls: int, repeat: int) -> dict[str, Any]:
    return run_twin(__file__, pure, ["--calls", str(calls), "--repeat", str(repeat)], timeout=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (under a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = args.calls or (50_000 if args.quick else 300_000)
    repeat = args.repeat or (3 if args.quick else 5)

    if args.child:
        import rivetkit

        results = asyncio.run(measure(calls, repeat))
        print(json.dumps({"speedups": rivetkit.SPEEDUPS, "results": results}))
        return 0

    try:
        compiled = run_child(False, calls, repeat)
    except subprocess.CalledProcessError as exc:
        print(exc.stderr, file=sys.stderr)
        print("the compiled twins are not built: run `make venv` first", file=sys.stderr)
        return 2
    pure = run_child(True, calls, repeat)
    assert compiled["speedups"] is True and pure["speedups"] is False

    print(f"python {platform.python_version()} on {platform.machine()}, {calls} calls per run, "
          f"best of {repeat}")  # fmt: skip
    rows = []
    for name, cy in compiled["results"].items():
        py = pure["results"][name]
        print(f"{name}: compiled {cy:,.0f} actions/s, pure {py:,.0f} actions/s, "
              f"ratio {cy / py:.2f}")  # fmt: skip
        rows.append({"workload": name, "compiled": cy, "pure": py, "ratio": cy / py})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"unit": "actions/s", "results": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

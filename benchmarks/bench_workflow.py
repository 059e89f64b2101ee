"""Durable workflows: steps per second, and the replay of a long history.

Two figures, each measured in a child process per twin (compiled, then pure: the BARE codec
of the history entries and metadata is the twinned hot path), embedded driver on a temporary
data directory, the client in process (``create_app(registry).client()``):

* ``loop_steps_per_s``: a workflow ``loop`` of N iterations (default 10,000), one ``step``
  each (a state increment), with the default history pruning (every 20 iterations): N divided
  by the time from the actor's start to the loop's break. Every step is written (history
  entry + metadata + actor state in one KV batch) before the next starts.
* ``replay_ms``: a workflow of N top-level steps (a history of N entries and N metadata rows)
  that completed; the actor is put to sleep, then woken by an action. The time from the
  waking call to the end of the replayed function (every step returning its recorded output)
  includes loading the history from storage and the actor's wake.
  ``flat_steps_per_s`` is the first run of that workflow.

Times are measured in this run; nothing here asserts a time.

    python benchmarks/bench_workflow.py [--steps 10000] [--rounds 3] [--only compiled,pure]
        [--json FILE]

Each figure is the best of ``--rounds`` runs (each on a new data directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from twin_child import run_twin  # noqa: E402

#: perf_counter() at the end of each run of the flat workflow's function (replays included).
FINISHED: list[float] = []


def build(steps: int) -> Any:
    """The registry: ``looper`` (a loop of ``steps`` steps) and ``flat`` (``steps`` steps)."""
    from rivetkit import actor, setup
    from rivetkit.workflow import Loop, workflow

    looper = actor("looper", state={"count": 0, "done": False})

    @looper.run
    @workflow
    async def loop_flow(ctx: Any) -> None:
        def inc(s: Any) -> int:
            s.state["count"] += 1
            return int(s.state["count"])

        async def body(ctx: Any, i: int) -> Any:
            await ctx.step("inc", inc)
            return Loop.break_(i + 1) if i + 1 >= steps else Loop.continue_(i + 1)

        await ctx.loop("work", body, state=0)
        await ctx.step("done", lambda s: s.state.update(done=True))

    @looper.action
    def loop_done(c: Any) -> bool:
        return bool(c.state["done"])

    flat = actor("flat", state={"count": 0, "done": False})

    @flat.run
    @workflow
    async def flat_flow(ctx: Any) -> None:
        def inc(s: Any) -> None:
            s.state["count"] += 1

        for i in range(steps):
            await ctx.step(f"s{i}", inc)
        await ctx.step("done", lambda s: s.state.update(done=True))
        FINISHED.append(time.perf_counter())

    @flat.action
    def flat_done(c: Any) -> bool:
        return bool(c.state["done"])

    @flat.action
    def nap(c: Any) -> None:
        c.sleep()

    return setup(use=[looper, flat])


async def until(check: Any, timeout: float) -> None:
    """Poll ``check()`` (a coroutine function) every 5 ms until it is true."""
    deadline = time.perf_counter() + timeout
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the workflow did not finish in time")
        await asyncio.sleep(0.005)


async def measure(steps: int) -> dict[str, Any]:
    """Run both workflows once in this process; the figures."""
    from rivetkit.server import create_app

    registry = build(steps)
    timeout = max(600.0, steps * 0.05)
    with tempfile.TemporaryDirectory(prefix="rivetkit-bench-wf-") as data_dir:
        app = create_app(registry, data_dir=data_dir)
        async with app.lifespan():
            client = app.client()
            looper = client.looper.get_or_create(["bench"])
            started = time.perf_counter()
            await until(looper.loop_done, timeout)
            loop_s = time.perf_counter() - started

            flat = client.flat.get_or_create(["bench"])
            started = time.perf_counter()
            await until(flat.flat_done, timeout)
            flat_s = time.perf_counter() - started

            await flat.nap()
            await asyncio.sleep(0.5)  # the actor stops
            runs = len(FINISHED)
            started = time.perf_counter()
            await flat.flat_done()  # wakes the actor: its workflow replays

            async def replayed() -> bool:
                return len(FINISHED) > runs

            await until(replayed, timeout)
            replay_s = FINISHED[-1] - started
    return {
        "steps": steps,
        "loop_steps_per_s": round(steps / loop_s),
        "flat_steps_per_s": round(steps / flat_s),
        "replay_ms": round(replay_s * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    parser.add_argument("--only", help="comma-separated: compiled,pure")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        runs = [asyncio.run(measure(args.steps)) for _ in range(args.rounds)]
        best = {
            "steps": args.steps,
            "rounds": args.rounds,
            "loop_steps_per_s": max(r["loop_steps_per_s"] for r in runs),
            "flat_steps_per_s": max(r["flat_steps_per_s"] for r in runs),
            "replay_ms": min(r["replay_ms"] for r in runs),
        }
        print(json.dumps(best))
        return
    results: dict[str, Any] = {"python": platform.python_version()}
    only = args.only.split(",") if args.only else ["compiled", "pure"]
    for twin in only:
        try:
            results[twin] = run_twin(
                __file__,
                twin == "pure",
                ["--steps", str(args.steps), "--rounds", str(args.rounds)],
                timeout=3600,
            )
        except subprocess.CalledProcessError as exc:
            print(f"{twin}: failed\n{exc.stderr[-2000:]}", file=sys.stderr)
            results[twin] = None
        print(f"{twin}:", results[twin])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

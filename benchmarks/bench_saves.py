"""State saves with group commit: 1,000 actors changing state concurrently.

Every actor (``state_save_interval`` small, 10 ms by default) has its state changed every half
save interval (``--pace``), so it is dirty at each of its save deadlines. Two ways to change
it, measured one after the other in the same run (``--via``):

* ``direct``: one task changes every actor's state in place and marks it changed
  (``instance.mark_dirty()``, what the runtime does after an action), the way a ``run`` hook
  or a timer inside the actor would: the figure is what the save path (encoding, scheduling,
  the SQLite writer) sustains;
* ``actions``: each actor has one caller calling an action that changes the state, then
  waiting ``--pace`` save intervals: the saves then share the process with the action path,
  whose cost bounds the figure (about two actions per save).

The embedded store's counters give the figures: ``write_ops`` (one per save of a snapshot at
KV ``[1]``) and ``transactions`` (group commits; each holds the saves that were pending when
the writer thread woke). Also printed: the changes/s made, and the average number of saves per
transaction. Nothing here asserts a figure.

    python benchmarks/bench_saves.py [--quick] [--via direct|actions|both] [--actors N]
                                     [--seconds S] [--interval S] [--pace P]
                                     [--synchronous NORMAL|FULL] [--loop asyncio|uvloop]
                                     [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rivetkit
from rivetkit import ActorOptions, actor, setup
from rivetkit.drivers.embedded import EmbeddedDriver
from rivetkit.runtime.live_actors import Runtime
from rivetkit.testing import RuntimeClient


def build_registry(interval: float) -> Any:
    saver = actor(
        "saver",
        state={"n": 0, "payload": "x" * 64},
        options=ActorOptions(state_save_interval=interval, sleep_timeout=600.0),
    )

    @saver.action
    def inc(c: Any) -> int:
        c.state["n"] += 1
        return int(c.state["n"])

    @saver.action
    def count(c: Any) -> int:
        return int(c.state["n"])

    return setup(use=[saver])


async def run(args: argparse.Namespace, data_dir: str, via: str) -> dict[str, Any]:
    driver = EmbeddedDriver(data_dir, synchronous=args.synchronous)
    runtime = Runtime(build_registry(args.interval), driver)
    await runtime.start()
    try:
        client = RuntimeClient(runtime)
        handles = [client.saver.get_or_create([str(i)]) for i in range(args.actors)]
        # Start every actor (creation and its first snapshot are not measured).
        for start in range(0, len(handles), 100):
            await asyncio.gather(*(h.inc() for h in handles[start : start + 100]))
        await asyncio.sleep(args.interval * 2)

        stop = asyncio.Event()
        actions = 0
        pause = args.interval * args.pace

        async def caller(handle: Any) -> None:
            nonlocal actions
            while not stop.is_set():
                await handle.inc()
                actions += 1
                await asyncio.sleep(pause)

        async def changer() -> None:
            nonlocal actions
            instances = [runtime.instances[await h.resolve()] for h in handles]
            while not stop.is_set():
                for instance in instances:
                    instance.state["n"] += 1
                    instance.mark_dirty()
                actions += len(instances)
                await asyncio.sleep(pause)

        store = driver.store
        if via == "direct":
            tasks = [asyncio.ensure_future(changer())]
        else:
            tasks = [asyncio.ensure_future(caller(h)) for h in handles]
        await asyncio.sleep(args.interval * 5)  # reach a steady state
        writes, transactions, started_actions = store.write_ops, store.transactions, actions
        writer_clock = _thread_clock(store)
        collections = _Collections()
        gc.callbacks.append(collections)
        started = time.perf_counter()
        loop_cpu, writer_cpu = time.thread_time(), _cpu(writer_clock)
        try:
            await asyncio.sleep(args.seconds)
        finally:
            gc.callbacks.remove(collections)
        loop_cpu, writer_cpu = time.thread_time() - loop_cpu, _cpu(writer_clock) - writer_cpu
        elapsed = time.perf_counter() - started
        writes = store.write_ops - writes
        transactions = store.transactions - transactions
        actions -= started_actions
        stop.set()
        await asyncio.gather(*tasks)

        # Every change reached the disk by the end (graceful stop saves the rest).
        totals = await asyncio.gather(*(h.count() for h in handles))
    finally:
        await runtime.stop()
    return {
        "via": via,
        "actors": args.actors,
        "interval_s": args.interval,
        "seconds": elapsed,
        "saves_per_s": writes / elapsed,
        "transactions_per_s": transactions / elapsed,
        "saves_per_transaction": writes / max(1, transactions),
        "changes_per_s": actions / elapsed,
        "max_saves_per_s": args.actors / args.interval,
        "total_changes": sum(totals),
        # CPU seconds per second measured, and per save in µs (less noisy than rates on a
        # shared machine): the event loop's thread (changes included) and the writer's.
        "loop_cpu": loop_cpu / elapsed,
        "writer_cpu": writer_cpu / elapsed,
        "loop_cpu_us_per_save": loop_cpu / max(1, writes) * 1e6,
        "writer_cpu_us_per_save": writer_cpu / max(1, writes) * 1e6,
        # The cyclic GC while measured: collections per second of each generation, and the
        # share of the measured time spent in them.
        "gc_per_s": [count / elapsed for count in collections.counts],
        "gc_time": collections.seconds / elapsed,
    }


class _Collections:
    """A ``gc.callbacks`` entry counting the collections of each generation and their time."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.counts[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._started


def _thread_clock(store: Any) -> int | None:
    """The CPU clock of the store's writer thread (Linux), or None."""
    thread = getattr(store, "_thread", None)
    ident = getattr(thread, "ident", None)
    if ident is None or not hasattr(time, "pthread_getcpuclockid"):
        return None
    return time.pthread_getcpuclockid(ident)


def _cpu(clock: int | None) -> float:
    return 0.0 if clock is None else time.clock_gettime(clock)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (under a minute)")
    parser.add_argument("--via", choices=["direct", "actions", "both"], default="both")
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--seconds", type=float, help="measured time (default 5, quick 2)")
    parser.add_argument("--interval", type=float, default=0.01, help="state_save_interval (s)")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.5,
        help="the state changes every this many save intervals (default 0.5)",
    )
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the event loop (rivetkit serve runs on uvloop when it is installed)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 5.0

    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"speedups {rivetkit.SPEEDUPS}, synchronous={args.synchronous}, "
          f"loop {args.loop}")  # fmt: skip
    results = []
    for via in ["direct", "actions"] if args.via == "both" else [args.via]:
        with tempfile.TemporaryDirectory(prefix="rivetkit-bench-") as data_dir:
            if args.loop == "uvloop":
                import uvloop

                result = uvloop.run(run(args, data_dir, via))
            else:
                result = asyncio.run(run(args, data_dir, via))
        results.append(result)
        print(f"-- via {via}: {result['actors']} actors, state_save_interval "
              f"{args.interval * 1000:g} ms, {result['seconds']:.1f} s measured")  # fmt: skip
        print(f"saves: {result['saves_per_s']:,.0f}/s "
              f"(at most {result['max_saves_per_s']:,.0f}/s at this interval)")  # fmt: skip
        per_transaction = result["saves_per_transaction"]
        print(f"transactions: {result['transactions_per_s']:,.0f}/s, "
              f"{per_transaction:.1f} saves per transaction (group commit)")  # fmt: skip
        what = "actions" if via == "actions" else "state changes"
        print(f"{what}: {result['changes_per_s']:,.0f}/s")
        print(f"cpu: event loop {result['loop_cpu']:.0%} "
              f"({result['loop_cpu_us_per_save']:.1f} us per save, changes included), "
              f"writer thread {result['writer_cpu']:.0%} "
              f"({result['writer_cpu_us_per_save']:.1f} us per save)")  # fmt: skip
        per_s = ", ".join(f"{n:.1f}" for n in result["gc_per_s"])
        print(f"cyclic gc: {per_s} collections/s (generations 0, 1, 2), "
              f"{result['gc_time']:.1%} of the time")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results if len(results) > 1 else results[0], handle, indent=2)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Timer bookkeeping: TimerQueue operations/s, compiled twin vs pure twin.

The workload is what the sleep controller does for a process full of actors: 10,000 keys
(actor ids) armed, then round after round every key re-armed to a later deadline (actors
re-arm their idle timer on every request), one in eight cancelled, and the due ones popped.
Every arm, re-arm, cancel and popped key counts as one operation; 1,000,000 operations in
all (100,000 with ``--quick``). Per-operation figures follow (arm of new keys, re-arm,
cancel, pop), then the cost of :class:`~rivetkit.runtime.timers.SleepTimers.arm` (the
TimerQueue plus the single loop timer) in this process's selected twin.

Both twins are imported side by side (``rivetkit.runtime._timers_py`` and
``rivetkit._speedups._timers``); the figures are the best of three runs; nothing here
asserts a time. Target: >= 2,000,000 operations/s compiled.

    python benchmarks/bench_timers.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import platform
import random
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEYS = 10_000


def twins() -> dict[str, ModuleType]:
    found = {"pure": importlib.import_module("rivetkit.runtime._timers_py")}
    try:
        found["compiled"] = importlib.import_module("rivetkit._speedups._timers")
    except ImportError:
        print("compiled twin not built (make venv): pure only", file=sys.stderr)
    return found


def mixed(module: ModuleType, total: int) -> tuple[int, float]:
    """(operations, seconds) of the mixed workload."""
    rng = random.Random(42)
    keys = [f"actor-{i:05d}" for i in range(KEYS)]
    spread = [25.0 + 10.0 * rng.random() for _ in range(KEYS)]
    cancelled = keys[::8]
    queue = module.TimerQueue()
    arm, cancel, pop_due = queue.arm, queue.cancel, queue.pop_due
    now = 0.0
    ops = 0
    began = time.perf_counter()
    for key, delta in zip(keys, spread):
        arm(key, now + delta)
    ops += KEYS
    while ops < total:
        now += 1.0
        for key, delta in zip(keys, spread):
            arm(key, now + delta)  # re-arm (or arm again, for popped and cancelled keys)
        for key in cancelled:
            cancel(key)
        ops += KEYS + len(cancelled)
        ops += len(pop_due(now + 30.0))
    return ops, time.perf_counter() - began


def per_op(module: ModuleType, n: int) -> dict[str, float]:
    """Operations/s of each operation alone, on ``n`` keys."""
    keys = [f"actor-{i:07d}" for i in range(n)]
    queue = module.TimerQueue()
    arm, cancel, pop_due = queue.arm, queue.cancel, queue.pop_due
    result: dict[str, float] = {}
    began = time.perf_counter()
    for i, key in enumerate(keys):
        arm(key, float(i))
    result["arm"] = n / (time.perf_counter() - began)
    began = time.perf_counter()
    for i, key in enumerate(keys):
        arm(key, float(n + i))
    result["re-arm"] = n / (time.perf_counter() - began)
    began = time.perf_counter()
    popped = pop_due(float(2 * n))
    result["pop"] = len(popped) / (time.perf_counter() - began)
    for i, key in enumerate(keys):
        arm(key, float(i))
    began = time.perf_counter()
    for key in keys:
        cancel(key)
    result["cancel"] = n / (time.perf_counter() - began)
    return result


async def sleep_timers_arm(n: int) -> float:
    """SleepTimers.arm calls/s (re-arming 10,000 actors again and again)."""
    from rivetkit.runtime.timers import SleepTimers

    timers = SleepTimers(lambda key: None)
    keys = [f"actor-{i:05d}" for i in range(KEYS)]
    base = timers.now() + 3600
    arm = timers.arm
    began = time.perf_counter()
    done = 0
    round_ = 0
    while done < n:
        when = base + round_
        for key in keys:
            arm(key, when)
        done += KEYS
        round_ += 1
    elapsed = time.perf_counter() - began
    timers.close()
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 operations")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    total = 100_000 if args.quick else 1_000_000
    per_op_n = 20_000 if args.quick else 200_000
    figures: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "operations": total,
    }
    print(f"TimerQueue, {KEYS:,} keys, {total:,} operations (arm, re-arm, cancel, pop)")
    rates: dict[str, float] = {}
    for name, module in twins().items():
        runs = [mixed(module, total) for _ in range(3)]
        ops, seconds = min(runs, key=lambda r: r[1] / r[0])
        rates[name] = ops / seconds
        ops_each = per_op(module, per_op_n)
        for _ in range(2):
            again = per_op(module, per_op_n)
            ops_each = {k: max(v, again[k]) for k, v in ops_each.items()}
        figures[name] = {"mixed_ops_per_s": rates[name], "per_op": ops_each}
        detail = ", ".join(f"{k} {v / 1e6:.2f}M/s" for k, v in ops_each.items())
        print(f"  {name:8}: {rates[name] / 1e6:6.2f}M ops/s mixed ({ops:,} ops)  [{detail}]")
    if "compiled" in rates:
        ratio = rates["compiled"] / rates["pure"]
        figures["ratio"] = ratio
        print(f"  ratio compiled/pure: {ratio:.2f}x (target: >= 2.00M ops/s compiled)")
    arm_rate = asyncio.run(sleep_timers_arm(total))
    from rivetkit import _twins

    twin = "compiled" if _twins.compiled.get("_timers") else "pure"
    figures["sleep_timers_arm_per_s"] = arm_rate
    print(f"SleepTimers.arm ({twin} twin, one loop timer): {arm_rate / 1e6:.2f}M calls/s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

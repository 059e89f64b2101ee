"""Cost of the state check (``rivetkit/runtime/state_guard.py``) on the counter's ``increment``.

One run, one process, two settings: the counter of ``examples/counter.py`` in-process through
``setup_runtime`` (no network, so the check's share is the largest it can be), then over HTTP
(``serve_in_background`` and the Python client in the same process, keep-alive). Blocks of
sequential ``increment(1)`` calls alternate between the check on and off (the instance's
internal switch ``_guard.enabled``); per side the best block is kept. It prints the µs per
action of each side, their ratio, and the cost of one check alone (``StateGuard.check`` on the
counter's state). Nothing here asserts a figure.

    python benchmarks/bench_state_check.py [--calls N] [--rounds R] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "examples"))


async def alternate(handle: Any, guard: Any, calls: int, rounds: int) -> dict[str, float]:
    """µs per ``increment`` with the check on and off, alternating, best block of each."""
    best = {True: float("inf"), False: float("inf")}
    for _ in range(rounds):
        for enabled in (True, False):
            guard.enabled = enabled
            started = time.perf_counter()
            for _ in range(calls):
                await handle.increment(1)
            elapsed = (time.perf_counter() - started) / calls * 1e6
            best[enabled] = min(best[enabled], elapsed)
    guard.enabled = True
    return {"on_us": best[True], "off_us": best[False], "ratio": best[True] / best[False]}


async def measure(calls: int, rounds: int) -> dict[str, Any]:
    """Both settings, and one check alone."""
    from counter import registry

    import rivetkit
    from rivetkit.client import Client
    from rivetkit.server import serve_in_background
    from rivetkit.testing import setup_runtime

    async with setup_runtime(registry) as client:
        handle = client.counter.get_or_create(["bench"])
        await handle.increment(1)
        instance = await client.runtime.instance(await handle.resolve())
        in_process = await alternate(handle, instance._guard, calls, rounds)
        check_alone = (
            min(timeit.repeat(lambda: instance._guard.check(instance), number=calls, repeat=5))
            / calls
            * 1e6
        )
    async with serve_in_background(registry) as endpoint, Client(endpoint) as remote:
        http_handle = remote.counter.get_or_create(["bench"])
        await http_handle.increment(1)
        runtime = endpoint.app.runtime  # type: ignore[attr-defined]
        instance = await runtime.instance(await http_handle.resolve())
        http = await alternate(http_handle, instance._guard, max(1, calls // 10), rounds)
    return {
        "speedups": rivetkit.SPEEDUPS,
        "in_process": in_process,
        "http": http,
        "us_per_check_alone": check_alone,
        "calls_per_block": calls,
        "rounds": rounds,
    }


def main() -> int:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args.calls, args.rounds))
    print(f"counter increment (speedups={result['speedups']}), best block of each side:")
    for setting in ("in_process", "http"):
        figures = result[setting]
        print(
            f"  {setting:<10} check on {figures['on_us']:8.2f} µs/action, "
            f"off {figures['off_us']:8.2f} µs/action, ratio {figures['ratio']:.3f}"
        )
    print(f"  one check alone: {result['us_per_check_alone']:.2f} µs")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the slow sync action check costs: the counter's sync action with the check on (the
default, ``slow_sync_action_warning=0.1``) and off (``None``), in the same run.

* ``ActionTable.call`` alone, both twins (two monotonic clock reads per sync call when on);
* the whole in-process call (``setup_runtime``, ``await handle.inc()``) with the twin this
  process selected (run it again with ``RIVETKIT_PURE=1`` for the pure one).

Figures are the best of several repeats; nothing here asserts a time.

    python benchmarks/bench_blocking.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
import timeit
from typing import Any


class _Spec:
    def __init__(self, fn: Any) -> None:
        self.fn, self.is_async, self.validate = fn, False, None


def table_rates(module: Any, calls: int, repeat: int) -> tuple[float, float]:
    """calls/s of ``table.call("inc", ...)`` with the check off, then on."""
    state = {"n": 0}

    class Ctx:
        pass

    ctx = Ctx()
    ctx.state = state  # type: ignore[attr-defined]

    def inc(c: Any) -> int:
        c.state["n"] += 1
        return int(c.state["n"])

    actions = {"inc": _Spec(inc)}
    calls_of = [
        module.ActionTable(actions, warn_after, lambda name, s: None).call
        for warn_after in (None, 0.1)
    ]
    best = [float("inf"), float("inf")]
    for _ in range(repeat):  # interleaved, so drift of a shared machine hits both alike
        for i, call in enumerate(calls_of):
            took = timeit.timeit(lambda: call("inc", ctx, []), number=calls)  # noqa: B023
            best[i] = min(best[i], took)
    return calls / best[0], calls / best[1]


async def runtime_rates(calls: int, repeat: int) -> tuple[float, float]:
    """actions/s of ``await handle.inc()`` through the runtime, check off then on."""
    from rivetkit import ActorOptions, actor, setup
    from rivetkit.testing import setup_runtime

    def registry(warn_after: float | None) -> Any:
        bench = actor(
            "bench", state={"n": 0}, options=ActorOptions(slow_sync_action_warning=warn_after)
        )

        @bench.action
        def inc(c: Any) -> int:
            c.state["n"] += 1
            return int(c.state["n"])

        return setup(use=[bench])

    best = [float("inf"), float("inf")]
    async with (
        setup_runtime(registry(None)) as off,
        setup_runtime(registry(0.1)) as on,
    ):
        handles = [client.get_or_create("bench", ["k"]) for client in (off, on)]
        for handle in handles:
            await handle.inc()
        for _ in range(repeat):  # interleaved, as above
            for i, handle in enumerate(handles):
                started = time.perf_counter()
                for _ in range(calls):
                    await handle.inc()
                best[i] = min(best[i], time.perf_counter() - started)
    return calls / best[0], calls / best[1]


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    calls, repeat = (20_000, 3) if options.quick else (200_000, 7)
    import rivetkit

    for label, name in (
        ("pure", "rivetkit.runtime._dispatch_py"),
        ("compiled", "rivetkit._speedups._dispatch"),
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            print(f"ActionTable.call ({label}): not built")
            continue
        off, on = table_rates(module, calls, repeat)
        print(
            f"ActionTable.call ({label}): check off {off:,.0f}/s, on {on:,.0f}/s "
            f"({(on / off - 1) * 100:+.1f}%)"
        )
    off, on = asyncio.run(runtime_rates(calls // 10, repeat))
    twin = "compiled" if rivetkit.SPEEDUPS else "pure"
    print(
        f"await handle.inc() ({twin}): check off {off:,.0f}/s, on {on:,.0f}/s "
        f"({(on / off - 1) * 100:+.1f}%)"
    )


if __name__ == "__main__":
    main()

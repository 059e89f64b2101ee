"""The cost of tracing on the action path: the counter's ``increment`` with traces on and off,
in the same run, as a ratio.

One actor with the counter's sync ``increment`` action, sequential calls on one handle, in
rounds alternating between tracing on and off *for that same actor* (its recorder is set
aside for the "off" rounds, as ``ActorOptions(traces=False)`` would leave it), so both sides
see the same actor and the same machine. Two paths:

* ``runtime``: :func:`rivetkit.testing.setup_runtime`'s client (no transport, no encoding):
  the action path alone, where a span's cost is the largest share. The calls never give
  the loop a turn, so the chunk writer does not run within a round (sealed chunks past
  ``MAX_PENDING`` are dropped): this is the recording's cost on the action's path. The
  recorder reads ``time.time_ns`` as a served actor's does (``setup_runtime``'s fake clock
  would add two Python calls per span);
* ``runtime+writer``: the same, giving the loop a turn every 100 calls on both sides, so
  the writer encodes and stores every chunk within the round: the whole cost of tracing,
  recording and writing;
* ``server``: a real server on 127.0.0.1 (:func:`rivetkit.server.serve_in_background`) and
  the Python client's WebSocket connection (``conn.action("increment")``): the whole path
  a client's call takes.

It also prints the recorder's own cost per span (start + end, on the action's path) and
the writer's (records and bytes of a sealed chunk, in a background task).

For each path it prints the best rate of each side over the rounds, ``on / off`` (1.0 = free;
0.97 = 3 % slower), and the cost the per-span figures predict (recording + writing, over
an untraced call's time), which the machine's noise does not blur. Whichever twins are
selected are measured (``RIVETKIT_PURE=1`` for the pure ones). Nothing here asserts a time.

It also prints what the traces cost a short-lived actor (issue 20's many-actors benchmark:
one call, then sleep): its recorder made (:func:`rivetkit.traces.traces_for`), the preload,
one action span, and the stop's close handing the chunk to the driver's ``kv_put_soon``,
on a driver that does nothing (microseconds per actor, best of 5). ``--lifecycle N`` runs
only that, N times on uvloop, and prints nothing: for instruction counts, e.g.
``valgrind --tool=callgrind python benchmarks/bench_traces.py --lifecycle 2500`` minus the
same with 500, over 2,000.

    python benchmarks/bench_traces.py [--quick] [--json FILE] [--lifecycle N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rivetkit
from rivetkit import actor, setup
from rivetkit.client import Client
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_runtime
from rivetkit.traces import traces_for
from rivetkit.traces.encode import encode_chunk
from rivetkit.traces.recorder import ActorTraces


def build_registry() -> Any:
    counter = actor("counter", state={"count": 0})

    @counter.action
    def increment(c: Any, amount: int = 1) -> int:
        c.state["count"] += amount
        return int(c.state["count"])

    return setup(use=[counter])


async def compare(
    call: Callable[[], Awaitable[Any]],
    instance: Any,
    calls: int,
    rounds: int,
    yield_every: int = 0,
) -> dict[str, float]:
    """Best calls/s with the traces of ``instance`` on and off, over ``rounds`` alternating
    rounds of ``calls`` calls each (``yield_every``: give the loop a turn every that many
    calls, on both sides, so the chunk writer runs within the round)."""
    recorder = instance.traces
    assert recorder is not None, "tracing is off (RIVETKIT_TRACES=0?)"
    best = {"on": 0.0, "off": 0.0}
    for _ in range(200):  # warm-up
        await call()
    every = yield_every or calls + 1
    for round_ in range(rounds):
        for side in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
            instance.traces = recorder if side == "on" else None
            start = time.perf_counter()
            for i in range(calls):
                await call()
                if i % every == 0:
                    await asyncio.sleep(0)
            best[side] = max(best[side], calls / (time.perf_counter() - start))
        await recorder.flush()
    instance.traces = recorder
    return {
        "on_per_s": round(best["on"]),
        "off_per_s": round(best["off"]),
        "ratio": round(best["on"] / best["off"], 4),
    }


class _NoStore:
    async def write(self, puts: Any, deletes: Any) -> None:
        return None

    async def list(self, *args: Any, **kwargs: Any) -> list[tuple[bytes, bytes]]:
        return []


class _NoDriver:
    """A driver that keeps nothing: an empty KV, puts taken and answered on the loop."""

    async def kv_list(self, actor_id: str, start: bytes, end: bytes | None, **kw: Any) -> list[Any]:
        return []

    def kv_put_soon(self, actor_id: str, puts: Any, done: Callable[[bool, Any], None]) -> bool:
        asyncio.get_running_loop().call_soon(done, True, None)
        return True


async def lifecycles(actors: int) -> float:
    """Seconds for ``actors`` short-lived actors' traces: made, preloaded, one action span,
    closed (the chunk handed to ``kv_put_soon``); the loop gets a turn every 64 actors."""
    driver = _NoDriver()
    options = SimpleNamespace(traces=True, traces_max_bytes=1024 * 1024)
    instances = [
        SimpleNamespace(
            options=options, clock=time.time, driver=driver, actor_id=f"{i:016x}", name="many",
            key=[f"a{i}"],
        )
        for i in range(actors)
    ]  # fmt: skip
    start = time.perf_counter()
    for i, instance in enumerate(instances):
        traces = traces_for(cast(Any, instance))
        assert traces is not None, "tracing is off (RIVETKIT_TRACES=0?)"
        await traces.preload()
        traces.start("action", "increment").end()
        await traces.close()
        if i % 64 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    return time.perf_counter() - start


async def actor_costs(actors: int, repeat: int = 5) -> dict[str, float]:
    """Microseconds of traces per short-lived actor, best of ``repeat``."""
    await lifecycles(200)  # warm-up
    best = min([await lifecycles(actors) for _ in range(repeat)])
    return {"actor_us": round(best / actors * 1e6, 3)}


async def span_costs(spans: int, repeat: int = 5) -> dict[str, float]:
    """Microseconds per span, best of ``repeat``: recording (start + end, on the action's
    path) and writing (the chunk's bytes, in the background)."""
    record_us = encode_us = float("inf")
    size = 0
    for _ in range(repeat):
        recorder = ActorTraces(_NoStore())
        start = time.perf_counter()
        for _ in range(spans):
            recorder.start("action", "increment").end()  # as an action's path does
        record_us = min(record_us, (time.perf_counter() - start) / spans * 1e6)
        chunks = [*recorder.pending]
        current = recorder.current()
        if current is not None:
            chunks.append(current)
        start = time.perf_counter()
        size = sum(len(encode_chunk(recorder, chunk)) for chunk in chunks)
        encode_us = min(encode_us, (time.perf_counter() - start) / spans * 1e6)
        for task in asyncio.all_tasks():  # the writer tasks of the unwritten chunks
            if task is not asyncio.current_task():
                task.cancel()
    return {
        "record_us": round(record_us, 3),
        "encode_us": round(encode_us, 3),
        "bytes_per_span": round(size / spans, 1),
    }


async def run(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    registry = build_registry()
    # (few enough spans that no sealed chunk is dropped for want of a writer: MAX_PENDING)
    results: dict[str, dict[str, float]] = {"span": await span_costs(min(calls, 5000))}
    results["actor"] = await actor_costs(min(calls, 5000))
    async with setup_runtime(registry) as client:
        handle = client.counter.get_or_create(["bench"])
        await handle.increment()
        instance = client.runtime.instances[await handle.resolve()]
        # setup_runtime's fake clock is a Python function; a served actor's recorder reads
        # time.time_ns (in C, with the compiled twin), as set here.
        instance.traces.clock_ns = time.time_ns
        results["runtime"] = await compare(handle.increment, instance, calls, rounds)
        results["runtime+writer"] = await compare(
            handle.increment, instance, calls, rounds, yield_every=100
        )
    with tempfile.TemporaryDirectory(prefix="rivetkit-bench-") as data_dir:
        async with serve_in_background(registry, data_dir=data_dir) as url:  # noqa: SIM117
            async with Client(str(url)) as remote:  # (the client needs the server's url)
                conn = remote.get_or_create("counter", ["bench"]).connect()
                async with conn:
                    await conn.action("increment")
                    instance = url.app.runtime.instances[conn.actor_id]

                    async def call() -> Any:
                        return await conn.action("increment")

                    results["server"] = await compare(call, instance, calls // 10, rounds)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a few seconds)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--lifecycle", type=int, metavar="N", help="only N short-lived actors' traces (callgrind)"
    )
    args = parser.parse_args()
    if args.lifecycle is not None:
        import uvloop

        uvloop.run(lifecycles(args.lifecycle))
        return 0
    calls = 5_000 if args.quick else 20_000
    rounds = 10 if args.quick else 30
    results = asyncio.run(run(calls, rounds))
    twins = "compiled" if rivetkit.SPEEDUPS else "pure"
    print(f"python {platform.python_version()} on {platform.machine()}, {twins} twins, "
          f"best of {rounds} alternating rounds")  # fmt: skip
    span = results.pop("span")
    print(
        f"per span: recording {span['record_us']:.2f} us (on the action's path), "
        f"writing {span['encode_us']:.2f} us (background), {span['bytes_per_span']:.0f} bytes"
    )
    actor_row = results.pop("actor")
    print(
        f"per short-lived actor: {actor_row['actor_us']:.2f} us of traces (made, preload, "
        "one action span, close to kv_put_soon)"
    )
    for name, row in results.items():
        # (the writer does not run within a "runtime" round: recording alone)
        per_span = span["record_us"] + (0.0 if name == "runtime" else span["encode_us"])
        # The span's own cost over an untraced call's time: what the ratio would be without
        # the machine's noise (rounds of the same actor still differ by several percent).
        row["estimated_cost"] = round(per_span * row["off_per_s"] / 1e6, 4)
        print(
            f"{name}: traces on {row['on_per_s']:,.0f}/s, off {row['off_per_s']:,.0f}/s, "
            f"on/off {row['ratio']:.3f} ({(1 - row['ratio']) * 100:+.1f} % measured, "
            f"{row['estimated_cost'] * 100:.1f} % from the per-span cost)"
        )
    if args.json:
        results["span"] = span
        results["actor"] = actor_row
        Path(args.json).write_text(json.dumps({"twins": twins, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Durable queue throughput: send + completable receive + complete, persisted, messages/s.

One actor on an embedded store (real SQLite file, WAL, group commit) in a temporary
directory. ``--producers`` concurrent senders each ``await c.queue.send("jobs", {"n": i})``
(each send returns once its write is committed) while one consumer, as a ``run`` loop would,
takes completable batches (``next_batch(count=--batch, completable=True)``) and completes every
message of a batch concurrently (``message.complete(response)``: a durable delete each). A
message counts when it is completed; the figure is messages/s from the first send to the last
completion, so every message costs two committed changes (its put and its delete).
Concurrency is what lets many of those changes share one commit: the queue coalesces the
changes requested in one event-loop turn into one driver write, and the store's group commit
puts concurrent writes in one SQLite transaction; "messages/commit" is messages divided by
the store's transactions.

Workloads:

* ``pipeline``: producers and consumer together (the figure above);
* ``send only``: the producers alone (messages/s stored);
* ``receive+complete only``: the consumer alone, draining a pre-filled queue;
* ``sequential``: one producer, batch 1 (no concurrency: one commit per write).

Each side runs in its own subprocess: compiled twins (``RIVETKIT_REQUIRE_SPEEDUPS=1``) and pure
twins (``RIVETKIT_PURE=1``). Figures are the best of ``--repeat`` runs; nothing asserts them.

    python benchmarks/bench_queue.py [--quick] [--messages N] [--producers P] [--batch B]
                                     [--synchronous NORMAL|FULL] [--json FILE]
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
from typing import Any

from twin_child import run_twin


def build_registry(capacity: int) -> Any:
    from rivetkit import ActorOptions, actor, setup

    box = actor("box", state={}, options=ActorOptions(max_queue_size=capacity, sleep_timeout=600.0))
    return setup(use=[box])


async def one_run(
    data_dir: str, workload: str, messages: int, producers: int, batch: int, synchronous: str
) -> dict[str, float]:
    from rivetkit.drivers.embedded import EmbeddedDriver
    from rivetkit.runtime.live_actors import Runtime
    from rivetkit.testing import RuntimeClient

    driver = EmbeddedDriver(data_dir, synchronous=synchronous)  # type: ignore[arg-type]
    runtime = Runtime(build_registry(messages + 1000), driver)
    await runtime.start()
    try:
        client = RuntimeClient(runtime)
        actor_id = await client.box.get_or_create(["bench"]).resolve()
        queue = (await runtime.instance(actor_id)).queue
        if workload == "sequential":
            producers, batch = 1, 1
        per_producer = messages // producers
        total = per_producer * producers

        async def producer(p: int) -> None:
            for i in range(per_producer):
                await queue.send("jobs", {"p": p, "n": i})

        async def consumer() -> None:
            done = 0
            while done < total:
                got = await queue.next_batch("jobs", count=batch, completable=True)
                await asyncio.gather(*(m.complete({"ok": m.body["n"]}) for m in got))
                done += len(got)

        store = driver.store
        if workload == "receive+complete only":
            await asyncio.gather(*(producer(p) for p in range(producers)))
        transactions = store.transactions
        started = time.perf_counter()
        if workload == "send only":
            await asyncio.gather(*(producer(p) for p in range(producers)))
        elif workload == "receive+complete only":
            await consumer()
        else:
            await asyncio.gather(consumer(), *(producer(p) for p in range(producers)))
        elapsed = time.perf_counter() - started
        assert queue.size == (total if workload == "send only" else 0)
        txs = store.transactions - transactions
        return {
            "messages_per_s": total / elapsed,
            "messages_per_commit": total / max(1, txs),
        }
    finally:
        await runtime.stop()


async def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    workloads = ["pipeline", "send only", "receive+complete only", "sequential"]
    for workload in workloads:
        best: dict[str, float] | None = None
        count = args.messages if workload != "sequential" else max(500, args.messages // 10)
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="rivetkit-bench-queue-") as data_dir:
                result = await one_run(
                    data_dir, workload, count, args.producers, args.batch, args.synchronous
                )
            if best is None or result["messages_per_s"] > best["messages_per_s"]:
                best = result
        assert best is not None
        results[workload] = best
    return results


def run_child(pure: bool, args: argparse.Namespace) -> dict[str, Any]:
    child_args = [
        "--messages", str(args.messages), "--producers", str(args.producers),
        "--batch", str(args.batch), "--repeat", str(args.repeat),
        "--synchronous", args.synchronous,
    ]  # fmt: skip
    return run_twin(__file__, pure, child_args, timeout=900)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (seconds)")
    parser.add_argument("--messages", type=int, help="messages per run (default 50,000)")
    parser.add_argument("--producers", type=int, default=64, help="concurrent senders")
    parser.add_argument("--batch", type=int, default=256, help="receive batch size")
    parser.add_argument("--repeat", type=int, help="runs per workload (best is kept)")
    parser.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.messages = args.messages or (10_000 if args.quick else 50_000)
    args.repeat = args.repeat or (2 if args.quick else 3)

    if args.child:
        import rivetkit

        results = asyncio.run(measure(args))
        print(json.dumps({"speedups": rivetkit.SPEEDUPS, "results": results}))
        return 0

    try:
        compiled = run_child(False, args)
    except subprocess.CalledProcessError as exc:
        print(exc.stderr, file=sys.stderr)
        print("the compiled twins are not built: run `make venv` first", file=sys.stderr)
        return 2
    pure = run_child(True, args)
    assert compiled["speedups"] is True and pure["speedups"] is False
    print(
        f"python {platform.python_version()} on {platform.machine()}, {args.messages:,} "
        f"messages, {args.producers} producers, batch {args.batch}, synchronous="
        f"{args.synchronous}, best of {args.repeat}"
    )
    rows = []
    for name, cy in compiled["results"].items():
        py = pure["results"][name]
        ratio = cy["messages_per_s"] / py["messages_per_s"]
        print(
            f"{name}: compiled {cy['messages_per_s']:,.0f} msg/s "
            f"({cy['messages_per_commit']:.1f} messages/commit), pure "
            f"{py['messages_per_s']:,.0f} msg/s, ratio {ratio:.2f}"
        )
        rows.append({"workload": name, "compiled": cy, "pure": py, "ratio": ratio})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"unit": "messages/s", "results": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

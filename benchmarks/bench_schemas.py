"""The cost of declared schemas: queue sends per second on a declared queue next to an
undeclared one, in the same run, and the cost of the hook lines where nothing is declared.

Workloads (one process, an embedded store on a temporary directory, real SQLite):

* ``client``: client queue sends (``handle.send(name, body)``: ``POST /queue/{name}``
  through the ASGI app in process, json encoding, ``--concurrency`` senders), to an actor
  with ``queues={"jobs": Job}`` (a pydantic model of 3 fields), to an actor with
  ``queues={"jobs": dict[str, Any]}``, and to an actor that declares nothing;
* ``actor``: the actor's own ``c.queue.send`` (``--concurrency`` sends per batch, gathered),
  same three actors: the queue path without HTTP, where validation weighs most.

Rounds alternate between the actors (``--repeat`` rounds, best kept), so the figures of one
line were measured seconds apart; ``ratio`` is declared/undeclared. ``normalize one body``
times the validation alone (``TypeAdapter.validate_python`` then ``dump_python``).

``hook lines``: what an actor that declares nothing pays for this feature, timed on the exact
statements the hooks run per queue send (the queue's ``self._schemas is not None`` test, the
router's ``instance.definition.schemas`` test and the ``conn_params_of`` call), next to the
time of one send. Nothing here asserts a time.

    python benchmarks/bench_schemas.py [--quick] [--messages N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
import timeit
from typing import Any

from pydantic import BaseModel

from rivetkit import ActorOptions, actor, setup
from rivetkit.schemas import conn_params_of
from rivetkit.testing import setup_runtime, setup_test


class Job(BaseModel):
    """The declared body."""

    x: int
    label: str
    tags: list[str]


BODY = {"x": 1, "label": "job", "tags": ["a", "b"]}
OPTIONS = ActorOptions(max_queue_size=1_000_000, sleep_timeout=600.0)


def build_registry() -> Any:
    """Three actors alike but for their schemas."""
    actors = [
        actor("model", queues={"jobs": Job}, options=OPTIONS),
        actor("plain", queues={"jobs": dict[str, Any]}, options=OPTIONS),
        actor("undeclared", options=OPTIONS),
    ]
    for a in actors:

        @a.action
        async def fill(c: Any, n: int) -> int:
            await asyncio.gather(*(c.queue.send("jobs", BODY) for _ in range(n)))
            return n

        @a.action
        async def drain(c: Any) -> int:
            total = 0
            while batch := await c.queue.try_next_batch(count=1000):
                total += len(batch)
            return total

    return setup(use=actors)


NAMES = ("model", "plain", "undeclared")


async def client_rates(messages: int, concurrency: int, repeat: int) -> dict[str, float]:
    best = dict.fromkeys(NAMES, 0.0)
    async with setup_test(build_registry()) as t:
        handles = {name: t.get_or_create(name, ["bench"]) for name in NAMES}
        for h in handles.values():
            await h.send("jobs", BODY)  # create and warm up
        for _ in range(repeat):
            for name, h in handles.items():
                per = messages // concurrency

                async def sender(h: Any = h, per: int = per) -> None:
                    for _ in range(per):
                        await h.send("jobs", BODY)

                started = time.perf_counter()
                await asyncio.gather(*(sender() for _ in range(concurrency)))
                elapsed = time.perf_counter() - started
                best[name] = max(best[name], per * concurrency / elapsed)
                await h.drain()
    return best


async def actor_rates(messages: int, batch: int, repeat: int) -> dict[str, float]:
    best = dict.fromkeys(NAMES, 0.0)
    async with setup_runtime(build_registry()) as r:
        handles = {name: r.get_or_create(name, ["bench"]) for name in NAMES}
        for h in handles.values():
            await h.fill(10)
        for _ in range(repeat):
            for name, h in handles.items():
                started = time.perf_counter()
                for _ in range(messages // batch):
                    await h.fill(batch)
                elapsed = time.perf_counter() - started
                best[name] = max(best[name], (messages // batch) * batch / elapsed)
                await h.drain()
    return best


def hook_line_ns() -> dict[str, float]:
    """Nanoseconds of the statements an undeclared actor runs per queue send."""
    definition = actor("undeclared_probe")

    class Holder:
        _schemas = None

    holder = Holder()
    instance = type("Instance", (), {"definition": definition})()
    params = {"user": "x"}
    number = 1_000_000
    timings = {
        "queue: self._schemas is not None": min(
            timeit.repeat(
                "if h._schemas is not None: pass", globals={"h": holder}, number=number, repeat=5
            )
        ),
        "router: instance.definition.schemas is not None": min(
            timeit.repeat(
                "s = i.definition.schemas\nif s is not None: pass",
                globals={"i": instance},
                number=number,
                repeat=5,
            )
        ),
        "conn_params_of(definition, params)": min(
            timeit.repeat(
                "f(i.definition, p)",
                globals={"f": conn_params_of, "i": instance, "p": params},
                number=number,
                repeat=5,
            )
        ),
    }
    return {k: v / number * 1e9 for k, v in timings.items()}


def normalizer_us() -> dict[str, float]:
    """Microseconds to validate and normalize one body, alone."""
    a = actor("probe", queues={"model": Job, "plain": dict[str, Any]})
    assert a.schemas is not None
    number = 100_000
    out = {}
    for name in ("model", "plain"):
        t = min(
            timeit.repeat(
                lambda name=name: a.schemas.queue_body(name, BODY),  # type: ignore[union-attr]
                number=number,
                repeat=5,
            )
        )
        out[name] = t / number * 1e6
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (seconds)")
    parser.add_argument("--messages", type=int, help="messages per round (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent senders")
    parser.add_argument("--repeat", type=int, help="rounds (best is kept)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    messages = args.messages or (2_000 if args.quick else 20_000)
    repeat = args.repeat or (2 if args.quick else 3)
    client = asyncio.run(client_rates(messages, args.concurrency, repeat))
    own = asyncio.run(actor_rates(messages, 500, repeat))
    hooks = hook_line_ns()
    alone = normalizer_us()
    print(f"python {platform.python_version()}, {messages} messages per round, best of {repeat}")
    for label, rates in (("client", client), ("actor", own)):
        base = rates["undeclared"]
        for name in NAMES:
            print(
                f"{label:7s} {name:11s} {rates[name]:10,.0f} sends/s  "
                f"ratio {rates[name] / base:5.2f}"
            )
    for name, us in alone.items():
        print(f"normalize one body ({name}): {us:.2f} us")
    send_ns = 1e9 / client["undeclared"]
    total_hook = sum(hooks.values())
    for name, ns in hooks.items():
        print(f"hook    {name:50s} {ns:6.1f} ns")
    print(
        f"hook lines together: {total_hook:.0f} ns per client send of {send_ns / 1000:.1f} us "
        f"({total_hook / send_ns:.3%})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"client": client, "actor": own, "hook_ns": hooks, "normalize_us": alone},
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

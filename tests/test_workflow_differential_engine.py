"""Our workflow engine and RivetKit's (npm @rivetkit/workflow-engine 2.3.19) continue each other.

The same workflow is written twice: ``handoff`` in tests/interop/workflow_dump.mjs and
:func:`handoff_actor` here. It uses every entry kind (steps, a pruned loop, a sleep, a
rollback checkpoint and a step with a rollback handler, a version check, a removed
placeholder, queue waits with and without a timeout, a join, a race, a try-step, a try block)
before it waits on the queue ``go``, then runs one last step. Each body returns a value
marked with the engine that ran it (``ts-...`` / ``py-...``).

* TS -> ours: the Node engine runs the workflow up to the wait; its store is put into a real
  actor's KV under ``[6,1]``; our engine wakes, replays every recorded result (no Python
  body runs again), receives ``go`` and finishes.
* ours -> TS: our engine runs it up to the wait in a real actor; the Node engine is given
  the store, replays our results and finishes.

Either way the finished store is then read by the other side too.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import wf_actor
from workflow_interop import normalized, py_view, run_node

from rivetkit import setup
from rivetkit.protocol.workflow_engine import keys
from rivetkit.testing import setup_test
from rivetkit.workflow import CriticalError, Loop, workflow

pytestmark = pytest.mark.asyncio

END = keys.prefix_end(keys.ACTOR_PREFIX)


def handoff_actor(ran: Counter[str], side: str = "py") -> Any:
    """The ``handoff`` workflow of workflow_dump.mjs, in Python; ``ran`` counts body runs."""
    wf = wf_actor()

    def body(name: str, value: Any) -> Any:
        def run(s: Any) -> Any:
            ran[name] += 1
            return value

        return run

    def critical(s: Any) -> None:
        ran["risky"] += 1
        raise CriticalError("nope")

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        greet = await ctx.step("greet", body("greet", f"{side}-greet"))

        async def iteration(lctx, state):  # type: ignore[no-untyped-def]
            x = await lctx.step("x", body(f"x{state}", f"{side}-{state}"))
            return Loop.break_(f"{x}|{state}") if state >= 4 else Loop.continue_(state + 1)

        total = await ctx.loop("L", iteration, state=0, history_prune_interval=2)
        await ctx.sleep_until("nap", 0.001)
        await ctx.rollback_checkpoint("cp")
        await ctx.step("reserve", body("reserve", f"{side}-reserve"), rollback=lambda s, o: None)
        version = await ctx.get_version("v", 2)
        await ctx.removed("old", "step")
        first = await ctx.queue.next("first", names=["early"])
        none = await ctx.queue.next_batch("none", names=["never"], timeout=0)
        joined = await ctx.join(
            "j",
            {
                "a": lambda c: c.step("sa", body("sa", f"{side}-a")),
                "b": lambda c: c.step("sb", body("sb", f"{side}-b")),
            },
        )

        async def slow(c):  # type: ignore[no-untyped-def]
            await c.sleep("zz", 3600.0)
            return f"{side}-slow"

        raced = await ctx.race(
            "r", [("fast", lambda c: c.step("f", body("f", f"{side}-fast"))), ("slow", slow)]
        )
        tried = await ctx.try_step("risky", critical, max_retries=0)
        block = await ctx.try_("t", lambda c: c.step("inner", body("inner", f"{side}-in")))
        msg = await ctx.queue.next("wait", names=["go"])
        after = await ctx.step("after", body("after", f"{side}-after"))
        return {
            "greet": greet,
            "total": total,
            "version": version,
            "first": first.body,
            "none": len(none),
            "joined": joined,
            "raced": {"winner": raced.winner, "value": raced.value},
            "tried": tried.ok,
            "block": block.value if block.ok else None,
            "body": msg.body,
            "after": after,
        }

    return wf


def expected(before: str, after: str, body: Any) -> dict[str, Any]:
    """The output when ``before`` ran the workflow up to the wait and ``after`` the rest."""
    return {
        "greet": f"{before}-greet",
        "total": f"{before}-4|4",
        "version": 2,
        "first": {"e": 1},
        "none": 0,
        "joined": {"a": f"{before}-a", "b": f"{before}-b"},
        "raced": {"winner": "fast", "value": f"{before}-fast"},
        "tried": False,
        "block": f"{before}-in",
        "body": body,
        "after": f"{after}-after",
    }


async def actor_store(t: Any, actor_id: str) -> list[list[str]]:
    """The actor's workflow pairs as engine keys (``[6,1]`` stripped), hex, in key order."""
    pairs = await t.driver.kv_list(actor_id, keys.ACTOR_PREFIX, END)
    return [[keys.engine_key(k).hex(), v.hex()] for k, v in pairs]


async def wait_view(t: Any, actor_id: str, done: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = py_view(await actor_store(t, actor_id))
        if done(view):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow did not get there: {view.get('state')}")
        await asyncio.sleep(0.02)


def at_the_wait(view: dict[str, Any]) -> bool:
    keys_ = {e["key"] for e in view["entries"]}
    return view["state"] == "sleeping" and "t/inner" in keys_


async def test_ts_history_continued_by_our_engine(tmp_path: Path) -> None:
    [ts] = run_node(
        "continue",
        {
            "runs": [
                {"name": "ts", "workflow": "handoff", "kv": [], "messages": [["early", {"e": 1}]]}
            ]
        },
    )
    assert ts["result"] == {"state": "sleeping", "waitingForMessages": ["go"]}
    ran: Counter[str] = Counter()
    registry = setup(use=[handoff_actor(ran)])
    async with setup_test(registry, tmp_path) as t:
        record = await t.driver.create_actor("wf", ["k"], None)
        puts = [(keys.actor_key(bytes.fromhex(k)), bytes.fromhex(v)) for k, v in ts["kv"]]
        await t.driver.kv_write(record.actor_id, puts=puts)
        await t.wf.get_or_create("k").send("go", {"n": 1})
        view = await wait_view(t, record.actor_id, lambda v: v["state"] in ("completed", "failed"))
        final = await actor_store(t, record.actor_id)
    assert view.get("error") is None, view.get("error")
    assert view["output"] == expected("ts", "py", {"n": 1})
    assert ran == Counter({"after": 1}), "every recorded result replays; only the new step runs"
    # RivetKit's engine reads the store our engine finished.
    [theirs] = run_node("load", {"histories": [{"name": "final", "kv": final}]})
    assert "error" not in theirs, theirs
    assert normalized(theirs["view"]) == normalized(py_view(final))
    assert theirs["view"]["output"] == expected("ts", "py", {"n": 1})


async def test_our_history_continued_by_ts(tmp_path: Path) -> None:
    ran: Counter[str] = Counter()
    registry = setup(use=[handoff_actor(ran)])
    async with setup_test(registry, tmp_path) as t:
        handle = t.wf.get_or_create("k")
        await handle.send("early", {"e": 1})
        actor_id = await handle.resolve()
        await wait_view(t, actor_id, at_the_wait)
        ours = await actor_store(t, actor_id)
    assert set(ran) >= {"greet", "x0", "x4", "reserve", "sa", "sb", "f", "risky", "inner"}
    assert all(n == 1 for n in ran.values()), ran
    [ts] = run_node(
        "continue",
        {
            "runs": [
                {"name": "py", "workflow": "handoff", "kv": ours, "messages": [["go", {"n": 2}]]}
            ]
        },
    )
    assert ts["result"].get("state") == "completed", ts["result"]
    assert ts["result"]["output"] == expected("py", "ts", {"n": 2})
    # The store RivetKit's engine finished reads back with our codec as it reads it.
    assert normalized(py_view(ts["kv"])) == normalized(ts["view"])
    assert py_view(ts["kv"])["output"] == expected("py", "ts", {"n": 2})

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
import json
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


def ticks_actor(ran: Counter[str]) -> Any:
    """The ``ticks`` workflow of workflow_dump.mjs: a loop, one queue message per iteration."""
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def iteration(lctx, st):  # type: ignore[no-untyped-def]
            tick = await lctx.queue.next("tick", names=["tick"])

            def add(s: Any) -> int:
                ran["add"] += 1
                return int(st["sum"] + tick.body)

            total = await lctx.step("add", add)
            if st["n"] + 1 >= 5:
                return Loop.break_(total)
            return Loop.continue_({"sum": total, "n": st["n"] + 1})

        return await ctx.loop(
            "ticks", iteration, state={"sum": 0, "n": 0}, history_prune_interval=2
        )

    return wf


def flaky_actor(ran: Counter[str], *, fail: bool) -> Any:
    """The ``flaky`` workflow of workflow_dump.mjs; failing, it waits 600 s between attempts
    (the delay comes from the code that runs, not from the history)."""
    wf = wf_actor()
    backoff = 600.0 if fail else 0.001

    def body(s: Any) -> str:
        ran["flaky"] += 1
        if fail:
            raise RuntimeError("py fails")
        return "py-ok"

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        return await ctx.step(
            "flaky", body, max_retries=5, retry_backoff_base=backoff, retry_backoff_max=backoff
        )

    return wf


async def seeded(t: Any, kv: list[list[str]]) -> str:
    """Create the actor ``wf`` / ``k`` (not started) with ``kv`` under ``[6,1]``; its id."""
    record = await t.driver.create_actor("wf", ["k"], None)
    puts = [(keys.actor_key(bytes.fromhex(k)), bytes.fromhex(v)) for k, v in kv]
    await t.driver.kv_write(record.actor_id, puts=puts)
    return str(record.actor_id)


def finished(view: dict[str, Any]) -> bool:
    return view["state"] in ("completed", "failed")


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
        actor_id = await seeded(t, ts["kv"])
        await t.wf.get_or_create("k").send("go", {"n": 1})
        view = await wait_view(t, actor_id, finished)
        final = await actor_store(t, actor_id)
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


async def test_loop_in_progress_both_ways(tmp_path: Path) -> None:
    ticks = [["tick", n] for n in (1, 2, 3)]
    [ts] = run_node(
        "continue", {"runs": [{"name": "ts", "workflow": "ticks", "kv": [], "messages": ticks}]}
    )
    assert ts["result"] == {"state": "sleeping", "waitingForMessages": ["tick"]}
    ran: Counter[str] = Counter()
    registry = setup(use=[ticks_actor(ran)])
    async with setup_test(registry, tmp_path / "a") as t:
        actor_id = await seeded(t, ts["kv"])
        handle = t.wf.get_or_create("k")
        for n in (4, 5):
            await handle.send("tick", n)
        view = await wait_view(t, actor_id, finished)
    assert view["output"] == 15 and ran == Counter({"add": 2})  # resumed at iteration 3

    ran.clear()
    async with setup_test(registry, tmp_path / "b") as t:
        handle = t.wf.get_or_create("k")
        for n in (1, 2, 3):
            await handle.send("tick", n)
        actor_id = await handle.resolve()
        await wait_view(t, actor_id, lambda v: "ticks/~2/add" in {e["key"] for e in v["entries"]})
        kv = await actor_store(t, actor_id)
    assert ran == Counter({"add": 3})
    messages = [["tick", 4], ["tick", 5]]
    [theirs] = run_node(
        "continue", {"runs": [{"name": "py", "workflow": "ticks", "kv": kv, "messages": messages}]}
    )
    assert theirs["result"] == {"state": "completed", "output": 15}
    final = py_view(theirs["kv"])
    assert normalized(final) == normalized(theirs["view"])
    loop = next(e for e in final["entries"] if e["key"] == "ticks")
    assert loop["data"]["iteration"] == 4 and loop["data"]["output"] == 15


async def test_retry_in_progress_both_ways(tmp_path: Path) -> None:
    [ts] = run_node(
        "continue",
        {"runs": [{"name": "ts", "workflow": "flaky", "kv": [], "flags": {"fail": True}}]},
    )
    assert ts["result"]["state"] == "sleeping"  # waiting for its retry
    ran: Counter[str] = Counter()
    async with setup_test(setup(use=[flaky_actor(ran, fail=False)]), tmp_path / "a") as t:
        actor_id = await seeded(t, ts["kv"])
        await t.wf.get_or_create("k").action("ping")
        view = await wait_view(t, actor_id, finished)
    assert view["output"] == "py-ok" and ran == Counter({"flaky": 1})
    [entry] = view["entries"]
    assert entry["data"] == {"output": "py-ok", "error": "Error: ts fails"}  # old error kept
    assert view["metadata"][entry["id"]]["attempts"] == 2

    ran.clear()
    async with setup_test(setup(use=[flaky_actor(ran, fail=True)]), tmp_path / "b") as t:
        handle = t.wf.get_or_create("k")
        await handle.action("ping")
        actor_id = await handle.resolve()
        ours = await wait_view(t, actor_id, lambda v: v["state"] == "sleeping" and v["metadata"])
        kv = await actor_store(t, actor_id)
    [meta] = ours["metadata"].values()
    assert meta["status"] == "failed" and meta["attempts"] == 1, meta
    [theirs] = run_node(
        "continue", {"runs": [{"name": "py", "workflow": "flaky", "kv": kv, "flags": {}}]}
    )
    assert theirs["result"] == {"state": "completed", "output": "ts-ok"}
    [meta] = py_view(theirs["kv"])["metadata"].values()
    assert meta["status"] == "completed" and meta["attempts"] == 2


def shape(view: dict[str, Any]) -> dict[str, Any]:
    """A store's history by in-memory key, without ids, times and name indexes (a port may
    register names in another order: indexes always resolve through the registry)."""
    entries: dict[str, Any] = {}
    for e in view["entries"]:
        data = json.loads(json.dumps(e["data"]))
        if e["type"] == "sleep" and data["deadline"] > 1:
            data["deadline"] = "now + x"
        if e["type"] == "message" and isinstance(data["data"], dict):
            data["data"].pop("createdAt", None)
        meta = view["metadata"].get(e["id"], {})
        times = ("lastAttemptAt", "createdAt", "completedAt", "rollbackCompletedAt")
        entries[e["key"]] = (e["type"], data, {k: v for k, v in meta.items() if k not in times})
    return {"names": sorted(view["names"]), "entries": entries, "state": view["state"]}


async def test_our_engine_writes_the_history_theirs_writes(tmp_path: Path) -> None:
    [ts] = run_node(
        "continue",
        {
            "runs": [
                {"name": "ts", "workflow": "handoff", "kv": [], "messages": [["early", {"e": 1}]]}
            ]
        },
    )
    async with setup_test(setup(use=[handoff_actor(Counter(), side="ts")]), tmp_path) as t:
        handle = t.wf.get_or_create("k")
        await handle.send("early", {"e": 1})
        ours = await wait_view(t, await handle.resolve(), at_the_wait)
    assert shape(ours) == shape(ts["view"])

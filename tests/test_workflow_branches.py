"""``ctx.join`` and ``ctx.race`` with failures, and rollback (compensation) order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import started, wait_state, wf_actor

from rivetkit import setup
from rivetkit.testing import setup_test
from rivetkit.workflow import CriticalError, JoinError, RaceError, workflow

pytestmark = pytest.mark.asyncio


async def test_join_collects_outputs_and_survives_a_restart(tmp_path: Path) -> None:
    ran: list[str] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def a(c):  # type: ignore[no-untyped-def]
            return await c.step("s", lambda s: ran.append("a") or 1)

        async def b(c):  # type: ignore[no-untyped-def]
            await c.sleep("wait", 5.0)
            return await c.step("s", lambda s: ran.append("b") or 2)

        return await ctx.join("j", {"a": a, "b": b})

    registry = setup(use=[wf])
    async with setup_test(registry, tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("j"))
        history = await wait_state(t, actor_id, "sleeping")
        join = history.entries["j"]
        assert join.kind == "join"
        assert join.branches["a"].status == "completed" and join.branches["a"].output == 1
        assert join.branches["b"].status == "running"
        await t.advance(6.0)
        history = await wait_state(t, actor_id, "completed")
    assert history.output == {"a": 1, "b": 2}
    assert ran == ["a", "b"]  # a completed branch is not run again on replay
    assert history.entries["j/a/s"].output == 1
    assert history.entries["j/b/s"].output == 2


async def test_join_failure_lets_the_other_branches_finish(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def ok(c):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)
            return await c.step("s", lambda s: "fine")

        async def bad(c):  # type: ignore[no-untyped-def]
            def boom(s):  # type: ignore[no-untyped-def]
                raise CriticalError("broken")

            return await c.step("s", boom)

        try:
            await ctx.join("j", {"ok": ok, "bad": bad})
        except JoinError as exc:
            seen["error"] = exc
            raise

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("f"))
        history = await wait_state(t, actor_id, "failed")
    assert str(seen["error"]) == "Join failed: bad"
    branches = history.entries["j"].branches
    assert branches["ok"].status == "completed" and branches["ok"].output == "fine"
    assert branches["bad"].status == "failed"
    assert branches["bad"].error == "CriticalError: broken"
    assert history.error is not None and history.error["name"] == "JoinError"


async def test_race_first_wins_losers_cancelled_and_deleted(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def fast(c):  # type: ignore[no-untyped-def]
            return await c.step("s", lambda s: "fast")

        async def slow(c):  # type: ignore[no-untyped-def]
            await c.step("first", lambda s: asyncio.sleep(0.1))
            await c.step("second", lambda s: "never")
            return "slow"

        result = await ctx.race("r", [("fast", fast), ("slow", slow)])
        return [result.winner, result.value]

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("r"))
        history = await wait_state(t, actor_id, "completed")
    assert history.output == ["fast", "fast"]
    race = history.entries["r"]
    assert race.winner == "fast"
    assert race.branches["slow"].status == "cancelled"
    assert not [k for k in history.entries if k.startswith("r/slow")]  # loser history deleted
    assert "r/fast/s" in history.entries


async def test_race_of_a_timer_and_a_message(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def timer(c):  # type: ignore[no-untyped-def]
            await c.sleep("t", 30.0)
            return "timeout"

        async def message(c):  # type: ignore[no-untyped-def]
            msg = await c.queue.next("m", names=["go"])
            return msg.body

        result = await ctx.race("r", [("timer", timer), ("message", message)])
        return result.winner

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("tm"))
        await wait_state(t, actor_id, "sleeping")
        await t.advance(31.0)
        history = await wait_state(t, actor_id, "completed")
    assert history.output == "timer"


async def test_race_all_failing(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        def boom(s):  # type: ignore[no-untyped-def]
            raise CriticalError("x")

        async def one(c):  # type: ignore[no-untyped-def]
            return await c.step("s", boom)

        try:
            await ctx.race("r", [("a", one), ("b", one)])
        except RaceError as exc:
            seen["names"] = [name for name, _ in exc.errors]
            raise

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        history = await wait_state(t, await started(t.wf.get_or_create("a")), "failed")
    assert sorted(seen["names"]) == ["a", "b"]
    assert history.error is not None and history.error["message"] == "All branches failed"


async def test_rollback_runs_handlers_in_reverse_order(tmp_path: Path) -> None:
    undone: list[str] = []
    done: list[str] = []
    wf = wf_actor(state={"log": []})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.rollback_checkpoint("cp")

        def do(name):  # type: ignore[no-untyped-def]
            def body(s):  # type: ignore[no-untyped-def]
                done.append(name)
                return name

            return body

        def undo(s, output):  # type: ignore[no-untyped-def]
            undone.append(output)
            s.state["log"].append(f"undo {output}")

        await ctx.step("a", do("a"), rollback=undo)
        await ctx.step("b", do("b"), rollback=undo)
        await ctx.step("plain", do("plain"))

        def fail(s):  # type: ignore[no-untyped-def]
            raise CriticalError("stop")

        await ctx.step("c", fail, rollback=undo)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        h = t.wf.get_or_create("rb")
        history = await wait_state(t, await started(h), "failed")
        assert await h.get() == {"log": ["undo b", "undo a"]}
    assert done == ["a", "b", "plain"]
    assert undone == ["b", "a"]
    for name in ("a", "b"):
        meta = history.metadata[history.entries[name].id]
        assert meta.rollback_completed_at is not None and meta.rollback_error is None
    assert history.entries["cp"].kind == "rollback_checkpoint"
    assert history.error == {"name": "CriticalError", "message": "stop"}


async def test_rollback_without_checkpoint_fails_at_once(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: 1, rollback=lambda s, o: None)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        history = await wait_state(t, await started(t.wf.get_or_create("n")), "failed")
    assert history.error is not None and history.error["name"] == "RollbackCheckpointError"
    assert "a" not in history.entries


async def test_rollback_reaches_the_steps_of_the_current_loop_iteration(tmp_path: Path) -> None:
    from rivetkit.workflow import Loop

    undone: list[Any] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.rollback_checkpoint("cp")
        await ctx.step("top", lambda s: "top", rollback=lambda s, o: undone.append(o))

        async def body(c, i):  # type: ignore[no-untyped-def]
            await c.step("in", lambda s: f"in{i}", rollback=lambda s, o: undone.append(o))
            if i == 1:

                def fail(s):  # type: ignore[no-untyped-def]
                    raise CriticalError("late")

                await c.step("fail", fail)
            return Loop.continue_(i + 1)

        await ctx.loop("L", body, state=0)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        await wait_state(t, await started(t.wf.get_or_create("lr")), "failed")
    # the current iteration's handler, then the one before the loop (as RivetKit: the
    # iterations already finished are not replayed during rollback)
    assert undone == ["in1", "top"]


async def test_a_failed_rollback_handler_resumes_on_the_next_start(tmp_path: Path) -> None:
    calls: list[str] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.rollback_checkpoint("cp")

        def undo_a(s, o):  # type: ignore[no-untyped-def]
            calls.append("undo a")

        def undo_b(s, o):  # type: ignore[no-untyped-def]
            calls.append("undo b")
            if calls.count("undo b") == 1:
                raise RuntimeError("compensation down")

        await ctx.step("a", lambda s: "a", rollback=undo_a)
        await ctx.step("b", lambda s: "b", rollback=undo_b)

        def fail(s):  # type: ignore[no-untyped-def]
            raise CriticalError("stop")

        await ctx.step("c", fail)

    registry = setup(use=[wf])
    async with setup_test(registry, tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("rr"))
        history = await wait_state(t, actor_id, "rolling_back")
        for _ in range(100):
            history = await wait_state(t, actor_id, "rolling_back")
            meta = history.metadata.get(history.entries["b"].id)
            if meta is not None and meta.rollback_error:
                break
            await asyncio.sleep(0.01)
        assert meta is not None and meta.rollback_error == "RuntimeError: compensation down"
        assert calls == ["undo b"]  # the failing handler stopped the rollback
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("rr")
        await started(h)
        history = await wait_state(t, actor_id, "failed")
        assert await h.ping() is True  # a soft failure: the actor serves on
    assert calls == ["undo b", "undo b", "undo a"]
    meta_b = history.metadata[history.entries["b"].id]
    assert meta_b.rollback_completed_at is not None and meta_b.rollback_error is None
    assert history.error == {"name": "CriticalError", "message": "stop"}


async def test_rollback_error_rolls_back_and_try_step_can_catch_it(tmp_path: Path) -> None:
    from rivetkit.workflow import RollbackError

    undone: list[str] = []
    caught: list[Any] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.rollback_checkpoint("cp")
        await ctx.step("reserve", lambda s: "r", rollback=lambda s, o: undone.append(o))

        def refuse(s):  # type: ignore[no-untyped-def]
            raise RollbackError("refused")

        result = await ctx.try_step("probe", refuse, catch=("rollback",))
        caught.append((result.ok, result.failure.kind))
        await ctx.step("pay", refuse)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        history = await wait_state(t, await started(t.wf.get_or_create("re")), "failed")
    assert caught == [(False, "rollback")]
    assert undone == ["r"]
    assert history.error == {"name": "RollbackError", "message": "refused"}
    assert history.metadata[history.entries["pay"].id].status == "exhausted"

"""Workflow primitives through a real in-process server: steps (retries, backoff, timeout,
ephemeral, critical errors), try_step/try_, sleeps, the outcomes, and the atomic write of a
step's history entry with the actor state it changed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import started, stored, stored_state, wait_state, wf_actor

from rivetkit import actor, setup
from rivetkit.runtime import keys
from rivetkit.testing import setup_test
from rivetkit.workflow import CriticalError, workflow

pytestmark = pytest.mark.asyncio


def order_registry() -> Any:
    order = actor("order", state={"status": "new", "charges": 0})

    @order.run
    @workflow
    async def process(ctx):  # type: ignore[no-untyped-def]
        msg = await ctx.queue.next("payment", names=["pay"])

        async def charge(s):  # type: ignore[no-untyped-def]
            s.state["charges"] += 1
            s.state["amount"] = msg.body["amount"]
            s.state["status"] = "charged"

        await ctx.step("charge", charge)
        await ctx.sleep("cool-down", 2.0)
        await ctx.step("ship", lambda s: s.state.update(status="shipped"))

    @order.action
    def status(c: Any) -> dict[str, Any]:
        return {k: c.state[k] for k in ("status", "charges", "amount") if k in c.state}

    return setup(use=[order])


async def test_the_issue_example_runs_as_written(tmp_path: Path) -> None:
    registry = order_registry()
    async with setup_test(registry, tmp_path) as t:
        h = t.order.get_or_create("o1")
        assert await h.status() == {"status": "new", "charges": 0}
        actor_id = await h.resolve()
        await wait_state(t, actor_id, "sleeping")  # waiting for "pay"
        await h.send("pay", {"amount": 7})
        history = await wait_state(t, actor_id, "sleeping")
        await asyncio.sleep(0.05)
        assert await h.status() == {"status": "charged", "charges": 1, "amount": 7}
        history = await stored(t, actor_id)
        assert history.entries["cool-down"].kind == "sleep"
        await t.advance(2.5)
        await wait_state(t, actor_id, "completed")
        assert await h.status() == {"status": "shipped", "charges": 1, "amount": 7}
    # A new server on the same data: the completed workflow replays, nothing runs again.
    async with setup_test(registry, tmp_path) as t:
        h = t.order.get_or_create("o1")
        assert await h.status() == {"status": "shipped", "charges": 1, "amount": 7}
        history = await wait_state(t, await h.resolve(), "completed")
        assert history.names[:2] == ["payment:count", "payment:0"]


def counting_registry(body: Any, **step_options: Any) -> tuple[Any, dict[str, int]]:
    calls = {"n": 0}
    wf = wf_actor("wf", {"done": False})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def attempt(s):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            return await body(s, calls["n"])

        out = await ctx.step("work", attempt, **step_options)
        await ctx.step("mark", lambda s: s.state.update(done=True, out=out))
        return out

    return setup(use=[wf]), calls


async def test_step_retries_with_backoff_then_succeeds(tmp_path: Path) -> None:
    async def body(s: Any, n: int) -> str:
        if n < 3:
            raise ValueError(f"try {n}")
        return "ok"

    registry, calls = counting_registry(body, retry_backoff_base=1.0)
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("r")
        actor_id = await started(h)
        await wait_state(t, actor_id, "sleeping")
        assert calls["n"] == 1
        history = await stored(t, actor_id)
        meta = history.metadata[history.entries["work"].id]
        assert (meta.status, meta.attempts, meta.error) == ("failed", 1, "ValueError: try 1")
        await t.advance(1.5)  # first retry after base * 2**1 = 2 s: not yet
        assert calls["n"] == 1
        await t.advance(1.0)
        await asyncio.sleep(0.05)
        assert calls["n"] == 2
        await t.advance(4.5)  # second retry after 4 s more
        await wait_state(t, actor_id, "completed")
        assert calls["n"] == 3
        assert await h.get() == {"done": True, "out": "ok"}
        history = await stored(t, actor_id)
        meta = history.metadata[history.entries["work"].id]
        assert (meta.status, meta.attempts, meta.error) == ("completed", 3, None)
        # the old error text stays in the entry (RivetKit clears only the metadata's)
        assert history.entries["work"].error == "ValueError: try 2"


async def test_step_exhausts_its_retries(tmp_path: Path) -> None:
    async def body(s: Any, n: int) -> str:
        raise RuntimeError("boom")

    registry, calls = counting_registry(body, max_retries=1, retry_backoff_base=0.05)
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("x")
        actor_id = await started(h)
        for _ in range(3):
            await t.advance(1.0)
        history = await wait_state(t, actor_id, "failed")
        assert calls["n"] == 2
        assert history.error is not None
        assert history.error["name"] == "StepExhaustedError"
        assert history.error["message"] == 'Step "work" exhausted retries: RuntimeError: boom'
        assert history.metadata[history.entries["work"].id].status == "exhausted"
        # a soft failure: the actor keeps serving
        assert await h.get() == {"done": False}


async def test_critical_error_is_not_retried(tmp_path: Path) -> None:
    async def body(s: Any, n: int) -> str:
        raise CriticalError("card declined")

    registry, calls = counting_registry(body)
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("c")
        history = await wait_state(t, await started(h), "failed")
        assert calls["n"] == 1
        assert history.error == {"name": "CriticalError", "message": "card declined"}
        assert history.entries["work"].error == "CriticalError: card declined"


async def test_timeout_is_critical_unless_retry_on_timeout(tmp_path: Path) -> None:
    async def slow(s: Any, n: int) -> str:
        if n == 1:
            await asyncio.sleep(5)
        return "late" if n == 1 else "fast"

    registry, calls = counting_registry(slow, timeout=0.05)
    async with setup_test(registry, tmp_path / "a") as t:
        history = await wait_state(t, await started(t.wf.get_or_create("t")), "failed")
        assert history.error is not None and history.error["name"] == "StepTimeoutError"
        assert calls["n"] == 1
    registry, calls = counting_registry(
        slow, timeout=0.05, retry_on_timeout=True, retry_backoff_base=0.01
    )
    async with setup_test(registry, tmp_path / "b") as t:
        h = t.wf.get_or_create("t")
        await wait_state(t, await started(h), "completed")
        assert await h.get() == {"done": True, "out": "fast"}


async def test_try_step_and_try_block_return_failures(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    wf = wf_actor("wf", {})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        def bad(s):  # type: ignore[no-untyped-def]
            raise CriticalError("nope")

        seen["try_step"] = await ctx.try_step("t1", bad)
        seen["ok"] = await ctx.try_step("t2", lambda s: 5)

        async def block(c):  # type: ignore[no-untyped-def]
            await c.step("inner", bad)

        seen["try"] = await ctx.try_("blk", block)
        return "end"

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        await wait_state(t, await started(t.wf.get_or_create("k")), "completed")
    failure = seen["try_step"].failure
    assert not seen["try_step"].ok
    assert (failure.kind, failure.step_name, failure.attempts) == ("critical", "t1", 1)
    assert failure.error == {"name": "CriticalError", "message": "nope"}
    assert seen["ok"].ok and seen["ok"].value == 5
    assert not seen["try"].ok
    assert (seen["try"].failure.source, seen["try"].failure.name) == ("step", "blk")


async def test_sleep_until_past_completes_at_once_and_sleep_survives_restart(
    tmp_path: Path,
) -> None:
    ran: list[str] = []
    wf = wf_actor("wf", {})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.sleep_until("past", 1_000)
        await ctx.step("before", lambda s: ran.append("before"))
        await ctx.sleep("nap", 60.0)
        await ctx.step("after", lambda s: ran.append("after"))

    registry = setup(use=[wf])
    async with setup_test(registry, tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("s"))
        history = await wait_state(t, actor_id, "sleeping")
        assert history.entries["past"].sleep_state == "completed"
        nap = history.entries["nap"]
        assert nap.sleep_state == "pending"
        assert abs(nap.deadline - (t.now() * 1000 + 60_000)) < 2_000
        assert t.driver.alarms.get(actor_id) == nap.deadline
    assert ran == ["before"]
    # Restarted: the stored alarm wakes the actor at the deadline, nobody calls it.
    async with setup_test(registry, tmp_path) as t:
        await t.advance(61.0)
        await wait_state(t, actor_id, "completed")
    assert ran == ["before", "after"]


async def test_a_step_entry_and_its_state_change_are_written_together(tmp_path: Path) -> None:
    gate = asyncio.Event()
    wf = wf_actor("wf", {"n": 0})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("inc", lambda s: s.state.update(n=s.state["n"] + 1))
        await ctx.step("wait", lambda s: gate.wait())

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("a"))

        async def inc_recorded() -> bool:
            return "inc" in (await stored(t, actor_id)).entries

        for _ in range(200):
            if await inc_recorded():
                break
            await asyncio.sleep(0.01)
        # No save throttle passed: the snapshot holds the change because the step's flush
        # wrote it with the history entry.
        assert await stored_state(t, actor_id) == {"n": 1}
        (raw_state,) = await t.driver.kv_get(actor_id, [keys.WORKFLOW_PREFIX + b"\x15\x03\x15\x01"])
        assert raw_state == b"running"
        gate.set()
        await wait_state(t, actor_id, "completed")


async def test_ephemeral_step_is_written_by_the_next_flush(tmp_path: Path) -> None:
    gate = asyncio.Event()
    wf = wf_actor("wf", {})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("quick", lambda s: 1, ephemeral=True)
        await ctx.step("hold", lambda s: gate.wait())

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("e"))
        await asyncio.sleep(0.1)
        assert "quick" not in (await stored(t, actor_id)).entries
        gate.set()
        history = await wait_state(t, actor_id, "completed")
        assert history.entries["quick"].output == 1


async def test_output_and_state_records(tmp_path: Path) -> None:
    wf = wf_actor("wf", {})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        a = await ctx.step("greet", lambda s: "hi")
        return {"a": a, "r": 1}

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("o"))
        history = await wait_state(t, actor_id, "completed")
        assert history.output == {"a": "hi", "r": 1}
        assert history.has_input
        raw = dict(await t.driver.kv_list(actor_id, keys.WORKFLOW_PREFIX, b"\x06\x02"))
        prefix = keys.WORKFLOW_PREFIX
        assert raw[prefix + b"\x15\x01\x14"] == b"greet"
        assert raw[prefix + b"\x15\x03\x15\x01"] == b"completed"
        assert raw[prefix + b"\x15\x03\x15\x04"] == b"\xf7"
        step = raw[prefix + b"\x15\x02\x14"]
        assert step[:3] == b"\x01\x00\x24"  # vbare v1, then a 36-character UUID id
        assert step.endswith(b"\x01\x00\x00\x00\x00\x00\x00\x01\x03bhi\x00")


async def test_actor_sleeps_during_a_workflow_sleep_and_its_alarm_wakes_it(
    tmp_path: Path,
) -> None:
    ran: list[str] = []
    wf = wf_actor(sleep_timeout=1.0)

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.sleep("long", 120.0)
        await ctx.step("after", lambda s: ran.append("after"))

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("z"))
        history = await wait_state(t, actor_id, "sleeping")
        await t.advance(2.0)
        assert actor_id not in t.runtime.instances  # asleep while the workflow waits
        assert t.driver.alarms.get(actor_id) == history.entries["long"].deadline
        await t.advance(120.0)  # nobody calls it: the alarm wakes it
        await wait_state(t, actor_id, "completed")
    assert ran == ["after"]


async def test_on_error_hook_and_entry_in_progress(tmp_path: Path) -> None:
    events: list[Any] = []
    wf = wf_actor()

    def report(c: Any, event: dict[str, Any]) -> None:
        events.append(event)

    @wf.run
    @workflow(on_error=report)
    async def run(ctx):  # type: ignore[no-untyped-def]
        def flaky(s):  # type: ignore[no-untyped-def]
            raise ValueError("once")

        await ctx.try_step("f", flaky, max_retries=0)
        first = asyncio.ensure_future(ctx.step("a", lambda s: asyncio.sleep(0.05)))
        await asyncio.sleep(0)
        try:
            await ctx.step("b", lambda s: 1)  # "a" is still in progress
        finally:
            await first

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        history = await wait_state(t, await started(t.wf.get_or_create("p")), "failed")
    step_event = events[0]["step"]
    assert (step_event["step_name"], step_event["attempt"], step_event["will_retry"]) == (
        "f",
        1,
        False,
    )
    assert history.error is not None and history.error["name"] == "EntryInProgressError"
    assert any("workflow" in e for e in events)


async def test_a_step_context_is_valid_only_during_its_step(tmp_path: Path) -> None:
    kept: list[Any] = []
    errors: list[str] = []
    wf = wf_actor(state={"guardTriggered": False})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("keep", lambda s: kept.append(s))
        try:
            kept[0].state["x"] = 1
        except RuntimeError as exc:
            errors.append(str(exc))

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        h = t.wf.get_or_create("g")
        await wait_state(t, await started(h), "completed")
        assert errors == ["state is only available inside workflow steps"]
        assert await h.get() == {"guardTriggered": True}


async def test_destroy_while_the_workflow_waits_deletes_its_history(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: 1)
        await ctx.sleep("long", 600.0)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("d"))
        await wait_state(t, actor_id, "sleeping")
        await t.driver.destroy_actor(actor_id)
        assert actor_id not in t.runtime.instances
        assert await t.driver.kv_list(actor_id, keys.WORKFLOW_PREFIX, b"\x06\x02") == []
        assert t.driver.alarms.get(actor_id) is None


async def test_a_step_output_that_cannot_be_recorded_fails_the_step(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("bad", lambda s: object())

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        history = await wait_state(t, await started(t.wf.get_or_create("x")), "failed")
    assert history.error is not None and history.error["name"] == "CriticalError"
    assert history.error["message"].startswith('Step "bad" output cannot be recorded as CBOR')
    assert history.metadata[history.entries["bad"].id].status == "exhausted"

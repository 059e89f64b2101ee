"""``ctx.loop``: carried state, break values, history pruning (entries and KV ranges),
resuming at the stored iteration after a restart, and the stateful-None error."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from workflow_helpers import started, wait_state, wf_actor

from rivetkit import setup
from rivetkit.runtime import keys
from rivetkit.testing import setup_test
from rivetkit.workflow import Loop, workflow

pytestmark = pytest.mark.asyncio


async def test_stateful_loop_prunes_old_iterations(tmp_path: Path) -> None:
    calls: list[int] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def body(c, total):  # type: ignore[no-untyped-def]
            n = len(calls)
            value = await c.step("x", lambda s: calls.append(n) or n)
            if total + value >= 45 * 1 and n >= 9 and n == 49:
                return Loop.break_(total + value)
            return Loop.continue_(total + value)

        return await ctx.loop("L", body, state=0, history_prune_interval=10, history_size=5)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("l"))
        history = await wait_state(t, actor_id, "completed")
        assert history.output == sum(range(50))
        assert calls == list(range(50))
        loop = history.entries["L"]
        assert (loop.kind, loop.iteration, loop.output) == ("loop", 49, sum(range(50)))
        kept = sorted(e.location[1][1] for k, e in history.entries.items() if k.startswith("L/~"))
        assert kept == [45, 46, 47, 48, 49]  # the last history_size iterations
        meta = history.metadata[loop.id]
        assert (meta.status, meta.attempts, meta.last_attempt_at) == ("completed", 0, 0)
        # Pruned in storage too: no metadata row of a pruned step is left.
        rows = await t.driver.kv_list(
            actor_id, keys.WORKFLOW_PREFIX + b"\x15\x04", b"\x06\x01\x15\x05"
        )
        assert len(rows) == 1 + 5  # the loop's row and the kept steps'


async def test_loop_resumes_at_its_stored_iteration_after_a_restart(tmp_path: Path) -> None:
    ran: list[int] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def body(c, i):  # type: ignore[no-untyped-def]
            await c.step("work", lambda s: ran.append(i))
            if i == 3:
                return Loop.break_("done")
            await c.sleep("pause", 10.0)
            return Loop.continue_(i + 1)

        return await ctx.loop("L", body, state=0)

    registry = setup(use=[wf])
    shift = [0.0]  # each server's wall clock goes on from where the last one stopped

    def clock() -> float:
        return time.time() + shift[0]

    for _ in range(3):  # a restart at each iteration's sleep
        async with setup_test(registry, tmp_path, clock=clock) as t:
            actor_id = await started(t.wf.get_or_create("r"))
            await wait_state(t, actor_id, "sleeping")
            await t.advance(11.0)
        shift[0] += 11.0
    async with setup_test(registry, tmp_path, clock=clock) as t:
        actor_id = await started(t.wf.get_or_create("r"))
        await t.advance(11.0)
        history = await wait_state(t, actor_id, "completed")
    assert ran == [0, 1, 2, 3]  # each iteration's step ran once across the restarts
    assert history.output == "done"


async def test_stateless_loop_and_stateful_none(tmp_path: Path) -> None:
    count = {"n": 0}
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def body(c):  # type: ignore[no-untyped-def]
            count["n"] += 1
            if count["n"] == 3:
                return Loop.break_(count["n"])
            return None  # continue

        first = await ctx.loop("free", body)

        async def stateful(c, s):  # type: ignore[no-untyped-def]
            return None

        await ctx.loop("bad", stateful, state={"k": 1})
        return first

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("s"))
        history = await wait_state(t, actor_id, "failed")
        assert history.entries["free"].output == 3
        assert history.error is not None
        assert "returned None for a stateful iteration" in history.error["message"]


async def test_loop_entry_bytes(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        async def body(c, s):  # type: ignore[no-untyped-def]
            await c.step("x", lambda st: 1)
            return Loop.break_(1) if s == 1 else Loop.continue_(s + 1)

        return await ctx.loop("L", body, state=0)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("b"))
        await wait_state(t, actor_id, "completed")
        raw = dict(await t.driver.kv_list(actor_id, keys.WORKFLOW_PREFIX, b"\x06\x02"))
    p = keys.WORKFLOW_PREFIX
    loop = raw[p + bytes.fromhex("1502 14")]
    # spec §2.5: kind 1 Loop: state=CBOR 1 | iteration=1 | output present = CBOR 1
    assert loop.endswith(bytes.fromhex("01 00 00000000 01 01 01 01000000 01 01 01"))
    # the step of iteration 0: location [0 L, (0, 0), 1 x]
    child = raw[p + bytes.fromhex("1502 14 05 14 14 00 1501")]
    assert child[:2] == b"\x01\x00"

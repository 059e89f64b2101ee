"""Replay: restarts at every step boundary, a crash inside a step (it runs again) and after
it (it does not), divergence errors, versioning with ``removed``/``get_version``, and the
inspector's replay (``rivetkit.workflow.inspect.replay``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import started, stored, wait_state, wf_actor

from rivetkit import setup
from rivetkit.errors import RivetError
from rivetkit.testing import setup_test
from rivetkit.workflow import Loop, workflow
from rivetkit.workflow import inspect as wf_inspect

pytestmark = pytest.mark.asyncio


class Clock:
    """The wall clock of successive servers: each goes on where the last one stopped."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


async def test_restart_at_every_step_boundary_runs_each_step_once(tmp_path: Path) -> None:
    runs: Counter[str] = Counter()
    wf = wf_actor(state={"seen": []})

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        for i in range(4):

            def body(s, i=i):  # type: ignore[no-untyped-def]
                runs[f"s{i}"] += 1
                s.state["seen"].append(i)
                return i * 10

            value = await ctx.step(f"s{i}", body)
            assert value == i * 10  # the recorded output on replay
            await ctx.sleep(f"z{i}", 10.0)
        return "end"

    registry = setup(use=[wf])
    clock = Clock()
    actor_id = ""
    for boundary in range(4):
        async with setup_test(registry, tmp_path, clock=clock) as t:
            h = t.wf.get_or_create("b")
            actor_id = await started(h)
            history = await wait_state(t, actor_id, "sleeping")
            assert f"z{boundary}" in history.entries
            assert await h.get() == {"seen": list(range(boundary + 1))}
            await t.advance(11.0)
            if boundary < 3:
                await wait_state(t, actor_id, "sleeping")
        clock.shift += 11.0
    async with setup_test(registry, tmp_path, clock=clock) as t:
        history = await wait_state(t, actor_id, "completed")
    assert runs == Counter({"s0": 1, "s1": 1, "s2": 1, "s3": 1})
    assert history.output == "end"


async def test_crash_inside_a_step_runs_it_again_not_the_ones_before(tmp_path: Path) -> None:
    runs: Counter[str] = Counter()
    hang = asyncio.Event()
    wf = wf_actor(sleep_grace_period=0.2)

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("before", lambda s: runs.update(["before"]))

        async def stuck(s):  # type: ignore[no-untyped-def]
            runs["stuck"] += 1
            if runs["stuck"] == 1:
                await hang.wait()  # cut by the shutdown: never recorded
            return "ok"

        await ctx.step("stuck", stuck)

    registry = setup(use=[wf])
    async with setup_test(registry, tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("c"))
        for _ in range(200):
            if runs["stuck"]:
                break
            await asyncio.sleep(0.01)
        history = await stored(t, actor_id)
        assert "before" in history.entries and "stuck" not in history.entries
    async with setup_test(registry, tmp_path) as t:
        await started(t.wf.get_or_create("c"))
        history = await wait_state(t, actor_id, "completed")
    assert runs == Counter({"before": 1, "stuck": 2})
    assert history.metadata[history.entries["stuck"].id].attempts == 1  # a new entry


def two_versions(first: Any, second: Any) -> tuple[Any, Any]:
    registries = []
    for fn in (first, second):
        wf = wf_actor()
        wf.run(workflow(fn))
        registries.append(setup(use=[wf]))
    return registries[0], registries[1]


async def run_versions(tmp_path: Path, first: Any, second: Any, end: str) -> Any:
    old, new = two_versions(first, second)
    clock = Clock()
    async with setup_test(old, tmp_path, clock=clock) as t:
        actor_id = await started(t.wf.get_or_create("v"))
        await wait_state(t, actor_id, "sleeping")
    clock.shift += 11.0
    async with setup_test(new, tmp_path, clock=clock) as t:
        await started(t.wf.get_or_create("v"))
        return await wait_state(t, actor_id, end)


async def test_changed_kind_diverges(tmp_path: Path) -> None:
    async def first(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: 1)
        await ctx.sleep("z", 10.0)

    async def second(ctx):  # type: ignore[no-untyped-def]
        await ctx.sleep("a", 1.0)
        await ctx.sleep("z", 10.0)

    history = await run_versions(tmp_path, first, second, "failed")
    assert history.error == {
        "name": "HistoryDivergedError",
        "message": 'Expected sleep "a" at a, found step',
    }


async def test_duplicate_name_diverges(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("x", lambda s: 1)
        await ctx.step("x", lambda s: 2)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        history = await wait_state(t, await started(t.wf.get_or_create("d")), "failed")
    assert history.error is not None
    assert history.error["message"].startswith('Duplicate entry name "x" at location ""')


async def test_unvisited_entry_in_a_loop_diverges(tmp_path: Path) -> None:
    async def first(ctx):  # type: ignore[no-untyped-def]
        async def body(c, i):  # type: ignore[no-untyped-def]
            await c.step("x", lambda s: i)
            await c.sleep("z", 10.0)
            return Loop.break_(i)

        await ctx.loop("L", body, state=0)

    async def second(ctx):  # type: ignore[no-untyped-def]
        async def body(c, i):  # type: ignore[no-untyped-def]
            await c.sleep("z", 10.0)
            return Loop.break_(i)

        await ctx.loop("L", body, state=0)

    history = await run_versions(tmp_path, first, second, "failed")
    assert history.error is not None
    assert history.error["message"] == (
        'Entry "L/~0/x" exists in history but was not visited. Workflow code may have '
        "changed. Use ctx.removed() to handle migrations."
    )


async def test_removed_lets_an_old_history_continue(tmp_path: Path) -> None:
    ran: list[str] = []

    async def first(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: ran.append("a1"))
        await ctx.step("b", lambda s: ran.append("b1"))
        await ctx.sleep("z", 10.0)

    async def second(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: ran.append("a2"))
        await ctx.removed("b", "step")
        await ctx.sleep("z", 10.0)
        await ctx.removed("gone", "step")  # never recorded: a placeholder is
        await ctx.step("c", lambda s: ran.append("c2"))
        return "migrated"

    history = await run_versions(tmp_path, first, second, "completed")
    assert ran == ["a1", "b1", "c2"]
    assert history.output == "migrated"
    gone = history.entries["gone"]
    assert (gone.kind, gone.original_type, gone.original_name) == ("removed", "step", "gone")
    assert history.entries["b"].kind == "step"  # the old entry stays


async def test_get_version_for_old_and_new_instances(tmp_path: Path) -> None:
    versions: list[int] = []

    async def first(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: 1)
        await ctx.sleep("z", 10.0)

    async def second(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: 1)
        versions.append(await ctx.get_version("v", 2))
        await ctx.sleep("z", 10.0)

    history = await run_versions(tmp_path / "old", first, second, "completed")
    assert versions == [1]  # already past this point with the old code
    assert (history.entries["v"].resolved, history.entries["v"].latest) == (1, 2)
    _, new = two_versions(first, second)
    async with setup_test(new, tmp_path / "new") as t:
        actor_id = await started(t.wf.get_or_create("n"))
        await wait_state(t, actor_id, "sleeping")
    assert versions == [1, 2]


async def test_inspector_replay_from_a_step(tmp_path: Path) -> None:
    runs: Counter[str] = Counter()
    gate = asyncio.Event()
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("a", lambda s: runs.update(["a"]))
        await ctx.step("b", lambda s: runs.update(["b"]))

        async def c(s):  # type: ignore[no-untyped-def]
            runs["c"] += 1
            if runs["c"] == 1:
                await gate.wait()

        await ctx.step("c", c)
        return runs["c"]

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("i"))
        instance = t.runtime.instances[actor_id]
        assert wf_inspect.is_workflow_actor(instance.definition)
        await asyncio.sleep(0.05)
        assert wf_inspect.in_flight(instance)
        with pytest.raises(RivetError) as caught:
            await wf_inspect.replay(instance, None)
        assert (caught.value.group, caught.value.code) == ("actor", "workflow_in_flight")
        gate.set()
        history = await wait_state(t, actor_id, "completed")
        for _ in range(100):
            if not wf_inspect.in_flight(instance):
                break
            await asyncio.sleep(0.01)
        with pytest.raises(RivetError) as caught:
            await wf_inspect.replay(instance, "no-such-id")
        assert caught.value.message == "Workflow step not found: no-such-id"
        updates: list[Any] = []
        wf_inspect.add_history_listener(instance, updates.append)
        b_id = history.entries["b"].id
        snap = await wf_inspect.replay(instance, b_id)
        assert {e.id for e in snap.entries} == {history.entries["a"].id}
        assert snap.state == "sleeping"
        history = await wait_state(t, actor_id, "completed")
        assert runs == Counter({"a": 1, "b": 2, "c": 2})
        assert updates  # the listener saw the replayed run's flushes
        current = await wf_inspect.load_history(instance)
        assert [n for n in current.names][:3] == ["a", "b", "c"]
        assert wf_inspect.workflow_state(instance) == "completed"

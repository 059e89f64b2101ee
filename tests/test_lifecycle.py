"""Actor lifecycle through setup_runtime: hook order and arguments, sleep, wake, destroy, restart.

Runtime spec §3: a new actor runs ``on_migrate(c, True)`` → ``create_state(c, input)`` →
``on_create(c, input)`` → ``create_vars(c)`` → ``on_wake(c)`` → ``run(c)``; a wake runs
``on_migrate(c, False)`` → ``create_vars`` → ``on_wake`` → ``run``; shutdown sets the abort
signal first, then runs ``on_sleep``/``on_destroy`` within the grace period, waits for ``run``
on sleep, and saves the state last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import LoopClock, eventually
from rivetkit import ActorOptions, RivetError, actor, setup
from rivetkit.protocol import actor_persist
from rivetkit.runtime import keys
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import Phase
from rivetkit.testing import RuntimeClient, setup_runtime

pytestmark = pytest.mark.asyncio

FAST = ActorOptions(sleep_timeout=30.0, state_save_interval=0.02, sleep_grace_period=2.0)


async def wait_stopped(client: RuntimeClient, actor_id: str) -> None:
    """Wait until the driver has fully stopped the actor (sleep or destroy finished)."""
    placement = client.runtime.driver.placement  # type: ignore[attr-defined]
    await eventually(lambda: actor_id not in placement.loaded())


def hook(events: list[Any], name: str, is_async: bool, body: Callable[..., Any] | None = None):
    """A hook ``name`` recording ``(name, *args)``; async or sync; ``body`` returns its value."""

    def record(c: ActorContext, *args: Any) -> Any:
        assert isinstance(c, ActorContext)
        events.append((name, *args))
        return body(c, *args) if body is not None else None

    if not is_async:
        return record

    async def arecord(c: ActorContext, *args: Any) -> Any:
        await asyncio.sleep(0)
        return record(c, *args)

    return arecord


def recording_actor(events: list[Any], *, is_async: bool, name: str = "rec"):
    """An actor whose every lifecycle hook appends to ``events``."""
    a = actor(name, options=FAST)

    a.on_migrate(hook(events, "on_migrate", is_async))
    a.create_state(
        hook(events, "create_state", is_async, lambda c, inp: {"input": inp, "count": 0})
    )

    def on_create_body(c: ActorContext, inp: Any) -> None:
        # The state exists already; the input is the create input.
        events.append(("on_create.state", dict(c.state), c.input))

    a.on_create(hook(events, "on_create", is_async, on_create_body))
    a.create_vars(hook(events, "create_vars", is_async, lambda c: {"built": len(events)}))
    a.on_wake(hook(events, "on_wake", is_async, lambda c: events.append(("on_wake.vars", c.vars))))

    def on_sleep_body(c: ActorContext) -> None:
        events.append(("on_sleep.aborted", c.aborted, c.abort_signal.is_set()))
        c.state["slept"] = c.state.get("slept", 0) + 1  # persisted by the final save

    a.on_sleep(hook(events, "on_sleep", is_async, on_sleep_body))
    a.on_destroy(
        hook(
            events,
            "on_destroy",
            is_async,
            lambda c: events.append(("on_destroy.aborted", c.aborted)),
        )
    )

    async def run(c: ActorContext) -> None:
        events.append(("run", c.aborted))
        await c.abort_signal.wait()
        await asyncio.sleep(0.02)  # shutdown must wait for this on sleep
        events.append(("run.end",))

    a.run(run)

    @a.action
    def bump(c: ActorContext) -> int:
        c.state["count"] += 1
        return c.state["count"]

    @a.action
    def snapshot(c: ActorContext) -> dict[str, Any]:
        return {"state": c.state, "generation": c.generation, "vars": c.vars}

    @a.action
    def go_to_sleep(c: ActorContext) -> None:
        c.sleep()

    @a.action
    def go_away(c: ActorContext) -> None:
        c.destroy()

    return a


def names(events: list[Any]) -> list[str]:
    return [e[0] for e in events if "." not in e[0]]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_hook_order_new_wake_sleep(is_async: bool) -> None:
    events: list[Any] = []
    registry = setup(use=[recording_actor(events, is_async=is_async)])
    async with setup_runtime(registry) as client:
        handle = client.rec.get_or_create(["a"], input={"hello": 1})
        assert await handle.bump() == 1
        await eventually(lambda: "run" in names(events))  # run starts in the background
        # New actor.
        assert names(events) == [
            "on_migrate",
            "create_state",
            "on_create",
            "create_vars",
            "on_wake",
            "run",
        ]
        assert events[0] == ("on_migrate", True)
        assert events[1] == ("create_state", {"hello": 1})
        assert ("on_create", {"hello": 1}) in events
        assert ("on_create.state", {"input": {"hello": 1}, "count": 0}, {"hello": 1}) in events
        # create_vars ran after on_create (5 events then) and on_wake sees its vars.
        assert ("on_wake.vars", {"built": 5}) in events
        assert ("run", False) in events
        first = await handle.snapshot()
        assert first["generation"] == 1
        assert first["vars"] == next(e[1] for e in events if e[0] == "on_wake.vars")

        # Sleep: the abort signal is set before on_sleep runs, and run is awaited.
        events.clear()
        actor_id = await handle.resolve()
        await handle.go_to_sleep()
        await wait_stopped(client, actor_id)
        assert ("on_sleep.aborted", True, True) in events
        assert "on_sleep" in names(events)
        assert events[-1] == ("run.end",)  # the stop finished only after run returned

        # Wake: no create_state, no on_create; the state came back with on_sleep's change.
        events.clear()
        second = await handle.snapshot()
        await eventually(lambda: "run" in names(events))
        assert names(events) == ["on_migrate", "create_vars", "on_wake", "run"]
        assert events[0] == ("on_migrate", False)
        assert second["generation"] == 2
        assert second["state"] == {"input": {"hello": 1}, "count": 1, "slept": 1}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_destroy_runs_on_destroy_and_deletes_data(is_async: bool) -> None:
    events: list[Any] = []
    registry = setup(use=[recording_actor(events, is_async=is_async)])
    async with setup_runtime(registry) as client:
        handle = client.rec.get_or_create(["d"])
        assert await handle.bump() == 1
        assert await handle.bump() == 2
        actor_id = await handle.resolve()
        driver = client.runtime.driver
        assert await driver.kv_get(actor_id, [keys.PERSIST]) != [None]

        events.clear()
        await handle.go_away()
        await wait_stopped(client, actor_id)
        assert ("on_destroy.aborted", True) in events
        assert "on_sleep" not in names(events)
        # Every KV entry of the actor is gone, and the (name, key) is free again.
        assert await driver.kv_list(actor_id, b"", None) == []
        with pytest.raises(RivetError) as info:
            await client.rec.get(["d"]).resolve()
        assert (info.value.group, info.value.code) == ("actor", "not_found")
        with pytest.raises(RivetError) as info:
            await client.get_for_id("rec", actor_id).snapshot()
        assert info.value.code == "not_found"

        # A new get_or_create starts a fresh actor.
        events.clear()
        fresh = client.rec.get_or_create(["d"])
        assert await fresh.bump() == 1
        assert await fresh.resolve() != actor_id
        assert names(events)[:3] == ["on_migrate", "create_state", "on_create"]
        assert events[0] == ("on_migrate", True)


async def test_state_survives_sleep_and_wake() -> None:
    a = actor("keeper", state={"items": []}, options=FAST)

    @a.action
    def add(c: ActorContext, item: str) -> list[str]:
        c.state["items"].append(item)
        return c.state["items"]

    @a.action
    def info(c: ActorContext) -> tuple[list[str], int]:
        return c.state["items"], c.generation

    @a.action
    def nap(c: ActorContext) -> None:
        c.sleep()

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.keeper.get_or_create("k")
        await handle.add("a")
        await handle.add("b")
        assert await handle.info() == (["a", "b"], 1)
        actor_id = await handle.resolve()
        await handle.nap()
        await wait_stopped(client, actor_id)
        assert actor_id not in client.runtime.instances
        # The next call wakes it: same state, next generation.
        assert await handle.info() == (["a", "b"], 2)
        await handle.add("c")
        await handle.nap()
        await wait_stopped(client, actor_id)
        assert await handle.info() == (["a", "b", "c"], 3)


async def test_idle_actor_sleeps_and_wakes_with_state() -> None:
    a = actor("idler", state={"n": 0}, options=ActorOptions(sleep_timeout=0.05))

    @a.action
    def inc(c: ActorContext) -> tuple[int, int]:
        c.state["n"] += 1
        return c.state["n"], c.generation

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.idler.get_or_create()
        assert await handle.inc() == (1, 1)
        actor_id = await handle.resolve()
        await wait_stopped(client, actor_id)
        # Slept by itself (the save interval was 1 s: the sleep saved the state).
        assert await handle.inc() == (2, 2)


async def test_state_survives_process_restart(tmp_path: Path) -> None:
    creations: list[str] = []
    a = actor("durable", state={"n": 0}, options=ActorOptions(state_save_interval=60.0))

    @a.on_create
    def created(c: ActorContext, inp: Any) -> None:
        creations.append(c.actor_id)

    @a.action
    def inc(c: ActorContext, by: int) -> int:
        c.state["n"] += by
        return c.state["n"]

    @a.action
    def get(c: ActorContext) -> tuple[int, Any]:
        return c.state["n"], c.input

    registry = setup(use=[a])
    async with setup_runtime(registry, data_dir=tmp_path) as client:
        handle = client.durable.get_or_create(["x"], input="in")
        assert await handle.inc(2) == 2
        assert await handle.inc(3) == 5  # saved only by the graceful shutdown (interval 60 s)
        first_id = await handle.resolve()
    async with setup_runtime(registry, data_dir=tmp_path) as client:
        handle = client.durable.get(["x"])
        assert await handle.get() == (5, "in")
        assert await handle.resolve() == first_id
        assert await handle.inc(1) == 6
    async with setup_runtime(registry, data_dir=tmp_path) as client:
        assert await client.durable.get_or_create(["x"]).get() == (6, "in")
    assert creations == [first_id]  # on_create ran once, across three processes


async def test_has_initialized_persisted_before_first_action(tmp_path: Path) -> None:
    a = actor("init", state={"v": 1}, options=ActorOptions(state_save_interval=60.0))

    @a.action
    async def peek(c: ActorContext) -> bytes | None:
        # Already on disk while the first action runs.
        (raw,) = await client.runtime.driver.kv_get(c.actor_id, [keys.PERSIST])
        return raw

    async with setup_runtime(setup(use=[a]), data_dir=tmp_path) as client:
        raw = await client.init.get_or_create().peek()
        assert raw is not None
        snapshot = actor_persist.ACTOR.decode(raw)
        assert snapshot.has_initialized is True


async def test_sleep_and_destroy_too_early_raise_starting() -> None:
    seen: list[RivetError] = []
    a = actor("early", state={})

    @a.on_wake
    def wake(c: ActorContext) -> None:
        for request in (c.sleep, c.destroy):
            try:
                request()
            except RivetError as exc:
                seen.append(exc)

    @a.action
    def ok(c: ActorContext) -> bool:
        return True

    async with setup_runtime(setup(use=[a])) as client:
        assert await client.early.get_or_create().ok() is True
    assert [(e.group, e.code) for e in seen] == [("actor", "starting"), ("actor", "starting")]


async def test_double_destroy_raises_stopping() -> None:
    a = actor("twice", state={})

    @a.action
    def destroy_twice(c: ActorContext) -> str:
        c.destroy()
        try:
            c.destroy()
        except RivetError as exc:
            return f"{exc.group}/{exc.code}"
        return "no error"

    @a.action
    def sleep_twice(c: ActorContext) -> str:
        c.sleep()
        c.sleep()  # idempotent
        return "ok"

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.twice.get_or_create()
        assert await handle.destroy_twice() == "actor/stopping"
        await wait_stopped(client, await handle.resolve())
        other = client.twice.get_or_create("s")
        assert await other.sleep_twice() == "ok"


async def test_destroy_from_inside_on_wake_flow_is_starting_but_later_ok() -> None:
    # c.destroy() from a run task once started works and deletes the actor.
    started = asyncio.Event()
    a = actor("selfdestruct", state={"n": 0})

    @a.run
    async def run(c: ActorContext) -> None:
        await started.wait()
        c.destroy()
        await c.abort_signal.wait()

    @a.action
    def n(c: ActorContext) -> int:
        return c.state["n"]

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.selfdestruct.get_or_create()
        assert await handle.n() == 0
        actor_id = await handle.resolve()
        started.set()
        await wait_stopped(client, actor_id)
        assert await client.runtime.driver.find_actor("selfdestruct", []) is None


async def test_run_crash_stops_the_actor() -> None:
    a = actor("crasher", state={"n": 0}, options=FAST)

    @a.run
    async def run(c: ActorContext) -> None:
        await asyncio.sleep(0.01)
        c.state["n"] += 1
        raise RuntimeError("run broke")

    @a.action
    def n(c: ActorContext) -> tuple[int, int]:
        return c.state["n"], c.generation

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.crasher.get_or_create()
        assert (await handle.n())[1] == 1
        actor_id = await handle.resolve()
        await wait_stopped(client, actor_id)  # stopped by the crash (not by idleness: 30 s)
        count, generation = await handle.n()
        assert generation == 2
        assert count >= 1  # the change made before the crash was saved by the stop


async def test_run_returning_lets_the_actor_idle() -> None:
    a = actor("runner", state={}, options=ActorOptions(sleep_timeout=0.05))
    finished: list[bool] = []

    @a.run
    async def run(c: ActorContext) -> None:
        finished.append(True)

    @a.action
    def gen(c: ActorContext) -> int:
        return c.generation

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.runner.get_or_create()
        assert await handle.gen() == 1
        await wait_stopped(client, await handle.resolve())
        assert finished == [True]


async def test_long_run_keeps_the_actor_awake() -> None:
    a = actor("busy", state={}, options=ActorOptions(sleep_timeout=0.03))

    @a.run
    async def run(c: ActorContext) -> None:
        await c.abort_signal.wait()

    @a.action
    def gen(c: ActorContext) -> int:
        return c.generation

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.busy.get_or_create()
        assert await handle.gen() == 1
        await asyncio.sleep(0.15)
        instance = client.runtime.instances[await handle.resolve()]
        assert instance.phase == Phase.STARTED
        assert await handle.gen() == 1


async def test_wait_until_and_keep_awake() -> None:
    done: list[str] = []
    a = actor("waiter", state={"n": 0}, options=ActorOptions(sleep_timeout=0.03))

    @a.action
    async def background(c: ActorContext) -> None:
        async def later() -> None:
            await asyncio.sleep(0.1)
            c.state["n"] += 1  # shutdown waits for it, and saves after it
            done.append("wait_until")

        c.wait_until(later())

    @a.action
    async def hold(c: ActorContext) -> int:
        await c.keep_awake(asyncio.sleep(0.1))
        return c.generation

    @a.action
    def n(c: ActorContext) -> int:
        return c.state["n"]

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.waiter.get_or_create()
        actor_id = await handle.resolve()
        await handle.background()
        await wait_stopped(client, actor_id)
        assert done == ["wait_until"]
        assert await handle.n() == 1
        assert await handle.hold() == 2


async def test_on_before_action_response_transforms_output() -> None:
    a = actor("wrap", state={"n": 0})

    @a.on_before_action_response
    async def wrap(c: ActorContext, name: str, args: list[Any], output: Any) -> Any:
        return {"name": name, "args": args, "output": output}

    @a.action
    def add(c: ActorContext, x: int, y: int) -> int:
        return x + y

    @a.action
    async def echo(c: ActorContext, value: Any) -> Any:
        return value

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.wrap.get_or_create()
        assert await handle.add(2, 3) == {"name": "add", "args": [2, 3], "output": 5}
        assert await handle.echo("x") == {"name": "echo", "args": ["x"], "output": "x"}


async def test_on_state_change_runs_after_a_change() -> None:
    seen: list[Any] = []
    a = actor("watched", state={"n": 0})

    @a.on_state_change
    def changed(c: ActorContext, new_state: Any) -> None:
        seen.append(dict(new_state))

    @a.action
    def inc(c: ActorContext) -> int:
        c.state["n"] += 1
        return c.state["n"]

    @a.action
    def replace(c: ActorContext, n: int) -> None:
        c.state = {"n": n}

    @a.action
    def read(c: ActorContext) -> int:
        return c.state["n"]

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.watched.get_or_create()
        await handle.inc()
        await handle.read()  # no change: no call
        await handle.inc()
        await handle.replace(10)
        assert seen == [{"n": 1}, {"n": 2}, {"n": 10}]


async def test_on_state_change_mutation_is_reentrant_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVET_EXPOSE_ERRORS", "1")
    a = actor("reentrant", state={"n": 0, "echo": 0})

    @a.on_state_change
    def changed(c: ActorContext, new_state: Any) -> None:
        if c.state["n"] == 1:
            c.state["echo"] += 1  # mutation
        elif c.state["n"] == 2:
            c.state = {"n": 99, "echo": 0}  # assignment

    @a.action
    def set_n(c: ActorContext, n: int) -> int:
        c.state["n"] = n
        return n

    @a.action
    def get(c: ActorContext) -> Any:
        return c.state

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.reentrant.get_or_create()
        for n in (1, 2):
            with pytest.raises(RivetError) as info:
                await handle.set_n(n)
            assert (info.value.group, info.value.code) == ("actor", "state_mutation_reentrant")
        # The actor keeps working afterwards, and the hook's changes did not stick.
        assert await handle.set_n(3) == 3
        state = await handle.get()
        assert state["n"] == 3
        assert state["echo"] == 0


async def test_context_identity() -> None:
    a = actor("ident", state=None)

    @a.action
    def who(c: ActorContext) -> dict[str, Any]:
        c.log.info("hello from the actor")
        return {
            "name": c.name,
            "key": c.key,
            "id": c.actor_id,
            "input": c.input,
            "state": c.state,
            "aborted": c.aborted,
        }

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.ident.get_or_create(["a", "b"], input=[1, 2])
        info = await handle.who()
        assert info == {
            "name": "ident",
            "key": ["a", "b"],
            "id": await handle.resolve(),
            "input": [1, 2],
            "state": None,
            "aborted": False,
        }


async def test_activity_postpones_idle_sleep() -> None:
    a = actor("steady", state={}, options=ActorOptions(sleep_timeout=10.0))
    stops: list[str] = []
    began, release = asyncio.Event(), asyncio.Event()

    @a.on_sleep
    def slept(c: ActorContext) -> None:
        stops.append("sleep")

    @a.action
    def ping(c: ActorContext) -> int:
        return c.generation

    @a.action
    async def long(c: ActorContext) -> int:
        began.set()
        await release.wait()
        return c.generation

    # Loop time moves only when told (plus the real time the test takes, far below 10 s).
    with LoopClock() as clock:
        async with setup_runtime(setup(use=[a])) as client:
            handle = client.steady.get_or_create()
            actor_id = await handle.resolve()
            placement = client.runtime.driver.placement  # type: ignore[attr-defined]
            for _ in range(8):  # a call every 4 s, for three sleep timeouts
                await clock.advance(4.0)
                assert await handle.ping() == 1
            call = asyncio.ensure_future(handle.long())
            await began.wait()
            await clock.advance(25.0)  # an action longer than the sleep timeout: no sleep
            release.set()
            assert await call == 1
            assert stops == []
            # Idle from now on: still awake within one timeout, asleep after it.
            await clock.advance(6.0)
            assert stops == [] and actor_id in placement.loaded()
            await clock.advance(5.0)
            await wait_stopped(client, actor_id)
            assert stops == ["sleep"]
            assert await handle.ping() == 2

"""Blocking actions (``@a.action(blocking=True)``) run in a worker thread while their actor
waits and the others keep serving; a sync action that holds the event loop too long logs a
warning once. Real servers on 127.0.0.1, the real client; both twins of the action table
(the suite also runs with RIVETKIT_PURE=1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

from conftest import twin
from rivetkit import ActorOptions, actor, setup
from rivetkit.client import ActorError, Client
from rivetkit.runtime import action_calls, blocking
from rivetkit.server import serve_in_background

#: Set by the test, waited for by ``held`` (one per test: see the ``gates`` fixture).
GATES: dict[str, threading.Event] = {}

worker = actor("worker", state={"n": 0, "log": []})


@worker.action(blocking=True)
def sleep_for(c: Any, seconds: float) -> int:
    GATES["started"].set()
    time.sleep(seconds)
    c.state["n"] += 1
    c.state["log"].append("sleep_for")
    return int(c.state["n"])


@worker.action(blocking=True)
def held(c: Any) -> int:
    """Blocks until the test sets the ``release`` gate."""
    c.state["log"].append("held:start")
    GATES["started"].set()
    GATES["release"].wait(10)
    c.state["n"] += 100
    c.state["log"].append("held:end")
    return int(c.state["n"])


@worker.action(blocking=True)
def slow_increment(c: Any) -> int:
    n = c.state["n"]
    time.sleep(0.01)  # a read-modify-write that another writer could interleave with
    c.state["n"] = n + 1
    return n + 1


@worker.action
def increment(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@worker.action
def read(c: Any) -> dict[str, Any]:
    c.state["log"].append("read")
    return {"n": c.state["n"], "log": list(c.state["log"])}


@worker.action
async def linger(c: Any, seconds: float) -> str:
    c.state["log"].append("linger:start")
    await asyncio.sleep(seconds)
    c.state["log"].append("linger:end")
    return "lingered"


@worker.action
async def mark_later(c: Any, seconds: float) -> None:
    await c.schedule.after(seconds, "mark")


@worker.action
def mark(c: Any) -> None:
    c.state["log"].append("scheduled")


@worker.action
async def call_self(c: Any) -> int:
    """An action awaiting a blocking action of its own actor (through ``c.client()``)."""
    result: int = await c.client().worker.get_or_create(c.key).sleep_for(0.1)
    return result


@worker.on_sleep
def remember_sleep(c: Any) -> None:
    c.state["log"].append("on_sleep")


@worker.action(blocking=True)
def typed(c: Any, x: int) -> int:
    return x * 2


# The same actions, with connection hooks that record when they ran.
hooked = actor("hooked", state={"n": 0, "log": []})
hooked.add_action(held, blocking=True)
hooked.add_action(read)


@hooked.on_connect
def connected(c: Any, conn: Any) -> None:
    c.state["log"].append("on_connect")


# The same actions, saving soon after each change.
eager = actor("eager", state={"n": 0, "log": []}, options=ActorOptions(state_save_interval=0.2))
eager.add_action(held, blocking=True)
eager.add_action(increment)

# The same actions, with a short action timeout.
strict = actor("strict", state={"n": 0, "log": []}, options=ActorOptions(action_timeout=0.5))
strict.add_action(held, blocking=True)
strict.add_action(read)

# Serial (one action at a time), short timeout.
serial = actor(
    "serial",
    state={"n": 0, "log": []},
    options=ActorOptions(serial=True, action_timeout=0.5),
)
serial.add_action(held, blocking=True)
serial.add_action(read)
serial.add_action(increment)

other = actor("other", state={})


@other.action
def ping(c: Any) -> str:
    return "pong"


loud = actor("loud", state={}, options=ActorOptions(slow_sync_action_warning=0.05))


@loud.action
def hog(c: Any, seconds: float) -> str:
    time.sleep(seconds)  # blocks the event loop: what the warning is for
    return "done"


@loud.action
def quick(c: Any) -> str:
    return "quick"


registry = setup(use=[worker, hooked, eager, strict, serial, other, loud])


@pytest.fixture(autouse=True)
def gates() -> Any:
    GATES["started"] = threading.Event()
    GATES["release"] = threading.Event()
    yield GATES
    GATES["release"].set()  # never leave a pool thread waiting


@contextlib.asynccontextmanager
async def served(encoding: str = "json") -> AsyncIterator[Client]:
    async with (
        serve_in_background(registry) as endpoint,
        Client(str(endpoint), encoding=encoding) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def served_from(data_dir: Any) -> AsyncIterator[Client]:
    async with (
        serve_in_background(registry, data_dir=data_dir) as endpoint,
        Client(str(endpoint)) as client,
    ):
        yield client


async def started() -> None:
    assert await asyncio.to_thread(GATES["started"].wait, 10), "the blocking action never ran"


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["json", "cbor", "bare"])
async def test_other_actors_answer_while_one_blocks_a_thread(encoding: str) -> None:
    async with served(encoding) as client:
        w = client.worker.get_or_create(["a"])
        o = client.other.get_or_create(["b"])
        assert await o.ping() == "pong"  # created and awake
        began = time.monotonic()
        blocking = asyncio.ensure_future(w.sleep_for(1.0))
        await started()
        asked = time.monotonic()
        assert await o.ping() == "pong"
        answered = time.monotonic()
        assert not blocking.done()
        assert await blocking == 1
        ended = time.monotonic()
        assert answered - asked < 0.1
        # The other actor answered well before the blocking action ended.
        assert (ended - began) - (answered - began) > 0.5


@pytest.mark.asyncio
async def test_the_same_actor_waits_for_the_thread() -> None:
    async with served() as client:
        w = client.worker.get_or_create(["a"])
        await w.read()
        blocking = asyncio.ensure_future(w.held())
        await started()
        reading = asyncio.ensure_future(w.read())
        await asyncio.sleep(0.2)
        assert not reading.done()  # queued behind the thread
        GATES["release"].set()
        assert await blocking == 100
        result = await reading
        assert result["n"] == 100
        assert result["log"] == ["read", "held:start", "held:end", "read"]


@pytest.mark.asyncio
async def test_the_thread_starts_after_the_actions_in_progress(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocking, "DRAIN_WARNING_AFTER", 0.2)
    caplog.set_level(logging.WARNING, logger="rivetkit.blocking")
    async with served() as client:
        w = client.worker.get_or_create(["drain"])
        await w.read()
        lingering = asyncio.ensure_future(w.linger(0.6))
        await asyncio.sleep(0.1)  # linger is at its await
        assert await w.sleep_for(0.01) == 1
        assert await lingering == "lingered"
        log = (await w.read())["log"]
        assert log == ["read", "linger:start", "linger:end", "sleep_for", "read"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "rivetkit.blocking"]
    assert len(warnings) == 1
    assert (
        "blocking action 'sleep_for' of actor 'worker' has waited 0.2 s for 1 action"
        in (warnings[0])
    )


@pytest.mark.asyncio
async def test_a_scheduled_action_due_meanwhile_runs_after_the_thread() -> None:
    async with served() as client:
        w = client.worker.get_or_create(["sched"])
        await w.mark_later(0.2)
        blocking = asyncio.ensure_future(w.held())
        await started()
        await asyncio.sleep(0.5)  # the schedule came due during the thread
        GATES["release"].set()
        await blocking
        await asyncio.sleep(0.1)
        assert (await w.read())["log"] == ["held:start", "held:end", "scheduled", "read"]


@pytest.mark.asyncio
async def test_connection_hooks_wait_for_the_thread() -> None:
    async with served() as client:
        h = client.hooked.get_or_create(["h"])
        blocking = asyncio.ensure_future(h.held())
        await started()
        conn = h.connect()
        opening = asyncio.ensure_future(conn.read())
        await asyncio.sleep(0.2)
        assert not opening.done()
        GATES["release"].set()
        assert await blocking == 100
        log = (await opening)["log"]
        # The HTTP call's own connection ran on_connect before the thread started; the
        # connection opened during the thread ran it after.
        assert log == ["on_connect", "held:start", "held:end", "on_connect", "read"]
        await conn.close()


@pytest.mark.asyncio
async def test_no_save_reads_the_state_while_the_thread_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serve_in_background(registry) as endpoint, Client(str(endpoint)) as client:
        e = client.eager.get_or_create(["e"])
        await e.increment()
        instance = endpoint.app.runtime.instances[await e.resolve()]  # type: ignore[attr-defined]
        gate = instance._gate
        saves: list[bool] = []
        persistence = type(instance.persistence)
        write_snapshot = persistence.write_snapshot

        async def spy(self: Any, **options: Any) -> None:
            if self is instance.persistence:
                saves.append(gate.busy)
            await write_snapshot(self, **options)

        # The saves go through an overridden write_snapshot (StatePersistence has slots).
        monkeypatch.setattr(persistence, "write_snapshot", spy)
        await e.increment()  # a save is due in 0.2 s
        blocking = asyncio.ensure_future(e.held())
        await started()
        await asyncio.sleep(0.5)  # the save came due during the thread
        GATES["release"].set()
        assert await blocking == 102
        await eventually_true(lambda: len(saves) > 0)
        assert saves and not any(saves)


async def eventually_true(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_state_stays_consistent_under_concurrent_calls() -> None:
    async with served() as client:
        w = client.worker.get_or_create(["c"])
        calls = [w.slow_increment() if i % 2 else w.increment() for i in range(30)]
        results = await asyncio.gather(*calls)
        assert sorted(results) == list(range(1, 31))
        assert (await w.read())["n"] == 30


@pytest.mark.asyncio
async def test_timeout_answers_the_caller_while_the_actor_stays_busy() -> None:
    async with served() as client:
        w = client.strict.get_or_create(["t"])
        await w.read()
        with pytest.raises(ActorError) as caught:
            await w.held()
        assert (caught.value.group, caught.value.code) == ("actor", "action_timed_out")
        reading = asyncio.ensure_future(w.read())
        await asyncio.sleep(0.2)
        assert not reading.done()  # the thread still holds the actor
        GATES["release"].set()
        result = await reading
        assert result["n"] == 100  # what the thread did after the timeout is kept
        assert result["log"][-2:] == ["held:end", "read"]


@pytest.mark.asyncio
async def test_an_action_awaiting_a_blocking_action_of_its_own_actor_is_answered() -> None:
    async with served() as client:
        w = client.worker.get_or_create(["self"])
        assert await w.call_self() == 1


@pytest.mark.asyncio
async def test_stop_waits_for_the_thread(tmp_path: Any) -> None:
    async with serve_in_background(registry, data_dir=tmp_path) as endpoint:
        async with Client(str(endpoint)) as client:
            w = client.worker.get_or_create(["s"])
            await w.read()
            blocking = asyncio.ensure_future(w.held())
            await started()
        # The client is closed and the server stops with the thread still blocked: the
        # actor's shutdown waits for it (within the grace period).
        threading.Timer(0.3, GATES["release"].set).start()
    blocking.cancel()
    with contextlib.suppress(BaseException):
        await blocking
    async with served_from(tmp_path) as client:
        result = await client.worker.get_or_create(["s"]).read()
    assert result["n"] == 100
    assert result["log"] == ["read", "held:start", "held:end", "on_sleep", "read"]


@pytest.mark.asyncio
async def test_a_serial_actor_stays_held_after_a_timeout() -> None:
    async with served() as client:
        s = client.serial.get_or_create(["s"])
        assert await s.increment() == 1
        with pytest.raises(ActorError) as caught:
            await s.held()
        assert caught.value.code == "action_timed_out"
        calls = [asyncio.ensure_future(s.increment()) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert not any(call.done() for call in calls)
        GATES["release"].set()
        assert sorted(await asyncio.gather(*calls)) == [102, 103, 104]


@pytest.mark.asyncio
async def test_arguments_are_validated_before_the_thread() -> None:
    async with served() as client:
        w = client.worker.get_or_create(["v"])
        assert await w.typed(21) == 42
        with pytest.raises(ActorError) as caught:
            await w.typed(1, 2)
        assert (caught.value.group, caught.value.code) == ("actor", "validation_error")


@pytest.mark.asyncio
async def test_a_slow_sync_action_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rivetkit.blocking")
    async with served() as client:
        a = client.loud.get_or_create(["w"])
        assert await a.quick() == "quick"
        assert await a.hog(0.2) == "done"
        assert await a.hog(0.2) == "done"
        warnings = [r.getMessage() for r in caplog.records if r.name == "rivetkit.blocking"]
        assert len(warnings) == 1
        assert "action 'hog' of actor 'loud' blocked the event loop for" in warnings[0]
        assert "@actor.action(blocking=True) or make it async" in warnings[0]


def test_blocking_on_an_async_function_is_refused() -> None:
    a = actor("refused", state={})

    async def fetch(c: Any) -> None:
        return None

    with pytest.raises(TypeError, match=r"action 'fetch': blocking=True is for sync functions"):
        a.action(blocking=True)(fetch)
    assert "fetch" not in a.actions


@pytest.fixture(params=["py", "cy"])
def dispatch(request: pytest.FixtureRequest) -> ModuleType:
    return twin(request.param, "_dispatch", "rivetkit.runtime._dispatch_py")


class _Spec:
    def __init__(self, fn: Any, is_async: bool = False) -> None:
        self.fn, self.is_async, self.validate = fn, is_async, None


def test_table_reports_slow_sync_actions(dispatch: ModuleType) -> None:
    reported: list[tuple[str, float]] = []

    def slow(c: Any) -> str:
        time.sleep(0.03)
        return "slow"

    async def later(c: Any) -> str:
        return "later"

    actions = {"slow": _Spec(slow), "fast": _Spec(lambda c: "fast"), "later": _Spec(later, True)}
    table = dispatch.ActionTable(actions, 0.01, lambda name, s: reported.append((name, s)))
    assert table.call("fast", None, []) == "fast"
    assert table.call("slow", None, []) == "slow"
    coro = table.call("later", None, [])
    assert asyncio.run(coro) == "later"
    assert [name for name, _ in reported] == ["slow"]
    assert reported[0][1] >= 0.02  # the compiled twin reads a coarse clock (a few ms)
    # No threshold, no reporting: the table takes the same arguments in both twins.
    quiet = dispatch.ActionTable(actions, None, lambda name, s: reported.append((name, s)))
    assert quiet.call("slow", None, []) == "slow"
    assert len(reported) == 1


def test_gate_for_follows_the_definitions_actions() -> None:
    # The action table says whether a definition has a blocking action; it is made again
    # when the definition's actions change, and gate_for reads it from the instance's table.
    defined = actor("gated_later", state={})

    @defined.action
    def plain(c: Any) -> int:
        return 1

    class Instance:
        definition = defined
        options = defined.options

        @property
        def table(self) -> Any:
            return action_calls.action_table(defined)

    assert blocking.gate_for(Instance()) is None  # type: ignore[arg-type]
    assert blocking.gate_for(Instance()) is None  # type: ignore[arg-type]

    @defined.action(blocking=True)
    def slow(c: Any) -> int:
        return 2

    assert isinstance(blocking.gate_for(Instance()), blocking.BlockingGate)  # type: ignore[arg-type]


def test_table_says_whether_an_action_blocks(dispatch: ModuleType) -> None:
    # Both twins: a spec without the field is not blocking; one blocking spec is enough.
    class Blocking(_Spec):
        blocking = True

    class NotBlocking(_Spec):
        blocking = False

    def fn(c: Any) -> int:
        return 1

    assert dispatch.ActionTable({}).blocking is False
    assert dispatch.ActionTable({"a": _Spec(fn), "b": NotBlocking(fn)}).blocking is False
    table = dispatch.ActionTable({"a": _Spec(fn), "b": Blocking(fn), "c": NotBlocking(fn)})
    assert table.blocking is True
    with pytest.raises(AttributeError):
        table.blocking = False
    defined = actor("gated_table", state={})

    @defined.action(blocking=True)
    def slow(c: Any) -> int:
        return 2

    assert dispatch.ActionTable(blocking.table_actions(defined)).blocking is True

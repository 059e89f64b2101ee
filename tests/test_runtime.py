"""The runtime through setup_runtime: actions, errors, timeouts, serial, KV, connections.

Errors are checked as a client sees them: ``setup_runtime``'s client raises
``rivetkit.errors.to_public(error)``, so internal errors keep their group and code but hide
their message unless ``RIVET_EXPOSE_ERRORS=1``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from conftest import LoopClock, eventually
from rivetkit import ActorOptions, RivetError, UserError, actor, setup
from rivetkit.errors import INTERNAL_MESSAGE, http_status
from rivetkit.runtime import keys
from rivetkit.runtime.connection import Connection
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import ActorInstance, Phase
from rivetkit.runtime.kv import MAX_KEY_SIZE, MAX_VALUE_SIZE
from rivetkit.testing import RuntimeClient, setup_runtime

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent


async def raises(code: str, awaitable: Any, group: str = "actor") -> RivetError:
    """Await ``awaitable`` and check that it raises the RivetError ``group/code``."""
    with pytest.raises(RivetError) as info:
        await awaitable
    assert (info.value.group, info.value.code) == (group, code), info.value
    return info.value


# -- actions -----------------------------------------------------------------------------------


#: Actor ids of the ``slow`` calls that have begun.
SLOW_CALLS: list[str] = []


def make_calc(options: ActorOptions | None = None) -> Any:
    calc = actor("calc", state={"total": 0}, options=options)

    @calc.action
    def add(c: ActorContext, x: int) -> int:
        c.state["total"] += x
        return c.state["total"]

    @calc.action
    async def add_later(c: ActorContext, x: int) -> int:
        await asyncio.sleep(0.001)
        c.state["total"] += x
        return c.state["total"]

    @calc.action(name="getTotal")
    def get_total(c: ActorContext) -> int:
        return c.state["total"]

    @calc.action
    def fail_user(c: ActorContext) -> None:
        raise UserError("nope", code="bad_thing", metadata={"why": [1, "two"]})

    @calc.action
    async def fail_user_async(c: ActorContext) -> None:
        await asyncio.sleep(0)
        raise UserError("plain")

    @calc.action
    def fail_internal(c: ActorContext) -> None:
        raise ValueError("secret detail")

    @calc.action
    async def fail_internal_async(c: ActorContext) -> None:
        await asyncio.sleep(0)
        raise KeyError("secret key")

    @calc.action
    async def slow(c: ActorContext) -> str:
        SLOW_CALLS.append(c.actor_id)
        await asyncio.sleep(3600)
        return "done"

    @calc.action
    async def own_timeout(c: ActorContext) -> None:
        # The action's own timeout, well within the action timeout.
        await asyncio.wait_for(asyncio.sleep(5), 0.01)

    @calc.action
    def raise_timeout(c: ActorContext) -> None:
        raise TimeoutError("mine")

    @calc.action
    async def kv_big_key(c: ActorContext) -> None:
        await c.kv.put(b"k" * (MAX_KEY_SIZE + 1), b"v")

    @calc.action
    async def kv_big_value(c: ActorContext) -> None:
        await c.kv.put(b"k", b"v" * (MAX_VALUE_SIZE + 1))

    return calc


async def test_sync_and_async_actions() -> None:
    async with setup_runtime(setup(use=[make_calc()])) as client:
        handle = client.calc.get_or_create(["x"])
        assert await handle.add(2) == 2
        assert await handle.add_later(3) == 5
        assert await handle.action("add", 1) == 6
        assert await handle.getTotal() == 6
        assert await handle.action("getTotal") == 6
        # Concurrent calls all land.
        results = await asyncio.gather(*(handle.add_later(1) for _ in range(20)))
        assert sorted(results) == list(range(7, 27))
        # Another key is another actor.
        assert await client.calc.get_or_create(["y"]).getTotal() == 0
        # A handle made by id and by create.
        actor_id = await handle.resolve()
        assert await client.get_for_id("calc", actor_id).getTotal() == 26
        created = await client.calc.create(["z"])
        assert await created.add(4) == 4


async def test_action_not_found() -> None:
    async with setup_runtime(setup(use=[make_calc()])) as client:
        error = await raises("action_not_found", client.calc.get_or_create().nothing(1))
        assert error.metadata == {"name": "nothing"}
        assert "nothing" in error.message
        assert http_status(error.group, error.code) == 404


async def test_user_errors_pass_through() -> None:
    async with setup_runtime(setup(use=[make_calc()])) as client:
        handle = client.calc.get_or_create()
        error = await raises("bad_thing", handle.fail_user(), group="user")
        assert error.message == "nope"
        assert error.metadata == {"why": [1, "two"]}
        assert isinstance(error, UserError)
        error = await raises("user_error", handle.fail_user_async(), group="user")
        assert error.message == "plain"
        assert error.metadata is None
        assert http_status("user", "bad_thing") == 400


async def test_internal_errors_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RIVET_EXPOSE_ERRORS", raising=False)
    async with setup_runtime(setup(use=[make_calc()])) as client:
        handle = client.calc.get_or_create()
        for call in (handle.fail_internal(), handle.fail_internal_async()):
            error = await raises("internal_error", call, group="core")
            assert error.message == INTERNAL_MESSAGE
            assert "secret" not in str(error)
            assert error.metadata is None
        # The actor is still fine.
        assert await handle.add(1) == 1


async def test_internal_errors_exposed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVET_EXPOSE_ERRORS", "1")
    async with setup_runtime(setup(use=[make_calc()])) as client:
        handle = client.calc.get_or_create()
        error = await raises("internal_error", handle.fail_internal(), group="core")
        assert "ValueError" in error.message
        assert "secret detail" in error.message
        error = await raises("internal_error", handle.fail_internal_async(), group="core")
        assert "secret key" in error.message


async def test_internal_error_is_logged_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async with setup_runtime(setup(use=[make_calc()])) as client:
        with caplog.at_level("ERROR", logger="rivetkit.actor"):
            await raises("internal_error", client.calc.get_or_create(["l"]).fail_internal(), "core")
    records = [r for r in caplog.records if r.exc_info and "fail_internal" in r.getMessage()]
    assert records, caplog.text
    assert "secret detail" in caplog.text
    assert "calc" in records[0].getMessage()  # the actor's name prefixes its log lines


async def test_validation_error() -> None:
    async with setup_runtime(setup(use=[make_calc()])) as client:
        handle = client.calc.get_or_create()
        error = await raises("validation_error", handle.add("not a number"))
        assert error.metadata["field"] == "x"
        error = await raises("validation_error", handle.add_later([1]))
        assert error.metadata["field"] == "x"
        await raises("validation_error", handle.add(1, 2))  # too many arguments
        await raises("validation_error", handle.add())  # missing argument
        assert await handle.add("5") == 5  # converted, as pydantic's lax mode does
        assert http_status("actor", "validation_error") == 400


async def test_kv_limit_errors_in_actions() -> None:
    async with setup_runtime(setup(use=[make_calc()])) as client:
        handle = client.calc.get_or_create()
        error = await raises("key_too_large", handle.kv_big_key(), group="kv")
        assert error.metadata == {"size": MAX_KEY_SIZE + 1, "limit": MAX_KEY_SIZE}
        error = await raises("value_too_large", handle.kv_big_value(), group="kv")
        assert error.metadata == {"size": MAX_VALUE_SIZE + 1, "limit": MAX_VALUE_SIZE}


async def test_get_missing_actor_is_not_found() -> None:
    async with setup_runtime(setup(use=[make_calc()])) as client:
        error = await raises("not_found", client.calc.get(["missing"]).getTotal())
        assert http_status(error.group, error.code) == 404
        await raises("not_found", client.get_for_id("calc", "no-such-id").getTotal())


# -- timeouts ----------------------------------------------------------------------------------


async def test_action_timeout() -> None:
    calc = make_calc(ActorOptions(action_timeout=30.0))
    # Loop time moves only when told (plus the real time the test takes, far below 10 s).
    with LoopClock() as clock:
        async with setup_runtime(setup(use=[calc])) as client:
            handle = client.calc.get_or_create()
            actor_id = await handle.resolve()
            call = asyncio.ensure_future(handle.slow())
            await eventually(lambda: actor_id in SLOW_CALLS)
            await clock.advance(20.0)
            assert not call.done()  # within the action timeout
            await clock.advance(20.0)  # past it (the action would take an hour)
            error = await raises("action_timed_out", call)
            assert error.metadata == {"timeout_ms": 30000}
            assert http_status(error.group, error.code) == 408
            assert await handle.add(1) == 1  # still serving


async def test_user_timeout_error_is_not_action_timed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVET_EXPOSE_ERRORS", "1")
    calc = make_calc(ActorOptions(action_timeout=2.0))
    async with setup_runtime(setup(use=[calc])) as client:
        handle = client.calc.get_or_create()
        error = await raises("internal_error", handle.own_timeout(), group="core")
        assert "TimeoutError" in error.message
        error = await raises("internal_error", handle.raise_timeout(), group="core")
        assert "mine" in error.message


@pytest.mark.parametrize("hook", ["create_vars", "on_migrate"])
async def test_start_callback_timeouts(hook: str) -> None:
    a = actor(
        "slowstart",
        state={},
        options=ActorOptions(create_vars_timeout=0.05, on_migrate_timeout=0.05),
    )

    async def slow(c: ActorContext, *args: Any) -> None:
        await asyncio.sleep(5)

    a.set_hook(hook, slow)

    @a.action
    def ok(c: ActorContext) -> bool:
        return True

    async with setup_runtime(setup(use=[a])) as client:
        error = await raises("callback_timed_out", client.slowstart.get_or_create().ok())
        # Not a public error: group and code are kept, the message is hidden.
        assert error.message == INTERNAL_MESSAGE


async def test_start_callback_timeout_details() -> None:
    a = actor("slowvars", state={}, options=ActorOptions(create_vars_timeout=0.05))

    @a.create_vars
    async def create_vars(c: ActorContext) -> None:
        await asyncio.sleep(5)

    async with setup_runtime(setup(use=[a])) as client:
        actor_id = await client.slowvars.get_or_create().resolve()
        error = await raises("callback_timed_out", client.runtime.instance(actor_id))
        assert error.metadata["callback"] == "create_vars"


async def test_connect_callback_timeout() -> None:
    a = actor(
        "slowconn",
        state={},
        options=ActorOptions(on_before_connect_timeout=0.03, create_conn_state_timeout=0.02),
    )

    @a.on_before_connect
    async def before(c: ActorContext, params: Any) -> None:
        await asyncio.sleep(5)

    async with setup_runtime(setup(use=[a])) as client:
        instance = await get_instance(client, "slowconn")
        error = await raises("callback_timed_out", instance.connect({"p": 1}))
        assert error.metadata["callback"] == "on_before_connect"
        assert instance.conns == {}


# -- serial ------------------------------------------------------------------------------------


def make_overlap(serial: bool) -> Any:
    a = actor(
        "overlap",
        state={"log": []},
        vars={"active": 0, "max": 0},
        options=ActorOptions(serial=serial),
    )

    @a.action
    async def work(c: ActorContext, i: int) -> int:
        c.vars["active"] += 1
        c.vars["max"] = max(c.vars["max"], c.vars["active"])
        c.state["log"].append(["start", i])
        await asyncio.sleep(0.005)
        await asyncio.sleep(0)
        c.state["log"].append(["end", i])
        c.vars["active"] -= 1
        return i

    @a.action
    def peak(c: ActorContext) -> int:
        return c.vars["max"]

    @a.action
    def log(c: ActorContext) -> list[Any]:
        return c.state["log"]

    return a


async def test_serial_never_interleaves() -> None:
    async with setup_runtime(setup(use=[make_overlap(True)])) as client:
        handle = client.overlap.get_or_create()
        assert await asyncio.gather(*(handle.work(i) for i in range(10))) == list(range(10))
        assert await handle.peak() == 1
        log = await handle.log()
        for n in range(0, len(log), 2):  # start i, end i, start j, end j, ...
            assert log[n][0] == "start" and log[n + 1] == ["end", log[n][1]]


async def test_without_serial_actions_interleave() -> None:
    async with setup_runtime(setup(use=[make_overlap(False)])) as client:
        handle = client.overlap.get_or_create()
        assert await asyncio.gather(*(handle.work(i) for i in range(10))) == list(range(10))
        assert await handle.peak() > 1


# -- KV ----------------------------------------------------------------------------------------


def make_kv() -> Any:
    a = actor("store", state={})

    @a.action
    async def run_ops(c: ActorContext) -> dict[str, Any]:
        kv = c.kv
        out: dict[str, Any] = {}
        assert await kv.get(b"missing") is None
        await kv.put(b"a", b"1")
        await kv.put("b", "2")  # str keys and values are UTF-8
        out["get"] = [await kv.get(b"a"), await kv.get("b")]
        await kv.batch_put({b"p/1": b"x", b"p/2": b"y", b"p/3": b"z", b"q": b"w"})
        await kv.batch_put([(b"p/4", b"v")])
        out["batch_get"] = await kv.batch_get([b"p/1", b"nope", b"q"])
        out["prefix"] = await kv.list_prefix(b"p/")
        out["prefix_rev"] = await kv.list_prefix(b"p/", reverse=True)
        out["prefix_lim"] = await kv.list_prefix(b"p/", limit=2)
        out["prefix_rev_lim"] = await kv.list_prefix(b"p/", reverse=True, limit=2)
        out["range"] = await kv.list_range(b"p/2", b"p/4")
        out["range_rev_lim"] = await kv.list_range(b"a", b"z", reverse=True, limit=3)
        out["all"] = [k for k, _ in await kv.list_prefix()]
        await kv.delete(b"a")
        await kv.delete(b"never-there")
        await kv.batch_delete([b"b", b"q"])
        await kv.delete_range(b"p/2", b"p/4")
        out["after"] = await kv.list_prefix()
        return out

    @a.action
    async def put(c: ActorContext, key: bytes, value: bytes) -> None:
        await c.kv.put(key, value)

    @a.action
    async def get(c: ActorContext, key: bytes) -> bytes | None:
        return await c.kv.get(key)

    @a.action
    async def batch_put(c: ActorContext, key: bytes, value: bytes) -> None:
        await c.kv.batch_put([(b"ok", b"ok"), (key, value)])

    @a.action
    async def batch_get(c: ActorContext, key: bytes) -> Any:
        return await c.kv.batch_get([key])

    @a.action
    async def list_prefix(c: ActorContext, key: bytes) -> Any:
        return await c.kv.list_prefix(key)

    return a


async def test_kv_api() -> None:
    async with setup_runtime(setup(use=[make_kv()])) as client:
        out = await client.store.get_or_create().run_ops()
    assert out["get"] == [b"1", b"2"]
    assert out["batch_get"] == [b"x", None, b"w"]
    p = [(b"p/1", b"x"), (b"p/2", b"y"), (b"p/3", b"z"), (b"p/4", b"v")]
    assert out["prefix"] == p
    assert out["prefix_rev"] == p[::-1]
    assert out["prefix_lim"] == p[:2]
    assert out["prefix_rev_lim"] == p[::-1][:2]
    assert out["range"] == p[1:3]
    assert out["range_rev_lim"] == [(b"q", b"w"), (b"p/4", b"v"), (b"p/3", b"z")]
    assert out["all"] == [b"a", b"b", b"p/1", b"p/2", b"p/3", b"p/4", b"q"]
    assert out["after"] == [(b"p/1", b"x"), (b"p/4", b"v")]


async def test_kv_keys_live_under_prefix_4() -> None:
    async with setup_runtime(setup(use=[make_kv()])) as client:
        handle = client.store.get_or_create()
        await handle.put(b"\x00user", b"v1")
        await handle.put(b"\xffz", b"v2")
        actor_id = await handle.resolve()
        raw = await client.runtime.driver.kv_list(actor_id, b"", None)
    user = [(k, v) for k, v in raw if k.startswith(keys.USER_KV_PREFIX)]
    assert user == [(b"\x04\x00user", b"v1"), (b"\x04\xffz", b"v2")]
    # Everything else is the runtime's own (the snapshot at [1], the inspector token at [3]).
    assert {k for k, _ in raw} - {k for k, _ in user} == {keys.PERSIST, keys.INSPECTOR_TOKEN}


async def test_kv_limits_exactly() -> None:
    async with setup_runtime(setup(use=[make_kv()])) as client:
        handle = client.store.get_or_create()
        key_ok, key_bad = b"k" * MAX_KEY_SIZE, b"k" * (MAX_KEY_SIZE + 1)
        value_ok, value_bad = b"v" * MAX_VALUE_SIZE, b"v" * (MAX_VALUE_SIZE + 1)
        assert (MAX_KEY_SIZE, MAX_VALUE_SIZE) == (2048, 131072)
        await handle.put(key_ok, value_ok)
        assert await handle.get(key_ok) == value_ok
        await raises("key_too_large", handle.put(key_bad, b"v"), group="kv")
        await raises("value_too_large", handle.put(b"k", value_bad), group="kv")
        await raises("key_too_large", handle.get(key_bad), group="kv")
        await raises("key_too_large", handle.batch_get(key_bad), group="kv")
        await raises("key_too_large", handle.list_prefix(key_bad), group="kv")
        await raises("key_too_large", handle.batch_put(key_bad, b"v"), group="kv")
        await raises("value_too_large", handle.batch_put(b"k2", value_bad), group="kv")
        # A failing batch writes nothing.
        assert await handle.get(b"ok") is None
        assert await handle.get(b"k2") is None
        # Multi-byte UTF-8: the limit counts bytes, not characters.
        await raises("key_too_large", handle.put("é" * 1025, "v"), group="kv")


# -- connections -------------------------------------------------------------------------------


class FakeTransport:
    """Records the events sent to one connection and whether it was closed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []
        self.closed: list[str | None] = []

    def send_event(self, name: str, args: list[Any]) -> None:
        self.events.append((name, args))

    def close(self, reason: str | None) -> None:
        self.closed.append(reason)


async def get_instance(client: RuntimeClient, name: str, key: Any = None) -> ActorInstance:
    actor_id = await client.get_or_create(name, key).resolve()
    return await client.runtime.instance(actor_id)


def make_room(events: list[Any], sleep_timeout: float = 30.0) -> Any:
    room = actor("room", state={"messages": 0}, options=ActorOptions(sleep_timeout=sleep_timeout))

    @room.on_before_connect
    async def before(c: ActorContext, params: Any) -> None:
        events.append(("on_before_connect", params, len(c.conns)))
        if not isinstance(params, dict) or "user" not in params:
            raise UserError("a user is required", code="missing_user")

    @room.create_conn_state
    def conn_state(c: ActorContext, params: Any) -> dict[str, Any]:
        events.append(("create_conn_state", params, len(c.conns)))
        return {"user": params["user"]}

    @room.on_connect
    def connected(c: ActorContext, conn: Connection) -> None:
        events.append(("on_connect", conn.state, conn.id in c.conns, c.conn is conn))

    @room.on_disconnect
    async def disconnected(c: ActorContext, conn: Connection) -> None:
        events.append(("on_disconnect", conn.state, conn.id in c.conns))

    @room.action
    def post(c: ActorContext, text: str) -> int:
        c.state["messages"] += 1
        user = c.conn.state["user"] if c.conn is not None else "anonymous"
        c.broadcast("message", user, text)
        return c.state["messages"]

    @room.action
    def whisper(c: ActorContext, text: str) -> None:
        for conn in c.conns.values():
            conn.send("whisper", text)

    return room


async def test_connection_lifecycle() -> None:
    events: list[Any] = []
    async with setup_runtime(setup(use=[make_room(events)])) as client:
        instance = await get_instance(client, "room")
        transport = FakeTransport()
        conn = await instance.connect({"user": "ann"}, transport=transport)
        assert [e[0] for e in events] == ["on_before_connect", "create_conn_state", "on_connect"]
        # Not visible during preflight; visible (and c.conn set) in on_connect.
        assert events[0] == ("on_before_connect", {"user": "ann"}, 0)
        assert events[1] == ("create_conn_state", {"user": "ann"}, 0)
        assert events[2] == ("on_connect", {"user": "ann"}, True, True)
        assert conn.state == {"user": "ann"}
        assert conn.params == {"user": "ann"}
        assert list(instance.conns) == [conn.id]
        assert instance.context.conns[conn.id] is conn

        events.clear()
        await conn.disconnect("bye")
        assert events == [("on_disconnect", {"user": "ann"}, False)]
        assert instance.conns == {}
        assert transport.closed == ["bye"]
        await conn.disconnect()  # idempotent
        assert len(events) == 1


async def test_refused_connection_never_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[Any] = []
    async with setup_runtime(setup(use=[make_room(events)])) as client:
        instance = await get_instance(client, "room")
        error = await raises("missing_user", instance.connect({}), group="user")
        assert error.message == "a user is required"
        assert instance.conns == {}
        assert [e[0] for e in events] == ["on_before_connect"]
        assert instance._inflight == 0


async def test_broadcast_reaches_only_subscribers() -> None:
    events: list[Any] = []
    async with setup_runtime(setup(use=[make_room(events)])) as client:
        instance = await get_instance(client, "room")
        ann_t, bob_t, eve_t = FakeTransport(), FakeTransport(), FakeTransport()
        ann = await instance.connect({"user": "ann"}, transport=ann_t)
        bob = await instance.connect({"user": "bob"}, transport=bob_t)
        await instance.connect({"user": "eve"}, transport=eve_t)
        ann.subscribe("message")
        bob.subscribe("message")
        bob.subscribe("message")  # idempotent
        assert await instance.invoke("post", ["hi"], ann) == 1
        bob.unsubscribe("message")
        assert await instance.invoke("post", ["again"], bob) == 2
        # Through the client (no connection) too.
        assert await client.room.get_or_create().post("hello") == 3
        assert ann_t.events == [
            ("message", ["ann", "hi"]),
            ("message", ["bob", "again"]),
            ("message", ["anonymous", "hello"]),
        ]
        assert bob_t.events == [("message", ["ann", "hi"])]
        assert eve_t.events == []
        # conn.send targets one connection, subscribed or not.
        await instance.invoke("whisper", ["psst"])
        assert ("whisper", ["psst"]) in eve_t.events


async def test_open_connection_keeps_actor_awake() -> None:
    events: list[Any] = []
    async with setup_runtime(setup(use=[make_room(events, sleep_timeout=0.05)])) as client:
        instance = await get_instance(client, "room")
        transport = FakeTransport()
        conn = await instance.connect({"user": "ann"}, transport=transport)
        await asyncio.sleep(0.25)  # five sleep timeouts
        assert instance.phase == Phase.STARTED
        assert client.runtime.instances.get(instance.actor_id) is instance
        await conn.disconnect()
        await eventually(lambda: instance.phase == Phase.TERMINATED, timeout=3)
        assert transport.closed == [None]


async def test_sleep_disconnects_connections() -> None:
    events: list[Any] = []
    async with setup_runtime(setup(use=[make_room(events)])) as client:
        instance = await get_instance(client, "room")
        transport = FakeTransport()
        await instance.connect({"user": "ann"}, transport=transport)
        events.clear()
        instance.request_sleep()
        await eventually(lambda: instance.phase == Phase.TERMINATED, timeout=3)
        assert events == [("on_disconnect", {"user": "ann"}, False)]
        assert transport.closed == ["actor stopping"]


# -- the counter of DESIGN.md §4 -------------------------------------------------------------


def load_counter_example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "example_counter", ROOT / "examples" / "counter.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_counter_example() -> None:
    module = load_counter_example()
    async with setup_runtime(module.registry) as client:
        counter = client.counter.get_or_create(["my-counter"])
        assert await counter.increment(5) == 5
        assert await counter.increment() == 6
        assert await counter.getCount() == 6
        assert await counter.action("getCount") == 6
        error = await raises("negative_amount", counter.increment(-1), group="user")
        assert error.message == "amount must be >= 0"
        await raises("validation_error", counter.increment("x"))
        assert await client.counter.get_or_create(["other"]).getCount() == 0
        # Its broadcast reaches a subscribed connection.
        instance = await client.runtime.instance(await counter.resolve())
        transport = FakeTransport()
        conn = await instance.connect(None, transport=transport)
        conn.subscribe("newCount")
        assert await counter.increment(2) == 8
        assert transport.events == [("newCount", [8])]


async def test_counter_example_survives_restart(tmp_path: Path) -> None:
    module = load_counter_example()
    async with setup_runtime(module.registry, data_dir=tmp_path) as client:
        assert await client.counter.get_or_create("c").increment(7) == 7
    async with setup_runtime(module.registry, data_dir=tmp_path) as client:
        assert await client.counter.get_or_create("c").getCount() == 7


async def test_inspector_token_made_at_first_start_and_kept() -> None:
    """Like RivetKit's CoreInit: the first start stores a 43-character base64url token at
    [3] (for the dashboard); it is written only when missing."""
    async with setup_runtime(setup(use=[make_kv()])) as client:
        handle = client.store.get_or_create()
        await handle.put(b"k", b"v")  # starts it
        actor_id = await handle.resolve()
        (token,) = await client.runtime.driver.kv_get(actor_id, [keys.INSPECTOR_TOKEN])
        assert token is not None and len(token) == 43
        assert set(token.decode()) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        await handle.put(b"k", b"w")
        assert await client.runtime.driver.kv_get(actor_id, [keys.INSPECTOR_TOKEN]) == [token]

"""Connections in-process: hook order and timeouts, params and state, send/disconnect,
subscriptions and the ``can_subscribe`` gate, and hibernatable connections across a sleep
(the runtime side; the server side is in ``test_hibernation.py``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from conftest import LoopClock, eventually
from rivetkit import ActorOptions, EventOptions, RivetError, UserError, actor, setup
from rivetkit.protocol import actor_persist
from rivetkit.protocol.values import cbor_loads
from rivetkit.runtime import keys
from rivetkit.runtime.connection import Connection, Hibernation
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import ActorInstance, Phase
from rivetkit.testing import TestClient, setup_test

pytestmark = pytest.mark.asyncio


class FakeTransport:
    """Records the events sent to one connection and whether it was closed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []
        self.closed: list[str | None] = []

    def send_event(self, name: str, args: list[Any]) -> None:
        self.events.append((name, args))

    def close(self, reason: str | None) -> None:
        self.closed.append(reason)


async def instance_of(client: TestClient, name: str, key: Any = None) -> ActorInstance:
    actor_id = await client.get_or_create(name, key).resolve()
    return await client.runtime.instance(actor_id)


async def raises(group: str, code: str, awaitable: Any) -> RivetError:
    with pytest.raises(RivetError) as info:
        await awaitable
    assert (info.value.group, info.value.code) == (group, code), info.value
    return info.value


def make_lobby(log: list[Any], **options: Any) -> Any:
    lobby = actor("lobby", state={"posts": 0}, options=ActorOptions(**options))

    @lobby.on_before_connect
    async def before(c: ActorContext, params: Any) -> None:
        log.append(("on_before_connect", params, sorted(c.conns)))
        await asyncio.sleep((params or {}).get("slow_before", 0))
        if (params or {}).get("deny"):
            raise UserError("go away", code="denied")

    @lobby.create_conn_state
    async def conn_state(c: ActorContext, params: Any) -> dict[str, Any]:
        log.append(("create_conn_state", params, sorted(c.conns)))
        await asyncio.sleep((params or {}).get("slow_state", 0))
        return {"user": (params or {}).get("user", "anon"), "n": 0}

    @lobby.on_connect
    async def connected(c: ActorContext, conn: Connection) -> None:
        log.append(("on_connect", conn.id in c.conns, c.conn is conn))
        await asyncio.sleep((conn.params or {}).get("slow_connect", 0))

    @lobby.on_disconnect
    def disconnected(c: ActorContext, conn: Connection) -> None:
        log.append(("on_disconnect", conn.state["user"], conn.id in c.conns))

    @lobby.action
    def post(c: ActorContext, text: str) -> int:
        c.state["posts"] += 1
        c.conn.state["n"] += 1
        c.broadcast("post", c.conn.state["user"], text)
        return c.conn.state["n"]

    @lobby.action
    def whisper(c: ActorContext, conn_id: str, text: str) -> None:
        c.conns[conn_id].send("whisper", text)

    @lobby.action
    async def kick(c: ActorContext, conn_id: str) -> None:
        await c.conns[conn_id].disconnect("kicked")

    @lobby.action
    def who(c: ActorContext) -> list[str]:
        return sorted(conn.state["user"] for conn in c.conns.values())

    return lobby


# -- lifecycle ---------------------------------------------------------------------------------


async def test_hook_order_and_visibility() -> None:
    log: list[Any] = []
    async with setup_test(setup(use=[make_lobby(log)])) as client:
        instance = await instance_of(client, "lobby")
        transport = FakeTransport()
        conn = await instance.connect({"user": "ann"}, transport=transport)
        assert log == [
            ("on_before_connect", {"user": "ann"}, []),  # not visible during preflight
            ("create_conn_state", {"user": "ann"}, []),
            ("on_connect", True, True),  # visible, and c.conn is the connection
        ]
        assert conn.params == {"user": "ann"} and conn.state == {"user": "ann", "n": 0}
        assert instance.context.conns == {conn.id: conn}
        assert await instance.invoke("who", []) == ["ann"]
        log.clear()
        await conn.disconnect("bye")
        assert log == [("on_disconnect", "ann", False)]
        assert transport.closed == ["bye"] and conn.disconnected
        await conn.disconnect("again")  # once only
        assert len(log) == 1 and transport.closed == ["bye"]


async def test_refused_connection() -> None:
    log: list[Any] = []
    async with setup_test(setup(use=[make_lobby(log)])) as client:
        instance = await instance_of(client, "lobby")
        transport = FakeTransport()
        await raises("user", "denied", instance.connect({"deny": True}, transport=transport))
        assert instance.conns == {}
        assert [entry[0] for entry in log] == ["on_before_connect"]  # nothing more, no disconnect
        assert transport.closed == [] and instance._inflight == 0


async def test_preflight_is_bounded_by_the_sum_of_both_timeouts() -> None:
    log: list[Any] = []
    lobby = make_lobby(log, on_before_connect_timeout=10.0, create_conn_state_timeout=10.0)

    async def reached(hook: str) -> None:
        await eventually(lambda: bool(log) and log[-1][0] == hook)

    # Loop time moves only when told (plus the real time the test takes, far below 5 s).
    with LoopClock() as clock:
        async with setup_test(setup(use=[lobby])) as client:
            instance = await instance_of(client, "lobby")
            # Each hook over its own timeout, together within the sum: accepted.
            call = asyncio.ensure_future(instance.connect({"slow_before": 12, "slow_state": 3}))
            await reached("on_before_connect")
            await clock.advance(12.0)
            await reached("create_conn_state")
            await clock.advance(3.0)
            conn = await call
            assert conn.id in instance.conns
            # Over the sum: refused once the sum (20 s) has passed, not before.
            call = asyncio.ensure_future(instance.connect({"slow_before": 10, "slow_state": 30}))
            await reached("on_before_connect")
            await clock.advance(10.0)
            await reached("create_conn_state")
            await clock.advance(5.0)  # 15 s in
            assert not call.done()
            await clock.advance(10.0)  # 25 s in
            error = await raises("actor", "callback_timed_out", call)
            assert "within 20 s" in error.message
            assert len(instance.conns) == 1


async def test_on_connect_timeout() -> None:
    log: list[Any] = []
    async with setup_test(setup(use=[make_lobby(log, on_connect_timeout=0.03)])) as client:
        instance = await instance_of(client, "lobby")
        error = await raises("actor", "callback_timed_out", instance.connect({"slow_connect": 1}))
        assert error.metadata["callback"] == "on_connect"
        assert instance.conns == {}


async def test_sync_preflight_runs_inline_without_a_timer() -> None:
    """Synchronous hooks cannot be interrupted: they are not timed out (documented)."""
    quick = actor(
        "quick",
        options=ActorOptions(on_before_connect_timeout=0.01, create_conn_state_timeout=0.01),
    )

    @quick.on_before_connect
    def before(c: ActorContext, params: Any) -> None:
        time.sleep(0.05)

    @quick.create_conn_state
    def state(c: ActorContext, params: Any) -> int:
        return 7

    async with setup_test(setup(use=[quick])) as client:
        instance = await instance_of(client, "quick")
        conn = await instance.connect(None)
        assert conn.state == 7


async def test_send_disconnect_and_conns() -> None:
    log: list[Any] = []
    async with setup_test(setup(use=[make_lobby(log)])) as client:
        instance = await instance_of(client, "lobby")
        ann_t, bob_t = FakeTransport(), FakeTransport()
        ann = await instance.connect({"user": "ann"}, transport=ann_t)
        bob = await instance.connect({"user": "bob"}, transport=bob_t)
        await instance.invoke("whisper", [bob.id, "psst"], ann)
        assert bob_t.events == [("whisper", ["psst"])] and ann_t.events == []  # not subscribed
        assert await instance.invoke("who", []) == ["ann", "bob"]
        await instance.invoke("kick", [bob.id], ann)
        assert bob_t.closed == ["kicked"] and bob.id not in instance.conns
        assert ("on_disconnect", "bob", False) in log
        assert await instance.invoke("post", ["x"], ann) == 1
        assert await instance.invoke("post", ["y"], ann) == 2  # conn state lives on


# -- subscriptions -----------------------------------------------------------------------------


def make_gated(decisions: list[Any]) -> Any:
    async def async_gate(c: ActorContext) -> Any:
        await asyncio.sleep(0)
        decisions.append(("async", c.conn.params))
        return c.conn.params.get("admin", False)

    gated = actor(
        "gated",
        events={"admin": EventOptions(can_subscribe=async_gate), "open": None},
    )

    @gated.can_subscribe("mods")
    def mods_only(c: ActorContext) -> Any:
        decisions.append(("sync", c.conn.params))
        return c.conn.params.get("mod", "not a bool")

    @gated.action
    def shout(c: ActorContext, event: str, text: str) -> None:
        c.broadcast(event, text)

    return gated


def subscribe(instance: ActorInstance, conn: Connection, event: str, on: bool = True) -> Any:
    pending = instance.subscribe(conn, event, on)
    return pending if pending is not None else asyncio.sleep(0)


async def test_subscriptions_and_can_subscribe() -> None:
    decisions: list[Any] = []
    async with setup_test(setup(use=[make_gated(decisions)])) as client:
        instance = await instance_of(client, "gated")
        boss_t, pleb_t = FakeTransport(), FakeTransport()
        boss = await instance.connect({"admin": True, "mod": True}, transport=boss_t)
        pleb = await instance.connect({"mod": False}, transport=pleb_t)
        # Ungated (declared or not): anyone, synchronously, idempotent.
        assert instance.subscribe(pleb, "open") is None
        assert instance.subscribe(pleb, "open") is None
        assert instance.subscribe(pleb, "anything") is None
        # A sync gate runs synchronously; False -> auth.forbidden; once per subscription.
        assert instance.subscribe(boss, "mods") is None
        assert instance.subscribe(boss, "mods") is None
        with pytest.raises(RivetError) as info:
            instance.subscribe(pleb, "mods")
        assert (info.value.group, info.value.code) == ("auth", "forbidden")
        assert [d for d in decisions if d[0] == "sync"] == [
            ("sync", {"admin": True, "mod": True}),
            ("sync", {"mod": False}),
        ]
        # An async gate returns an awaitable.
        await subscribe(instance, boss, "admin")
        await raises("auth", "forbidden", subscribe(instance, pleb, "admin"))
        # A gate must answer a bool.
        odd = await instance.connect({}, transport=FakeTransport())
        with pytest.raises(RivetError) as info:
            instance.subscribe(odd, "mods")
        assert info.value.code == "invalid_subscription_gate"
        assert boss.subscriptions == {"mods", "admin"}
        assert pleb.subscriptions == {"open", "anything"}
        # Broadcast reaches only subscribers.
        for event in ("open", "mods", "admin", "nobody"):
            await instance.invoke("shout", [event, event])
        assert boss_t.events == [("mods", ["mods"]), ("admin", ["admin"])]
        assert pleb_t.events == [("open", ["open"])]
        # Unsubscribe (idempotent too).
        await subscribe(instance, pleb, "open", False)
        await subscribe(instance, pleb, "open", False)
        await instance.invoke("shout", ["open", "again"])
        assert pleb_t.events == [("open", ["open"])]


async def test_event_options_validation() -> None:
    with pytest.raises(TypeError):
        EventOptions(can_subscribe=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="positional"):
        actor("bad", events={"e": EventOptions(can_subscribe=lambda: True)})
    with pytest.raises(TypeError):
        actor("bad", events={"e": "yes"})  # type: ignore[dict-item]
    defn = actor("ok", events={"e": None})
    with pytest.raises(ValueError):
        defn.add_event("e")

    @defn.can_subscribe("e")  # a declared event without a gate gets one
    def gate(c: Any) -> bool:
        return True

    assert defn.events["e"].can_subscribe is gate
    with pytest.raises(ValueError, match="already has"):
        defn.can_subscribe("e")(gate)


# -- hibernatable connections (runtime side) ---------------------------------------------------


def make_room(log: list[Any], **options: Any) -> Any:
    room = actor(
        "hroom",
        state={"said": []},
        options=ActorOptions(state_save_interval=0.02, **options),
    )

    @room.create_conn_state
    def conn_state(c: ActorContext, params: Any) -> dict[str, Any]:
        return {"user": params["user"], "said": 0}

    @room.on_disconnect
    def gone(c: ActorContext, conn: Connection) -> None:
        log.append(("on_disconnect", conn.id, conn.state))

    @room.on_wake
    def woke(c: ActorContext) -> None:
        log.append(("on_wake", sorted(conn.state["user"] for conn in c.conns.values())))

    @room.action
    def say(c: ActorContext, text: str) -> int:
        c.conn.state["said"] += 1
        c.state["said"].append(text)
        c.broadcast("said", c.conn.state["user"], text)
        return c.conn.state["said"]

    @room.action
    def nap(c: ActorContext) -> None:
        c.sleep()

    return room


def hibernation(n: int) -> Hibernation:
    return Hibernation(
        b"\x01\x02\x03\x04",
        n.to_bytes(4, "big"),
        request_path="/connect",
        request_headers={"x-test": str(n)},
    )


async def stored_conn(instance: ActorInstance, conn_id: str) -> Any:
    (raw,) = await instance.driver.kv_get(instance.actor_id, [keys.conn_key(conn_id)])
    return None if raw is None else actor_persist.CONN.decode(raw)


async def test_hibernatable_connection_survives_sleep() -> None:
    log: list[Any] = []
    async with setup_test(setup(use=[make_room(log)])) as client:
        runtime = client.runtime
        attached: dict[str, FakeTransport] = {}

        def conn_alive(conn: Connection) -> bool:
            transport = attached.setdefault(conn.id, FakeTransport())
            conn.transport = transport  # what the server does: re-attach the socket
            return True

        runtime.conn_alive = conn_alive
        instance = await instance_of(client, "hroom")
        ann_t = FakeTransport()
        ann = await instance.connect({"user": "ann"}, transport=ann_t, hibernation=hibernation(1))
        plain = await instance.connect({"user": "bob"}, transport=FakeTransport())
        # Stored when it opens.
        record = await stored_conn(instance, ann.id)
        assert record is not None and record.id == ann.id
        assert cbor_loads(record.state) == {"user": "ann", "said": 0}
        assert record.request_id == b"\x00\x00\x00\x01" and record.request_headers == {
            "x-test": "1"
        }
        await subscribe(instance, ann, "said")
        assert await instance.invoke("say", ["hi"], ann) == 1

        # Changes are saved again (throttled by state_save_interval).
        async def saved() -> Any:
            return await stored_conn(instance, ann.id)

        deadline = time.monotonic() + 3
        while True:
            record = await saved()
            if cbor_loads(record.state)["said"] == 1 and record.subscriptions:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert [s.event_name for s in record.subscriptions] == ["said"]
        assert await stored_conn(instance, plain.id) is None  # only hibernatable ones
        # Sleep: the plain connection goes, the hibernatable one stays (not disconnected).
        await instance.invoke("nap", [], ann)
        await eventually(lambda: instance.phase == Phase.TERMINATED)
        assert [entry[0] for entry in log].count("on_disconnect") == 1
        assert log[-1][1] == plain.id and ann_t.closed == []
        # Wake: restored before on_wake, state and subscriptions intact, socket re-attached.
        woken = await instance_of(client, "hroom")
        assert woken is not instance
        assert log[-1] == ("on_wake", ["ann"])
        restored = woken.conns[ann.id]
        assert restored is not ann and restored.transport is attached[ann.id]
        assert restored.state == {"user": "ann", "said": 1}
        assert restored.subscriptions == {"said"} and restored.params == {"user": "ann"}
        assert await woken.invoke("say", ["again"], restored) == 2
        assert attached[ann.id].events == [("said", ["ann", "again"])]
        # Closing it deletes its record.
        await restored.disconnect("bye")
        assert await stored_conn(woken, ann.id) is None
        assert log[-1] == ("on_disconnect", ann.id, {"user": "ann", "said": 2})


async def test_dead_hibernated_connections_are_dropped_on_wake() -> None:
    log: list[Any] = []
    async with setup_test(setup(use=[make_room(log)])) as client:
        runtime = client.runtime
        alive = {"yes"}
        runtime.conn_alive = lambda conn: conn.params["user"] in alive
        instance = await instance_of(client, "hroom")
        gone = await instance.connect({"user": "gone"}, hibernation=hibernation(1))
        stay = await instance.connect({"user": "yes"}, hibernation=hibernation(2))
        instance.request_sleep()
        await eventually(lambda: instance.phase == Phase.TERMINATED)
        assert log == [("on_wake", [])]  # the first start
        woken = await instance_of(client, "hroom")
        assert list(woken.conns) == [stay.id]
        # The dead one: on_disconnect right after the start, with its stored state.
        await eventually(lambda: any(entry[0] == "on_disconnect" for entry in log))
        assert ("on_disconnect", gone.id, {"user": "gone", "said": 0}) in log
        assert await stored_conn(woken, gone.id) is None
        assert await stored_conn(woken, stay.id) is not None


async def test_destroy_disconnects_hibernatable_connections() -> None:
    log: list[Any] = []
    async with setup_test(setup(use=[make_room(log)])) as client:
        instance = await instance_of(client, "hroom")
        transport = FakeTransport()
        conn = await instance.connect(
            {"user": "ann"}, transport=transport, hibernation=hibernation(1)
        )
        instance.request_destroy()
        await eventually(lambda: instance.phase == Phase.TERMINATED)
        assert transport.closed == ["actor stopping"]
        assert ("on_disconnect", conn.id, {"user": "ann", "said": 0}) in log

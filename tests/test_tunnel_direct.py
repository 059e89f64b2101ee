"""The tunnel's direct road (rivetkit/drivers/engine/tunnel_direct.py) answers as its general
road does.

A :class:`~rivetkit.drivers.engine.tunnel.Tunnel` over an in-process runtime, its envoy a
fake that keeps the frames sent. The same random requests (actions sync and async, failing,
suspending, unknown; every encoding, odd and oversized bodies, connection params, the call
chain header, header names in any case, query strings, other methods and routes, streamed
bodies, aborts) go to fresh actors three times: with the direct road off (the general one),
with the pure twin and with the compiled twin of ``answer_action``. The frames sent (actor
ids and keys put in neutral form), the actors' state, the metric lines and the call chain
the actions saw must be the same; requests the road must take are checked to be taken.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
from typing import Any

import cbor2
import pytest

from conftest import both_twins
from rivetkit import ActorOptions, UserError, actor, setup
from rivetkit.dispatch.router import Dispatcher
from rivetkit.drivers.engine import tunnel as tunnel_module
from rivetkit.drivers.engine import tunnel_direct
from rivetkit.drivers.engine.actor_calls import ChainDispatcher
from rivetkit.drivers.engine.tunnel import Tunnel
from rivetkit.protocol.envoy_protocol import (
    TO_RIVET,
    HttpStreamAbortReason,
    HttpStreamAbortReasonKind,
    MessageId,
    ProtocolMetadata,
    ToEnvoyRequestAbort,
    ToEnvoyRequestChunk,
    ToEnvoyRequestStart,
    ToEnvoyTunnelMessage,
    ToRivetTunnelMessage,
)
from rivetkit.runtime.call_chain import CALL_CHAIN
from rivetkit.testing import setup_runtime

pytestmark = pytest.mark.asyncio

#: A context variable of the envoy's context: every road's action sees it.
AMBIENT: contextvars.ContextVar[str] = contextvars.ContextVar("ambient", default="none")
LIMITS = ActorOptions(max_incoming_message_size=300, max_outgoing_message_size=300)


def _actions(a: Any) -> None:
    @a.action
    def echo(c: Any, value: Any = None) -> Any:
        return value

    @a.action
    async def add(c: Any, value: Any = None) -> int:
        c.state["log"].append(value)
        return len(c.state["log"])

    @a.action
    def note(c: Any, value: Any = None) -> int:
        c.state["log"].append(value)
        return len(c.state["log"])

    @a.action
    def fail(c: Any, code: Any = "oops") -> None:
        raise UserError("it failed", code=str(code)[:20])

    @a.action
    def crash(c: Any) -> None:
        raise ValueError("internal")

    @a.action
    def params(c: Any) -> Any:
        return c.conn.params

    @a.action(name="getLog")
    def get_log(c: Any) -> Any:
        return c.state["log"]

    @a.action
    def unencodable(c: Any) -> Any:
        return {1, 2}

    @a.action
    async def pause(c: Any, value: Any = None) -> Any:
        await asyncio.sleep(0)
        c.state["log"].append(value)
        return value

    @a.action(name="badState")
    def bad_state(c: Any) -> None:
        c.state["log"].append({1, 2})

    @a.action
    def chain(c: Any) -> Any:
        return [list(link) for link in CALL_CHAIN.get()]

    @a.action(name="chainLater")
    async def chain_later(c: Any) -> Any:
        await asyncio.sleep(0)
        return [list(link) for link in CALL_CHAIN.get()]

    @a.action
    def ambient(c: Any) -> Any:
        return AMBIENT.get()

    @a.action
    async def wait(c: Any) -> None:
        await asyncio.sleep(30)


plain = actor("plain", state={"log": []}, options=LIMITS)
serial = actor(
    "serial",
    state={"log": []},
    options=ActorOptions(max_incoming_message_size=300, max_outgoing_message_size=300, serial=True),
)
hooked = actor("hooked", state={"log": []}, options=LIMITS)
for _a in (plain, serial, hooked):
    _actions(_a)


@hooked.on_connect
def _connected(c: Any, conn: Any) -> None:
    c.state["log"].append("connect")


registry = setup(use=[plain, serial, hooked])
ACTORS = ["plain", "serial", "hooked"]
ACTIONS = ["echo", "add", "note", "fail", "crash", "params", "getLog", "unencodable", "pause",
           "badState", "chain", "chainLater", "ambient", "nope", "a%20b", "%C3%A9", "echo%zz"]  # fmt: skip


class FakeEnvoy:
    """What the tunnel uses of its envoy; keeps what is sent, decoded."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.protocol_metadata = ProtocolMetadata(60_000, 60_000, 2_000)
        self.sent: list[Any] = []

    def send_tunnel_frame(self, frame: bytes) -> None:
        self.sent.append(TO_RIVET.decode(frame))

    def send_tunnel(self, message: ToRivetTunnelMessage) -> None:
        self.sent.append(TO_RIVET.decode(TO_RIVET.encode(message)))


def _case(rng: random.Random) -> dict[str, Any]:
    """One random request."""
    name = rng.choice(ACTIONS)
    encoding = rng.choice(["json", "json", "json", "cbor", None, None, "bare", "xml", "", "JSON"])
    if name in ("echo", "add", "note", "pause", "fail") or rng.random() < 0.2:
        args = rng.choice([[], [1], ["x" * rng.randrange(5)], [{"a": [1, None]}], [True, 2.5]])
    else:
        args = []
    kind = rng.choice(["good"] * 8 + ["junk", "big", "empty"])
    if kind == "junk":
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
    elif kind == "big":
        body = b'{"args":["' + b"x" * 400 + b'"]}'
    elif kind == "empty":
        body = b""
    elif encoding == "cbor":
        body = cbor2.dumps({"args": args})
    elif encoding == "bare":
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    else:
        body = json.dumps({"args": args}).encode()
    headers: dict[str, str] = {"content-type": "application/json", "host": "gw"}
    if encoding is not None:
        headers[rng.choice(["x-rivet-encoding", "X-Rivet-Encoding"])] = encoding
        if rng.random() < 0.2:
            headers["X-RIVET-ENCODING"] = rng.choice(["cbor", "xml"])  # the first one counts
    roll = rng.random()
    if roll < 0.3:
        headers["x-rivet-conn-params"] = json.dumps(rng.choice([{"u": "é"}, [1], "x", None]))
    elif roll < 0.4:
        headers["x-rivet-conn-params"] = rng.choice(["{", "[1", "%", "\u20ac"])
    if rng.random() < 0.3:
        headers[rng.choice(["x-rivetkit-call-chain", "X-RivetKit-Call-Chain"])] = rng.choice(
            ["a%20b act", "x y,z w", "", " , q", "caf\u00e9 \u20ac"]
        )
    method = "POST" if rng.random() < 0.9 else rng.choice(["GET", "PUT"])
    path = f"/action/{name}"
    roll = rng.random()
    if roll < 0.1:
        path += "?x=1&rvt-namespace=default"
    elif roll < 0.15:
        path = rng.choice(["/action/", "/action/a/b", "/metadata", "/queue/q", "/action"])
    stream = rng.random() < 0.1
    return {"actor": rng.choice(ACTORS), "method": method, "path": path, "headers": headers,
            "body": body, "stream": stream}  # fmt: skip


def _neutral(value: Any, ids: dict[str, str]) -> Any:
    text = repr(value)
    for actor_id, label in ids.items():
        text = text.replace(actor_id, label)
    return text


class Roads:
    """The three roads over one runtime: each run on fresh actors of its own."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = client
        self.monkeypatch = monkeypatch
        tunnel_direct._bind()
        pure, compiled = both_twins("_action_fast", "rivetkit.server._action_fast_py")
        self.twins = {
            "general": None,
            "pure": pure.answer_action,
            "compiled": compiled.answer_action,
        }
        self.runs = 0

    async def run(
        self, road: str, cases: list[dict[str, Any]], dispatcher: type[Dispatcher] = ChainDispatcher
    ) -> tuple[list[str], list[bool], Any]:
        """Send ``cases`` one after the other on ``road``: the neutral frames of each answer,
        whether the road took each, and the actors' state and metric lines after."""
        self.runs += 1
        key = f"k{self.runs:06d}"
        runtime = self.client.runtime
        ids: dict[str, str] = {}
        for name in ACTORS:
            handle = self.client.get_or_create(name, key)
            ids[await handle.resolve()] = name.upper()
            await handle.action("getLog")  # running: the road takes its requests
        by_name = {label.lower(): actor_id for actor_id, label in ids.items()}
        ids[key] = "KEY"
        taken: list[bool] = []
        twin = self.twins[road]
        original = tunnel_direct.take

        def counted(*args: Any) -> bool:
            answer = original(*args)
            taken.append(answer)
            return answer

        self.monkeypatch.setattr(
            tunnel_module, "take_direct", counted if twin is not None else lambda *a: False
        )
        self.monkeypatch.setattr(tunnel_direct, "answer_action", twin)
        before = _metric_lines(runtime)
        AMBIENT.set("envoy")
        tunnel = Tunnel(dispatcher(runtime))
        envoy = FakeEnvoy()
        tunnel.attach(envoy)  # type: ignore[arg-type]
        answers: list[str] = []
        for index, case in enumerate(cases):
            request_id = index.to_bytes(4, "little")
            message_id = MessageId(b"gw\x00\x01", request_id, 0)
            body = case["body"]
            first = body[: len(body) // 2] if case["stream"] else body
            start = ToEnvoyRequestStart(
                by_name[case["actor"]], 1, case["method"], case["path"], case["headers"],
                first or None, case["stream"], False,
            )  # fmt: skip
            envoy.sent.clear()
            tunnel.handle(ToEnvoyTunnelMessage(message_id, start))
            if case["stream"]:
                await asyncio.sleep(0)
                chunk = ToEnvoyRequestChunk(body[len(body) // 2 :], True)
                tunnel.handle(ToEnvoyTunnelMessage(MessageId(b"gw\x00\x01", request_id, 1), chunk))
            if case.get("abort"):
                await asyncio.sleep(0)
                reason = HttpStreamAbortReason(HttpStreamAbortReasonKind.CANCELLED, None)
                abort = ToEnvoyRequestAbort(None, None, reason)
                tunnel.handle(ToEnvoyTunnelMessage(message_id, abort))
            for _ in range(200):
                if tunnel._requests.get(message_id.gateway_id + request_id) is None and (
                    envoy.sent or case.get("abort")
                ):
                    break
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)
            answers.append(_neutral(envoy.sent, ids))
            assert not tunnel._requests, case
        assert CALL_CHAIN.get() == ()  # nothing leaked into the test's (the envoy's) context
        states = {
            label: runtime.instances[actor_id].state["log"]
            for actor_id, label in ids.items()
            if actor_id in runtime.instances
        }
        after = _metric_lines(runtime)
        delta = {name: after[name] - before.get(name, 0.0) for name in after}
        metrics = {_neutral(n, ids): v for n, v in delta.items() if v}
        return answers, taken, (_neutral(states, ids), metrics)


_PER_REQUEST = ("rivetkit_actor_action", "rivetkit_actor_connections")


def _metric_lines(runtime: Any) -> dict[str, float]:
    from rivetkit.metrics.exposition import render

    metrics = runtime.metrics
    if metrics is None:
        return {}
    lines: dict[str, float] = {}
    for name in ACTORS:
        for line in render(metrics, name).decode().splitlines():
            if line.startswith(_PER_REQUEST) and "_seconds" not in line:
                key, _, value = line.rpartition(" ")
                lines[key] = float(value)
    return lines


def _must_take(case: dict[str, Any]) -> bool:
    """Whether the direct road must take ``case``."""
    path = case["path"]
    name = path[8:].split("?")[0] if path.startswith("/action/") else ""
    encodings = [v for k, v in case["headers"].items() if k.lower() == "x-rivet-encoding"]
    return (
        case["method"] == "POST"
        and not case["stream"]
        and bool(name)
        and "/" not in name
        and "%" not in name
        and (not encodings or encodings[0] in ("json", "cbor", "bare", ""))
    )


@pytest.mark.parametrize("seed", range(6))
async def test_direct_road_answers_as_the_general_one(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    cases = [_case(rng) for _ in range(40)]
    async with setup_runtime(registry) as client:
        roads = Roads(client, monkeypatch)
        results = {road: await roads.run(road, cases) for road in ("general", "pure", "compiled")}
    general_answers, _, general_after = results["general"]
    for road in ("pure", "compiled"):
        answers, taken, after = results[road]
        for case, want, got in zip(cases, general_answers, answers, strict=True):
            assert got == want, (road, case)
        assert after == general_after, road
        assert taken == [_must_take(case) for case in cases], road
    assert any(results["pure"][1])


async def test_plain_dispatcher_ignores_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tunnel over a plain Dispatcher does not read the chain header: nor does the road."""
    cases = [
        {"actor": name, "method": "POST", "path": f"/action/{action}", "body": b"{}",
         "headers": {"x-rivetkit-call-chain": "a b"}, "stream": False}
        for name in ACTORS for action in ("chain", "chainLater")
    ]  # fmt: skip
    async with setup_runtime(registry) as client:
        roads = Roads(client, monkeypatch)
        general = await roads.run("general", cases, Dispatcher)
        chained = await roads.run("general", cases)
        for road in ("pure", "compiled"):
            assert (await roads.run(road, cases, Dispatcher))[0] == general[0]
            assert (await roads.run(road, cases))[0] == chained[0]
    assert not any('["a","b"]' in answer for answer in general[0]), general[0]
    assert all('"output":[["a","b"]' in answer for answer in chained[0]), chained[0]


async def test_abort_cancels_the_action(monkeypatch: pytest.MonkeyPatch) -> None:
    """An action the gateway aborts is cancelled and not answered, on every road."""
    cases = [
        {"actor": name, "method": "POST", "path": "/action/wait", "body": b"{}",
         "headers": {}, "stream": False, "abort": True}
        for name in ACTORS
    ]  # fmt: skip
    async with setup_runtime(registry) as client:
        roads = Roads(client, monkeypatch)
        for road in ("general", "pure", "compiled"):
            answers, taken, _ = await roads.run(road, cases)
            assert answers == ["[]"] * len(cases), road
            assert taken == ([True] * len(cases) if road != "general" else []), road


async def test_sync_action_is_answered_without_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync action of a plain actor is answered within the message's handling; a
    suspending one (as if it could not suspend) goes on in a task, with the same answer."""
    from rivetkit.runtime.instance import ActorInstance

    async with setup_runtime(registry) as client:
        roads = Roads(client, monkeypatch)
        monkeypatch.setattr(tunnel_direct, "answer_action", roads.twins["pure"])
        handle = client.get_or_create("plain", "inline")
        actor_id = await handle.resolve()
        await handle.action("getLog")
        tunnel = Tunnel(ChainDispatcher(client.runtime))
        envoy = FakeEnvoy()
        tunnel.attach(envoy)  # type: ignore[arg-type]

        def start(index: int, name: str, body: bytes = b'{"args":[7]}') -> ToEnvoyTunnelMessage:
            request = ToEnvoyRequestStart(
                actor_id, 1, "POST", f"/action/{name}", {}, body, False, False
            )
            return ToEnvoyTunnelMessage(MessageId(b"gw\x00\x01", bytes(4 * [index]), 0), request)

        tunnel.handle(start(1, "note"))
        assert len(envoy.sent) == 1 and envoy.sent[0].message_kind.body == b'{"output":1}'
        assert not tunnel._requests
        AMBIENT.set("envoy")  # the action runs in a copy of the envoy's context
        tunnel.handle(start(3, "ambient", b"{}"))
        assert envoy.sent.pop().message_kind.body == b'{"output":"envoy"}'
        monkeypatch.setattr(ActorInstance, "runs_at_once", lambda self, name: True)
        tunnel.handle(start(2, "pause"))
        assert len(envoy.sent) == 1 and len(tunnel._requests) == 1
        for _ in range(100):
            if len(envoy.sent) == 2:
                break
            await asyncio.sleep(0.001)
        assert envoy.sent[1].message_kind.body == b'{"output":7}'
        assert not tunnel._requests
        assert client.runtime.instances[actor_id].state["log"] == [7, 7]

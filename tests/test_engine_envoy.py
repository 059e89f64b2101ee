"""The envoy session (rivetkit.drivers.engine.envoy) against a scripted fake engine.

A tiny WebSocket server on 127.0.0.1 plays the engine's side of envoy protocol v8, so the
session rules are checked deterministically, without the real engine: the connect URL and
subprotocols, metadata first, pongs, refusals on the first connect, command dedup and acks,
event indexes and re-sends across reconnects, KV re-sends and timeouts, malformed frames,
eviction, and the lost threshold.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from conftest import eventually
from rivetkit.drivers.engine.envoy import EngineError, EnvoyClient
from rivetkit.errors import RivetError
from rivetkit.protocol.envoy_protocol import (
    TO_ENVOY,
    TO_RIVET,
    ActorCheckpoint,
    ActorConfig,
    ActorIntentSleep,
    ActorName,
    CommandStartActor,
    CommandWrapper,
    EventActorIntent,
    KvGetRequest,
    KvGetResponse,
    ProtocolMetadata,
    ToEnvoyAckEvents,
    ToEnvoyCommands,
    ToEnvoyInit,
    ToEnvoyKvResponse,
    ToEnvoyPing,
    ToEnvoyTunnelMessage,
    ToRivetAckCommands,
    ToRivetEvents,
    ToRivetKvRequest,
    ToRivetMetadata,
    ToRivetPong,
)

pytestmark = pytest.mark.asyncio

INIT = ToEnvoyInit(ProtocolMetadata(1000, 1_800_000, 20 << 20))

Script = Callable[["FakeEngine", ServerConnection, int], Awaitable[None]]


class FakeEngine:
    """Accepts envoy sockets; ``script(engine, ws, n)`` plays the n-th connection (0-based);
    every frame the envoy sends is decoded into ``received[n]``.

    What fails inside it (a script's assertion, a frame that does not decode) would only be
    logged by the websockets server: it is kept in ``failures`` instead, and :func:`session`
    raises it at the end of the test. A closed socket is not a failure."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.failures: list[BaseException] = []
        self.received: list[list[Any]] = []
        self.paths: list[str] = []
        self.subprotocols: list[list[str]] = []
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        n = len(self.received)
        self.received.append([])
        assert ws.request is not None
        self.paths.append(ws.request.path)
        offered = ws.request.headers.get("sec-websocket-protocol", "")
        self.subprotocols.append([p.strip() for p in offered.split(",") if p.strip()])
        reader = asyncio.ensure_future(self._read(ws, n))
        try:
            await self.script(self, ws, n)
        except ConnectionClosed:
            pass
        except Exception as exc:
            self.failures.append(exc)
        finally:
            reader.cancel()

    async def _read(self, ws: ServerConnection, n: int) -> None:
        try:
            async for frame in ws:
                assert isinstance(frame, bytes)
                self.received[n].append(TO_RIVET.decode(frame))
        except ConnectionClosed:
            pass
        except Exception as exc:
            self.failures.append(exc)

    def check(self) -> None:
        """Raise the first failure inside the fake engine, if any."""
        if self.failures:
            raise AssertionError(f"the fake engine failed: {self.failures!r}") from (
                self.failures[0]
            )

    async def wait_for(
        self, n: int, predicate: Callable[[Any], bool], timeout: float = 20.0
    ) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if n < len(self.received):
                for message in self.received[n]:
                    if predicate(message):
                        return message
            assert asyncio.get_running_loop().time() < deadline, "message not received"
            await asyncio.sleep(0.005)


async def send(ws: ServerConnection, message: Any) -> None:
    await ws.send(TO_ENVOY.encode(message))


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


class Handler:
    def __init__(self) -> None:
        self.commands: list[CommandWrapper] = []
        self.tunnel: list[ToEnvoyTunnelMessage] = []
        self.connections: list[bool] = []
        self.lost = 0
        self.evicted: list[str] = []

    def on_commands(self, commands: list[CommandWrapper]) -> None:
        self.commands.extend(commands)

    def on_tunnel_message(self, message: ToEnvoyTunnelMessage) -> None:
        self.tunnel.append(message)

    def on_connection(self, connected: bool) -> None:
        self.connections.append(connected)

    def on_lost(self) -> None:
        self.lost += 1

    def on_evicted(self, reason: str) -> None:
        self.evicted.append(reason)


@contextlib.asynccontextmanager
async def session(
    script: Script, *, token: str | None = None, kv_timeout: float = 5.0
) -> AsyncIterator[tuple[FakeEngine, EnvoyClient, Handler]]:
    engine = FakeEngine(script)
    rivet = [Subprotocol("rivet")]
    async with serve(engine.handler, "127.0.0.1", 0, subprotocols=rivet) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        handler = Handler()
        client = EnvoyClient(
            f"http://127.0.0.1:{port}",
            namespace="ns",
            pool="pool-a",
            envoy_key="envoy-key-1",
            version=7,
            token=token,
            metadata=ToRivetMetadata({"counter": ActorName("{}")}, '{"lang":"python"}'),
            handler=handler,
            kv_timeout=kv_timeout,
        )
        try:
            yield engine, client, handler
        finally:
            await client.close()
        engine.check()


def start_command(actor_id: str, generation: int, index: int) -> CommandWrapper:
    return CommandWrapper(
        ActorCheckpoint(actor_id, generation, index),
        CommandStartActor(ActorConfig("counter", "k", 1, None), [], None),
    )


async def test_connect_metadata_first_and_pong() -> None:
    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        await send(ws, INIT)
        await send(ws, ToEnvoyPing(1234))
        await hold(ws)

    async with session(script, token="tok") as (engine, client, handler):
        await client.start(5)
        pong = await engine.wait_for(0, lambda m: isinstance(m, ToRivetPong))
        assert pong == ToRivetPong(1234)
        assert isinstance(engine.received[0][0], ToRivetMetadata)
        assert engine.received[0][0].prepopulate_actor_names == {"counter": ActorName("{}")}
        query = parse_qs(urlsplit(engine.paths[0]).query)
        assert urlsplit(engine.paths[0]).path == "/envoys/connect"
        assert query == {
            "protocol_version": ["8"],
            "namespace": ["ns"],
            "envoy_key": ["envoy-key-1"],
            "version": ["7"],
            "pool_name": ["pool-a"],
        }
        assert engine.subprotocols[0] == ["rivet", "rivet_token.tok"]
        assert handler.connections == [True] and client.ready


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("ws.no_runner_config#ray1", "pool is not registered"),
        ("api.forbidden#ray2", "refused the token"),
        ("namespace.not_found#ray3", "namespace does not exist"),
    ],
)
async def test_refusal_on_first_connect_is_an_error(reason: str, text: str) -> None:
    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        await ws.close(1011, reason)

    async with session(script) as (engine, client, _):
        with pytest.raises(EngineError) as info:
            await client.start(5)
        assert text in info.value.message
        assert reason in info.value.message
        assert len(engine.received) == 1  # no retry loop


async def test_unreachable_engine() -> None:
    client = EnvoyClient(
        "http://127.0.0.1:9",
        namespace="ns",
        pool="p",
        envoy_key="key",
        version=1,
        token=None,
        metadata=ToRivetMetadata(None, None),
        handler=Handler(),
    )
    with pytest.raises(EngineError) as info:
        await client.start(5)
    assert info.value.code == "unreachable"


async def test_commands_deduplicated_and_acknowledged_across_reconnects() -> None:
    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        await send(ws, INIT)
        if n == 0:
            await send(ws, ToEnvoyCommands([start_command("a1", 1, 1)]))
            await engine.wait_for(0, lambda m: isinstance(m, ToRivetAckCommands))
            await ws.close(1001, "restart")
        else:
            # The engine replays what it did not see acknowledged, plus a new command.
            await send(ws, ToEnvoyCommands([start_command("a1", 1, 1), start_command("a1", 2, 1)]))
            await hold(ws)

    async with session(script) as (engine, client, handler):
        await client.start(5)
        await engine.wait_for(1, lambda m: isinstance(m, ToRivetAckCommands))
        assert [(c.checkpoint.generation, c.checkpoint.index) for c in handler.commands] == [
            (1, 1),
            (2, 1),
        ]
        ack = await engine.wait_for(0, lambda m: isinstance(m, ToRivetAckCommands))
        assert ack.last_command_checkpoints == [ActorCheckpoint("a1", 1, 1)]
        assert handler.connections == [True, False, True]


async def test_events_keep_indexes_and_are_resent_until_acknowledged() -> None:
    proceed = asyncio.Event()

    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        await send(ws, INIT)
        if n == 0:
            await proceed.wait()
            await ws.close(1001, "restart")
        else:
            await engine.wait_for(1, lambda m: isinstance(m, ToRivetEvents))
            await send(ws, ToEnvoyAckEvents([ActorCheckpoint("a1", 3, 0)]))
            await hold(ws)

    async with session(script) as (engine, client, _):
        await client.start(5)
        intent = EventActorIntent(ActorIntentSleep())
        first = client.send_event("a1", 3, intent)
        second = client.send_event("a1", 3, intent)
        assert (first.checkpoint.index, second.checkpoint.index) == (0, 1)
        await engine.wait_for(0, lambda m: isinstance(m, ToRivetEvents) and m.events == [second])
        proceed.set()
        # After the reconnect (and Init) both unacknowledged events are sent again, in order.
        resent = await engine.wait_for(1, lambda m: isinstance(m, ToRivetEvents))
        assert resent.events == [first, second]
        # The ack covered index 0 only: one event stays pending (zero would never match).
        await eventually(lambda: client.pending_events() == 1)
        third = client.send_event("a1", 3, intent)
        assert third.checkpoint.index == 2  # never reset by a reconnect


async def test_kv_request_resent_after_a_drop_and_timeouts() -> None:
    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        await send(ws, INIT)
        request = await engine.wait_for(n, lambda m: isinstance(m, ToRivetKvRequest))
        if n == 0:
            await ws.close(1001, "restart")  # dropped before the answer
            return
        if request.data == KvGetRequest([b"slow"]):
            await hold(ws)
            return
        await send(ws, ToEnvoyKvResponse(request.request_id, KvGetResponse([b"k"], [b"v"], [])))
        await hold(ws)

    async with session(script, kv_timeout=1.0) as (engine, client, _):
        await client.start(5)
        response = await client.kv("a1", KvGetRequest([b"k"]))
        assert response == KvGetResponse([b"k"], [b"v"], [])
        first = engine.received[0][-1]
        again = await engine.wait_for(1, lambda m: isinstance(m, ToRivetKvRequest))
        assert again == first  # the same request id and data, on the new socket
        with pytest.raises(RivetError) as info:
            await client.kv("a1", KvGetRequest([b"slow"]))
        assert (info.value.group, info.value.code) == ("kv", "timeout")


async def test_malformed_frame_drops_the_connection_not_the_process() -> None:
    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        await send(ws, INIT)
        if n == 0:
            await ws.send(b"\xff\xfe garbage")
        await hold(ws)

    async with session(script) as (engine, client, handler):
        await client.start(5)
        deadline = asyncio.get_running_loop().time() + 5
        while len(engine.received) < 2 or not client.ready:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert client.stats["bad_frames"] == 1
        assert handler.connections == [True, False, True]


async def test_eviction_stops_reconnecting() -> None:
    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        await send(ws, INIT)
        await ws.close(1011, "ws.eviction#ray")

    async with session(script) as (engine, client, handler):
        await client.start(5)
        deadline = asyncio.get_running_loop().time() + 5
        while not handler.evicted:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.6)
        assert len(engine.received) == 1 and client.closed
        with pytest.raises(EngineError):
            await client.kv("a1", KvGetRequest([b"k"]))


async def test_lost_threshold_while_disconnected() -> None:
    accept = asyncio.Event()

    async def script(engine: FakeEngine, ws: ServerConnection, n: int) -> None:
        if n == 0:
            await send(ws, INIT)  # lost threshold: 1000 ms
            await ws.close(1001, "going away")
            return
        if not accept.is_set():
            await ws.close(1011, "core.internal_error#ray")
            return
        await send(ws, INIT)
        await hold(ws)

    async with session(script) as (_, client, handler):
        await client.start(5)
        deadline = asyncio.get_running_loop().time() + 6
        while handler.lost == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        accept.set()
        while not client.ready:
            assert asyncio.get_running_loop().time() < deadline + 12
            await asyncio.sleep(0.02)
        assert handler.lost == 1

"""The inspector in engine mode: the same routes through the engine's gateway and our envoy
(dispatch is shared, so this checks the tunnel path: token at KV [3] in the engine's KV,
HTTP routes, and the WebSocket Init and a push)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from engine_fixtures import envoy
from websockets.asyncio.client import connect

from rivetkit import actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.drivers.engine import LocalEngine
from rivetkit.inspector.token import actor_token
from rivetkit.protocol import inspector_protocol as ip
from rivetkit.protocol.values import cbor_loads

pytestmark = pytest.mark.asyncio(loop_scope="module")

probe = actor("probe", state={"n": 0})


@probe.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


registry = setup(use=[probe])
FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=10, interval=0.1)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def engine(rivet_engine: LocalEngine) -> AsyncIterator[tuple[LocalEngine, Any]]:
    async with envoy(registry, rivet_engine, pool="default") as (runtime, _):
        yield rivet_engine, runtime


async def test_inspector_through_the_engine(engine: tuple[LocalEngine, Any]) -> None:
    rivet_engine, runtime = engine
    async with Client(rivet_engine.endpoint, retry=FAST_RETRY) as client:
        handle = client.probe.get_or_create([f"insp-{uuid.uuid4().hex[:8]}"])
        assert await handle.action("bump") == 1
        actor_id = await handle.resolve()
    token = await actor_token(runtime.instances[actor_id])
    (stored,) = await runtime.instances[actor_id].kv_get([b"\x03"])
    assert stored == token.encode()
    base = f"{rivet_engine.endpoint}/gateway/{actor_id}/inspector"
    async with httpx.AsyncClient(timeout=15) as http:
        denied = await http.get(f"{base}/summary")
        assert denied.status_code == 401
        assert denied.json()["code"] == "unauthorized"
        summary = await http.get(f"{base}/summary", headers={"Authorization": f"Bearer {token}"})
        assert summary.status_code == 200, summary.text
        assert summary.json()["state"] == {"n": 1}

        ws_url = base.replace("http://", "ws://") + "/connect?protocol_version=6"
        ws = await connect(ws_url, subprotocols=["rivet", f"rivet_inspector_token.{token}"])  # type: ignore[list-item]
        init = ip.decode_to_client(await asyncio.wait_for(ws.recv(), 15), 6)
        assert isinstance(init, ip.Init) and cbor_loads(init.state) == {"n": 1}
        bumped = await http.post(
            f"{rivet_engine.endpoint}/gateway/{actor_id}/action/bump", json={"args": []}
        )
        assert bumped.status_code == 200, bumped.text
        while True:
            message = ip.decode_to_client(await asyncio.wait_for(ws.recv(), 15), 6)
            if isinstance(message, ip.StateUpdated):
                break
        assert cbor_loads(message.state) == {"n": 2}
        await ws.close()

"""Our inspector WebSocket next to RivetKit 2.3.19's, on the same real engine.

The same actor (state ``{n}``, actions ``bump`` and ``later``) runs twice as an envoy of the
session's engine: in TypeScript (npm ``rivetkit@2.3.19``, ``tests/interop/inspector_actor.mjs``)
and in Python. For every protocol version, explicitly (``?protocol_version=N``) and in legacy
mode (frames prefixed with ``N``), one script runs against both through the engine's
gateway: ``Init``, state and action-list requests, a queue request (v2+), a schedules
request (v6), and the push that follows a queued message. What each sends back (the version
of each frame and the kind of message) must be the same, apart from the two differences this
runtime makes on purpose (see docs/reference/inspector-protocol.md):

* in legacy mode RivetKit writes every frame in version 5; we answer in the version of the
  request's frame and push in the version of the client's latest frame;
* so a v6 schedules request in legacy mode gets RivetKit's ``inspector.schedules_dropped``
  and our ``SchedulesResponse``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from engine_fixtures import INTEROP, envoy, new_pool
from websockets.asyncio.client import connect

from rivetkit import actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.client.errors import ActorError
from rivetkit.drivers.engine import LocalEngine
from rivetkit.inspector.token import actor_token
from rivetkit.protocol import inspector_protocol as ip

pytestmark = pytest.mark.asyncio(loop_scope="module")

TS_TOKEN = "inspector-versions-ts-token"
RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=60, interval=0.5)

probe = actor("probe", state={"n": 0})


@probe.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@probe.action
async def later(c: Any) -> str:
    return str(await c.schedule.after(3600, "bump"))


registry = setup(use=[probe])


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "rivetkit").is_dir():
        message = "needs node and `make interop-deps` (npm rivetkit in tests/interop)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node


@pytest.fixture(scope="module")
def ts_pool(rivet_engine: LocalEngine) -> Iterator[str]:
    """The pool of the TypeScript actor's process (stopped at the end of the module)."""
    pool = new_pool()
    env = dict(
        os.environ,
        RIVET_ENDPOINT=rivet_engine.endpoint,
        RIVET_POOL=pool,
        RIVET_ENVOY_VERSION="1",
        _RIVET_TEST_INSPECTOR_TOKEN=TS_TOKEN,
    )
    process = subprocess.Popen(
        [_node(), "inspector_actor.mjs"],
        cwd=INTEROP,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield pool
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def targets(
    rivet_engine: LocalEngine, ts_pool: str
) -> AsyncIterator[dict[str, tuple[str, str]]]:
    """``{"rivetkit": (actor_id, token), "ours": (actor_id, token)}``."""
    pool = new_pool()
    async with envoy(registry, rivet_engine, pool=pool) as (runtime, _):
        found: dict[str, tuple[str, str]] = {}
        for name, actor_pool in (("rivetkit", ts_pool), ("ours", pool)):
            async with Client(rivet_engine.endpoint, pool=actor_pool, retry=RETRY) as client:
                handle = client.probe.get_or_create([uuid.uuid4().hex[:8]])
                for _ in range(120):  # until the TypeScript envoy has registered its pool
                    try:
                        await handle.action("bump")
                        break
                    except ActorError as error:
                        if error.code != "no_runner_config_configured":
                            raise
                        await asyncio.sleep(0.5)
                actor_id = await handle.resolve()
            if name == "rivetkit":
                found[name] = (actor_id, TS_TOKEN)
            else:
                found[name] = (actor_id, await actor_token(runtime.instances[actor_id]))
        yield found


async def _script(
    engine: LocalEngine, actor_id: str, token: str, version: int, legacy: bool
) -> list[tuple[int | None, str]]:
    """``(frame version, message kind)`` of what one inspector session receives (an
    ``Error`` as its message); the frame version is None without a prefix."""
    base = f"{engine.endpoint}/gateway/{actor_id}/inspector"
    query = "" if legacy else f"?protocol_version={version}"
    ws = await connect(
        base.replace("http://", "ws://") + "/connect" + query,
        subprotocols=["rivet", f"rivet_inspector_token.{token}"],  # type: ignore[list-item]
        open_timeout=15,
    )
    seen: list[tuple[int | None, str]] = []

    async def receive(done: Any) -> None:
        while True:
            raw = await asyncio.wait_for(ws.recv(), 15)
            assert isinstance(raw, bytes)
            prefix = int.from_bytes(raw[:2], "little") if legacy else None
            message = ip.decode_to_client(raw, None if legacy else version)
            if type(message).__name__ in ("StateUpdated", "ConnectionsUpdated"):
                continue  # timing-dependent (the HTTP action's connection comes and goes)
            kind = type(message).__name__
            if kind == "Error":
                kind = f"Error({message.message.split(':')[0]})"
            elif kind == "Init":
                kind = f"Init/{type(message).__module__.rsplit('.', 1)[-1]}"
            seen.append((prefix, kind))
            if done(message):
                return

    await receive(lambda m: True)  # Init
    requests: list[Any] = [ip.StateRequest(1), ip.RpcsListRequest(2)]
    if version >= 2:
        requests.append(ip.QueueRequest(3, 10))
    if version >= 6:
        requests.append(ip.SchedulesRequest(4))
    for request in requests:
        await ws.send(ip.encode_to_server(request, version, embedded=legacy))
        rid = request.id
        await receive(lambda m, rid=rid: getattr(m, "rid", None) == rid or "Error" in str(type(m)))
    async with httpx.AsyncClient(timeout=15) as http:
        sent = await http.post(
            f"{base}/queue",
            json={"name": "jobs", "body": {"x": 1}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert sent.status_code == 200, sent.text
    await receive(lambda m: type(m).__name__ in ("QueueUpdated", "Error"))
    await ws.close()
    return seen


@pytest.mark.parametrize("legacy", [False, True], ids=["explicit", "legacy"])
async def test_same_answers_as_rivetkit(
    rivet_engine: LocalEngine, targets: dict[str, tuple[str, str]], legacy: bool
) -> None:
    for version in ip.VERSIONS:
        theirs = await _script(rivet_engine, *targets["rivetkit"], version, legacy)
        ours = await _script(rivet_engine, *targets["ours"], version, legacy)
        if legacy:
            # Init (before the client spoke) is version 5 on both sides.
            assert theirs[0] == ours[0] == (5, "Init/v5")
            # RivetKit answers and pushes in version 5; we answer in the request's version.
            assert {prefix for prefix, _ in theirs} == {5}
            assert {prefix for prefix, _ in ours[1:]} == {version}
            if version == 6:
                assert theirs[4] == (5, "Error(inspector.schedules_dropped)")
                assert ours[4] == (6, "SchedulesResponse")
                theirs, ours = theirs[:4] + theirs[5:], ours[:4] + ours[5:]
            # With version 5 written, RivetKit sends v1 clients the queue size too.
            theirs, ours = [k for _, k in theirs], [k for _, k in ours]
            if version == 1:
                assert theirs[-1] == "QueueUpdated" and ours[-1] == "Error(inspector.queue_dropped)"
                theirs, ours = theirs[:-1], ours[:-1]
            assert theirs[1:] == ours[1:], (version, theirs, ours)
        else:
            assert theirs == ours, (version, theirs, ours)

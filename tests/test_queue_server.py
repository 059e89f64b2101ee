"""Queues over HTTP on a real server (``serve_in_background`` on 127.0.0.1): ``POST
/queue/{name}`` in json, cbor and bare, through the Python client's ``handle.send`` and raw
bodies, with the worker example consuming, the ephemeral connection of a queue send, errors,
and a send waking a sleeping actor."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cbor2
import httpx
import pytest
import pytest_asyncio

from rivetkit import ActorOptions, UserError, actor, setup
from rivetkit.client import ActorError, Client, QueueSendResult, RetryOptions
from rivetkit.runtime.connection import Connection
from rivetkit.runtime.instance import Phase
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parent.parent
ENCODINGS = ["json", "cbor", "bare"]


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"_queue_server_example_{name}", ROOT / "examples" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = load_example("worker").worker
HOOKS: list[Any] = []

guarded = actor("guarded", state={}, options=ActorOptions(max_queue_size=2))


@guarded.on_before_connect
def check(c: Any, params: Any) -> None:
    HOOKS.append(("on_before_connect", params))
    if not isinstance(params, dict) or params.get("token") != "ok":
        raise UserError("bad token", code="bad_token")


@guarded.on_connect
def connected(c: Any, conn: Connection) -> None:
    HOOKS.append(("on_connect", conn.params))


@guarded.on_disconnect
def disconnected(c: Any, conn: Connection) -> None:
    HOOKS.append(("on_disconnect", conn.params))


@guarded.action
async def drain(c: Any) -> list[Any]:
    return [[m.name, m.body] for m in await c.queue.try_next_batch(count=100)]


sleepy = actor("sleepy", state={"got": []}, options=ActorOptions(sleep_timeout=0.1))


@sleepy.run
async def consume(c: Any) -> None:
    async for message in c.queue.iter(completable=True):
        c.state["got"].append(message.body)
        await message.complete({"generation": c.generation})


@sleepy.action
def got(c: Any) -> list[Any]:
    return list(c.state["got"])


registry = setup(use=[worker, guarded, sleepy])
FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=5, interval=0.05)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_python_client_send(endpoint: str, encoding: str) -> None:
    async with Client(endpoint, encoding=encoding, retry=FAST_RETRY) as client:
        handle = client.worker.get_or_create(["py", encoding])
        assert await handle.send("jobs", {"x": 1}) is None
        result = await handle.send("jobs", {"x": 5}, wait=True, timeout=10)
        assert result == QueueSendResult("completed", {"doubled": 10})
        assert await handle.processed() == 2
        results = await asyncio.gather(
            *(handle.send("jobs", {"x": n}, wait=True, timeout=10) for n in range(4))
        )
        assert [r.response for r in results if r is not None] == [
            {"doubled": 2 * n} for n in range(4)
        ]
        # Nobody receives "other": timed out, and the message stays queued.
        timed_out = await handle.send("other", 1, wait=True, timeout=0.05)
        assert timed_out is not None and timed_out.status == "timedOut"
        instance = endpoint.app.runtime.instances[await handle.resolve()]  # type: ignore[attr-defined]
        assert instance.queue.size == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_ephemeral_connection_and_errors(endpoint: str, encoding: str) -> None:
    async with Client(endpoint, encoding=encoding, retry=FAST_RETRY) as client:
        refused = client.guarded.get_or_create(["g", encoding])
        with pytest.raises(ActorError) as info:
            await refused.send("q", 1)
        assert (info.value.group, info.value.code) == ("user", "bad_token")
        handle = client.guarded.get_or_create(["g", encoding], params={"token": "ok"})
        HOOKS.clear()
        await handle.send("q", {"n": 1})
        # The send ran through an ephemeral connection with the params, then closed it.
        assert HOOKS == [
            ("on_before_connect", {"token": "ok"}),
            ("on_connect", {"token": "ok"}),
            ("on_disconnect", {"token": "ok"}),
        ]
        await handle.send("q", {"n": 2})
        with pytest.raises(ActorError) as info:
            await handle.send("q", {"n": 3})
        assert (info.value.group, info.value.code) == ("queue", "full")
        assert info.value.metadata == {"limit": 2, "size": 2}
        assert await handle.drain() == [["q", {"n": 1}], ["q", {"n": 2}]]
        with pytest.raises(ActorError) as info:
            await handle.send("q", "x" * 70_000)  # over max_incoming_message_size first
        assert info.value.group == "message"


async def test_raw_bodies(endpoint: str) -> None:
    """The wire forms: json, cbor (with cbor-x's ``undefined`` options) and bare."""
    query = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=raw"
    url = f"{endpoint}/gateway/worker/queue/jobs?{query}&rvt-crash-policy=sleep"
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json={"body": {"x": 2}, "wait": True, "timeout": 5000})
        assert response.status_code == 200
        assert response.json() == {"status": "completed", "response": {"doubled": 4}}
        body = cbor2.dumps({"body": {"x": 3}, "wait": True, "timeout": cbor2.undefined})
        response = await http.post(url, content=body, headers={"x-rivet-encoding": "cbor"})
        assert response.status_code == 200, response.text
        assert cbor2.loads(response.content) == {
            "status": "completed",
            "response": {"doubled": 6},
        }
        body = cbor2.dumps({"body": {"x": 4}, "wait": cbor2.undefined, "timeout": cbor2.undefined})
        response = await http.post(url, content=body, headers={"x-rivet-encoding": "cbor"})
        assert response.status_code == 200, response.text
        # bare: vbare v4 HttpQueueSendRequest{body: data, name: optional<str>, wait:
        # optional<bool>, timeout: optional<u64>}; the answer {status, response: optional}.
        payload = cbor2.dumps({"x": 5})
        bare = b"\x04\x00" + bytes([len(payload)]) + payload + b"\x00" + b"\x01\x01" + b"\x00"
        response = await http.post(url, content=bare, headers={"x-rivet-encoding": "bare"})
        assert response.status_code == 200, response.text
        answer = response.content
        assert answer[:2] == b"\x04\x00" and answer[2:12] == b"\x09completed"
        assert answer[12] == 1 and cbor2.loads(answer[14:]) == {"doubled": 10}
        # Errors are JSON RivetErrors.
        response = await http.post(url.replace("/queue/jobs", "/queue/"), json={"body": 1})
        assert response.status_code == 404


async def test_send_wakes_a_sleeping_actor(endpoint: str) -> None:
    async with Client(endpoint, retry=FAST_RETRY) as client:
        handle = client.sleepy.get_or_create(["zz"])
        first = await handle.send("job", 1, wait=True, timeout=10)
        assert first is not None and first.response == {"generation": 1}
        actor_id = await handle.resolve()
        runtime = endpoint.app.runtime  # type: ignore[attr-defined]
        instance = runtime.instances[actor_id]
        # Its run loop waits on the queue, yet it falls asleep...
        for _ in range(200):
            if instance.phase == Phase.TERMINATED:
                break
            await asyncio.sleep(0.01)
        assert instance.phase == Phase.TERMINATED
        # ...and a send wakes it: the new generation's run loop completes the message.
        second = await handle.send("job", 2, wait=True, timeout=10)
        assert second is not None and second.response == {"generation": 2}
        assert await handle.got() == [1, 2]

"""A queue send waiting for completion (``POST /queue/{name}`` with ``wait: true``) whose
client leaves: the server stops waiting at once (not at the client's timeout), the request
ends (the actor may sleep again), the message stays queued for a later receiver, nothing is
logged above debug level; and a send whose client stays still completes.

Served on 127.0.0.1 by uvicorn with our protocol class and with uvicorn's own (httptools and
h11): each must answer ``http.disconnect`` to a ``receive()`` after the body once the client
leaves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from conftest import eventually
from rivetkit import ActorOptions, actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.runtime.instance import ActorInstance, Phase
from rivetkit.server import create_app
from rivetkit.server.app import RivetApp
from rivetkit.server.http_fastpath import http_protocol
from rivetkit.server.runner import Server, bind_socket, uvicorn_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

mailbox = actor("mailbox", state={}, options=ActorOptions(sleep_timeout=0.2))


@mailbox.action
async def take(c: Any) -> list[Any]:
    """Receive every queued message, completing each with ``{"seen": body}``."""
    bodies = []
    while True:
        message = await c.queue.try_next(completable=True)
        if message is None:
            return bodies
        bodies.append(message.body)
        await message.complete({"seen": message.body})


@mailbox.action
async def take_when_ready(c: Any) -> Any:
    """Wait for the next message and complete it with ``{"seen": body}``."""
    message = await c.queue.next(completable=True, timeout=30)
    assert message is not None
    await message.complete({"seen": message.body})
    return message.body


registry = setup(use=[mailbox])
FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=5, interval=0.05)
PROTOCOLS = ["ours", "httptools", "h11"]


class Served:
    def __init__(self, url: str, app: RivetApp) -> None:
        self.url = url
        self.app = app
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=PROTOCOLS)
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    protocol = http_protocol() if request.param == "ours" else request.param
    if request.param == "ours" and isinstance(protocol, str):
        pytest.skip("our protocol class does not fit the installed uvicorn")
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data_dir:
        app = create_app(registry, data_dir=data_dir)
        sock = bind_socket("127.0.0.1", 0)
        try:
            await app.startup()
            server = Server(
                uvicorn_config(app, graceful_timeout=2, http=protocol), handle_signals=False
            )
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            await eventually(lambda: server.started or task.done(), timeout=30)
            assert not task.done(), task.result()
            host, port = sock.getsockname()[:2]
            try:
                yield Served(f"http://{host}:{port}", app)
            finally:
                server.request_exit()
                await asyncio.wait_for(task, 30)
        finally:
            await app.shutdown()
            sock.close()


async def _actor_id(served: Served, key: str) -> str:
    async with Client(served.url, retry=FAST_RETRY) as client:
        actor_id: str = await client.mailbox.get_or_create([key]).resolve()
    return actor_id


def _live(served: Served, actor_id: str) -> ActorInstance | None:
    """The actor's running instance (it sleeps after 0.2 s idle: look it up each time)."""
    instance: ActorInstance | None = served.app.runtime.instances.get(actor_id)
    return instance


def _raw_send(actor_id: str, name: str, body: Any, timeout_ms: int) -> bytes:
    payload = json.dumps({"body": body, "wait": True, "timeout": timeout_ms}).encode()
    return (
        f"POST /gateway/{actor_id}/queue/{name} HTTP/1.1\r\n"
        "host: 127.0.0.1\r\n"
        "content-type: application/json\r\n"
        "x-rivet-encoding: json\r\n"
        f"content-length: {len(payload)}\r\n"
        "\r\n"
    ).encode() + payload


async def test_client_leaving_ends_the_wait(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rivetkit")
    actor_id = await _actor_id(served, "leaver")

    def waiting() -> bool:
        instance = _live(served, actor_id)
        return instance is not None and instance.queue.size == 1 and instance._inflight == 1

    _, writer = await asyncio.open_connection(served.host, served.port)
    try:
        # An hour-long wait for a receiver that is not there yet.
        writer.write(_raw_send(actor_id, "jobs", {"n": 1}, 3_600_000))
        await writer.drain()
        await eventually(waiting, timeout=30)
        instance = _live(served, actor_id)
        assert instance is not None and not instance.can_sleep()
    finally:
        writer.close()
    # The request ends as soon as the server sees the client gone: the ephemeral connection
    # is closed, the completion waiter dropped, and the actor free to sleep.
    await eventually(lambda: instance._inflight == 0, timeout=30)
    await eventually(lambda: not instance.conns, timeout=30)
    assert instance.queue._waiters == {}
    assert instance.queue.size == 1  # the message stays queued
    await eventually(lambda: instance.phase == Phase.TERMINATED, timeout=30)
    assert any("client left" in r.getMessage() for r in caplog.records if r.levelno == 10)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    # A later receiver (in the actor's next life) gets the message.
    async with Client(served.url, retry=FAST_RETRY) as client:
        handle = client.mailbox.get_or_create(["leaver"])
        assert await handle.take() == [{"n": 1}]
        assert await handle.take() == []


async def test_waiting_send_still_completes(served: Served) -> None:
    actor_id = await _actor_id(served, "stayer")
    url = f"{served.url}/gateway/{actor_id}/queue/jobs"
    async with Client(served.url, retry=FAST_RETRY) as client, httpx.AsyncClient() as http:
        handle = client.mailbox.get_or_create(["stayer"])
        for n in range(3):  # on one keep-alive connection: each watcher is gone in time
            sending = asyncio.ensure_future(
                http.post(url, json={"body": n, "wait": True, "timeout": 30_000}, timeout=60)
            )
            taken = await handle.take_when_ready()
            response = await sending
            assert taken == n
            assert response.status_code == 200, response.text
            assert response.json() == {"status": "completed", "response": {"seen": n}}
        # A short wait nobody answers still times out (the message stays queued).
        response = await http.post(
            url, json={"body": "late", "wait": True, "timeout": 50}, timeout=60
        )
        assert response.json() == {"status": "timedOut"}
        # And without wait, no watcher at all.
        response = await http.post(url, json={"body": "nowait"}, timeout=60)
        assert response.json() == {"status": "completed"}
        assert await handle.take() == ["late", "nowait"]
        instance = _live(served, actor_id)
        assert instance is not None and instance.queue._waiters == {}

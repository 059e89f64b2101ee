"""The HTTP fast path leaves no reference cycles behind a request.

Under load, garbage in cycles costs the cyclic collector's passes (it took about a tenth of
the server's time when every request's uvicorn cycle was held by its own scope). Here, with
the collector off, a request's objects must be freed by reference counting alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from server_actors import query, registry
from test_server_fastpaths import serve

from rivetkit.server import create_app

pytestmark = pytest.mark.asyncio


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def live(type_name: str) -> int:
    """How many objects of the type named ``type_name`` exist (garbage in cycles included)."""
    return sum(1 for obj in gc.get_objects() if type(obj).__name__ == type_name)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[str, int]]:
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data:
        app = create_app(registry, data_dir=data)
        await app.startup()
        try:
            async with serve(app) as address:
                yield address
        finally:
            await app.shutdown()


def action_request(key: str) -> bytes:
    body = b'{"args":[1]}'
    head = (
        f"POST /gateway/counter/action/increment?{query(key=key)} HTTP/1.1\r\n"
        f"host: x\r\nx-rivet-encoding: json\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def keep_alive_actions(address: tuple[str, int], count: int) -> list[bytes]:
    """``count`` increments, one after the other, on one keep-alive connection."""
    reader, writer = await asyncio.open_connection(*address)
    answers: list[bytes] = []
    try:
        for _ in range(count):
            writer.write(action_request("cycles"))
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            answers.append(head.split(b"\r\n", 1)[0] + b" " + await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


async def test_http_actions_leave_no_cycles() -> None:
    async with serving() as address:
        await keep_alive_actions(address, 3)  # the actor is created, caches are warm
        await asyncio.sleep(0.1)
        with collector_off():
            before = live("RequestResponseCycle")
            answers = await keep_alive_actions(address, 60)
            await asyncio.sleep(0.1)  # the connection's protocol is let go
            after = live("RequestResponseCycle")
    assert answers[-1] == b'HTTP/1.1 200 OK {"output":63}'
    assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers)
    # Held by a cycle, each request's would stay until a collection: 60 more.
    assert after - before <= 1


async def test_fast_path_still_used(monkeypatch: Any) -> None:
    """The weak reference in the scope still reaches the cycle: one write per response."""
    from rivetkit.server import http_fastpath

    calls: list[bool] = []
    real = http_fastpath.respond

    def counting(*args: Any) -> bool:
        done = real(*args)
        calls.append(done)
        return done

    monkeypatch.setattr("rivetkit.server.app.respond", counting)
    # The ordinary road's respond (the action fast road's: tests/test_action_fast.py).
    monkeypatch.setattr("rivetkit.server.action_fast.serve_action", None)
    async with serving() as address:
        answers = await keep_alive_actions(address, 3)
    assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers)
    assert calls == [True, True, True]

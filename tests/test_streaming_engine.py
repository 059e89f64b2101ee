"""Streamed ``on_request`` responses in engine mode, on the real Rivet Engine.

The 2.3.19 gateway takes no streamed answer (``responseStream: false``): the envoy collects
the whole stream and sends it in one ``ResponseStart`` with ``content-length``, up to the
engine's ``maxResponsePayloadSize`` (20 MiB); beyond it the stream is closed and the answer is
400 ``message/outgoing_too_long``. A stream failing before its end is answered as a failing
``on_request`` (500 ``core/internal_error``), since nothing was sent yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from engine_fixtures import EngineEnv, engine_env
from test_sse_format import parse_sse

from conftest import eventually
from rivetkit import Response, ServerSentEvent, actor, setup
from rivetkit.drivers.engine import LocalEngine

pytestmark = pytest.mark.asyncio(loop_scope="module")

MIB = 1 << 20
closed: list[str] = []

streamer = actor("streamer", state={})


@streamer.on_request
async def on_request(c: Any, request: Any) -> Any:
    path = request.path

    async def tracked(name: str, chunks: list[bytes], fail: bool = False) -> AsyncIterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk
                await asyncio.sleep(0.01)
            if fail:
                raise RuntimeError("secret detail of the failure")
        finally:
            closed.append(name)

    if path == "/chunks":
        return Response(tracked("chunks", [b"a-", b"b-", b"c"]), media_type="text/plain")
    if path == "/sse":

        async def events() -> AsyncIterator[Any]:
            yield ServerSentEvent("one\ntwo", event="greeting", id="1")
            yield {"n": 2}

        return Response.sse(events())
    if path == "/fails":
        return Response(tracked("fails", [b"partial"], fail=True))
    if path == "/huge":
        block = b"x" * MIB
        return Response(tracked("huge", [block] * 24))
    return Response.text("not found", status=404)


registry = setup(use=[streamer])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(rivet_engine: LocalEngine) -> AsyncIterator[EngineEnv]:
    async with engine_env(registry, rivet_engine) as env:
        yield env


async def actor_url(env: EngineEnv, key: str) -> str:
    async with env.client() as client:
        actor_id = await client.streamer.get_or_create([key]).resolve()
    return f"{env.engine.endpoint}/gateway/{actor_id}/request"


async def test_streamed_body_arrives_whole(env: EngineEnv) -> None:
    base = await actor_url(env, "chunks")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{base}/chunks")
    assert response.status_code == 200
    assert response.content == b"a-b-c"
    assert response.headers["content-length"] == "5"
    assert response.headers["content-type"] == "text/plain"
    assert "chunks" in closed
    instance = next(iter(i for i in env.runtime.instances.values() if i.key == ["chunks"]))
    await eventually(lambda: instance._inflight == 0)


async def test_sse_is_buffered(env: EngineEnv) -> None:
    base = await actor_url(env, "sse")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{base}/sse")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert parse_sse(response.text) == [
        {"event": "greeting", "id": "1", "data": "one\ntwo"},
        {"data": '{"n":2}'},
    ]


async def test_failing_stream_answers_an_error(
    env: EngineEnv, caplog: pytest.LogCaptureFixture
) -> None:
    base = await actor_url(env, "fails")
    caplog.set_level(logging.ERROR)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{base}/fails")
    assert response.status_code == 500
    body = response.json()
    assert (body["group"], body["code"]) == ("core", "internal_error")
    assert "secret" not in response.text and "partial" not in response.text
    assert "fails" in closed
    assert any("streamed response" in r.getMessage() for r in caplog.records)


async def test_stream_beyond_the_engine_limit(
    env: EngineEnv, caplog: pytest.LogCaptureFixture
) -> None:
    base = await actor_url(env, "huge")
    caplog.set_level(logging.WARNING)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(f"{base}/huge")
    assert response.status_code == 400
    body = response.json()
    assert (body["group"], body["code"]) == ("message", "outgoing_too_long")
    assert body["metadata"]["limit"] == 20 * MIB
    assert "huge" in closed  # the stream was closed at the limit, not read to its end
    assert any("exceeds the engine's" in r.getMessage() for r in caplog.records)

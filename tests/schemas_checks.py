"""The checks of declared schemas through a client (in process or on a real server), shared
by tests/test_schemas.py and tests/test_schemas_server.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from rivetkit.client import ActorError, Client


async def expect(call: Any, group: str, code: str) -> ActorError:
    """Await ``call`` and return the ActorError it raises, checking its group and code."""
    with pytest.raises(ActorError) as info:
        await call
    assert (info.value.group, info.value.code) == (group, code), info.value
    return info.value


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def check_queues(client: Client, key: str) -> None:
    """Queue sends over HTTP: valid (stored normalized), invalid, undeclared, can_publish."""
    h = client.inbox.get_or_create([key], params={"user": "ann"})
    assert await h.send("jobs", {"x": "5", "extra": True}) is None
    assert await h.send("tags", ["a", "b"]) is None
    assert await h.take() == [
        {"name": "jobs", "body": {"x": 5, "label": "none"}},
        {"name": "tags", "body": ["a", "b"]},
    ]
    error = await expect(h.send("jobs", {"x": "five"}), "actor", "validation_error")
    assert error.metadata["field"] == "x"
    assert error.metadata["errors"][0]["loc"] == ["x"]
    assert "queue `jobs` message" in error.message
    error = await expect(h.send("jobs", {}), "actor", "validation_error")
    assert error.metadata["field"] == "x"
    error = await expect(h.send("tags", ["a", 3]), "actor", "validation_error")
    assert error.metadata["field"] == "1"
    error = await expect(h.send("nope", {"x": 1}), "queue", "not_declared")
    assert error.metadata == {"name": "nope"}
    # can_publish refuses mallory (RivetKit's canPublish: auth/forbidden).
    mallory = client.inbox.get_or_create([key], params={"user": "mallory"})
    await expect(mallory.send("jobs", {"x": 1}), "auth", "forbidden")
    # The actor's own sends are validated too.
    await expect(h.send_self("jobs", {"x": []}), "actor", "validation_error")
    await expect(h.send_self("nope", 1), "queue", "not_declared")
    await h.send_self("jobs", {"x": 2.0})
    # Nothing refused was enqueued.
    assert await h.take() == [{"name": "jobs", "body": {"x": 2, "label": "none"}}]
    # An actor that declares nothing takes any name and any body.
    free = client.free.get_or_create([key])
    await free.send("anything", {"x": "five"})
    assert await free.take_free() == [{"name": "anything", "body": {"x": "five"}}]


async def check_conn_params(client: Client, key: str) -> None:
    """Connection params over WebSocket (/connect) and HTTP actions."""
    h = client.inbox.get_or_create([key], params={"user": "ann", "extra": 1})
    assert await h.whoami() == {"user": "ann"}  # normalized: unknown keys dropped
    async with h.connect() as conn:
        assert await conn.whoami() == {"user": "ann"}
    bad = client.inbox.get_or_create([key], params={"user": 5})
    error = await expect(bad.whoami(), "actor", "validation_error")
    assert error.metadata["field"] == "user"
    error = await expect(bad.connect(), "actor", "validation_error")
    assert error.metadata["field"] == "user"
    assert "connection params" in error.message
    await expect(client.inbox.get_or_create([key]).connect(), "actor", "validation_error")
    await expect(client.inbox.get_or_create([key]).whoami(), "actor", "validation_error")
    # Undeclared: params pass untouched.
    free = client.free.get_or_create([key], params={"anything": [1]})
    assert await free.whoami_free() == {"anything": [1]}
    async with free.connect() as conn:
        assert await conn.whoami_free() == {"anything": [1]}


async def check_events(client: Client, key: str) -> None:
    """Events over WebSocket: valid (normalized), invalid (the action fails, nothing sent),
    undeclared (anything)."""
    h = client.inbox.get_or_create([key], params={"user": "ann"})
    async with h.connect() as conn:
        heard: list[Any] = []
        counts: list[Any] = []
        others: list[Any] = []
        conn.on("message", heard.append)
        conn.on("count", counts.append)
        conn.on("other", others.append)
        await conn.whoami()  # the subscriptions are sent before this action
        await conn.say("hi")
        await conn.count("7")
        await conn.other({"free": ["form"]})
        await until(lambda: len(heard) == 1 and len(counts) == 1 and len(others) == 1)
        assert heard == [{"user": "ann", "text": "hi"}]
        assert counts == [7]
        assert others == [{"free": ["form"]}]
        # A payload that fails its schema is a bug in the actor: internal error, nothing sent.
        await expect(conn.say_bad(), "core", "internal_error")
        await expect(conn.tell_bad(), "core", "internal_error")
        await expect(conn.count("x"), "core", "internal_error")
        await conn.say("after")
        await until(lambda: len(heard) == 2)
        assert heard[1] == {"user": "ann", "text": "after"}
        assert counts == [7]

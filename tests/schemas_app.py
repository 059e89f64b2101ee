"""Actors with declared schemas, shared by tests/test_schemas.py, tests/test_schemas_server.py
and benchmarks/bench_schemas.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import TypedDict

from rivetkit import actor, setup


class Job(BaseModel):
    """A queue body: ``x`` required, ``label`` defaulted."""

    x: int
    label: str = "none"


class Params(TypedDict):
    """Connection params."""

    user: str


class Message(TypedDict):
    """The payload of event ``message``."""

    user: str
    text: str


inbox = actor(
    "inbox",
    queues={"jobs": Job, "tags": list[str]},
    events={"message": Message, "count": int},
    conn_params=Params,
)


@inbox.can_publish
async def can_publish(c: Any, name: str, body: Any) -> bool:
    return bool(c.conn.params["user"] != "mallory")


@inbox.action
async def take(c: Any) -> list[dict[str, Any]]:
    """Every queued message, removed: ``[{"name", "body"}]``."""
    batch = await c.queue.try_next_batch(count=100)
    return [{"name": m.name, "body": m.body} for m in batch]


@inbox.action
async def send_self(c: Any, name: str, body: Any) -> None:
    """The actor's own send (validated too; no can_publish)."""
    await c.queue.send(name, body)


@inbox.action
def whoami(c: Any) -> Any:
    return c.conn.params


@inbox.action
def say(c: Any, text: str) -> None:
    c.broadcast("message", {"user": c.conn.params["user"], "text": text})


@inbox.action
def count(c: Any, value: Any) -> None:
    c.broadcast("count", value)


@inbox.action
def say_bad(c: Any) -> None:
    c.broadcast("message", {"user": 1})


@inbox.action
def tell_bad(c: Any) -> None:
    c.conn.send("count", "not a number")


@inbox.action
def other(c: Any, payload: Any) -> None:
    c.broadcast("other", payload)  # not declared: anything goes


free = actor("free")


@free.action
async def take_free(c: Any) -> list[dict[str, Any]]:
    batch = await c.queue.try_next_batch(count=100)
    return [{"name": m.name, "body": m.body} for m in batch]


@free.action
def whoami_free(c: Any) -> Any:
    return c.conn.params


raw = actor("raw", conn_params=Params)


@raw.on_websocket
async def raw_socket(c: Any, ws: Any) -> None:
    """Says hello, then echoes (reached only with params that match ``Params``)."""
    await ws.send("hello")
    async for message in ws:
        await ws.send(message)


registry = setup(use=[inbox, free, raw])

"""Actors and helpers shared by the server tests (tests/test_server*.py)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from rivetkit import ActorOptions, Response, UserError, actor, setup

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` under a private module name."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


counter = load_example("counter").counter
chat = load_example("chat").chat

# An actor exercising errors, limits, raw HTTP and raw WebSockets.
misc = actor(
    "misc",
    state={"hits": 0},
    options=ActorOptions(max_incoming_message_size=1024, max_outgoing_message_size=2048),
)


@misc.on_before_connect
def misc_check(c: Any, params: Any) -> None:
    if isinstance(params, dict) and params.get("deny"):
        raise UserError("denied", code="denied", metadata={"why": "asked"})


@misc.action
def echo(c: Any, *args: Any) -> Any:
    return list(args)


@misc.action
def params(c: Any) -> Any:
    return c.conn.params if c.conn is not None else None


@misc.action
def fail(c: Any, code: str) -> None:
    raise UserError(f"failed with {code}", code=code, metadata={"code": code})


@misc.action
def crash(c: Any) -> None:
    raise ValueError("secret internal detail")


@misc.action
def big(c: Any, size: int) -> str:
    return "x" * size


@misc.action
def unencodable(c: Any) -> Any:
    return object()


@misc.action
async def slow(c: Any, delay: float, value: Any) -> Any:
    await asyncio.sleep(delay)
    return value


@misc.action
def shout(c: Any, event: str, *args: Any) -> int:
    c.broadcast(event, *args)
    return len(c.conns)


@misc.action
def shout_big(c: Any, event: str, size: int) -> int:
    c.broadcast(event, "z" * size)
    return len(c.conns)


@misc.on_request
async def misc_request(c: Any, request: Any) -> Any:
    path = request.path
    if path == "/echo":
        body = await request.body()
        return Response(
            body,
            status=201,
            headers={"x-echo-method": request.method, "x-echo-query": request.query_string},
            media_type="application/octet-stream",
        )
    if path == "/json":
        return Response.json(
            {"path": request.path, "query": request.query, "hits": c.state["hits"]}
        )
    if path == "/fail":
        raise RuntimeError("secret handler detail")
    if path == "/user-fail":
        raise UserError("nope", code="raw_nope")
    if path == "/not-a-response":
        return {"not": "a response"}
    if path == "/slow":
        await asyncio.sleep(float(request.query["s"][0]))
        return Response.text("slept")
    return Response.text(f"no route {path}", status=404)


@misc.on_websocket
async def misc_websocket(c: Any, ws: Any) -> None:
    if ws.request.path == "/fail":
        raise RuntimeError("secret socket detail")
    await ws.send(f"hello {ws.request.path}")
    async for message in ws:
        if message == "bye":
            return
        await ws.send(message)


# An actor without raw handlers, which sleeps fast.
sleepy = actor("sleepy", state={"n": 0}, options=ActorOptions(sleep_timeout=0.2))


@sleepy.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@sleepy.on_request
async def sleepy_request(c: Any, request: Any) -> Any:
    await asyncio.sleep(float(request.query["s"][0]))
    return Response.text("done")


registry = setup(use=[counter, chat, misc, sleepy])


def query(name_method: str = "getOrCreate", key: str = "k", **extra: str) -> str:
    """The rvt-* query of a getOrCreate (or get) gateway URL, as the official client writes it."""
    parts = [("rvt-namespace", "default"), ("rvt-method", name_method)]
    if name_method == "getOrCreate":
        parts.append(("rvt-runner", "default"))
    if key:
        parts.append(("rvt-key", key))
    parts.extend(extra.items())
    if name_method == "getOrCreate":
        parts.append(("rvt-crash-policy", "sleep"))
    from urllib.parse import urlencode

    return urlencode(parts)


def gateway(name: str, path: str, key: str = "k", method: str = "getOrCreate", **extra: str) -> str:
    """``/gateway/{name}{path}?rvt-...`` for (name, key)."""
    return f"/gateway/{name}{path}?{query(method, key, **extra)}"

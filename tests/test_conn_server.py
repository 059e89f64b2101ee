"""Connections over a real server (``serve_in_background`` on 127.0.0.1): the ephemeral
connection of HTTP actions, refused connections (the error reaches the client before the
socket closes), the 4 KiB params limit, events only to subscribers, and ``can_subscribe``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from rivetkit import EventOptions, UserError, actor, setup
from rivetkit.client import ActorError, Client, RetryOptions
from rivetkit.protocol.client_protocol import Error
from rivetkit.protocol.messages import decode_to_client
from rivetkit.runtime.connection import Connection
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOG: list[Any] = []


def is_admin(c: Any) -> bool:
    return bool(c.conn.params.get("admin"))


club = actor("club", state={}, events={"secrets": EventOptions(can_subscribe=is_admin)})


@club.on_before_connect
def before(c: Any, params: Any) -> None:
    LOG.append(("on_before_connect", params, len(c.conns)))
    if not isinstance(params, dict) or "name" not in params:
        raise UserError("who are you?", code="anonymous", metadata={"hint": "name"})


@club.create_conn_state
def state(c: Any, params: Any) -> dict[str, Any]:
    LOG.append(("create_conn_state", params["name"]))
    return {"name": params["name"]}


@club.on_connect
def connected(c: Any, conn: Connection) -> None:
    LOG.append(("on_connect", conn.state["name"], conn.id in c.conns))


@club.on_disconnect
def disconnected(c: Any, conn: Connection) -> None:
    LOG.append(("on_disconnect", conn.state["name"], conn.id in c.conns))


@club.action
def whoami(c: Any) -> list[Any]:
    return [c.conn.state["name"], c.conn.params, len(c.conns)]


@club.action
def announce(c: Any, event: str, text: str) -> None:
    c.broadcast(event, text)


registry = setup(use=[club])
FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=5, interval=0.05)
QUERY = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key={key}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_http_actions_open_an_ephemeral_connection(endpoint: str) -> None:
    async with Client(endpoint, retry=FAST_RETRY) as client:
        handle = client.club.get_or_create(["http"], params={"name": "hal", "x": [1]})
        await handle.resolve()
        LOG.clear()
        assert await handle.whoami() == ["hal", {"name": "hal", "x": [1]}, 1]
        assert LOG == [
            ("on_before_connect", {"name": "hal", "x": [1]}, 0),
            ("create_conn_state", "hal"),
            ("on_connect", "hal", True),
            ("on_disconnect", "hal", False),
        ]
        with pytest.raises(ActorError) as info:
            await client.club.get_or_create(["http"]).whoami()
        assert (info.value.group, info.value.code) == ("user", "anonymous")
        assert info.value.metadata == {"hint": "name"}


async def test_refused_connection_error_arrives_before_the_close(endpoint: str) -> None:
    url = endpoint.replace("http://", "ws://") + "/gateway/club/connect?" + QUERY.format(key="r")
    for encoding in ("json", "cbor", "bare"):
        params = "rivet_conn_params." + quote(json.dumps({"nope": 1}), safe="")
        async with connect(url, subprotocols=["rivet", f"rivet_encoding.{encoding}", params]) as ws:  # type: ignore[list-item]
            first = decode_to_client(await asyncio.wait_for(ws.recv(), 5), encoding).body
            assert isinstance(first, Error)
            assert (first.group, first.code, first.action_id) == ("user", "anonymous", None)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.reason == "user.anonymous"
    async with Client(endpoint, retry=FAST_RETRY) as client:
        with pytest.raises(ActorError) as info:
            await client.club.get_or_create(["r"]).connect({"nope": 1})
        assert (info.value.group, info.value.code) == ("user", "anonymous")


async def test_params_limit(endpoint: str) -> None:
    big = {"name": "x" * 5000}
    url = endpoint.replace("http://", "ws://") + "/gateway/club/connect?" + QUERY.format(key="p")
    params = "rivet_conn_params." + quote(json.dumps(big), safe="")
    async with connect(url, subprotocols=["rivet", params], max_size=None) as ws:  # type: ignore[list-item]
        first = decode_to_client(await asyncio.wait_for(ws.recv(), 5), "json").body
        assert isinstance(first, Error) and (first.group, first.code) == (
            "actor",
            "invalid_request",
        )
    gateway = f"{endpoint}/gateway/club/action/whoami?" + QUERY.format(key="p")
    async with httpx.AsyncClient() as http:
        response = await http.post(
            gateway, json={"args": []}, headers={"x-rivet-conn-params": json.dumps(big)}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_request"
        fits = {"name": "y" * 4000}
        response = await http.post(
            gateway, json={"args": []}, headers={"x-rivet-conn-params": json.dumps(fits)}
        )
        assert response.status_code == 200 and response.json()["output"][0] == "y" * 4000


async def test_events_reach_only_subscribers_and_the_gate(endpoint: str) -> None:
    async with Client(endpoint, retry=FAST_RETRY) as client:
        handle = client.club.get_or_create(["events"], params={"name": "http"})
        async with (
            handle.connect({"name": "ann", "admin": True}) as ann,
            handle.connect({"name": "bob"}) as bob,
            handle.connect({"name": "cat"}) as cat,
        ):
            ann_got: list[Any] = []
            bob_got: list[Any] = []
            ann.on("secrets", ann_got.append)
            ann.on("news", lambda text: ann_got.append(("news", text)))
            bob.on("news", bob_got.append)
            await ann.whoami()
            await bob.whoami()
            await cat.whoami()  # cat subscribes to nothing
            cat_got: list[Any] = []
            cat.on_error(cat_got.append)
            await handle.announce("news", "n1")
            await handle.announce("secrets", "s1")
            await until(lambda: len(ann_got) == 2 and len(bob_got) == 1)
            assert ann_got == [("news", "n1"), "s1"] and bob_got == ["n1"]
            # A refused subscription closes the socket with auth.forbidden (as RivetKit).
            errors: list[ActorError] = []
            bob.on_error(errors.append)
            bob.on("secrets", bob_got.append)
            await until(lambda: any(e.code == "forbidden" for e in errors))
            assert errors[0].group == "auth"
            await handle.announce("secrets", "s2")
            await until(lambda: ann_got[-1] == "s2")
            assert "s2" not in bob_got and cat_got == []

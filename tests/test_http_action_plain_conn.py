"""The temporary connection of an HTTP action on an actor without connection hooks is
opened and closed without a coroutine (``ActorConns.open_plain``/``close_plain``): the
action sees the same connection (params, state, in ``c.conns``), it is gone after, and the
connection counters move as with the full path; an actor with hooks still runs them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rivetkit import actor, setup
from rivetkit.runtime.connection import Connection
from rivetkit.server import serve_in_background

plain = actor("plain", state={"calls": 0}, conn_state={"n": 1})


@plain.action
async def look(c: Any) -> dict[str, Any]:
    c.state["calls"] += 1
    return {
        "params": c.conn.params,
        "state": c.conn.state,
        "listed": c.conn.id in c.conns,
        "others": len(c.conns) - 1,
    }


@plain.action
def count(c: Any) -> int:
    return len(c.conns)


hooked = actor("hooked", state={"log": []})


@hooked.on_connect
def connected(c: Any, conn: Connection) -> None:
    c.state["log"].append("connect")


@hooked.on_disconnect
def disconnected(c: Any, conn: Connection) -> None:
    c.state["log"].append("disconnect")


@hooked.action
def log(c: Any) -> list[str]:
    return list(c.state["log"])


registry = setup(use=[plain, hooked])


def _url(endpoint: str, name: str, action: str) -> str:
    return (
        f"{endpoint}/gateway/{name}/action/{action}"
        "?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k&rvt-crash-policy=sleep"
    )


@pytest.mark.asyncio
async def test_plain_connection_of_an_http_action() -> None:
    async with serve_in_background(registry) as endpoint, httpx.AsyncClient() as http:
        params = {"who": "me"}
        reply = await http.post(
            _url(endpoint, "plain", "look"),
            json={"args": []},
            headers={"x-rivet-conn-params": json.dumps(params)},
        )
        assert reply.status_code == 200
        assert reply.json() == {
            "output": {"params": params, "state": {"n": 1}, "listed": True, "others": 0}
        }
        reply = await http.post(_url(endpoint, "plain", "count"), json={"args": []})
        assert reply.json() == {"output": 1}  # only its own: the earlier one is closed
        metrics = (await http.get(f"{endpoint}/metrics")).text.splitlines()
        assert 'rivetkit_actor_connections_opened_total{actor_name="plain"} 2.0' in metrics
        assert 'rivetkit_actor_connections_closed_total{actor_name="plain"} 2.0' in metrics


@pytest.mark.asyncio
async def test_hooks_still_run_for_an_http_action() -> None:
    async with serve_in_background(registry) as endpoint, httpx.AsyncClient() as http:
        await http.post(_url(endpoint, "hooked", "log"), json={"args": []})
        reply = await http.post(_url(endpoint, "hooked", "log"), json={"args": []})
        assert reply.json() == {"output": ["connect", "disconnect", "connect"]}

"""What sleeping actors and idle sockets keep in one process (issue 20: 100,000 actors,
10,000 sockets): a real server on 127.0.0.1, its caches inspected after the fact."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from rivetkit import ActorOptions, actor, setup
from rivetkit.runtime.lifecycle_times import LifecycleTimes
from rivetkit.server import http_fastpath, serve_in_background
from rivetkit.server.http_guard import HeadGuard

idle = actor("idle", state={"count": 0}, options=ActorOptions(sleep_timeout=0.2))


@idle.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


room = actor("room", state={}, options=ActorOptions(sleep_timeout=60.0))


@room.action
def tick(c: Any) -> int:
    c.broadcast("tick", 1)
    return 1


registry = setup(use=[idle, room])
QUERY = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-crash-policy=sleep"
JSON = {"x-rivet-encoding": "json"}


async def wait_asleep(app: Any, name: str) -> None:
    for _ in range(1000):
        if not any(i.name == name for i in app.runtime.instances.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} actors still awake")


@pytest.mark.asyncio
async def test_a_sleeping_actor_leaves_no_route_or_header_cache_behind() -> None:
    async with serve_in_background(registry) as base, httpx.AsyncClient() as http:
        app: Any = base.app  # type: ignore[attr-defined]
        ids = []
        for i in range(3):
            url = f"{base}/gateway/idle/action/increment?{QUERY}&rvt-key=k{i}"
            response = await http.post(url, json={"args": [1]}, headers=JSON)
            assert response.status_code == 200 and response.json() == {"output": 1}
            ids.append(response.headers["x-rivet-actor"])
            # A first answer keeps no header list (most actors answer once), a second does.
            assert app.dispatcher.response_headers_of(ids[-1]) == []
            assert ids[-1] not in app.dispatcher._actor_headers
            response = await http.post(url, json={"args": [1]}, headers=JSON)
            assert response.status_code == 200 and response.json() == {"output": 2}
            assert response.headers["x-rivet-actor"] == ids[-1]
        # One route of an actor is kept as its key, more as a list of keys (k0: a second
        # query naming the same actor).
        assert type(app._actor_routes[ids[0]]) is tuple
        url = f"{base}/gateway/idle/action/increment?{QUERY}&rvt-key=k0&other=1"
        response = await http.post(url, json={"args": [1]}, headers=JSON)
        assert response.json() == {"output": 3} and response.headers["x-rivet-actor"] == ids[0]
        assert len(app._actor_routes[ids[0]]) == 2 and type(app._actor_routes[ids[0]]) is list
        header_lists = [h for i in ids for h in app.dispatcher.response_headers_of(i)]
        assert header_lists and set(app._routes.values()) >= set(ids)
        assert any(tuple(h) in http_fastpath._heads for h in header_lists)

        await wait_asleep(app, "idle")
        assert not set(app._routes.values()) & set(ids)
        assert not set(app._actor_routes) & set(ids)
        assert not app._route_queries  # k0's second route left "other=1": dropped with it
        assert all(app.dispatcher.response_headers_of(i) == [] for i in ids)
        assert not set(app.dispatcher._actor_headers) & set(ids)
        assert not any(tuple(h) in http_fastpath._heads for h in header_lists)
        for actor_id in ids:  # the manager API still knows when each one went to sleep
            times = app.runtime.lifecycle.fields(actor_id, 0, None)
            assert times["sleep_ts"] is not None and times["start_ts"] is not None

        # A request wakes it again, through a fresh route.
        url = f"{base}/gateway/idle/action/increment?{QUERY}&rvt-key=k0"
        response = await http.post(url, json={"args": [1]}, headers=JSON)
        assert response.json() == {"output": 4}
        assert response.headers["x-rivet-actor"] == ids[0]


def test_lifecycle_times_of_sleepers_round_trip() -> None:
    now = [1_700_000_000.0]
    times = LifecycleTimes(lambda: now[0])
    times.starting("a")
    times.started("a")
    now[0] += 5
    times.stopped("a")
    asleep = times.fields("a", 0, None)
    assert asleep["start_ts"] == 1_700_000_000_000 and asleep["sleep_ts"] == 1_700_000_005_000
    assert asleep["connectable_ts"] is None
    times.stopped("never-started")  # stopped with no start seen: start unknown
    assert times.fields("never-started", 0, None)["start_ts"] is None
    now[0] += 5
    times.starting("a")  # a wake keeps the first start
    times.started("a")
    awake = times.fields("a", 0, None)
    assert awake["start_ts"] == 1_700_000_000_000 and awake["sleep_ts"] is None
    for clock in (-5.0, 2.0**45):  # outside what one packed int holds: still exact
        odd = LifecycleTimes(lambda clock=clock: clock)
        odd.starting("b")
        odd.started("b")
        odd.stopped("b")
        fields = odd.fields("b", 0, None)
        assert fields["start_ts"] == fields["sleep_ts"] == int(clock * 1000)


def live_head_guards() -> int:
    gc.collect()
    return sum(isinstance(o, HeadGuard) for o in gc.get_objects())


@pytest.mark.asyncio
async def test_an_idle_socket_keeps_neither_its_http_protocol_nor_its_handshake() -> None:
    async with serve_in_background(registry) as base:
        server: Any = base.server  # type: ignore[attr-defined]
        before = live_head_guards()
        url = f"ws://{base[len('http://') :]}/gateway/room/connect?{QUERY}&rvt-key=r"
        protocols = [Subprotocol("rivet"), Subprotocol("rivet_encoding.json")]
        async with connect(url, subprotocols=protocols, compression=None) as ws:
            init = json.loads(await ws.recv())
            assert init["body"]["tag"] == "Init"
            sub = {"body": {"tag": "SubscriptionRequest",
                            "val": {"eventName": "tick", "subscribe": True}}}  # fmt: skip
            await ws.send(json.dumps(sub))
            # The upgraded request's HTTP protocol is gone (its head timer no longer holds
            # it until header_timeout), and the WebSocket protocol dropped the handshake.
            assert live_head_guards() == before
            sockets = [c for c in server.server_state.connections if hasattr(c, "direct")]
            assert len(sockets) == 1
            assert sockets[0].request is None and sockets[0].response is None
            parser = sockets[0].conn.parser  # the frame parser, no handshake request in it
            assert "request" not in parser.gi_frame.f_locals
            async with httpx.AsyncClient() as http:
                tick = f"{base}/gateway/room/action/tick?{QUERY}&rvt-key=r"
                for _ in range(3):  # events still flow, in order, after the idle time
                    assert (await http.post(tick, json={"args": []}, headers=JSON)).is_success
            events = [json.loads(await ws.recv()) for _ in range(3)]
            assert [e["body"]["val"]["name"] for e in events] == ["tick"] * 3

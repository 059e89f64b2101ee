"""The embedded server over real HTTP (uvicorn on 127.0.0.1): metadata, the manager API, the
gateway, actions in every encoding, HTTP errors, raw on_request, sleep gating, mounting."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import cbor2
import httpx
import pytest
import pytest_asyncio
from server_actors import gateway, registry

from rivetkit.server import create_app, serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=10) as client:
        yield client


def assert_rivet_error(response: httpx.Response, status: int, group: str, code: str) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["group"], body["code"]) == (group, code), body
    assert isinstance(body["message"], str)
    return body


# -- framework routes -------------------------------------------------------------------------


async def test_metadata_and_health(http: httpx.AsyncClient) -> None:
    response = await http.get("/metadata?namespace=default")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["runtime"] == "rivetkit"
    assert isinstance(body["version"], str)
    assert isinstance(body["speedups"], bool)
    assert set(body["actorNames"]) == {"counter", "chat", "misc", "sleepy"}
    assert body["actorNames"]["counter"] == {"metadata": {}}
    for absent in ("clientEndpoint", "clientNamespace", "clientToken"):
        assert absent not in body
    response = await http.get("/health")
    assert (response.status_code, response.text) == (200, "ok")
    assert_rivet_error(await http.post("/metadata"), 405, "actor", "method_not_allowed")
    assert_rivet_error(await http.get("/nope"), 404, "actor", "not_found")


async def test_actor_framework_routes(http: httpx.AsyncClient) -> None:
    response = await http.get(gateway("counter", "/metadata", key="fw"))
    assert response.status_code == 200
    assert response.json()["runtime"] == "rivetkit"
    assert response.json()["type"] in ("local", "deployed")
    response = await http.get(gateway("counter", "/health", key="fw"))
    assert (response.status_code, response.text) == (200, "ok")
    response = await http.get(gateway("counter", "", key="fw"))
    assert response.text.startswith("This is an RivetKit actor.")
    for header in ("x-rivet-actor", "x-rivet-actor-generation", "x-rivet-actor-key"):
        assert header in response.headers
    assert response.headers["x-rivet-actor-key"] == "fw"
    response = await http.get(gateway("counter", "/metrics"))  # tests/test_metrics.py
    assert response.status_code == 200 and "rivetkit_info" in response.text
    assert_rivet_error(await http.get(gateway("counter", "/nope")), 404, "actor", "not_found")
    assert_rivet_error(
        await http.get(gateway("counter", "/action/increment")), 405, "actor", "method_not_allowed"
    )
    assert_rivet_error(
        await http.delete(gateway("counter", "/health")), 405, "actor", "method_not_allowed"
    )


# -- actions ----------------------------------------------------------------------------------


async def test_action_json(http: httpx.AsyncClient) -> None:
    url = gateway("counter", "/action/increment", key="json")
    response = await http.post(url, json={"args": [5]}, headers={"x-rivet-encoding": "json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"output":5}'
    assert response.headers["x-rivet-actor-generation"] == "1"
    # no header: json; a scalar args is one argument; null is none
    response = await http.post(url, content=b'{"args":2}')
    assert response.json() == {"output": 7}
    response = await http.post(gateway("counter", "/action/getCount", key="json"), content=b"{}")
    assert response.json() == {"output": 7}


async def test_action_cbor_bytes(http: httpx.AsyncClient) -> None:
    url = gateway("counter", "/action/increment", key="cbor")
    body = bytes.fromhex("b90001") + b"\x64args" + b"\x81\x05"  # cbor-x: 16-bit map header
    response = await http.post(url, content=body, headers={"x-rivet-encoding": "cbor"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\xa1\x66output\x05"


async def test_action_bare_bytes(http: httpx.AsyncClient) -> None:
    url = gateway("counter", "/action/increment", key="bare")
    headers = {"x-rivet-encoding": "bare", "content-type": "application/octet-stream"}
    response = await http.post(url, content=bytes.fromhex("0400028105"), headers=headers)
    assert response.status_code == 200
    assert response.content == bytes.fromhex("04000105")
    empty = await http.post(
        gateway("counter", "/action/getCount", key="bare"),
        content=bytes.fromhex("04000180"),
        headers=headers,
    )
    assert empty.content == bytes.fromhex("04000105")


async def test_action_errors_are_json_for_every_encoding(http: httpx.AsyncClient) -> None:
    for encoding, body in (
        ("json", b'{"args":["boom"]}'),
        ("cbor", cbor2.dumps({"args": ["boom"]})),
        ("bare", b"\x04\x00" + bytes([len(cbor2.dumps(["boom"]))]) + cbor2.dumps(["boom"])),
    ):
        response = await http.post(
            gateway("misc", "/action/fail"), content=body, headers={"x-rivet-encoding": encoding}
        )
        error = assert_rivet_error(response, 400, "user", "boom")
        assert error["message"] == "failed with boom"
        assert error["metadata"] == {"code": "boom"}
        assert error["actor"]["actorId"] == response.headers["x-rivet-actor"]
    assert_rivet_error(
        await http.post(gateway("misc", "/action/nope"), json={"args": []}),
        404,
        "actor",
        "action_not_found",
    )
    assert_rivet_error(
        await http.post(gateway("counter", "/action/increment"), json={"args": [-1]}),
        400,
        "user",
        "negative_amount",
    )
    assert_rivet_error(
        await http.post(gateway("counter", "/action/increment"), json={"args": ["x"]}),
        400,
        "actor",
        "validation_error",
    )


async def test_internal_errors_are_hidden(http: httpx.AsyncClient, caplog: Any) -> None:
    response = await http.post(gateway("misc", "/action/crash"), json={"args": []})
    body = assert_rivet_error(response, 500, "core", "internal_error")
    assert "secret" not in response.text
    assert body["message"] == "An internal error occurred"
    response = await http.post(gateway("misc", "/action/unencodable"), json={"args": []})
    assert response.status_code == 500
    assert response.json()["group"] == "actor"


async def test_conn_params_header(http: httpx.AsyncClient) -> None:
    url = gateway("misc", "/action/params")
    response = await http.post(
        url, json={"args": []}, headers={"x-rivet-conn-params": '{"user":"ann"}'}
    )
    assert response.json() == {"output": {"user": "ann"}}
    response = await http.post(
        url, json={"args": []}, headers={"x-rivet-conn-params": '{"deny":true}'}
    )
    error = assert_rivet_error(response, 400, "user", "denied")
    assert error["metadata"] == {"why": "asked"}
    response = await http.post(url, json={"args": []}, headers={"x-rivet-conn-params": "{nope"})
    assert_rivet_error(response, 400, "actor", "invalid_request")
    big = json.dumps({"x": "y" * 5000})
    response = await http.post(url, json={"args": []}, headers={"x-rivet-conn-params": big})
    assert_rivet_error(response, 400, "actor", "invalid_request")


async def test_chat_http_requires_user(http: httpx.AsyncClient) -> None:
    url = gateway("chat", "/action/history", key="http-room")
    assert_rivet_error(await http.post(url, json={"args": []}), 400, "user", "missing_user")
    response = await http.post(
        gateway("chat", "/action/post", key="http-room"),
        json={"args": ["hello"]},
        headers={"x-rivet-conn-params": '{"user":"bob"}'},
    )
    assert response.json() == {"output": 1}
    response = await http.post(
        url, json={"args": []}, headers={"x-rivet-conn-params": '{"user":"bob"}'}
    )
    assert response.json() == {"output": [{"user": "bob", "text": "hello"}]}


async def test_message_size_limits(http: httpx.AsyncClient) -> None:
    url = gateway("misc", "/action/echo")
    ok = await http.post(url, json={"args": ["a" * 900]})
    assert ok.status_code == 200
    too_big = await http.post(url, json={"args": ["a" * 2000]})
    assert_rivet_error(too_big, 400, "message", "incoming_too_long")
    out = await http.post(gateway("misc", "/action/big"), json={"args": [4000]})
    assert_rivet_error(out, 400, "message", "outgoing_too_long")
    fits = await http.post(gateway("misc", "/action/big"), json={"args": [1000]})
    assert fits.status_code == 200
    # the default limit (64 KiB) of the counter
    huge = await http.post(
        gateway("counter", "/action/increment"), content=b'{"args":[1],"x":"' + b"a" * 70000 + b'"}'
    )
    assert_rivet_error(huge, 400, "message", "incoming_too_long")


async def test_queue_route(http: httpx.AsyncClient, endpoint: str) -> None:
    url = gateway("misc", "/queue/jobs", key="queue")
    response = await http.post(url, json={"body": {"x": 1}, "name": "jobs", "wait": False})
    if response.status_code != 200:  # an actor without a queue (queues not wired in yet)
        assert_rivet_error(response, 400, "queue", response.json()["code"])
    assert_rivet_error(
        await http.post(url, content=b"{bad"), 400, "protocol", "invalid_http_request"
    )
    assert_rivet_error(await http.get(url), 405, "actor", "method_not_allowed")

    # the seam: dispatch sends through the instance's queue
    class FakeQueue:
        def __init__(self) -> None:
            self.sent: list[tuple[Any, ...]] = []

        async def send(self, name: str, body: Any, *, wait: bool, timeout: float | None) -> Any:
            self.sent.append((name, body, wait, timeout))
            return {"status": "completed", "response": {"ok": body}} if wait else None

    actor_id = response.headers["x-rivet-actor"]
    instance = endpoint.app.runtime.instances[actor_id]  # type: ignore[attr-defined]
    fake = FakeQueue()
    missing = object()
    original = instance.__dict__.get("queue", missing)
    try:
        instance.queue = fake
    except AttributeError:
        pytest.skip("the instance's queue cannot be replaced")
    try:
        response = await http.post(
            url, json={"body": 5, "name": "jobs", "wait": True, "timeout": 1500}
        )
        assert response.json() == {"status": "completed", "response": {"ok": 5}}
        bare = await http.post(
            url,
            content=bytes.fromhex("0400") + b"\x01\x05" + b"\x00" + b"\x00" + b"\x00",
            headers={"x-rivet-encoding": "bare"},
        )
        assert bare.status_code == 200
        assert bare.content == bytes.fromhex("0400") + b"\x09completed" + b"\x00"
        assert fake.sent == [("jobs", 5, True, 1.5), ("jobs", 5, False, None)]
    finally:
        if original is missing:
            del instance.queue
        else:
            instance.queue = original


# -- raw HTTP ---------------------------------------------------------------------------------


async def test_on_request(http: httpx.AsyncClient) -> None:
    response = await http.post(
        gateway("misc", "/request/echo", a="1"), content=b"payload", headers={"x-y": "z"}
    )
    assert response.status_code == 201
    assert response.content == b"payload"
    assert response.headers["x-echo-method"] == "POST"
    assert response.headers["x-echo-query"] == "a=1"  # rvt-* parameters are stripped
    assert response.headers["content-type"] == "application/octet-stream"
    assert "x-rivet-actor" in response.headers
    response = await http.get(gateway("misc", "/request/json", b="2"))
    assert response.json() == {"path": "/json", "query": {"b": ["2"]}, "hits": 0}
    response = await http.get(gateway("misc", "/request/missing"))
    assert (response.status_code, response.text) == (404, "no route /missing")


async def test_gateway_route_cache_keeps_each_routes_query(http: httpx.AsyncClient) -> None:
    """A cached gateway route gives the actor the query its URL left (none, or its own),
    on the first request and on the cached ones after it."""
    for _ in range(3):
        for extra, expected in (({}, ""), ({"a": "1"}, "a=1"), ({"c": "3", "d": "4"}, "c=3&d=4")):
            url = gateway("misc", "/request/echo", key="rq", **extra)
            response = await http.post(url, content=b"x")
            assert response.status_code == 201
            assert response.headers["x-echo-query"] == expected


async def test_on_request_failures(http: httpx.AsyncClient) -> None:
    response = await http.get(gateway("misc", "/request/fail"))
    assert_rivet_error(response, 500, "core", "internal_error")
    assert "secret" not in response.text
    response = await http.get(gateway("misc", "/request/not-a-response"))
    assert_rivet_error(response, 500, "core", "internal_error")
    response = await http.get(gateway("misc", "/request/user-fail"))
    assert_rivet_error(response, 400, "user", "raw_nope")
    response = await http.get(gateway("counter", "/request/x"))
    assert_rivet_error(response, 404, "handler", "request_not_defined")


async def test_inflight_request_keeps_actor_awake(http: httpx.AsyncClient, endpoint: str) -> None:
    # sleep_timeout is 0.2 s; a 0.6 s request must not see the actor fall asleep under it.
    url = gateway("sleepy", "/action/bump", key="awake")
    first = await http.post(url, json={"args": []})
    generation = first.headers["x-rivet-actor-generation"]
    actor_id = first.headers["x-rivet-actor"]
    runtime = endpoint.app.runtime  # type: ignore[attr-defined]
    instance = runtime.instances[actor_id]
    response = await http.get(gateway("sleepy", "/request/x", key="awake", s="0.6"))
    assert response.text == "done"
    assert response.headers["x-rivet-actor-generation"] == generation
    assert runtime.instances.get(actor_id) is instance
    # idle afterwards: it sleeps, and wakes with the state saved
    for _ in range(100):
        if actor_id not in runtime.instances:
            break
        await asyncio.sleep(0.02)
    assert actor_id not in runtime.instances
    again = await http.post(url, json={"args": []})
    assert again.json() == {"output": 2}
    assert int(again.headers["x-rivet-actor-generation"]) == int(generation) + 1


# -- manager API ------------------------------------------------------------------------------


async def test_manager_api(http: httpx.AsyncClient) -> None:
    body = {
        "name": "counter",
        "key": "mgr/a,b",
        "runner_name_selector": "default",
        "crash_policy": "sleep",
    }
    created = await http.put("/actors?namespace=default", json=body)
    assert created.status_code == 200
    first = created.json()
    assert first["created"] is True
    actor = first["actor"]
    assert actor["name"] == "counter"
    assert actor["key"] == "mgr/a,b"
    assert isinstance(actor["create_ts"], int)
    assert actor["destroy_ts"] is None
    again = (await http.put("/actors?namespace=default", json=body)).json()
    assert again == {"actor": actor, "created": False}
    duplicate = await http.post("/actors?namespace=default", json=body)
    assert_rivet_error(duplicate, 400, "actor", "duplicate_key")
    found = await http.get(
        "/actors", params={"name": "counter", "key": "mgr/a,b", "namespace": "default"}
    )
    assert found.json() == {"actors": [actor]}
    missing = await http.get("/actors", params={"name": "counter", "key": "nobody"})
    assert missing.json() == {"actors": []}
    by_id = await http.get("/actors", params={"actor_ids": actor["actor_id"]})
    assert by_id.json() == {"actors": [actor]}
    listed = await http.get("/actors", params={"name": "counter"})
    assert actor in listed.json()["actors"]
    # the direct gateway form reaches it
    response = await http.post(f"/gateway/{actor['actor_id']}/action/increment", json={"args": [3]})
    assert response.json() == {"output": 3}
    token_form = await http.post(
        f"/gateway/{actor['actor_id']}@tok/action/getCount", json={"args": []}
    )
    assert token_form.json() == {"output": 3}
    # create with input (std base64 of CBOR)
    created = await http.post(
        "/actors",
        json={
            "name": "counter",
            "key": "mgr-in",
            "input": base64.b64encode(cbor2.dumps({"a": 1})).decode(),
        },
    )
    assert created.status_code == 200
    assert set(created.json()) == {"actor"}
    # destroy
    deleted = await http.delete(f"/actors/{actor['actor_id']}?namespace=default")
    assert (deleted.status_code, deleted.json()) == (200, {})
    gone = await http.get("/actors", params={"actor_ids": actor["actor_id"]})
    assert gone.json()["actors"][0]["destroy_ts"] is not None
    assert (await http.get("/actors", params={"name": "counter", "key": "mgr/a,b"})).json() == {
        "actors": []
    }
    assert_rivet_error(
        await http.post(f"/gateway/{actor['actor_id']}/action/getCount", json={"args": []}),
        404,
        "actor",
        "not_found",
    )
    assert_rivet_error(await http.delete(f"/actors/{actor['actor_id']}"), 404, "actor", "not_found")
    # a getOrCreate gateway URL cached before the destroy now makes a fresh actor
    fresh = await http.post(
        gateway("counter", "/action/getCount", key="mgr/a,b"), json={"args": []}
    )
    assert fresh.status_code == 200


async def test_gateway_query_forms(http: httpx.AsyncClient) -> None:
    # get on a missing actor: not_found (the client retries it); unknown names: invalid_request
    assert_rivet_error(
        await http.post(gateway("counter", "/action/getCount", key="none", method="get"), json={}),
        404,
        "actor",
        "not_found",
    )
    assert_rivet_error(
        await http.post(gateway("nobody", "/action/x"), json={}), 400, "actor", "invalid_request"
    )
    assert_rivet_error(
        await http.post(gateway("nobody", "/action/x", method="get"), json={}),
        400,
        "actor",
        "invalid_request",
    )
    await http.post(gateway("counter", "/action/increment", key="g,1"), json={"args": [4]})
    response = await http.post(
        gateway("counter", "/action/getCount", key="g,1", method="get"), json={}
    )
    assert response.json() == {"output": 4}
    # the key splits on commas: ["g", "1"]
    listed = await http.get("/actors", params={"name": "counter", "key": "g/1"})
    assert len(listed.json()["actors"]) == 1
    # an empty key is []
    await http.post(gateway("counter", "/action/increment", key=""), json={"args": [1]})
    listed = await http.get("/actors", params={"name": "counter", "key": "/"})
    assert len(listed.json()["actors"]) == 1
    # input: base64url without padding of CBOR; rvt-pool is an alias of rvt-runner
    payload = base64.urlsafe_b64encode(cbor2.dumps({"start": 1})).rstrip(b"=").decode()
    response = await http.post(
        f"/gateway/counter/action/increment?rvt-method=getOrCreate&rvt-pool=default&rvt-key=in&rvt-input={payload}",
        json={"args": [1]},
    )
    assert response.json() == {"output": 1}


async def test_skip_ready_wait_header_form(http: httpx.AsyncClient) -> None:
    created = (await http.put("/actors", json={"name": "counter", "key": "direct"})).json()
    actor_id = created["actor"]["actor_id"]
    response = await http.post(
        "/action/increment",
        json={"args": [2]},
        headers={
            "x-rivet-target": "actor",
            "x-rivet-actor": actor_id,
            "x-rivet-skip-ready-wait": "1",
        },
    )
    assert response.json() == {"output": 2}


async def test_mount_in_starlette() -> None:
    starlette = pytest.importorskip("starlette.applications")
    routing = pytest.importorskip("starlette.routing")
    import tempfile

    with tempfile.TemporaryDirectory() as data:
        rivet = create_app(registry, data_dir=data)
        host = starlette.Starlette(routes=[routing.Mount("/rivet", app=rivet)])
        async with rivet.lifespan():
            transport = httpx.ASGITransport(app=host)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.post(
                    "/rivet" + gateway("counter", "/action/increment", key="mounted"),
                    json={"args": [6]},
                )
                assert response.json() == {"output": 6}
                assert (await client.get("/rivet/metadata")).json()["runtime"] == "rivetkit"
        assert not rivet.started

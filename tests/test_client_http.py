"""Client over HTTP against a recording mock transport: metadata, actions in every encoding,
errors, retries, resolve/create/get_for_id, queue sends, raw fetch."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import cbor2
import httpx
import pytest
from client_fakes import RecordingTransport, counter_server, json_response

from rivetkit.client import ActorError, Client, RetryOptions
from rivetkit.errors import EncodeError
from rivetkit.protocol.http_bodies import (
    http_error_to,
    http_queue_send_request_from,
    http_queue_send_response_to,
)

EP = "http://127.0.0.1:6420"
GOC = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"

Responder = Callable[[httpx.Request], httpx.Response]


class FakeSleep:
    """Records delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make(respond: Responder, **kw: Any) -> tuple[Client, RecordingTransport, FakeSleep]:
    transport = RecordingTransport(respond)
    client = Client(EP, transport=transport, **kw)
    sleep = FakeSleep()
    client._session.sleep = sleep
    return client, transport, sleep


# MARK: metadata and actions


@pytest.mark.asyncio
async def test_metadata_first_then_observed_action_line() -> None:
    client, transport, _ = make(counter_server())
    async with client:
        assert await client.counter.get_or_create(["k"]).increment(5) == 5
        assert await client.counter.get_or_create("k").increment(2) == 7
    assert transport.lines() == [
        "GET /metadata?namespace=default",
        f"POST /gateway/counter/action/increment?{GOC}",
        f"POST /gateway/counter/action/increment?{GOC}",
    ]


@pytest.mark.asyncio
async def test_disable_metadata_lookup() -> None:
    client, transport, _ = make(counter_server(), disable_metadata_lookup=True)
    async with client:
        await client.counter.get_or_create(["k"]).increment(1)
    assert transport.lines() == [f"POST /gateway/counter/action/increment?{GOC}"]


@pytest.mark.parametrize(
    ("encoding", "body", "content_type"),
    [
        ("bare", b"\x04\x00\x02\x81\x05", "application/octet-stream"),
        ("json", b'{"args":[5]}', "application/json"),
        ("cbor", cbor2.dumps({"args": [5]}), "application/octet-stream"),
    ],
)
@pytest.mark.asyncio
async def test_action_body_and_headers(encoding: str, body: bytes, content_type: str) -> None:
    client, transport, _ = make(
        counter_server(), encoding=encoding, headers={"x-custom": "1"}, disable_metadata_lookup=True
    )
    async with client:
        assert await client.counter.get_or_create(["k"]).action("increment", 5) == 5
    request = transport.requests[0]
    assert request.body == body
    assert request.headers["x-rivet-encoding"] == encoding
    assert request.headers["content-type"] == content_type
    assert request.headers["x-custom"] == "1"
    assert request.headers["user-agent"].startswith("RivetKit-Python/")
    assert "x-rivet-conn-params" not in request.headers
    assert "x-rivet-token" not in request.headers


def test_bare_empty_args_bytes() -> None:
    from rivetkit.protocol.http_bodies import http_action_request_to

    assert http_action_request_to([], "bare") == b"\x04\x00\x01\x80"


@pytest.mark.parametrize("encoding", ["bare", "json", "cbor"])
@pytest.mark.asyncio
async def test_values_round_trip(encoding: str) -> None:
    client, _, _ = make(counter_server(), encoding=encoding, disable_metadata_lookup=True)
    value = {"n": 2**60, "b": b"\x00\x01", "s": "é", "l": [1.5, None, True], "t": ["$x", 1]}
    async with client:
        assert await client.counter.get_or_create(["k"]).echo(value, "x") == [value, "x"]


@pytest.mark.asyncio
async def test_conn_params_and_token_headers() -> None:
    client, transport, _ = make(counter_server(), token="tok", disable_metadata_lookup=True)
    async with client:
        await client.get_or_create("counter", "k", params={"user": "u"}).increment(1)
        await client.get_for_id("counter", "id1").increment(1)
    first, second = transport.requests
    assert first.headers["x-rivet-conn-params"] == '{"user":"u"}'
    assert first.headers["x-rivet-token"] == "tok"
    assert first.target.endswith("&rvt-crash-policy=sleep&rvt-token=tok")
    assert second.target == "/gateway/id1@tok/action/increment"


@pytest.mark.asyncio
async def test_action_name_is_uri_encoded() -> None:
    client, transport, _ = make(counter_server(), disable_metadata_lookup=True)
    async with client:
        with pytest.raises(ActorError):
            await client.get_for_id("counter", "id1").action("a b/c")
    assert transport.requests[0].target == "/gateway/id1/action/a%20b%2Fc"


# MARK: errors


@pytest.mark.parametrize("encoding", ["bare", "json", "cbor"])
@pytest.mark.asyncio
async def test_user_error(encoding: str) -> None:
    client, _, _ = make(counter_server(), encoding=encoding, disable_metadata_lookup=True)
    async with client:
        with pytest.raises(ActorError) as info:
            await client.counter.get_or_create(["k"]).fail()
    error = info.value
    assert (error.group, error.code, error.message, error.metadata) == (
        "user",
        "negative_amount",
        "no",
        {"a": 1},
    )
    assert error.status == 400


@pytest.mark.parametrize("encoding", ["bare", "cbor"])
@pytest.mark.asyncio
async def test_error_in_request_encoding(encoding: str) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            500,
            content=http_error_to("core", "internal_error", "hidden", None, encoding),
            headers={"content-type": "application/octet-stream"},
        )

    client, _, _ = make(respond, encoding=encoding, disable_metadata_lookup=True)
    async with client:
        with pytest.raises(ActorError) as info:
            await client.get_for_id("counter", "x").increment()
    assert (info.value.group, info.value.code, info.value.status) == ("core", "internal_error", 500)


@pytest.mark.asyncio
async def test_network_error_is_actor_error() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, _, _ = make(respond, disable_metadata_lookup=True)
    async with client:
        with pytest.raises(ActorError) as info:
            await client.get_for_id("counter", "x").increment()
    assert (info.value.group, info.value.code) == ("client", "http_request_error")


@pytest.mark.asyncio
async def test_undecodable_success_body() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\x09\x09garbage")

    client, _, _ = make(respond, disable_metadata_lookup=True)
    async with client:
        with pytest.raises(ActorError) as info:
            await client.get_for_id("counter", "x").increment()
    assert (info.value.group, info.value.code) == ("protocol", "invalid_http_response")


# MARK: retries


def failing_then(fails: list[dict[str, str]], then: Responder) -> Responder:
    remaining = list(fails)

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/metadata" and remaining:
            return json_response(503, remaining.pop(0))
        return then(request)

    return respond


NOT_FOUND = {"group": "actor", "code": "not_found", "message": "starting up"}


@pytest.mark.asyncio
async def test_get_or_create_retries_lifecycle_errors() -> None:
    client, transport, sleep = make(failing_then([NOT_FOUND] * 3, counter_server()))
    async with client:
        assert await client.counter.get_or_create(["k"]).increment(1) == 1
    assert sleep.delays == [0.1, 0.1, 0.1]
    assert len(transport.requests) == 5  # metadata + 3 failures + success


@pytest.mark.asyncio
async def test_get_gives_up_after_24_tries() -> None:
    client, transport, sleep = make(failing_then([NOT_FOUND] * 100, counter_server()))
    async with client:
        with pytest.raises(ActorError) as info:
            await client.counter.get(["k"]).increment(1)
    assert info.value.code == "not_found"
    assert len(transport.requests) == 1 + 24
    assert len(sleep.delays) == 23


@pytest.mark.asyncio
async def test_get_or_create_gives_up_after_60_tries() -> None:
    client, transport, _ = make(failing_then([NOT_FOUND] * 100, counter_server()))
    async with client:
        with pytest.raises(ActorError):
            await client.counter.get_or_create(["k"]).increment(1)
    assert len(transport.requests) == 1 + 60


@pytest.mark.asyncio
async def test_retry_options() -> None:
    retry = RetryOptions(get_attempts=2, interval=0.5)
    client, _transport, sleep = make(failing_then([NOT_FOUND] * 9, counter_server()), retry=retry)
    async with client:
        with pytest.raises(ActorError):
            await client.counter.get(["k"]).increment(1)
    assert sleep.delays == [0.5]


@pytest.mark.asyncio
async def test_for_id_does_not_retry_not_found() -> None:
    client, _transport, sleep = make(failing_then([NOT_FOUND], counter_server()))
    async with client:
        with pytest.raises(ActorError):
            await client.get_for_id("counter", "id").increment(1)
    assert sleep.delays == []


@pytest.mark.asyncio
async def test_lifecycle_boundary_retries_on_any_handle() -> None:
    restarting = {"group": "actor", "code": "restarting", "message": "m"}
    client, _, sleep = make(failing_then([restarting] * 4, counter_server()))
    async with client:
        assert await client.get_for_id("counter", "id").increment(1) == 1
    assert sleep.delays == [0.025, 0.05, 0.1, 0.2]
    client, _, sleep = make(failing_then([restarting] * 5, counter_server()))
    async with client:
        with pytest.raises(ActorError):
            await client.get_for_id("counter", "id").increment(1)
    assert len(sleep.delays) == 4


@pytest.mark.asyncio
async def test_no_retry_on_other_errors() -> None:
    client, _transport, sleep = make(counter_server())
    async with client:
        with pytest.raises(ActorError) as info:
            await client.counter.get_or_create(["k"]).nope()
    assert info.value.code == "action_not_found"
    assert sleep.delays == []


# MARK: metadata lookup


@pytest.mark.asyncio
async def test_metadata_retries_with_backoff() -> None:
    calls = {"n": 0}
    server = counter_server()

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metadata":
            calls["n"] += 1
            if calls["n"] <= 3:
                raise httpx.ConnectError("refused", request=request)
        return server(request)

    client, _, sleep = make(respond)
    async with client:
        assert await client.counter.get_or_create(["k"]).increment(1) == 1
        assert await client.counter.get_or_create(["k"]).increment(1) == 2
    assert sleep.delays == [0.5, 1.0, 2.0]
    assert calls["n"] == 4


@pytest.mark.asyncio
async def test_metadata_gives_up_after_timeout() -> None:
    now = [0.0]

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, content=b"bad gateway")

    transport = RecordingTransport(respond)
    client = Client(EP, transport=transport, metadata_timeout=10.0)
    client._session.clock = lambda: now[0]

    async def fake_sleep(delay: float) -> None:
        now[0] += delay

    client._session.sleep = fake_sleep
    async with client:
        with pytest.raises(ActorError) as info:
            await client.counter.get_or_create(["k"]).increment(1)
    assert (info.value.group, info.value.code) == ("client", "metadata_lookup_failed")
    # 0.5 + 1 + 2 + 4 = 7.5 s slept; the next delay (8 s) would end past 10 s.
    assert now[0] == 7.5
    assert len(transport.requests) == 5


@pytest.mark.asyncio
async def test_metadata_client_error_raises_at_once() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return json_response(403, {"group": "auth", "code": "forbidden", "message": "no"})

    client, transport, sleep = make(respond)
    async with client:
        with pytest.raises(ActorError) as info:
            await client.counter.get_or_create(["k"]).increment(1)
    assert (info.value.group, info.value.code) == ("auth", "forbidden")
    assert sleep.delays == [] and len(transport.requests) == 1


@pytest.mark.asyncio
async def test_metadata_overrides_endpoint_namespace_token() -> None:
    server = counter_server()

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metadata":
            return json_response(
                200,
                {
                    "clientEndpoint": "http://other:7000/",
                    "clientNamespace": "ns2",
                    "clientToken": "tok2",
                },
            )
        return server(request)

    client, transport, _ = make(respond)
    async with client:
        await client.counter.get_or_create(["k"]).increment(1)
        assert client.endpoint == "http://other:7000"
        assert (await client.metadata())["clientNamespace"] == "ns2"
    action = transport.requests[1]
    assert action.url.startswith("http://other:7000/gateway/counter/action/increment?")
    assert "rvt-namespace=ns2" in action.url and action.url.endswith("&rvt-token=tok2")


@pytest.mark.asyncio
async def test_closed_client() -> None:
    client, _, _ = make(counter_server())
    await client.close()
    with pytest.raises(ActorError) as info:
        await client.counter.get_or_create(["k"]).increment(1)
    assert info.value.code == "client_closed"


async def waiting_caller() -> tuple[Client, asyncio.Future[Any]]:
    """A client whose metadata lookup never answers, and a caller waiting on it."""
    hang = asyncio.Event()

    async def respond(request: httpx.Request) -> httpx.Response:
        await hang.wait()
        raise AssertionError("never answered")

    client = Client(EP, transport=httpx.MockTransport(respond))
    caller = asyncio.ensure_future(client.counter.get_or_create(["k"]).increment(1))
    for _ in range(5):
        await asyncio.sleep(0)
    return client, caller


@pytest.mark.asyncio
async def test_caller_cancelled_as_the_client_closes_stays_cancelled() -> None:
    """A caller waiting for the metadata lookup, cancelled in the same loop turn as the client
    closes, ends cancelled: its cancellation is not turned into ``client_closed`` (a retry
    loop catching Exception would swallow that and the task would never end)."""
    client, caller = await waiting_caller()
    session = client._session
    session._closed = True  # what close() does first, then it cancels the lookup
    assert session._metadata_task is not None
    session._metadata_task.cancel()
    caller.cancel()
    await client.close()
    with pytest.raises(asyncio.CancelledError):
        await caller


@pytest.mark.asyncio
async def test_caller_waiting_when_the_client_closes_gets_client_closed() -> None:
    client, caller = await waiting_caller()
    await client.close()
    with pytest.raises(ActorError) as info:
        await caller
    assert info.value.code == "client_closed"


def test_sniffio_is_installed() -> None:
    """httpcore imports sniffio on each pooled request; without it every request retried the
    failed import (a sys.path scan): a dependency of ours, so the client is not slowed."""
    import importlib.util

    assert importlib.util.find_spec("sniffio") is not None


# MARK: manager API


def manager(answers: dict[str, httpx.Response]) -> Responder:
    server = counter_server()

    def respond(request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        if key in answers:
            return answers[key]
        return server(request)

    return respond


ACTOR = {"actor_id": "id-42", "name": "counter", "key": "k", "create_ts": 1}


@pytest.mark.asyncio
async def test_resolve_get_or_create_puts_actors() -> None:
    respond = manager({"PUT /actors": json_response(200, {"actor": ACTOR, "created": True})})
    client, transport, _ = make(respond, token="tok")
    async with client:
        handle = client.counter.get_or_create(["k", "a/b"], input={"n": 1})
        assert await handle.resolve() == "id-42"
    put = transport.requests[1]
    assert f"{put.method} {put.target}" == "PUT /actors?namespace=default"
    assert put.headers["content-type"] == "application/json"
    assert put.headers["authorization"] == "Bearer tok"
    body = json.loads(put.body)
    assert list(body) == ["name", "key", "runner_name_selector", "crash_policy", "input"]
    assert body["key"] == "k/a\\/b"
    assert body["runner_name_selector"] == "default" and body["crash_policy"] == "sleep"
    assert cbor2.loads(base64.b64decode(body["input"])) == {"n": 1}


@pytest.mark.asyncio
async def test_resolve_get_by_key() -> None:
    respond = manager({"GET /actors": json_response(200, {"actors": [ACTOR]})})
    client, transport, _ = make(respond)
    async with client:
        assert await client.counter.get(["k", "a,b"]).resolve() == "id-42"
    assert transport.lines()[1] == "GET /actors?name=counter&key=k%2Fa%2Cb&namespace=default"


@pytest.mark.asyncio
async def test_resolve_get_missing() -> None:
    respond = manager({"GET /actors": json_response(200, {"actors": []})})
    client, _, _ = make(respond)
    async with client:
        with pytest.raises(ActorError) as info:
            await client.counter.get(["k"]).resolve()
    assert (info.value.group, info.value.code) == ("actor", "not_found")


@pytest.mark.asyncio
async def test_resolve_key_reserved_falls_back_to_get() -> None:
    reserved = {"group": "actor", "code": "key_reserved_in_different_datacenter", "message": "m"}
    respond = manager(
        {
            "PUT /actors": json_response(400, reserved),
            "GET /actors": json_response(200, {"actors": [ACTOR]}),
        }
    )
    client, _, _ = make(respond)
    async with client:
        assert await client.counter.get_or_create(["k"]).resolve() == "id-42"


@pytest.mark.asyncio
async def test_create_then_direct_actions() -> None:
    respond = manager({"POST /actors": json_response(200, {"actor": ACTOR})})
    client, transport, _ = make(respond)
    async with client:
        handle = await client.counter.create(["k"], input=[1, 2], region="eu")
        assert handle.actor_id == "id-42" and await handle.resolve() == "id-42"
        assert await handle.increment(3) == 3
    post = transport.requests[1]
    assert f"{post.method} {post.target}" == "POST /actors?namespace=default"
    body = json.loads(post.body)
    assert list(body) == [
        "datacenter",
        "name",
        "runner_name_selector",
        "key",
        "input",
        "crash_policy",
    ]
    assert body["datacenter"] == "eu" and body["key"] == "k"
    assert cbor2.loads(base64.b64decode(body["input"])) == [1, 2]
    assert transport.lines()[2] == "POST /gateway/id-42/action/increment"


@pytest.mark.asyncio
async def test_manager_error_and_invalid_answer() -> None:
    respond = manager(
        {
            "POST /actors": json_response(
                400, {"group": "actor", "code": "invalid_request", "message": "bad name"}
            ),
            "PUT /actors": json_response(200, {"nope": 1}),
        }
    )
    client, _, _ = make(respond)
    async with client:
        with pytest.raises(ActorError) as info:
            await client.create("nope")
        assert info.value.code == "invalid_request"
        with pytest.raises(ActorError) as info:
            await client.nope.get_or_create().resolve()
        assert (info.value.group, info.value.code) == ("client", "invalid_response")


@pytest.mark.asyncio
async def test_input_checks() -> None:
    client, _, _ = make(counter_server())
    async with client:
        with pytest.raises(ActorError) as info:
            client.counter.get_or_create(["k"], input="x" * 5000)
        assert info.value.code == "input_too_large"
        with pytest.raises(EncodeError):
            client.counter.get_or_create(["k"], input=object())
        handle = client.counter.get_or_create(["k"], input={"a": 1})
        assert handle.key == ["k"] and handle.name == "counter" and handle.actor_id is None
    with pytest.raises(TypeError):
        client.get_or_create("", "k")
    with pytest.raises(TypeError):
        client.get_for_id("counter", "")


@pytest.mark.asyncio
async def test_input_travels_in_url() -> None:
    client, transport, _ = make(counter_server(), disable_metadata_lookup=True)
    async with client:
        await client.counter.get_or_create(["k"], input={"start": 5}).increment(1)
    target = transport.requests[0].target
    assert "&rvt-key=k&rvt-input=" in target and target.endswith("&rvt-crash-policy=sleep")
    text = target.split("rvt-input=")[1].split("&")[0]
    assert cbor2.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == {"start": 5}


# MARK: queue and fetch


@pytest.mark.parametrize("encoding", ["bare", "json", "cbor"])
@pytest.mark.asyncio
async def test_queue_send(encoding: str) -> None:
    seen: list[Any] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(http_queue_send_request_from(request.content, encoding))
        return httpx.Response(
            200, content=http_queue_send_response_to("completed", {"doubled": 4}, encoding)
        )

    client, transport, _ = make(respond, encoding=encoding, disable_metadata_lookup=True)
    async with client:
        handle = client.get_for_id("worker", "w1")
        result = await handle.send("jobs", {"x": 2}, wait=True, timeout=1.5)
        assert result is not None
        assert (result.status, result.response) == ("completed", {"doubled": 4})
        assert await handle.send("jobs", {"x": 3}) is None
    assert transport.lines()[0] == "POST /gateway/w1/queue/jobs"
    assert seen[0].body == {"x": 2} and seen[0].wait is True and seen[0].timeout == 1500
    assert seen[0].name == "jobs" and seen[1].wait is False


@pytest.mark.asyncio
async def test_fetch() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, content=b"teapot " + request.content)

    client, transport, _ = make(respond, disable_metadata_lookup=True)
    async with client:
        response = await client.get_for_id("c", "i").fetch(
            "/hello?x=1", method="POST", content="hi"
        )
    assert response.status_code == 418 and response.content == b"teapot hi"
    assert transport.lines() == ["POST /gateway/i/request/hello?x=1"]

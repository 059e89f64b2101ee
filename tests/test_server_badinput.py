"""Bad input everywhere: every malformed request is answered with a RivetError (never a
500 carrying a traceback, never a hang) and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from urllib.parse import quote

import cbor2
import httpx
import pytest
import pytest_asyncio
from server_actors import gateway, query, registry
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from rivetkit.protocol.messages import decode_to_client
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=5) as client:
        yield client


def check(response: httpx.Response, *, allow_ok: bool = False) -> None:
    """A RivetError JSON answer with a 4xx status (or a success where the input was valid)."""
    if allow_ok and response.status_code == 200:
        return
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) >= {"group", "code", "message"}, body
    assert "Traceback" not in response.text


async def still_serving(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).text == "ok"
    response = await http.post(gateway("counter", "/action/getCount", key="alive"), json={})
    assert response.status_code == 200


def garbage_bodies() -> list[bytes]:
    rng = random.Random(1234)
    bodies = [
        b"",
        b"{",
        b"null",
        b"[]",
        b'"args"',
        b'{"args":',
        b"\xff\xfe\xfd",
        b'{"args":[["$Weird",1]]}',
        b'{"args":[["$BigInt","x"]]}',
        b'{"args":[["$Uint8Array",5]]}',
        b'{"args":[NaN]}',
        b"[" * 5000 + b"]" * 5000,
        b'{"args":' + b"[" * 600 + b"]" * 600 + b"}",
        b"\x04\x00",
        b"\x04\x00\x05\x81",
        b"\x09\x00\x01\x80",
        b"\x04\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x04\x00\x02\x81\x05trailing",
        b"\xa1\x64args\x81",
        b"\xbf\x64args\x9f\x01",
        b"\xd8\x1c\x81\xd8\x1d\x00",
        cbor2.dumps({"args": [1]})[:-1],
    ]
    for size in (1, 2, 3, 5, 8, 13, 40, 200):
        for _ in range(12):
            bodies.append(bytes(rng.getrandbits(8) for _ in range(size)))
    valid = b'{"args":[1]}'
    for cut in range(len(valid)):
        bodies.append(valid[:cut])
    return bodies


async def test_malformed_action_bodies(http: httpx.AsyncClient) -> None:
    bodies = garbage_bodies()
    assert len(bodies) > 100
    statuses: dict[int, int] = {}
    for encoding in ("json", "cbor", "bare"):
        url = gateway("misc", "/action/echo", key=f"bad-{encoding}")
        for body in bodies:
            response = await http.post(url, content=body, headers={"x-rivet-encoding": encoding})
            check(response, allow_ok=True)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses.get(400, 0) > 200
    await still_serving(http)


async def test_bad_queue_bodies(http: httpx.AsyncClient) -> None:
    for encoding in ("json", "cbor", "bare"):
        for body in garbage_bodies()[:60]:
            response = await http.post(
                gateway("misc", "/queue/q"), content=body, headers={"x-rivet-encoding": encoding}
            )
            check(response, allow_ok=True)  # some garbage is a valid (if odd) queue body
    await still_serving(http)


async def test_unknown_encodings(http: httpx.AsyncClient) -> None:
    for encoding in ("xml", "JSON", "bare\t1", "", "cbor;q=1", "x" * 300, "\u00e9"):
        response = await http.post(
            gateway("counter", "/action/increment"),
            content=b'{"args":[1]}',
            headers={"x-rivet-encoding": encoding.encode("utf-8")},
        )
        if encoding == "":
            check(response, allow_ok=True)  # an empty header means the default (json)
        else:
            check(response)
            assert response.json()["code"] in ("unsupported_encoding",)
    await still_serving(http)


async def test_bad_gateway_parameters(http: httpx.AsyncClient) -> None:
    base = "/gateway/counter/action/getCount"
    cases = [
        "?rvt-method=getOrCreate&rvt-nope=1",
        "?rvt-method=getOrCreate&rvt-key=a&rvt-key=b",
        "?rvt-method=getOrCreate&rvt-runner=a&rvt-pool=b",
        "?rvt-namespace=default",
        "?rvt-method=create",
        "?rvt-method=",
        "?rvt-method=getOrCreate&rvt-input=!!!",
        "?rvt-method=getOrCreate&rvt-input=AAAA",  # base64 of 3 zero bytes: trailing bytes
        "?rvt-method=getOrCreate&rvt-input=" + "A" * 50_000,
        "?rvt-method=getOrCreate&rvt-crash-policy=explode",
        "?rvt-method=getOrCreate&rvt-key=" + "k" * 200,
        "?rvt-method=getOrCreate&rvt-key=" + ",".join(["k" * 100] * 12),
        "?rvt-method=getOrCreate&rvt-key=%ff",
        "?rvt-%ff=1",
        "?RVT-method=getOrCreate&rvt-method=get&rvt-method=get",
    ]
    for suffix in cases:
        response = await http.post(base + suffix, json={"args": []})
        check(response)
    for path in (
        "/gateway/",
        "/gateway//action/x",
        f"/gateway/nobody/action/x?{query()}",
        f"/gateway/%ff%fe/action/x?{query()}",
        f"/gateway/{'n' * 300}/action/x?{query()}",
        "/gateway/unknownid/action/x",
        "/gateway/unknownid@token/action/x",
        "/gateway/@token/action/x",
        "/gateway/" + "i" * 400 + "/action/x",
        f"/gateway/counter/action/?{query()}",
        f"/gateway/counter/action/a/b?{query()}",
        f"/gateway/counter/action/%ff?{query()}",
        f"/gateway/counter/queue/?{query()}",
        f"/gateway/counter/inspector/x?{query()}",
    ):
        response = await http.post(path, json={"args": []})
        check(response)
    await still_serving(http)


async def test_bad_manager_requests(http: httpx.AsyncClient) -> None:
    for method, path, body in [
        ("PUT", "/actors", b"{"),
        ("PUT", "/actors", b"[]"),
        ("PUT", "/actors", b"{}"),
        ("PUT", "/actors", b'{"name":5}'),
        ("PUT", "/actors", b'{"name":"nobody","key":"k"}'),
        ("PUT", "/actors", b'{"name":"counter","key":5}'),
        ("PUT", "/actors", b'{"name":"counter","key":"k","input":5}'),
        ("PUT", "/actors", b'{"name":"counter","key":"k","input":"***"}'),
        ("POST", "/actors", b'{"name":"counter","key":"' + b"k" * 300 + b'"}'),
        ("POST", "/actors", b"\xff" * 10),
        ("PATCH", "/actors", b""),
        ("GET", "/actors/x", b""),
        ("DELETE", "/actors/", b""),
        ("DELETE", "/actors/nobody", b""),
        ("DELETE", "/actors/a/b", b""),
        ("GET", "/actors?name=counter&key=" + "k" * 2000, b""),
        ("PUT", "/actors", b'{"name":"counter","key":"big","input":"' + b"A" * 5_700_000 + b'"}'),
        ("PUT", "/actors", b'{"name":"counter","input":"' + b"A" * 9_000_000 + b'"}'),
    ]:
        response = await http.request(method, path, content=body)
        check(response)
    await still_serving(http)


async def test_bad_raw_paths_and_methods(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", gateway("counter", "/action/increment")),
        ("PUT", gateway("counter", "/queue/x")),
        ("POST", gateway("counter", "/metadata")),
        ("GET", gateway("counter", "/nothing/here")),
        ("GET", gateway("counter", "/request")),
        ("GET", "/nothing"),
        ("POST", "/health"),
        ("DELETE", "/"),
    ]:
        check(await http.request(method, path))
    await still_serving(http)


async def test_oversized_bodies(http: httpx.AsyncClient) -> None:
    huge = b"x" * (17 * 1024 * 1024)
    response = await http.post(gateway("misc", "/request/echo"), content=huge)
    check(response)
    assert response.json()["code"] == "incoming_too_long"
    response = await http.post(gateway("counter", "/action/increment"), content=huge[:100_000])
    check(response)
    await still_serving(http)


async def test_bad_websocket_input(endpoint: str) -> None:
    base = endpoint.replace("http://", "ws://")
    url = f"{base}/gateway/misc/connect?{query(key='ws-bad')}"
    rng = random.Random(99)
    frames: list[str | bytes] = [b"", "", "{", "null", b"\x04\x00", b"\x04\x00\x07", "\u00e9" * 10]
    frames += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))) for _ in range(20)]
    frames += ['{"body":{"tag":"Nope","val":{}}}', '{"body":{"tag":"ActionRequest","val":{}}}']
    count = 0
    for encoding in ("json", "cbor", "bare"):
        for frame in frames:
            ws = await connect(url, subprotocols=["rivet", f"rivet_encoding.{encoding}"])
            init = decode_to_client(await ws.recv(), encoding).body
            assert type(init).__name__ == "Init"
            await ws.send(frame)
            try:
                reply = await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed:
                reply = None
            if reply is not None:
                error = decode_to_client(reply, encoding).body
                assert type(error).__name__ == "Error", error
                assert error.action_id is None
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code in (1011, 1007)
            count += 1
    assert count >= 80
    # bad subprotocols
    for offered in (
        ["rivet", "rivet_encoding.msgpack"],
        ["rivet", "rivet_encoding.json", "rivet_conn_params.%7Bnope"],
        ["rivet", "rivet_encoding.json", "rivet_conn_params.%FF%FE"],
        [
            "rivet",
            "rivet_encoding.json",
            "rivet_conn_params." + quote(json.dumps({"a": "b" * 5000}), safe=""),
        ],
    ):
        ws = await connect(url, subprotocols=offered)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code in (1003, 1011)
    # oversized frame
    ws = await connect(url, subprotocols=["rivet", "rivet_encoding.bare"])
    await ws.recv()
    await ws.send(b"\x04\x00" + b"\x00" * 5000)
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert (ws.close_code, ws.close_reason) == (1011, "message.incoming_too_long")
    # unknown actor paths
    for path in (
        "/gateway/nosuch/connect",
        "/gateway//connect",
        "/nothing",
        f"/gateway/nobody/connect?{query()}",
    ):
        try:
            ws = await connect(base + path, subprotocols=["rivet"])
        except InvalidHandshake:
            continue
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code in (1003, 1011)
    async with httpx.AsyncClient(base_url=endpoint) as http:
        await still_serving(http)

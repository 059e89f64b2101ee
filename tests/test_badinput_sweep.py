"""A bad-input sweep over every HTTP route and every client WebSocket message type.

Thousands of malformed requests, seeded (the seed is printed; ``RIVETKIT_SWEEP_SEED`` replays
one, ``RIVETKIT_SWEEP_SCALE=N`` multiplies the input counts): random and mutated bodies in
json, cbor and bare, wrong content types and encodings, bad connection-params headers, bad
query parameters and paths, oversize and truncated bodies, raw malformed HTTP on the socket,
and malformed ``ActionRequest`` / ``SubscriptionRequest`` frames in every encoding.

For every one the server answers with a RivetError (JSON ``group``/``code``/``message``, a 4xx
status, no traceback) or a success when the input happened to be valid; a WebSocket gets an
``Error`` message or a close whose reason is ``group.code``; nothing is logged at ERROR level
(an unexpected exception), and a normal action still works afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import cbor2
import httpx
import pytest
import pytest_asyncio
from server_actors import gateway, query, registry
from test_server_badinput import garbage_bodies, still_serving
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import eventually, tasks_by_name
from rivetkit.errors import ProtocolError
from rivetkit.protocol import http_bodies, messages
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    HttpQueueSendRequest,
    SubscriptionRequest,
    ToServer,
)
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEED = int(os.environ.get("RIVETKIT_SWEEP_SEED", random.SystemRandom().randrange(1 << 32)))
SCALE = max(1, int(os.environ.get("RIVETKIT_SWEEP_SCALE", "1")))
ENCODINGS = ("json", "cbor", "bare")
#: Requests in flight at once.
PARALLEL = 16


class ErrorLog(logging.Handler):
    """Collects the ERROR records of the ``rivetkit`` loggers (unexpected exceptions)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


#: The server's tasks once it started, before any test of this module.
BASELINE_TASKS: Counter[str] = Counter()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    print(f"bad-input sweep seed {SEED} (RIVETKIT_SWEEP_SEED={SEED} replays it)")
    async with serve_in_background(registry) as url:
        BASELINE_TASKS.update(tasks_by_name())
        yield url


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def no_task_left_behind(endpoint: str) -> AsyncIterator[None]:
    """After each test (its client closed first), no request or socket of it left a task
    behind on the server: the tasks are those it had once started. Checked per test, so
    that it holds whatever order the tests run in, alone or together."""
    yield

    def settled() -> bool:
        return tasks_by_name() == BASELINE_TASKS

    try:
        await eventually(settled, timeout=20)
    finally:
        now = tasks_by_name()
        if now != BASELINE_TASKS:
            print(f"tasks: baseline {dict(BASELINE_TASKS)}, now {dict(now)}")


@pytest.fixture
def errors_logged() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logger = logging.getLogger("rivetkit")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    messages = [f"{r.name}: {r.getMessage()}" for r in handler.records]
    assert not messages, messages[:5]


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=PARALLEL)
    async with httpx.AsyncClient(base_url=endpoint, timeout=30, limits=limits) as client:
        yield client


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}:{name}")


# -- inputs -------------------------------------------------------------------------------------


def mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(data) + 1)
        op = rng.randrange(6)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4)))
        elif op == 2:
            del data[pos : pos + rng.randint(1, 4)]
        elif op == 3:
            del data[pos:]
        elif op == 4 and data:
            data[min(pos, len(data) - 1)] = rng.choice([0, 0x7F, 0x80, 0xFF, 0x22, 0x5B])
        else:
            data += rng.choice([b"\x00", b"}", b"]", b"\xff" * 9, b'"$BigInt"'])
    return bytes(data)


def random_tree(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([0, -1, 1 << 60, 1 << 70, 2**53, 1.5, True, False])
    if kind == 2:
        return rng.choice(["", "x", "$BigInt", "\u00e9", "a" * 50, "ActionRequest"])
    if kind == 3:
        return [rng.choice(["$BigInt", "$Uint8Array", "$Set", "$Undefined", "$Nope", "$$a"]),
                rng.choice(["12", "-1", "AAAA", "!", 5, None, []])]  # fmt: skip
    if kind == 4:
        return rng.choice([[], {}, "args", {"args": None}, {"args": "x"}])
    if kind in (5, 6):
        keys = ["args", "body", "wait", "timeout", "name", "id", "tag", "val", "x"]
        return {rng.choice(keys): random_tree(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [random_tree(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def encode_tree(tree: Any, encoding: str) -> bytes:
    if encoding == "json":
        return json.dumps(tree).encode()
    raw = cbor2.dumps(tree)
    if encoding == "cbor":
        return raw
    return b"\x04\x00" + bytes([min(len(raw), 127)]) + raw  # a bare body holding the CBOR


def action_bodies(rng: random.Random, encoding: str, count: int) -> list[bytes]:
    valid = [
        http_bodies.http_action_request_to(args, encoding) for args in ([], [1], ["a", None], [[1]])
    ]
    bodies = list(garbage_bodies()[:: max(1, 8 // SCALE)])
    while len(bodies) < count:
        pick = rng.randrange(4)
        if pick == 0:
            bodies.append(mutate(rng, rng.choice(valid)))
        elif pick == 1:
            bodies.append(encode_tree(random_tree(rng), encoding))
        elif pick == 2:
            bodies.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))))
        else:
            raw = rng.choice(valid)
            bodies.append(raw[: rng.randrange(len(raw) + 1)])
    return bodies


def _waits(body: bytes, encoding: str) -> bool:
    try:
        return bool(http_bodies.http_queue_send_request_from(body, encoding).wait)
    except ProtocolError:
        return False


def queue_bodies(rng: random.Random, encoding: str, count: int) -> list[bytes]:
    valid = [
        http_bodies.http_queue_send_request_to(
            HttpQueueSendRequest(body, "q", None, None), encoding
        )
        for body in (1, "x", None, [1, {"a": 2}])
    ]
    bodies: list[bytes] = []
    while len(bodies) < count:
        pick = rng.randrange(3)
        if pick == 0:
            body = mutate(rng, rng.choice(valid))
        elif pick == 1:
            body = encode_tree(random_tree(rng), encoding)
        else:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 48)))
        if not _waits(body, encoding):  # nobody consumes the queue: a wait would just wait
            bodies.append(body)
    return bodies


CONTENT_TYPES = ["application/json", "application/octet-stream", "text/plain",
                 "multipart/form-data; boundary=x", "application/cbor", "\u00ff", ""]  # fmt: skip
CONN_PARAMS = [b"{", b"null", b'{"a":1}', b"\xff\xfe", b"[" * 3000, b'"' + b"x" * 9000 + b'"',
               b'{"deny":true}', b"1e999999", b"%7B%7D"]  # fmt: skip


def random_headers(rng: random.Random, encoding: str) -> dict[str, Any]:
    headers: dict[str, Any] = {"x-rivet-encoding": encoding}
    if rng.random() < 0.3:
        headers["content-type"] = rng.choice(CONTENT_TYPES).encode("utf-8")
    if rng.random() < 0.2:
        headers["x-rivet-conn-params"] = rng.choice(CONN_PARAMS)
    if rng.random() < 0.05:
        headers["x-rivet-encoding"] = rng.choice([b"xml", b"", b"JSON", b"\xff", b"bare,json"])
    return headers


# -- checks -------------------------------------------------------------------------------------


def check_answer(response: httpx.Response, what: str) -> None:
    """A success, or a 4xx RivetError in JSON without a traceback."""
    text = response.text
    assert "Traceback" not in text, (what, text[:300])
    if response.status_code < 400:
        return
    assert 400 <= response.status_code < 500, (what, response.status_code, text[:300])
    assert response.headers.get("content-type") == "application/json", (what, text[:200])
    if response.request.method == "HEAD":
        return  # no body
    body = response.json()
    assert {"group", "code", "message"} <= set(body), (what, body)
    assert all(isinstance(body[k], str) for k in ("group", "code", "message")), (what, body)


async def send_all(http: httpx.AsyncClient, requests: list[tuple[str, str, Any, Any]]) -> int:
    """Send ``(method, url, body, headers)`` requests, PARALLEL at a time; check every answer."""
    queue = list(reversed(requests))

    async def worker() -> None:
        while queue:
            method, url, body, headers = queue.pop()
            response = await http.request(method, url, content=body, headers=headers)
            check_answer(response, f"{method} {url[:120]} {str(body)[:80]} {headers}")

    await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    return len(requests)


# -- HTTP ---------------------------------------------------------------------------------------


async def test_action_and_queue_bodies(http: httpx.AsyncClient, errors_logged: ErrorLog) -> None:
    rng = rng_for("bodies")
    actor_id = (await http.put("/actors", json={"name": "misc", "key": "sweep-direct"})).json()[
        "actor"
    ]["actor_id"]
    requests: list[tuple[str, str, Any, Any]] = []
    for encoding in ENCODINGS:
        for body in action_bodies(rng, encoding, 250 * SCALE):
            url = rng.choice(
                [
                    gateway("misc", "/action/echo", key="sweep"),
                    gateway("counter", "/action/increment", key="sweep"),
                    gateway("misc", "/action/nope", key="sweep"),
                    f"/gateway/{actor_id}/action/echo",
                ]
            )
            requests.append(("POST", url, body, random_headers(rng, encoding)))
        for body in queue_bodies(rng, encoding, 120 * SCALE):
            url = rng.choice(
                [gateway("misc", "/queue/q", key="sweep"), f"/gateway/{actor_id}/queue/q"]
            )
            requests.append(("POST", url, body, random_headers(rng, encoding)))
    count = await send_all(http, requests)
    print(f"{count} action and queue bodies")
    assert count >= 1000
    await still_serving(http)


ACTOR_PATHS = ["/action/echo", "/action/", "/action/a/b", "/action/%ff", "/action/" + "n" * 500,
               "/queue/q", "/queue/", "/queue/%c3%28", "/metadata", "/health", "/", "/connect",
               "/websocket/x", "/inspector/x", "/request/json", "/request/echo", "/nothing",
               "//action/echo", "/action/echo/", "/action/%2e%2e"]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
QUERIES = ["", "a=1", "a", "=", "&&", "%ff=1", "a=%ff", "x=" + "y" * 3000, "s=1&s=2", "%"]


def random_rvt_query(rng: random.Random) -> str:
    names = ["rvt-namespace", "rvt-method", "rvt-runner", "rvt-key", "rvt-input", "rvt-region",
             "rvt-crash-policy", "rvt-token", "rvt-skip-ready-wait", "rvt-pool", "rvt-x", "x"]  # fmt: skip
    values = ["get", "getOrCreate", "create", "", "sleep", "k", "a,b", "%ff", "oA", "AAAA", "!!",
              "k" * 200, ",".join(["k" * 100] * 12), "%2C", "+", "default"]  # fmt: skip
    parts = [f"{rng.choice(names)}={rng.choice(values)}" for _ in range(rng.randint(0, 6))]
    if rng.random() < 0.5:
        parts = ["rvt-method=getOrCreate", "rvt-key=sweep", *parts]
    return "&".join(parts)


async def test_routes_methods_and_queries(http: httpx.AsyncClient, errors_logged: ErrorLog) -> None:
    rng = rng_for("routes")
    actor_id = (await http.put("/actors", json={"name": "misc", "key": "sweep-routes"})).json()[
        "actor"
    ]["actor_id"]
    requests: list[tuple[str, str, Any, Any]] = []
    for _ in range(700 * SCALE):
        path = rng.choice(ACTOR_PATHS)
        method = rng.choice(METHODS)
        form = rng.randrange(4)
        extra = rng.choice(QUERIES)
        if form == 0:
            url = f"/gateway/{rng.choice(['misc', 'counter', 'chat', 'nobody', '%ff'])}{path}"
            url += "?" + "&".join(filter(None, [random_rvt_query(rng), extra]))
        elif form == 1:
            token = rng.choice(["", "@tok", "@", "@%ff"])
            url = f"/gateway/{actor_id}{token}{path}" + (f"?{extra}" if extra else "")
        elif form == 2:
            url = f"/gateway/{rng.choice(['x', '', '@', 'a' * 300])}{path}?{extra}"
        else:
            url = gateway("misc", path, key="sweep") + (f"&{extra}" if extra else "")
        body = rng.choice([b"", b"{}", b'{"args":[]}', b"\xff" * 10])
        if method in ("GET", "HEAD", "OPTIONS") and rng.random() < 0.8:
            body = b""
        requests.append((method, url, body, random_headers(rng, rng.choice(ENCODINGS))))
    count = await send_all(http, requests)
    print(f"{count} route / method / query combinations")
    await still_serving(http)


async def test_manager_api(http: httpx.AsyncClient, errors_logged: ErrorLog) -> None:
    rng = rng_for("manager")
    valid = [
        {"name": "counter", "key": "m", "runner_name_selector": "default", "crash_policy": "sleep"},
        {"name": "misc", "key": "m/n", "input": "oWFhAQ=="},
    ]
    requests: list[tuple[str, str, Any, Any]] = []
    for _ in range(400 * SCALE):
        pick = rng.randrange(5)
        namespace = rng.choice(["", "?namespace=default", "?namespace=%ff", "?namespace="])
        if pick <= 1:
            tree = dict(rng.choice(valid))
            for _ in range(rng.randint(1, 3)):
                tree[rng.choice(["name", "key", "input", "crash_policy", "datacenter", "x"])] = (
                    random_tree(rng)
                )
            body = (
                mutate(rng, json.dumps(tree).encode())
                if rng.random() < 0.3
                else json.dumps(tree).encode()
            )
            requests.append((rng.choice(["PUT", "POST"]), "/actors" + namespace, body,
                             {"content-type": rng.choice(CONTENT_TYPES).encode()}))  # fmt: skip
        elif pick == 2:
            params = rng.choice(["name=counter&key=", "actor_ids=", "name=", "key=k", "", "x=1",
                                 "name=counter&key=%ff", "actor_ids=a,b,,c", "name=nobody",
                                 "actor_ids=" + ",".join(["x"] * 500)])  # fmt: skip
            value = rng.choice(["", "k", "%2F", "\\", "a\\/b", "k" * 2000, "%00"])
            requests.append(("GET", f"/actors?{params}{value}", b"", {}))
        elif pick == 3:
            ident = rng.choice(["", "x", "%ff", "a/b", "i" * 400, "..", "%2F"])
            requests.append((rng.choice(["DELETE", "GET", "PUT"]), f"/actors/{ident}", b"", {}))
        else:
            path = rng.choice(["/metadata", "/health", "/", "/actors/", "/gateway", "/x", "/%ff"])
            requests.append((rng.choice(METHODS), path + rng.choice(["", "?a", "?%ff"]), b"", {}))
    count = await send_all(http, requests)
    print(f"{count} manager API requests")
    await still_serving(http)


async def test_oversize_and_truncated(http: httpx.AsyncClient, errors_logged: ErrorLog) -> None:
    big = b"[" + b"1," * 600_000 + b"1]"
    for encoding in ENCODINGS:
        for body in (b'{"args":' + big + b"}", b"\x04\x00\xff\xff\xff\x0f" + b"\x00" * 1000,
                     cbor2.dumps({"args": list(range(100_000))})):  # fmt: skip
            response = await http.post(
                gateway("counter", "/action/increment", key="big"),
                content=body,
                headers={"x-rivet-encoding": encoding},
            )
            check_answer(response, "oversize")

    # Chunked bodies of unknown length, cut short or too long.
    async def chunks(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 65536):
            yield b"x" * 65536

    response = await http.post(gateway("misc", "/action/echo", key="big"), content=chunks(20 << 20))
    check_answer(response, "chunked oversize")
    assert response.status_code == 413 or response.status_code == 400
    await still_serving(http)


RAW_REQUESTS = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"POST /actors HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{}",
    b"POST /actors HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
    b"POST /actors HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /health HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n",
    b"GET /health HTTP/9.9\r\nHost: localhost\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET /gateway/misc/connect?rvt-method=getOrCreate HTTP/1.1\r\nHost: localhost\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET /gateway/misc/connect?rvt-method=getOrCreate HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket"
    b"\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!\r\nSec-WebSocket-Version: 7\r\n\r\n",
    b"POST /gateway/misc/action/echo?rvt-method=getOrCreate HTTP/1.1\r\nHost: localhost\r\n"
    b'Content-Length: 50\r\nx-rivet-encoding: json\r\n\r\n{"args":',
]


async def test_raw_malformed_http(endpoint: str, http: httpx.AsyncClient) -> None:
    host, port = endpoint.removeprefix("http://").split(":")
    for raw in RAW_REQUESTS:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(raw)
            await writer.drain()
            writer.write_eof()  # the client stops sending (bodies are cut short)
            try:
                head = await asyncio.wait_for(reader.read(4096), 10)
            except (ConnectionError, asyncio.TimeoutError):
                head = b""
            status = re.match(rb"HTTP/1\.[01] (\d{3})", head)
            if status is not None:
                assert int(status.group(1)) < 500 or int(status.group(1)) == 505, head[:300]
            assert b"Traceback" not in head
        finally:
            writer.close()
    await still_serving(http)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_wrong_argument_counts(
    endpoint: str, http: httpx.AsyncClient, errors_logged: ErrorLog, encoding: str
) -> None:
    """Arguments that do not fit an action's signature (with or without type hints) are the
    client's error: ``actor/validation_error`` (400), not an internal error."""
    cases = [("sleepy", "bump", [1, 2]), ("misc", "params", [1]), ("misc", "fail", []),
             ("misc", "big", []), ("misc", "slow", [0, 1, 2, 3])]  # fmt: skip
    for name, action, args in cases:
        response = await http.post(
            gateway(name, f"/action/{action}", key="arity"),
            content=http_bodies.http_action_request_to(args, encoding),
            headers={"x-rivet-encoding": encoding},
        )
        check_answer(response, f"{action}{args}")
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "validation_error", response.text
    url = endpoint.replace("http://", "ws://") + f"/gateway/misc/connect?{query(key='arity')}"
    ws = await open_conn(url, encoding)
    for i, (_, action, args) in enumerate(cases[1:]):
        await ws.send(messages.encode_to_server(ToServer(ActionRequest(i, action, args)), encoding))
        reply = messages.decode_to_client(await asyncio.wait_for(ws.recv(), 10), encoding).body
        assert type(reply).__name__ == "Error", reply
        assert (reply.code, reply.action_id) == ("validation_error", i), reply
    await ws.close()
    await still_serving(http)


# -- WebSocket ----------------------------------------------------------------------------------


def frame_of(tree: Any, encoding: str) -> str | bytes:
    if encoding == "json":
        return json.dumps(tree)
    return cbor2.dumps(tree)


def bad_frames(rng: random.Random, encoding: str, count: int) -> list[str | bytes]:
    valid = [
        messages.encode_to_server(ToServer(ActionRequest(7, "echo", [1, "a"])), encoding),
        messages.encode_to_server(ToServer(ActionRequest(8, "nope", [])), encoding),
        messages.encode_to_server(ToServer(ActionRequest(9, "fail", ["c"])), encoding),
        messages.encode_to_server(ToServer(ActionRequest(10, "fail", [])), encoding),
        messages.encode_to_server(ToServer(ActionRequest(11, "params", [1, 2])), encoding),
        messages.encode_to_server(ToServer(SubscriptionRequest("ev", True)), encoding),
        messages.encode_to_server(ToServer(SubscriptionRequest("ev", False)), encoding),
    ]
    frames: list[str | bytes] = [b"", "", b"\x04\x00", "{}", "null", "\u00e9" * 10]
    while len(frames) < count:
        pick = rng.randrange(5)
        base = rng.choice(valid)
        if pick == 0:
            raw = mutate(rng, base if isinstance(base, bytes) else base.encode())
            frames.append(raw.decode("utf-8", "replace") if encoding == "json" else raw)
        elif pick == 1:
            tag = rng.choice(["ActionRequest", "SubscriptionRequest", "Nope", 5, None])
            val = random_tree(rng)
            if isinstance(val, dict) and rng.random() < 0.6:
                val.setdefault("id", rng.choice([1, -1, 1 << 64, ["$BigInt", "3"], "x", None]))
                val.setdefault("name", rng.choice(["echo", "", 5, "nope"]))
                val.setdefault("args", random_tree(rng))
                val.setdefault("eventName", rng.choice(["ev", "", 1]))
                val.setdefault("subscribe", rng.choice([True, 1, "yes", None]))
            frames.append(frame_of({"body": {"tag": tag, "val": val}}, encoding))
        elif pick == 2:
            frames.append(base[: rng.randrange(len(base))])
        elif pick == 3:  # the other frame type than the encoding expects
            frames.append(base.encode() if isinstance(base, str) else base.decode("latin-1"))
        else:
            frames.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))))
    return frames


CLOSE_REASON = re.compile(r"^[a-z_]+\.[a-z_]+$")


async def open_conn(url: str, encoding: str) -> ClientConnection:
    ws = await connect(url, subprotocols=["rivet", f"rivet_encoding.{encoding}"])  # type: ignore[list-item]
    init = messages.decode_to_client(await asyncio.wait_for(ws.recv(), 10), encoding).body
    assert type(init).__name__ == "Init"
    return ws


async def test_websocket_messages(
    endpoint: str, http: httpx.AsyncClient, errors_logged: ErrorLog
) -> None:
    base = endpoint.replace("http://", "ws://")
    url = f"{base}/gateway/misc/connect?{query(key='ws-sweep')}"
    total = closes = errors = 0
    for encoding in ENCODINGS:
        rng = rng_for(f"ws-{encoding}")
        probe_id = 1 << 40
        probe = messages.encode_to_server(
            ToServer(ActionRequest(probe_id, "echo", ["probe"])), encoding
        )
        ws = await open_conn(url, encoding)
        for frame in bad_frames(rng, encoding, 220 * SCALE):
            total += 1
            await ws.send(frame)
            try:
                await ws.send(probe)
                while True:  # until the probe's answer (the socket is healthy) or a close
                    reply = messages.decode_to_client(
                        await asyncio.wait_for(ws.recv(), 10), encoding
                    )
                    kind = type(reply.body).__name__
                    assert kind in ("Error", "ActionResponse", "Event"), reply
                    if kind == "Error":
                        errors += 1
                        assert reply.body.group and reply.body.code and reply.body.message
                        assert "Traceback" not in reply.body.message
                    if kind == "ActionResponse" and reply.body.id == probe_id:
                        assert reply.body.output == ["probe"]
                        break
            except ConnectionClosed:
                closes += 1
                assert ws.close_code in (1003, 1007, 1008, 1011), (ws.close_code, frame)
                assert CLOSE_REASON.match(ws.close_reason or ""), (ws.close_reason, frame)
                ws = await open_conn(url, encoding)
        await ws.close()
    print(f"{total} WebSocket frames: {closes} closes, {errors} Error messages")
    assert total >= 600
    assert closes > 0
    await still_serving(http)

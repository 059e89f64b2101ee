"""Origins, CORS and Host checks of the embedded server (issue 14, "seen 3" / "build 3").

Real servers on 127.0.0.1: a foreign web page's request or WebSocket runs nothing, a
DNS-rebound ``Host`` is refused, loopback pages get RivetKit's CORS answers, and the options
(``cors_origins``, ``allowed_hosts``, ``--cors-origin``, ``--allowed-host``) widen them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from server_actors import registry
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rivetkit.server import serve_in_background
from rivetkit.server.cors import (
    OriginPolicy,
    host_matches,
    is_loopback_name,
    origin_matches,
    parse_origin,
)

module_loop = pytest.mark.asyncio(loop_scope="module")

EVIL = "http://evil.example"
LOCAL_APP = "http://localhost:5173"
QUERY = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key={key}"


def action_path(name: str, key: str) -> str:
    return f"/gateway/counter/action/{name}?" + QUERY.format(key=key)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=10) as client:
        yield client


async def count(http: httpx.AsyncClient, key: str) -> int:
    """The counter's value, read by a non-browser client (no Origin)."""
    response = await http.post(action_path("getCount", key), json={"args": []})
    assert response.status_code == 200, response.text
    return int(response.json()["output"])


def assert_refused(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/json"
    assert "access-control-allow-origin" not in response.headers
    body: dict[str, Any] = response.json()
    assert (body["group"], body["code"]) == ("request", code)
    assert isinstance(body["message"], str) and body["message"]
    return body


async def raw_upgrade(endpoint: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send a WebSocket upgrade by hand (any Host); the answer's status and what follows."""
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [
        f"GET {path} HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: rivet, rivet_encoding.json",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status = int(head.split(b" ", 2)[1])
        rest = b""
        if status != 101:
            rest = await asyncio.wait_for(reader.read(4096), 5)
        return status, rest
    finally:
        writer.close()


# -- the policy, as pure functions --------------------------------------------------------------


def test_parse_origin() -> None:
    assert parse_origin("http://localhost:3000") == ("http", "localhost", "3000")
    assert parse_origin("HTTPS://App.Example.com:443") == ("https", "app.example.com", None)
    assert parse_origin("http://[::1]:8080") == ("http", "::1", "8080")
    for bad in ("null", "localhost:3000", "http://", "http://a/b", "http://a:99999", "http://a:x"):
        assert parse_origin(bad) is None, bad


def test_origin_patterns() -> None:
    assert origin_matches("http://localhost:1234", "http://localhost:*")
    assert origin_matches("http://localhost", "http://localhost:*")
    assert not origin_matches("https://localhost:1234", "http://localhost:*")
    assert not origin_matches("http://localhost.evil.example:1", "http://localhost:*")
    assert origin_matches("https://a.example.com", "https://*.example.com")
    assert not origin_matches("https://example.com", "https://*.example.com")
    assert not origin_matches("https://a.example.com:8443", "https://*.example.com")
    assert origin_matches("https://app.example.com:443", "https://app.example.com")
    assert origin_matches("http://anything.example", "*")
    assert origin_matches("null", "null") and not origin_matches("null", "http://localhost:*")


def test_loopback_names_and_hosts() -> None:
    for name in ("localhost", "LOCALHOST.", "app.localhost", "127.0.0.1", "127.8.9.10", "::1"):
        assert is_loopback_name(name), name
    for name in ("localhost.evil.example", "evil.example", "10.0.0.1", "0.0.0.0", "::"):
        assert not is_loopback_name(name), name
    assert host_matches("app.example.com", "app.example.com")
    assert host_matches("a.example.com", "*.example.com")
    assert host_matches("a.example.com", ".example.com")
    assert not host_matches("example.com", "*.example.com")
    assert host_matches("anything", "*")


def test_policy_defaults() -> None:
    policy = OriginPolicy(listen_host="127.0.0.1")
    for host in ("127.0.0.1:6420", "localhost:6420", "[::1]:6420", "a.localhost"):
        assert policy.host_allowed(host), host
    assert not policy.host_allowed("attacker.example:6420")
    assert policy.host_allowed(None)  # HTTP/1.0 tools send none
    for origin in ("http://localhost:5173", "https://127.0.0.1", "http://[::1]:3000"):
        assert policy.origin_allowed(origin, "127.0.0.1:6420"), origin
    assert not policy.origin_allowed(EVIL, "127.0.0.1:6420")
    assert not policy.origin_allowed("null", "127.0.0.1:6420")


def test_policy_listeners() -> None:
    # Not loopback: no Host check unless hosts are given.
    assert OriginPolicy(listen_host="0.0.0.0").host_allowed("attacker.example")
    assert OriginPolicy(listen_host="::").host_allowed("attacker.example")
    assert OriginPolicy(listen_host="::1").host_allowed("localhost") is True
    assert not OriginPolicy(listen_host="::1").host_allowed("attacker.example")
    assert not OriginPolicy(listen_host="localhost").host_allowed("attacker.example")
    given = OriginPolicy(listen_host="0.0.0.0", allowed_hosts=["app.example.com"])
    assert given.host_allowed("app.example.com:80") and given.host_allowed("localhost")
    assert not given.host_allowed("attacker.example")
    # Unknown listener (create_app under another ASGI server): only allowed_hosts turn it on.
    assert OriginPolicy().host_allowed("attacker.example")
    assert OriginPolicy(listen_host="127.0.0.1", allowed_hosts=["*"]).host_allowed("x.example")


def test_policy_verdicts_are_stable_past_the_cache(caplog: pytest.LogCaptureFixture) -> None:
    policy = OriginPolicy(listen_host="127.0.0.1")
    caplog.set_level(logging.WARNING, "rivetkit.server")
    for round_ in range(2):  # the second round answers from the cache (where it holds them)
        for i in range(300):
            _, refusal = policy.check([(b"host", b"h%d.example" % i)])
            assert refusal is not None and refusal.code == "forbidden_host", (round_, i)
            origin = b"http://o%d.example" % i
            _, refusal = policy.check([(b"host", b"localhost:1"), (b"origin", origin)])
            assert refusal is not None and refusal.code == "forbidden_origin", (round_, i)
        echoed, refusal = policy.check([(b"host", b"localhost:1"), (b"origin", b"http://[::1]:9")])
        assert (echoed, refusal) == (b"http://[::1]:9", None)
    # Each refused value is logged once, while the cache holds it.
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert sum("'h0.example'" in m for m in refused) == 1
    assert sum("'http://o0.example'" in m for m in refused) == 1
    assert 2 * 250 < len(refused) <= 2 * 256  # bounded by the cache, not by the traffic


def test_policy_options() -> None:
    restricted = OriginPolicy(cors_origins=["https://app.example.com"])
    assert restricted.origin_allowed("https://app.example.com", "api.example.com")
    assert not restricted.origin_allowed(LOCAL_APP, "127.0.0.1:6420")  # replaces the default
    # The server's own pages are same-origin.
    assert restricted.origin_allowed("http://127.0.0.1:6420", "127.0.0.1:6420")
    assert not restricted.origin_allowed("https://api.example.com", "api.example.com:443")
    vetted = OriginPolicy(cors_origins=[], allowed_hosts=["api.example.com"])
    assert vetted.origin_allowed("https://api.example.com", "api.example.com:443")
    # A rebound name is same-origin with its page, but not vetted: refused.
    assert not OriginPolicy(listen_host="0.0.0.0").origin_allowed(
        "http://attacker.example:6420", "attacker.example:6420"
    )
    assert OriginPolicy(cors_origins=["*"]).origin_allowed(EVIL, "127.0.0.1:1")
    with pytest.raises(TypeError):
        OriginPolicy(cors_origins="http://localhost:*")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OriginPolicy(allowed_hosts=[""])


# -- seen 3: what a foreign page could do ---------------------------------------------------------


@module_loop
async def test_simple_cross_origin_post_runs_nothing(http: httpx.AsyncClient) -> None:
    before = await count(http, "simple")
    response = await http.post(
        action_path("increment", "simple"),
        content=b'{"args":[1]}',
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
    )
    body = assert_refused(response, "forbidden_origin")
    assert body["metadata"] == {"origin": EVIL}
    assert await count(http, "simple") == before


@module_loop
async def test_foreign_origin_refused_before_the_actor_exists(http: httpx.AsyncClient) -> None:
    # getOrCreate would create the actor: the refusal comes first, so none exists after.
    response = await http.post(
        action_path("increment", "never-created"), json={"args": [1]}, headers={"Origin": EVIL}
    )
    assert_refused(response, "forbidden_origin")
    listed = await http.get("/actors", params={"name": "counter", "key": "never-created"})
    assert listed.json() == {"actors": []}
    for method, path in (("GET", "/metadata"), ("PUT", "/actors"), ("GET", "/")):
        response = await http.request(method, path, headers={"Origin": EVIL})
        assert_refused(response, "forbidden_origin")


@module_loop
async def test_foreign_origin_websocket_is_refused(endpoint: str, http: httpx.AsyncClient) -> None:
    url = endpoint.replace("http://", "ws://") + "/gateway/counter/connect?"
    url += QUERY.format(key="ws-evil")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin=EVIL, subprotocols=["rivet"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 403
    body = json.loads(refused.value.response.body or b"{}")
    assert (body["group"], body["code"]) == ("request", "forbidden_origin")
    listed = await http.get("/actors", params={"name": "counter", "key": "ws-evil"})
    assert listed.json() == {"actors": []}
    # The same socket from a loopback page (and from a non-browser) opens and gets Init.
    for origin in (LOCAL_APP, None):
        async with connect(url, origin=origin, subprotocols=["rivet"]) as ws:  # type: ignore[arg-type, list-item]
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["body"]["tag"] == "Init"


@module_loop
async def test_rebound_host_is_refused(endpoint: str, http: httpx.AsyncClient) -> None:
    before = await count(http, "rebind")
    response = await http.post(
        action_path("increment", "rebind"),
        json={"args": [1]},
        headers={"Host": "attacker.example:6420"},
    )
    body = assert_refused(response, "forbidden_host")
    assert body["metadata"] == {"host": "attacker.example:6420"}
    assert await count(http, "rebind") == before
    # Even with an Origin of the rebound name (the page's own, to the browser).
    response = await http.get(
        "/metadata",
        headers={"Host": "attacker.example", "Origin": "http://attacker.example"},
    )
    assert_refused(response, "forbidden_host")
    path = "/gateway/counter/connect?" + QUERY.format(key="rebind")
    status, rest = await raw_upgrade(endpoint, path, {"Host": "attacker.example"})
    assert status == 403 and b"forbidden_host" in rest
    status, _ = await raw_upgrade(endpoint, path, {"Host": "localhost"})
    assert status == 101


# -- build 3: CORS for allowed pages ---------------------------------------------------------------


@module_loop
async def test_preflight_of_an_allowed_origin(http: httpx.AsyncClient) -> None:
    response = await http.options(
        action_path("increment", "pre"),
        headers={
            "Origin": LOCAL_APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-rivet-encoding",
        },
    )
    assert response.status_code == 204, response.text
    headers = response.headers
    assert headers["access-control-allow-origin"] == LOCAL_APP
    assert headers["access-control-allow-credentials"] == "true"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "content-type,x-rivet-encoding"
    assert headers["access-control-max-age"] == "86400"
    assert headers["vary"] == "Origin"
    assert response.content == b""
    listed = await http.get("/actors", params={"name": "counter", "key": "pre"})
    assert listed.json() == {"actors": []}  # a preflight creates nothing


@module_loop
async def test_preflight_of_a_foreign_origin(http: httpx.AsyncClient) -> None:
    response = await http.options(
        action_path("increment", "pre"),
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert_refused(response, "forbidden_origin")


@module_loop
async def test_actual_responses_carry_cors_headers(http: httpx.AsyncClient) -> None:
    for origin in (LOCAL_APP, "http://127.0.0.1:8080", "https://[::1]:1"):
        response = await http.post(
            action_path("increment", "cors"), json={"args": [1]}, headers={"Origin": origin}
        )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["access-control-expose-headers"] == "*"
        assert response.headers["vary"] == "Origin"
    # Errors too, so the page can read them.
    response = await http.post(
        action_path("nope", "cors"), json={"args": []}, headers={"Origin": LOCAL_APP}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "action_not_found"
    assert response.headers["access-control-allow-origin"] == LOCAL_APP
    # No Origin: no CORS headers (non-browser clients).
    response = await http.get("/metadata")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


@module_loop
async def test_options_without_preflight_goes_to_the_routes(http: httpx.AsyncClient) -> None:
    response = await http.options("/metadata", headers={"Origin": LOCAL_APP})
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["access-control-allow-origin"] == LOCAL_APP


@module_loop
async def test_cors_origins_option() -> None:
    app_origin = "https://app.example.com"
    async with (
        serve_in_background(registry, cors_origins=[app_origin]) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        path = action_path("increment", "opt")
        ok = await http.post(path, json={"args": [1]}, headers={"Origin": app_origin})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == app_origin
        local = await http.post(path, json={"args": [1]}, headers={"Origin": LOCAL_APP})
        assert_refused(local, "forbidden_origin")
        own = await http.get("/metadata", headers={"Origin": url})  # same-origin page
        assert own.status_code == 200
    async with (
        serve_in_background(registry, cors_origins=["*"]) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        ok = await http.get("/metadata", headers={"Origin": EVIL})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == EVIL


@module_loop
async def test_allowed_hosts_option() -> None:
    async with (
        serve_in_background(registry, allowed_hosts=["*.example.com"]) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        ok = await http.get("/metadata", headers={"Host": "app.example.com"})
        assert ok.status_code == 200
        assert (await http.get("/metadata", headers={"Host": "localhost"})).status_code == 200
        refused = await http.get("/metadata", headers={"Host": "example.org"})
        assert_refused(refused, "forbidden_host")


@module_loop
async def test_non_loopback_listener_skips_the_host_check() -> None:
    async with serve_in_background(registry, host="0.0.0.0") as url:
        port = url.rsplit(":", 1)[1]
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(
                f"http://127.0.0.1:{port}/metadata", headers={"Host": "api.example.com"}
            )
            assert response.status_code == 200
            # The Origin check stays.
            response = await http.get(f"http://127.0.0.1:{port}/metadata", headers={"Origin": EVIL})
            assert_refused(response, "forbidden_origin")


# -- the command line --------------------------------------------------------------------------------


def test_cli_options(tmp_path: Path) -> None:
    from test_server_cli import ROOT, free_port, rivetkit, wait_healthy

    port = free_port()
    proc = rivetkit(
        "serve",
        str(ROOT / "examples" / "counter.py"),
        "--port",
        str(port),
        "--data",
        str(tmp_path / "data"),
        "--cors-origin",
        "https://app.example.com",
        "--cors-origin",
        "http://localhost:*",
        "--allowed-host",
        "api.example.com",
    )
    try:
        wait_healthy(port, proc)
        base = f"http://127.0.0.1:{port}"
        cases = [
            ({"Origin": "https://app.example.com"}, 200),
            ({"Origin": LOCAL_APP}, 200),
            ({"Origin": EVIL}, 403),
            ({"Host": "api.example.com"}, 200),
            ({"Host": "attacker.example"}, 403),
        ]
        for headers, status in cases:
            response = httpx.get(base + "/metadata", headers=headers, timeout=5)
            assert response.status_code == status, (headers, response.text)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

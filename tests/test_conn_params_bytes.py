"""The 4 KiB limit of connection params counts encoded bytes, not characters, on both paths
(the ``x-rivet-conn-params`` header of HTTP requests and the ``rivet_conn_params.``
subprotocol of WebSockets); real server on 127.0.0.1."""

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

from rivetkit import actor, setup
from rivetkit.protocol.client_protocol import Error, Init
from rivetkit.protocol.messages import decode_to_client
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

echo = actor("paramsecho", state={})


@echo.action
def params(c: Any) -> Any:
    return c.conn.params


registry = setup(use=[echo])
QUERY = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k"
# Percent-encoded, the subprotocol must stay under the handshake's 8 KiB header line.
#: 3,400 characters, 4,200 UTF-8 bytes: over the limit although under 4,096 characters.
WIDE = "a" * 3000 + "€" * 400
#: 2,500 characters, 3,500 UTF-8 bytes (+ the JSON around them): fits.
FITS = "a" * 2000 + "€" * 500


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


async def first_frame(endpoint: str, value: Any) -> Any:
    url = endpoint.replace("http://", "ws://") + "/gateway/paramsecho/connect?" + QUERY
    protocol = "rivet_conn_params." + quote(json.dumps({"v": value}, ensure_ascii=False), safe="")
    async with connect(url, subprotocols=["rivet", protocol], max_size=None) as ws:  # type: ignore[list-item]
        return decode_to_client(await asyncio.wait_for(ws.recv(), 10), "json").body


async def test_subprotocol_params_count_bytes(endpoint: str) -> None:
    assert len(json.dumps({"v": WIDE}, ensure_ascii=False)) < 4096
    refused = await first_frame(endpoint, WIDE)
    assert isinstance(refused, Error)
    assert (refused.group, refused.code) == ("actor", "invalid_request")
    assert isinstance(await first_frame(endpoint, FITS), Init)


async def test_header_params_count_bytes(endpoint: str) -> None:
    url = f"{endpoint}/gateway/paramsecho/action/params?{QUERY}"
    async with httpx.AsyncClient() as http:
        wide = json.dumps({"v": WIDE}, ensure_ascii=False).encode()
        response = await http.post(url, json={"args": []}, headers={"x-rivet-conn-params": wide})
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_request"
        fits = json.dumps({"v": FITS}, ensure_ascii=False).encode()
        response = await http.post(url, json={"args": []}, headers={"x-rivet-conn-params": fits})
        assert response.status_code == 200, response.text
        assert response.json()["output"] == {"v": FITS}

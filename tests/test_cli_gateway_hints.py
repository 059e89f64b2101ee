"""Errors that teach how to address an actor: a registered name used as an actor id, an
unknown name, an unknown id (real server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from server_actors import gateway, registry

from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_in_background(registry) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield client


async def test_registered_name_without_query_parameters(http: httpx.AsyncClient) -> None:
    response = await http.post("/gateway/counter/action/increment", json={"args": [1]})
    assert response.status_code == 404
    body = response.json()
    assert (body["group"], body["code"]) == ("actor", "not_found")
    message = body["message"]
    assert "'counter' is an actor name, not an actor id" in message
    example = "/gateway/counter/action/increment?rvt-method=getOrCreate&rvt-key=my-key"
    assert f"POST {example}" in message
    assert body["metadata"]["example"] == example
    assert body["metadata"]["name"] == "counter"
    assert "rvt-method" in body["metadata"]["parameters"]
    # The example works as printed.
    response = await http.post(example, json={"args": [2]})
    assert response.status_code == 200 and response.json() == {"output": 2}


async def test_registered_name_get_route(http: httpx.AsyncClient) -> None:
    response = await http.get("/gateway/counter/metadata")
    body = response.json()
    assert response.status_code == 404 and body["code"] == "not_found"
    assert "GET /gateway/counter/metadata?rvt-method=getOrCreate" in body["message"]


async def test_unknown_id_lists_the_names(http: httpx.AsyncClient) -> None:
    response = await http.post("/gateway/nobody/action/x", json={"args": []})
    body = response.json()
    assert response.status_code == 404
    assert (body["group"], body["code"]) == ("actor", "not_found")
    assert "registered names: counter, chat, misc, sleepy" in body["message"]
    assert body["metadata"]["registered"] == ["counter", "chat", "misc", "sleepy"]


async def test_unknown_name_in_query_form_lists_the_names(http: httpx.AsyncClient) -> None:
    response = await http.post(gateway("nobody", "/action/x"), json={"args": []})
    body = response.json()
    assert response.status_code == 400
    assert (body["group"], body["code"]) == ("actor", "invalid_request")
    assert "no actor named 'nobody' is registered" in body["message"]
    assert "counter" in body["metadata"]["registered"]


async def test_a_real_actor_id_still_works(http: httpx.AsyncClient) -> None:
    response = await http.put("/actors", json={"name": "counter", "key": "hint-id"})
    actor_id = response.json()["actor"]["actor_id"]
    response = await http.post(f"/gateway/{actor_id}/action/increment", json={"args": [3]})
    assert response.json() == {"output": 3}

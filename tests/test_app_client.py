"""``create_app(registry).client()``: host code in the same process calls actors in process.

A real FastAPI app served by uvicorn on 127.0.0.1 mounts the RivetApp at ``/rivet`` with its
lifespan (as the FastAPI guide does); its routes call actors through ``rivet.client()``: a
value, an actor's user error turned into an HTTP answer, and an actor that itself calls
another through ``c.client()``. A remote client through the mount sees the same actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from rivetkit.client import ActorError, Client
from rivetkit.server import create_app
from tests.actor_calls_app import registry

pytestmark = pytest.mark.asyncio


def make_api(data_dir: str) -> FastAPI:
    rivet = create_app(registry, data_dir=data_dir)
    api = FastAPI(lifespan=rivet.lifespan)  # starts and stops the actors
    api.mount("/rivet", rivet)
    api.state.rivet = rivet

    @api.post("/add/{key}")
    async def add(key: str, x: int = 1) -> dict[str, Any]:
        return {"n": await rivet.client().acct.get_or_create([key]).add(x)}

    @api.post("/relay/{key}")
    async def relay(key: str, to: str, x: int = 1) -> dict[str, Any]:
        return {"n": await rivet.client().acct.get_or_create([key]).call_add(to, x)}

    @api.post("/fail")
    async def fail() -> Any:
        try:
            await rivet.client().acct.get_or_create(["f"]).fail()
        except ActorError as exc:
            return JSONResponse(
                {"group": exc.group, "code": exc.code, "metadata": exc.metadata}, status_code=409
            )
        return {}

    return api


@contextlib.asynccontextmanager
async def serve(api: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(api, log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def test_fastapi_route_calls_actors_in_process() -> None:
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data_dir:
        api = make_api(data_dir)
        rivet = api.state.rivet
        async with serve(api) as base:
            async with httpx.AsyncClient(base_url=base) as http:
                response = await http.post("/add/a", params={"x": 5})
                assert response.json() == {"n": 5}
                response = await http.post("/relay/a", params={"to": "b", "x": 2})
                assert response.json() == {"n": 2}
                response = await http.post("/fail")
                assert response.status_code == 409
                assert response.json() == {
                    "group": "user",
                    "code": "bad_luck",
                    "metadata": {"tries": 3},
                }
            # The actors the routes reached are the ones a remote client sees.
            async with Client(f"{base}/rivet") as client:
                assert await client.acct.get_or_create(["a"]).add(0) == 5
                assert await client.acct.get_or_create(["b"]).add(0) == 2
            assert rivet.client() is rivet.client()
        assert not rivet.started  # the lifespan stopped the runtime

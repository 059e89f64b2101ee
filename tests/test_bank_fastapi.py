"""The in-process client from a FastAPI route: ``create_app(registry).client()``.

A FastAPI app mounts the bank's gateway and offers ``POST /transfer``, whose route calls the
``bank`` actor with ``rivet.client()``. The app is driven through httpx's ASGI transport: no
server listens anywhere, so a call that went out over loopback HTTP would fail to connect.
An ``insufficient_funds`` error reaches the route as an ``ActorError`` it maps to a 409.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

fastapi = pytest.importorskip("fastapi")

from test_bank import registry  # noqa: E402

from rivetkit.client import ActorError  # noqa: E402
from rivetkit.server import create_app  # noqa: E402


def make_api(data_dir: Path) -> tuple[Any, Any]:
    rivet = create_app(registry, data_dir=str(data_dir), listen_host="127.0.0.1")
    api = fastapi.FastAPI(lifespan=rivet.lifespan)
    api.mount("/rivet", rivet)

    @api.post("/accounts/{key}/deposit")
    async def deposit(key: str, amount: int) -> dict[str, int]:
        balance = await rivet.client().account.get_or_create([key]).deposit(amount)
        return {"balance": balance}

    @api.post("/transfer")
    async def transfer(source: str, target: str, amount: int) -> Any:
        try:
            return (
                await rivet.client().bank.get_or_create(["main"]).transfer(source, target, amount)
            )
        except ActorError as error:
            status = 409 if error.code == "insufficient_funds" else 400
            raise fastapi.HTTPException(
                status, {"code": error.code, "metadata": error.metadata}
            ) from None

    return api, rivet


@pytest.mark.asyncio
async def test_a_route_calls_the_bank_in_process(tmp_path: Path) -> None:
    api, rivet = make_api(tmp_path)
    async with rivet.lifespan(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            r = await http.post("/accounts/alice/deposit", params={"amount": 100})
            assert r.json() == {"balance": 100}
            r = await http.post(
                "/transfer", params={"source": "alice", "target": "bob", "amount": 25}
            )
            assert (r.status_code, r.json()) == (200, {"from": 75, "to": 25})
            r = await http.post(
                "/transfer", params={"source": "bob", "target": "alice", "amount": 26}
            )
            assert r.status_code == 409
            assert r.json() == {
                "detail": {
                    "code": "insufficient_funds",
                    "metadata": {"balance": 25, "amount": 26},
                }
            }
            # the gateway under the mount path sees the same actors
            r = await http.post(
                "/rivet/gateway/account/action/balance?rvt-method=get&rvt-key=bob",
                json={"args": []},
            )
            assert r.json() == {"output": 25}
        # the same client object every call, the one the actors use
        assert rivet.client() is rivet.client()
    assert not rivet.started

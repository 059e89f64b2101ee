"""The bank example through the official TypeScript client (npm rivetkit@2.3.19).

``tests/interop/bank.mjs`` drives ``bank.transfer`` (which calls the ``account`` actors
through ``c.client()``) in bare, json and cbor against ``rivetkit serve examples/app.py``,
first embedded, then as an envoy of the session's real engine
(``--engine URL --pool P``, the client going through the engine's gateway): the transfer
moves the money, ``user/insufficient_funds`` reaches the TypeScript caller with its metadata,
bad amounts are refused, and the same over a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_interop import run_script, serve_embedded, serve_on_engine
from test_engine_cli import Serve

from rivetkit.client import SyncClient
from rivetkit.drivers.engine import LocalEngine


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Serve, str]]:
    with serve_embedded(tmp_path / "data") as served:
        yield served


@pytest.fixture
def on_engine(rivet_engine: LocalEngine, tmp_path: Path) -> Iterator[tuple[Serve, str]]:
    with serve_on_engine(rivet_engine, tmp_path / "data") as served:
        yield served


def test_bank_embedded_with_the_official_client(embedded: tuple[Serve, str]) -> None:
    serve, endpoint = embedded
    run_script("bank.mjs", endpoint, serve=serve)
    assert serve.stop() == 0, serve.output


def test_bank_on_the_engine_with_the_official_client(
    on_engine: tuple[Serve, str], rivet_engine: LocalEngine
) -> None:
    serve, pool = on_engine
    run_script("bank.mjs", rivet_engine.endpoint, "--pool", pool, serve=serve)
    # The Python client through the gateway sees the same bank.
    with SyncClient(rivet_engine.endpoint, pool=pool) as client:
        client.account.get_or_create(["py-a"]).deposit(9)
        bank = client.bank.get_or_create(["py"])
        assert bank.transfer("py-a", "py-b", 4) == {"from": 5, "to": 4}
        assert client.account.get(["py-b"]).balance() == 4
    assert serve.stop() == 0, serve.output
    assert "envoy stopped" in serve.output

"""The order example (a durable workflow) through the official TypeScript client (npm
rivetkit@2.3.19).

``tests/interop/order.mjs`` creates an order per encoding (bare, json, cbor), sends the ``pay``
queue message and polls ``status()`` until the workflow has charged once and, after its
2-second cool-down, shipped; a second ``pay`` message charges nothing. It runs against
``rivetkit serve examples/app.py``, first embedded, then as an envoy of the session's real
engine (``--engine URL --pool P``, the client going through the engine's gateway), where the
workflow's history is also read through the gateway's inspector route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_interop import run_script, serve_embedded, serve_on_engine
from test_engine_cli import Serve

from rivetkit.client import SyncClient
from rivetkit.drivers.engine import LocalEngine

#: The inspector token of every actor of the engine-mode server (a test-only variable).
TOKEN = "order-interop-token"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Serve, str]]:
    with serve_embedded(tmp_path / "data") as served:
        yield served


@pytest.fixture
def on_engine(
    rivet_engine: LocalEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Serve, str]]:
    monkeypatch.setenv("_RIVET_TEST_INSPECTOR_TOKEN", TOKEN)
    with serve_on_engine(rivet_engine, tmp_path / "data") as served:
        yield served


def test_order_embedded_with_the_official_client(embedded: tuple[Serve, str]) -> None:
    serve, endpoint = embedded
    run_script("order.mjs", endpoint, serve=serve)
    assert serve.stop() == 0, serve.output


def test_order_on_the_engine_with_the_official_client(
    on_engine: tuple[Serve, str], rivet_engine: LocalEngine
) -> None:
    serve, pool = on_engine
    run_script("order.mjs", rivet_engine.endpoint, "--pool", pool, serve=serve)
    # The Python client through the gateway sees the same workflow.
    with SyncClient(rivet_engine.endpoint, pool=pool) as client:
        order = client.order.get_or_create(["py"])
        assert order.status() == {"status": "new", "charges": 0}
        order.send("pay", {"amount": 7})
        for _ in range(600):
            if order.status()["status"] == "shipped":
                break
            time.sleep(0.05)
        assert order.status() == {"status": "shipped", "charges": 1, "amount": 7}
        actor_id = order.resolve()
    # The workflow's history through the engine's gateway and the inspector.
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
        answer = http.get(f"{rivet_engine.endpoint}/gateway/{actor_id}/inspector/workflow-history")
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["isWorkflowEnabled"] is True and view["workflowState"] == "completed"
    names = view["history"]["nameRegistry"]
    steps = {
        names[entry["location"][-1]["val"]]
        for entry in view["history"]["entries"]
        if entry["kind"]["tag"] == "WorkflowStepEntry"
    }
    assert steps == {"charge", "ship"}
    assert serve.stop() == 0, serve.output
    assert "envoy stopped" in serve.output

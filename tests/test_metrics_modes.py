"""``GET /metrics`` answers the same on the embedded server and on the engine-mode listener:
one handler (:func:`rivetkit.metrics.exposition.scrape_response`) behind both, so
``RIVETKIT_METRICS_TOKEN`` and ``RIVETKIT_METRICS`` behave the same in both modes.

The embedded mode is a real server on 127.0.0.1; the engine mode is the listener's ASGI app
(:class:`~rivetkit.drivers.engine.serve.StatusApp`) over a real runtime, with a stub for the
envoy status it reads (the real engine is exercised in ``test_engine_cli.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from rivetkit import actor, setup
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_test

counter = actor("counter", state={"n": 0})


@counter.action
def inc(c: Any) -> int:
    """Add one."""
    c.state["n"] += 1
    return int(c.state["n"])


registry = setup(use=[counter])


class _StubEnvoy:
    """What the engine-mode listener reads of its engine driver."""

    def status(self) -> dict[str, Any]:
        return {"connected": True, "actors": {}, "pending_events": 0, "stats": {}, "tunnel": {}}


Scrape = Callable[..., Any]


@contextlib.asynccontextmanager
async def _embedded(tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_in_background(registry, data_dir=tmp_path) as endpoint,
        httpx.AsyncClient(base_url=str(endpoint), timeout=30) as http,
    ):
        yield http


@contextlib.asynccontextmanager
async def _engine(tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    from rivetkit.drivers.engine.serve import StatusApp

    async with setup_test(registry, tmp_path) as client:
        app = StatusApp(_StubEnvoy(), client.runtime)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http


MODES = {"embedded": _embedded, "engine": _engine}


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", sorted(MODES))
async def test_token_required_when_set(
    mode: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVETKIT_METRICS_TOKEN", "s3cret")
    async with MODES[mode](tmp_path) as http:
        missing = await http.get("/metrics")
        assert (missing.status_code, missing.text) == (401, "unauthorized\n")
        wrong = await http.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await http.get("/metrics", headers={"authorization": "bearer  s3cret"})
        assert ok.status_code == 200
        assert "rivetkit_info" in ok.text
        assert ok.headers["content-type"].startswith("text/plain; version=")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", sorted(MODES))
async def test_open_without_token(
    mode: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RIVETKIT_METRICS_TOKEN", raising=False)
    async with MODES[mode](tmp_path) as http:
        response = await http.get("/metrics")
        assert response.status_code == 200
        assert "rivetkit_info" in response.text
        # The engine-mode listener puts the envoy's families first.
        assert ("rivetkit_envoy_connected 1" in response.text) == (mode == "engine")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", sorted(MODES))
async def test_metrics_off(mode: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVETKIT_METRICS", "0")
    monkeypatch.setenv("RIVETKIT_METRICS_TOKEN", "s3cret")
    async with MODES[mode](tmp_path) as http:
        response = await http.get("/metrics", headers={"authorization": "Bearer s3cret"})
        assert (response.status_code, response.text) == (403, "metrics not enabled\n")

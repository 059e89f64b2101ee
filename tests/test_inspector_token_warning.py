"""The test-only inspector token override (``_RIVET_TEST_INSPECTOR_TOKEN``) logs a WARNING
once, at its first use, over a real server on 127.0.0.1; nothing is logged when it is unset."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from rivetkit import actor, setup
from rivetkit.inspector import token as token_module
from rivetkit.inspector.token import TOKEN_ENV, warn_test_token
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

probe = actor("probe", state={"n": 0})


@probe.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


registry = setup(use=[probe])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


def override_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if TOKEN_ENV in r.getMessage()]


async def test_no_warning_when_unset(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rivetkit.inspector")
    monkeypatch.setattr(token_module, "_warned", False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert warn_test_token() is False
    assert override_warnings(caplog) == []


async def test_override_warns_once_at_first_use(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rivetkit.inspector")
    monkeypatch.setattr(token_module, "_warned", False)
    monkeypatch.setenv(TOKEN_ENV, "a-known-test-token")
    async with httpx.AsyncClient(base_url=endpoint, timeout=15) as http:
        created = await http.put("/actors", json={"name": "probe", "key": "warned"})
        assert created.status_code == 200, created.text
        actor_id = created.json()["actor"]["actor_id"]
        for _ in range(2):
            response = await http.get(
                f"/gateway/{actor_id}/inspector/summary",
                headers={"Authorization": "Bearer a-known-test-token"},
            )
            assert response.status_code == 200, response.text
    (warning,) = override_warnings(caplog)
    assert warning.levelno == logging.WARNING
    assert "tests only" in warning.getMessage()
    assert "never set it in production" in warning.getMessage()
    assert warn_test_token() is True
    assert len(override_warnings(caplog)) == 1

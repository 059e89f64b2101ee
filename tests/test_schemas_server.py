"""Declared schemas on a real server (``serve_in_background``, 127.0.0.1) with the Python
client in the three encodings: queue sends over HTTP, connection params over HTTP and
WebSocket, events over WebSocket (valid, invalid, undeclared; see tests/schemas_checks.py)."""

from __future__ import annotations

import pytest

from rivetkit.client import Client
from rivetkit.server import serve_in_background
from tests.schemas_app import registry
from tests.schemas_checks import check_conn_params, check_events, check_queues

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("encoding", ["json", "cbor", "bare"])
async def test_schemas_on_a_real_server(encoding: str) -> None:
    async with (
        serve_in_background(registry) as endpoint,
        Client(endpoint, encoding=encoding) as client,
    ):
        await check_queues(client, encoding)
        await check_conn_params(client, encoding)
        await check_events(client, encoding)

"""One suite, two drivers: ``test_server_ws.py`` (the ``/connect`` protocol) on the engine
driver, through the engine's gateway (see ``test_engine_suite_servers.py``).

Three tests stay embedded-only because the engine's gateway answers before our envoy sees
anything: it refuses a WebSocket that offers no subprotocol (``guard.missing_header``; so the
"no rivet protocol" and raw-socket tests, which connect without one, cannot pass there), and
it closes a socket to a malformed actor id with ``core.internal_error`` ("invalid actor id in
path") rather than ``actor.not_found``. Raw WebSockets through the engine are covered in
``test_engine.py`` (with a subprotocol).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import test_server_ws as ws_suite
from engine_fixtures import envoy
from test_engine_suite_servers import EngineEndpoint

from rivetkit.drivers.engine import LocalEngine

pytestmark = pytest.mark.asyncio(loop_scope="module")

test_connect_actions_and_events = ws_suite.test_connect_actions_and_events
test_bare_wire_bytes = ws_suite.test_bare_wire_bytes
test_cbor_ids_are_64_bit = ws_suite.test_cbor_ids_are_64_bit
test_json_ids_are_bigints = ws_suite.test_json_ids_are_bigints
test_chat_broadcast_and_params = ws_suite.test_chat_broadcast_and_params
test_refused_connection = ws_suite.test_refused_connection
test_concurrent_actions_answer_by_id = ws_suite.test_concurrent_actions_answer_by_id
test_ws_message_size_limits = ws_suite.test_ws_message_size_limits
test_event_over_limit_is_dropped = ws_suite.test_event_over_limit_is_dropped
test_disconnect_runs_and_conn_leaves = ws_suite.test_disconnect_runs_and_conn_leaves


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint(rivet_engine: LocalEngine) -> AsyncIterator[Any]:
    async with envoy(ws_suite.registry, rivet_engine, pool="default") as (runtime, _):
        endpoint = EngineEndpoint(rivet_engine.endpoint)
        endpoint.app = SimpleNamespace(runtime=runtime)
        yield endpoint

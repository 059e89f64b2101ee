"""One suite, two drivers: the server tests of connections and queues, on the engine driver.

``test_conn_server.py`` and ``test_queue_server.py`` run on the embedded server through an
``endpoint`` fixture. Their test functions are imported here, where ``endpoint`` is instead
the session's real engine, with the same registry running in this process as an envoy of
pool ``default`` in a namespace of its own (the tests use the official client's defaults).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import test_conn_server as conn_suite
import test_queue_server as queue_suite
from engine_fixtures import envoy

from rivetkit import setup
from rivetkit.drivers.engine import LocalEngine

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Both registries in one envoy (their actor names do not overlap).
registry = setup(use=[*conn_suite.registry.actors.values(), *queue_suite.registry.actors.values()])

test_http_actions_open_an_ephemeral_connection = (
    conn_suite.test_http_actions_open_an_ephemeral_connection
)
test_refused_connection_error_arrives_before_the_close = (
    conn_suite.test_refused_connection_error_arrives_before_the_close
)
test_params_limit = conn_suite.test_params_limit
test_events_reach_only_subscribers_and_the_gate = (
    conn_suite.test_events_reach_only_subscribers_and_the_gate
)
test_python_client_send = queue_suite.test_python_client_send
test_ephemeral_connection_and_errors = queue_suite.test_ephemeral_connection_and_errors
test_raw_bodies = queue_suite.test_raw_bodies
test_send_wakes_a_sleeping_actor = queue_suite.test_send_wakes_a_sleeping_actor


class EngineEndpoint(str):
    """The engine's URL, with ``app.runtime`` (the envoy's runtime) as the tests expect."""

    app: SimpleNamespace


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint(rivet_engine: LocalEngine) -> AsyncIterator[Any]:
    async with envoy(registry, rivet_engine, pool="default") as (runtime, _):
        endpoint = EngineEndpoint(rivet_engine.endpoint)
        endpoint.app = SimpleNamespace(runtime=runtime)
        yield endpoint

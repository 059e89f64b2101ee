"""One suite, two drivers: the client end-to-end tests of ``test_client_server.py``, again on
the engine driver.

The tests are the very same functions (imported here, so pytest runs them a second time in
this module); an autouse fixture swaps their ``served()`` helper, which serves the registry
with the embedded server, for one that runs it as an envoy of the session's real engine (in a
fresh namespace) and points the client at the engine's gateway. Tests that are about the embedded
server itself (its ``/metadata``, a restart of its process, the sync client's own server
thread) or that hit engine-specific behaviour (an unregistered actor name makes the engine
create an actor that can never start) stay embedded-only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import test_client_server as suite
from engine_fixtures import envoy, new_pool

from rivetkit.client import Client
from rivetkit.drivers.engine import LocalEngine

test_actions_and_errors = suite.test_actions_and_errors
test_resolve_get_get_for_id_create = suite.test_resolve_get_get_for_id_create
test_input = suite.test_input
test_connection_events_and_subscriptions = suite.test_connection_events_and_subscriptions
test_chat = suite.test_chat


@pytest.fixture(autouse=True)
def _on_the_engine(rivet_engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    @contextlib.asynccontextmanager
    async def served(encoding: str = "bare", **_: Any) -> AsyncIterator[tuple[str, Client]]:
        # A namespace per call: on the engine, actor keys are unique per namespace (not per
        # pool), and the embedded tests expect fresh keys each time.
        namespace = new_pool()
        async with (
            envoy(
                suite.registry,
                rivet_engine,
                pool="default",
                namespace=namespace,
                create_namespace=True,
            ),
            Client(
                rivet_engine.endpoint,
                encoding=encoding,
                namespace=namespace,
                retry=suite.FAST_RETRY,
            ) as client,
        ):
            yield rivet_engine.endpoint, client

    monkeypatch.setattr(suite, "served", served)
    yield

"""The real Rivet Engine for tests: a session-scoped engine on free loopback ports.

The binary comes from npm ``@rivetkit/engine-cli@2.3.19``, which ``make interop-deps`` (part of
``make test``) installs under ``tests/interop/node_modules`` because ``rivetkit@2.3.19``
depends on it; ``RIVET_ENGINE_BINARY`` overrides it. Without the binary the engine tests are
skipped, except under CI (``CI`` set), where they fail.

Every listener of the engine (guard, api-peer, metrics) is bound to 127.0.0.1 on a free
port; its data lives in a temporary directory; it runs with the environment of
``spec/engine.md`` "Running the engine fast" (see :class:`rivetkit.drivers.engine.LocalEngine`).

* ``rivet_engine``: the running :class:`~rivetkit.drivers.engine.LocalEngine` (its
  ``endpoint`` is what clients use);
* :func:`envoy`: an async context manager running a registry as an envoy of that engine
  (a :class:`~rivetkit.runtime.live_actors.Runtime` over an
  :class:`~rivetkit.drivers.engine.EngineDriver`), yielding ``(runtime, driver)``;
* :func:`engine_env`: the same in a new pool, yielding an :class:`EngineEnv` (engine,
  runtime, driver, pool, and clients of that pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rivetkit.client import Client, RetryOptions
from rivetkit.drivers.engine import EngineDriver, LocalEngine, find_engine_binary
from rivetkit.runtime.live_actors import Runtime

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT / "tests" / "interop"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_binary() -> Path:
    """The engine binary; skips the test without it (fails under CI)."""
    binary = find_engine_binary(INTEROP)
    if binary is None:
        message = (
            "the Rivet Engine binary is missing: run `make interop-deps` (npm install in "
            "tests/interop) or set RIVET_ENGINE_BINARY"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


#: Engine config that declares a dead envoy lost after 3 s (not 15 s): for tests that kill one.
QUICK_LOSS: dict[str, Any] = {
    "pegboard": {
        "envoy_lost_threshold": 3000,
        "envoy_eligible_threshold": 3000,
        "envoy_update_ping_interval": 1000,
        "envoy_ping_timeout": 6000,
    }
}


def new_engine(data_dir: Path, **options: Any) -> LocalEngine:
    """An engine (not started) on free loopback ports, its data in ``data_dir``."""
    return LocalEngine(
        engine_binary(),
        data_dir,
        port=free_port(),
        api_peer_port=free_port(),
        metrics_port=free_port(),
        **options,
    )


@pytest.fixture(scope="session")
def rivet_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    """A real engine for the whole session, on free loopback ports, with a temp data dir."""
    engine = new_engine(tmp_path_factory.mktemp("rivet-engine"))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    """A real engine for one test module alone: the Rivet dashboard shows one pool of a
    namespace at a time, so a browser test must not share the engine with other pools."""
    engine = new_engine(tmp_path_factory.mktemp("own-engine"))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


async def answered(check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    """What ``await check()`` returns once it stops raising (tried every 0.2 s); its last
    error after ``timeout`` seconds (an actor moving to another envoy or node answers again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def new_pool() -> str:
    """A pool name no other test uses (actors of one pool go only to its envoys)."""
    return f"pytest-{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def envoy(
    registry: Any, engine: LocalEngine, *, pool: str, **options: Any
) -> AsyncIterator[tuple[Runtime, EngineDriver]]:
    """Run ``registry`` as an envoy of ``engine`` in pool ``pool`` (registered if missing);
    on exit the envoy drains gracefully."""
    driver = EngineDriver(engine.endpoint, pool=pool, **options)
    runtime = Runtime(registry, driver)
    await runtime.start()
    try:
        yield runtime, driver
    finally:
        await runtime.stop()


FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=5, interval=0.05)


class EngineEnv:
    """A registry served as an envoy of the test engine, in a pool of its own."""

    def __init__(self, engine: LocalEngine, runtime: Runtime, driver: EngineDriver, pool: str):
        self.engine = engine
        self.runtime = runtime
        self.driver = driver
        self.pool = pool

    def client(self, encoding: str = "json") -> Client:
        """A client of this pool, through the engine's gateway."""
        return Client(self.engine.endpoint, pool=self.pool, encoding=encoding, retry=FAST_RETRY)

    def ws_url(self, actor_id: str, path: str) -> str:
        """The gateway's WebSocket URL of ``path`` on actor ``actor_id``."""
        return self.engine.endpoint.replace("http://", "ws://") + f"/gateway/{actor_id}{path}"


@contextlib.asynccontextmanager
async def engine_env(registry: Any, engine: LocalEngine) -> AsyncIterator[EngineEnv]:
    """:func:`envoy` in a new pool, as an :class:`EngineEnv`."""
    pool = new_pool()
    async with envoy(registry, engine, pool=pool) as (runtime, driver):
        yield EngineEnv(engine, runtime, driver, pool)

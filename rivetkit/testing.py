"""Test actors in-process: ``setup_test`` runs a registry on a temporary embedded store.

    async with setup_test(registry) as client:
        counter = client.counter.get_or_create(["k"])
        assert await counter.increment(5) == 5

The client has the handle API of :mod:`rivetkit.client` (``get``, ``get_or_create``,
``create``, ``get_for_id``; actions by attribute or ``handle.action(name, *args)``;
``resolve()``), but calls go straight into the runtime: no network and no encoding, so values
are passed as they are. Errors reach the test as a client would see them
(:class:`~rivetkit.errors.RivetError`, internal messages hidden unless
``RIVET_EXPOSE_ERRORS=1``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from rivetkit.drivers.embedded import EmbeddedDriver
from rivetkit.errors import RivetError, to_public
from rivetkit.protocol.values import cbor_dumps
from rivetkit.runtime.live_actors import Runtime

KeyArg = str | Sequence[str] | None


def _key(key: KeyArg) -> list[str]:
    if key is None:
        return []
    if isinstance(key, str):
        return [key]
    return [str(part) for part in key]


class TestActorHandle:
    """A handle on one actor; actions are coroutines by attribute or :meth:`action`."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        client: TestClient,
        name: str,
        *,
        key: list[str],
        mode: str,
        input: Any = None,
        actor_id: str | None = None,
    ) -> None:
        self._client = client
        self._name = name
        self._key = key
        self._mode = mode
        self._input = input
        self._actor_id = actor_id

    async def resolve(self) -> str:
        """The actor's id (creating the actor for a ``get_or_create`` handle)."""
        if self._actor_id is None:
            self._actor_id = await self._client._resolve(
                self._name, self._key, self._mode, self._input
            )
        return self._actor_id

    async def action(self, name: str, *args: Any) -> Any:
        """Call the action ``name`` with ``args``."""
        runtime = self._client.runtime
        try:
            actor_id = self._actor_id or await self.resolve()
            return await runtime.call_action(actor_id, name, list(args))
        except Exception as exc:
            raise to_public(exc) from exc

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any) -> Awaitable[Any]:
            return self.action(name, *args)

        call.__name__ = name
        self.__dict__[name] = call  # found directly next time
        return call

    def __repr__(self) -> str:
        return f"<TestActorHandle {self._name} {self._key!r} {self._actor_id or '?'}>"


class _Accessor:
    """``client.<name>``: handle factories for one actor name."""

    def __init__(self, client: TestClient, name: str) -> None:
        self._client = client
        self._name = name

    def get(self, key: KeyArg = None) -> TestActorHandle:
        return self._client.get(self._name, key)

    def get_or_create(self, key: KeyArg = None, *, input: Any = None) -> TestActorHandle:
        return self._client.get_or_create(self._name, key, input=input)

    async def create(self, key: KeyArg = None, *, input: Any = None) -> TestActorHandle:
        return await self._client.create(self._name, key, input=input)

    def get_for_id(self, actor_id: str) -> TestActorHandle:
        return self._client.get_for_id(self._name, actor_id)


class TestClient:
    """The in-process client that :func:`setup_test` returns."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def get(self, name: str, key: KeyArg = None) -> TestActorHandle:
        """A handle on the existing actor ``(name, key)``."""
        return TestActorHandle(self, name, key=_key(key), mode="get")

    def get_or_create(self, name: str, key: KeyArg = None, *, input: Any = None) -> TestActorHandle:
        """A handle on ``(name, key)``, created on first use when missing."""
        return TestActorHandle(self, name, key=_key(key), mode="get_or_create", input=input)

    async def create(self, name: str, key: KeyArg = None, *, input: Any = None) -> TestActorHandle:
        """Create a new actor and return a handle on it."""
        self.runtime.definition(name)
        encoded = None if input is None else cbor_dumps(input)
        record = await self.runtime.driver.create_actor(name, _key(key), encoded)
        return TestActorHandle(self, name, key=record.key, mode="id", actor_id=record.actor_id)

    def get_for_id(self, name: str, actor_id: str) -> TestActorHandle:
        """A handle on the actor with this id."""
        return TestActorHandle(self, name, key=[], mode="id", actor_id=actor_id)

    def __getattr__(self, name: str) -> _Accessor:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Accessor(self, name)

    async def _resolve(self, name: str, key: list[str], mode: str, input: Any) -> str:
        self.runtime.definition(name)
        driver = self.runtime.driver
        if mode == "get":
            record = await driver.find_actor(name, key)
            if record is None:
                raise RivetError("actor", "not_found", f"no actor {name} with key {key!r}")
            return record.actor_id
        encoded = None if input is None else cbor_dumps(input)
        record, _ = await driver.get_or_create_actor(name, key, encoded)
        return record.actor_id


@contextlib.asynccontextmanager
async def setup_test(
    registry: Any,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    driver: EmbeddedDriver | None = None,
) -> AsyncIterator[TestClient]:
    """Run ``registry`` in-process on an embedded store and yield a client.

    ``data_dir`` defaults to a fresh temporary directory removed afterwards; pass one to keep
    the data (for example to test that state survives a restart). ``clock`` (epoch seconds)
    replaces the wall clock of schedules and alarms: with a fake clock, advance it and
    ``await client.runtime.driver.poll_alarms()`` to fire what is due and wait until it has
    run. (Idle sleep keeps real event-loop time: use a short ``sleep_timeout``.)

    ``driver`` replaces the embedded driver made on ``data_dir`` (for example a subclass that
    injects storage faults); ``clock`` then applies only to the runtime.

    Actions follow the runtime's rules for state: one that leaves the state unsaveable fails
    with ``actor/invalid_state`` and is undone, and writes are refused with
    ``actor/state_save_failed`` while saves fail (see :mod:`rivetkit.runtime.state_guard`).
    """
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rivetkit-test-"))
        wall = clock or time.time
        if driver is None:
            driver = EmbeddedDriver(data_dir, clock=wall)
        runtime = Runtime(registry, driver, clock=wall)
        await runtime.start()
        try:
            yield TestClient(runtime)
        finally:
            await runtime.stop()

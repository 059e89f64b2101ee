"""Test actors in process: :func:`setup_test` runs a registry behind the real client.

    async with setup_test(registry) as t:
        counter = t.counter.get_or_create(["k"])
        assert await counter.increment(5) == 5
        await t.advance(60)          # a minute passes: schedules, alarms, idle sleep run

``setup_test`` serves the registry with the same ASGI app as ``rivetkit serve`` on a temporary
embedded store, and yields a :class:`TestClient`, which is a :class:`rivetkit.client.Client`
wired to that app in process (no socket: :mod:`rivetkit.server.inprocess`). Every value goes
through the wire encoding (json by default), so what would fail over the network fails in the
test with the same error; the handles have the whole client API (actions, ``connect()`` with
events, queue ``send``, ``fetch``, ...) and raise :class:`~rivetkit.client.ActorError`.

``setup_runtime`` is the older direct harness: calls go straight into the runtime, values are
passed as they are (no encoding), for tests of the runtime itself and for benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

from rivetkit.client import ActorHandle, Client
from rivetkit.drivers.embedded import EmbeddedDriver
from rivetkit.errors import RivetError, to_public
from rivetkit.fake_clock import FakeClock
from rivetkit.protocol.values import cbor_dumps
from rivetkit.runtime.live_actors import Runtime
from rivetkit.server import RivetApp, create_app
from rivetkit.server.inprocess import InProcessServer

__all__ = [
    "FakeClock",
    "RuntimeActorHandle",
    "RuntimeClient",
    "TestActorHandle",
    "TestClient",
    "setup_runtime",
    "setup_test",
]

KeyArg = str | Sequence[str] | None

#: The encodings :func:`setup_test` accepts.
ENCODINGS: Final = ("json", "cbor", "bare")

#: The handle class of :class:`TestClient` (the real client's).
TestActorHandle = ActorHandle


class TestClient(Client):
    """The client :func:`setup_test` yields: a :class:`rivetkit.client.Client` bound to an
    in-process server, plus the harness's members.

    ``t.<name>`` gives the handle factories of actor ``<name>`` as on any client; for an actor
    named like a member below (``runtime``, ``advance``, ...) use ``t.get_or_create(name, key)``.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        server: InProcessServer,
        app: RivetApp,
        clock: FakeClock,
        *,
        encoding: str = "json",
        driver: EmbeddedDriver | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            server.endpoint,
            encoding=encoding,
            transport=server.transport(),
            ws_connect=server.ws_connect,
            **options,
        )
        #: The served ASGI app.
        self.app = app
        #: The live :class:`~rivetkit.runtime.live_actors.Runtime` (``t.runtime.instances``...).
        self.runtime: Runtime = app.runtime
        #: The in-process server (its open WebSockets: ``t.server.sockets``).
        self.server = server
        #: The fake clock behind :meth:`advance` and :meth:`now`.
        self.clock = clock
        #: The embedded driver the runtime runs on (settled by :meth:`advance`).
        self.driver = driver

    def now(self) -> float:
        """The fake wall time in epoch seconds (what ``c.schedule`` and alarms read)."""
        return self.clock.wall()

    async def advance(self, seconds: float) -> None:
        """Move time ``seconds`` forward, then run what came due to completion.

        Both clocks move: the wall clock of schedules and alarms, and the event loop's clock
        of idle sleep (``sleep_timeout``), action and hook timeouts and grace periods. When it
        returns, the alarms that came due have fired and their actions finished, actors that
        went idle have slept and their state is saved. Raises RuntimeError under uvloop,
        whose clock cannot be moved.
        """
        await self.clock.advance(seconds, runtime=self.runtime, driver=self.driver)

    async def settle(self) -> None:
        """Run what is due now to completion (see :meth:`advance`), without moving time."""
        await self.clock.settle(runtime=self.runtime, driver=self.driver)


@contextlib.asynccontextmanager
async def setup_test(
    registry: Any,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    encoding: str = "json",
    clock: Callable[[], float] | None = None,
    driver: EmbeddedDriver | None = None,
    **client_options: Any,
) -> AsyncIterator[TestClient]:
    """Serve ``registry`` in process and yield a :class:`TestClient` talking to it.

    :param registry: the registry made by :func:`rivetkit.setup`
    :param data_dir: the embedded store's directory; default a fresh temporary directory,
        removed afterwards. Pass one to keep the data (to test that state survives a restart)
    :param encoding: the client's encoding: ``json`` (default), ``cbor`` or ``bare``
    :param clock: the underlying wall clock in epoch seconds (default ``time.time``);
        :meth:`TestClient.advance` adds its offset to it
    :param driver: replaces the embedded driver made on ``data_dir`` (for example a subclass
        injecting storage faults); the fake wall clock then applies to the runtime only
    :param client_options: more keyword arguments of :class:`rivetkit.client.Client`
        (``retry``, ``headers``, ...)

    On exit the client closes (its connections first), the WebSockets still open are closed
    with 1001, the runtime stops (actors sleep, state is flushed) and the loop gets its own
    clock back.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    with contextlib.ExitStack() as stack:
        if data_dir is None and driver is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rivetkit-test-"))
        fake = FakeClock(clock or time.time)
        if driver is None:
            assert data_dir is not None
            driver = EmbeddedDriver(data_dir, clock=fake.wall)
        app = create_app(registry, driver=driver, listen_host="127.0.0.1")
        app.runtime.clock = fake.wall
        await app.startup()
        server = InProcessServer(app)
        try:
            client = TestClient(
                server, app, fake, encoding=encoding, driver=driver, **client_options
            )
            try:
                yield client
            finally:
                await client.close()
                await server.aclose()
        finally:
            try:
                await app.shutdown()
            finally:
                fake.uninstall()


# -- the direct harness ---------------------------------------------------------------------

#: Client methods a direct-harness handle does not have: never turned into action calls.
_CLIENT_METHODS: Final = frozenset(
    {"call", "connect", "dispose", "events", "fetch", "next_event", "on", "send", "websocket"}
)


def _key(key: KeyArg) -> list[str]:
    if key is None:
        return []
    if isinstance(key, str):
        return [key]
    return [str(part) for part in key]


class RuntimeActorHandle:
    """A handle of :func:`setup_runtime`: actions by attribute or :meth:`action`, called
    straight on the runtime with their values as they are."""

    def __init__(
        self,
        client: RuntimeClient,
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
        """Call the action ``name`` with ``args``; errors as a client sees them."""
        runtime = self._client.runtime
        try:
            actor_id = self._actor_id or await self.resolve()
            return await runtime.call_action(actor_id, name, list(args))
        except Exception as exc:
            raise to_public(exc) from exc

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _CLIENT_METHODS:
            raise AttributeError(
                f"a setup_runtime() handle has no {name}() (it calls the runtime directly); "
                f"use setup_test() for the full client API, or .action({name!r}, ...) to call "
                "an action of that name"
            )

        def call(*args: Any) -> Awaitable[Any]:
            return self.action(name, *args)

        call.__name__ = name
        self.__dict__[name] = call  # found directly next time
        return call

    def __repr__(self) -> str:
        return f"<RuntimeActorHandle {self._name} {self._key!r} {self._actor_id or '?'}>"


class _RuntimeAccessor:
    """``client.<name>``: handle factories for one actor name."""

    def __init__(self, client: RuntimeClient, name: str) -> None:
        self._client = client
        self._name = name

    def get(self, key: KeyArg = None) -> RuntimeActorHandle:
        return self._client.get(self._name, key)

    def get_or_create(self, key: KeyArg = None, *, input: Any = None) -> RuntimeActorHandle:
        return self._client.get_or_create(self._name, key, input=input)

    async def create(self, key: KeyArg = None, *, input: Any = None) -> RuntimeActorHandle:
        return await self._client.create(self._name, key, input=input)

    def get_for_id(self, actor_id: str) -> RuntimeActorHandle:
        return self._client.get_for_id(self._name, actor_id)


class RuntimeClient:
    """The client :func:`setup_runtime` yields: handles calling the runtime directly."""

    def __init__(
        self,
        runtime: Runtime,
        clock: FakeClock | None = None,
        *,
        driver: EmbeddedDriver | None = None,
    ) -> None:
        #: The live runtime.
        self.runtime = runtime
        #: The embedded driver the runtime runs on (settled by :meth:`advance`).
        self.driver = driver
        #: The fake clock behind :meth:`advance` (a new one on the runtime's wall clock if
        #: None: it then moves only the loop's clock).
        self.clock = clock or FakeClock(runtime.clock)

    def now(self) -> float:
        """The fake wall time in epoch seconds."""
        return self.clock.wall()

    async def advance(self, seconds: float) -> None:
        """As :meth:`TestClient.advance`."""
        await self.clock.advance(seconds, runtime=self.runtime, driver=self.driver)

    def get(self, name: str, key: KeyArg = None) -> RuntimeActorHandle:
        """A handle on the existing actor ``(name, key)``."""
        return RuntimeActorHandle(self, name, key=_key(key), mode="get")

    def get_or_create(
        self, name: str, key: KeyArg = None, *, input: Any = None
    ) -> RuntimeActorHandle:
        """A handle on ``(name, key)``, created on first use when missing."""
        return RuntimeActorHandle(self, name, key=_key(key), mode="get_or_create", input=input)

    async def create(
        self, name: str, key: KeyArg = None, *, input: Any = None
    ) -> RuntimeActorHandle:
        """Create a new actor and return a handle on it."""
        self.runtime.definition(name)
        encoded = None if input is None else cbor_dumps(input)
        record = await self.runtime.driver.create_actor(name, _key(key), encoded)
        return RuntimeActorHandle(self, name, key=record.key, mode="id", actor_id=record.actor_id)

    def get_for_id(self, name: str, actor_id: str) -> RuntimeActorHandle:
        """A handle on the actor with this id."""
        return RuntimeActorHandle(self, name, key=[], mode="id", actor_id=actor_id)

    def __getattr__(self, name: str) -> _RuntimeAccessor:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RuntimeAccessor(self, name)

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
async def setup_runtime(
    registry: Any,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    driver: EmbeddedDriver | None = None,
) -> AsyncIterator[RuntimeClient]:
    """Run ``registry``'s runtime in process and yield a :class:`RuntimeClient` calling it
    directly: no server, no encoding, values passed as they are (about 100k calls/s).

    For tests of the runtime itself and benchmarks; test actors with :func:`setup_test`,
    which behaves like the server. Parameters as :func:`setup_test`'s. Actions follow the
    runtime's rules for state: one that leaves the state unsaveable fails with
    ``actor/invalid_state`` and is undone.
    """
    with contextlib.ExitStack() as stack:
        if data_dir is None and driver is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rivetkit-test-"))
        fake = FakeClock(clock or time.time)
        if driver is None:
            assert data_dir is not None
            driver = EmbeddedDriver(data_dir, clock=fake.wall)
        runtime = Runtime(registry, driver, clock=fake.wall)
        await runtime.start()
        try:
            yield RuntimeClient(runtime, fake, driver=driver)
        finally:
            try:
                await runtime.stop()
            finally:
                fake.uninstall()

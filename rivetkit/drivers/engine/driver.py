"""The engine driver: this process is an envoy of the Rivet Engine (DESIGN.md §7).

The runtime sees the same :class:`~rivetkit.drivers.base.Driver` as with the embedded driver;
underneath, everything goes to the engine. :class:`EngineDriver` connects the envoy session
and wires its collaborators, each in a module of its own:

* :mod:`.placement`: the actors the engine places here, started and stopped as it commands;
  ``c.sleep()`` and ``c.destroy()`` become intents; the drain at ``stop()``;
* :mod:`.manager`: the manager-side calls (create, get, list, destroy) over the engine's HTTP
  API (:class:`~.api.EngineApi`);
* :mod:`.kv`: each actor's KV as ``ToRivetKvRequest`` messages, split to the engine's limits;
* :mod:`.alarms`: ``EventActorSetAlarm`` for sleeping actors, a local timer for running ones;
* :mod:`.sqlkv`: the actors' SQL databases (``c.db``), SQLite pages kept in the actor's KV, so
  a database follows its actor to whichever envoy runs it;
* :mod:`.tunnel`: HTTP and WebSocket traffic, handed to the same
  :class:`~rivetkit.dispatch.Dispatcher` the ASGI server uses.

``stop()`` drains gracefully: ``ToRivetStopping``, then the engine sends ``GoingAway`` for
every actor here; each is stopped (state saved) and reported; then the socket closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from rivetkit._version import __version__
from rivetkit.drivers.base import ActorHost, ActorRecord, DestroyCallback, DriverKind
from rivetkit.errors import RivetError
from rivetkit.protocol.envoy_protocol import (
    ActorName,
    CommandWrapper,
    ToEnvoyTunnelMessage,
    ToRivetMetadata,
)

from .alarms import EngineAlarms
from .api import EngineApi
from .endpoints import Endpoints
from .envoy import EnvoyClient
from .kv import EngineKv
from .manager import EngineManager
from .placement import Placement
from .refusals import EngineError
from .tunnel import Tunnel

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.drivers.base import Driver
    from rivetkit.runtime.live_actors import Runtime

    from .actor_calls import EngineActorClient
    from .sqlkv import SqlKvBackend, SqlKvPool

__all__ = ["EngineDriver"]

logger = logging.getLogger("rivetkit.engine")


class EngineDriver:
    """A :class:`~rivetkit.drivers.base.Driver` running actors as an envoy of a Rivet Engine.

    :param endpoint: the engine's URL (``http://127.0.0.1:6420``), or several engine nodes:
        a sequence of URLs or one string of comma-separated URLs. The envoy, the API calls and
        ``c.client()`` use one node at a time and move to the next when it cannot be reached
        (see :mod:`.endpoints`); :attr:`endpoint` is the one in use.
    :param namespace: the namespace name (it must exist unless ``create_namespace``)
    :param pool: the pool (runner config) to join; registered as a normal pool if missing
        (unless ``register_pool=False``)
    :param token: the engine's admin token, or None
    :param envoy_key: this envoy's identity (default: a new UUID per driver)
    :param version: the deploy version (u32) reported to the engine
    :param actor_names: the names announced in ``ToRivetMetadata`` (default: the host
        registry's actors)
    :param kv_timeout: seconds before a KV request fails
    :param clock: wall clock in epoch seconds (alarms)
    """

    def __init__(
        self,
        endpoint: str | Sequence[str],
        *,
        namespace: str = "default",
        pool: str = "default",
        token: str | None = None,
        envoy_key: str | None = None,
        version: int = 1,
        actor_names: Sequence[str] | None = None,
        register_pool: bool = True,
        create_namespace: bool = False,
        kv_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        #: The engine nodes (one or several), shared by the envoy and both HTTP clients.
        self.endpoints = Endpoints(endpoint)
        self.namespace = namespace
        self.pool = pool
        self.token = token
        self.envoy_key = envoy_key or str(uuid.uuid4())
        self.version = version
        self.actor_names = list(actor_names) if actor_names is not None else None
        self.register_pool = register_pool
        self.create_namespace = create_namespace
        self.kv_timeout = kv_timeout
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.api = EngineApi(self.endpoints, namespace=namespace, token=token)
        self.placement = Placement(self.api, pool=pool, envoy_key=self.envoy_key, clock=clock)
        self.manager = EngineManager(self.api, self.placement, pool)
        self.kv = EngineKv(self.placement)
        self.alarms = EngineAlarms(self.placement, self.kv.get, clock)
        self._started = False
        self._stopped = False
        #: Set when the envoy is gone for good (evicted); the owner should exit.
        self.failed: asyncio.Event | None = None
        self.failure: str | None = None
        #: Threads of the actors' SQL databases (``c.db``, pages in the KV; see ``.sqlkv``).
        self._sql: SqlKvPool | None = None
        self._actor_client: EngineActorClient | None = None

    @property
    def endpoint(self) -> str:
        """The URL of the engine node in use."""
        return self.endpoints.current

    @property
    def host(self) -> ActorHost | None:
        """The runtime this driver drives (set by :meth:`start`)."""
        return self.placement.host

    @property
    def envoy(self) -> EnvoyClient | None:
        """The envoy session (set by :meth:`start`)."""
        return self.placement.envoy

    @property
    def tunnel(self) -> Tunnel | None:
        """The HTTP and WebSocket tunnel (set by :meth:`start`)."""
        return self.placement.tunnel

    # -- life of the driver ----------------------------------------------------------------

    async def start(self, host: ActorHost) -> None:
        """Check the engine, register the pool if needed, connect the envoy and wait for the
        session to be ready.

        :raises EngineError: the engine cannot be reached or refused us (a clear message: bad
            token, unknown namespace, ...)
        """
        if self._started:
            raise RuntimeError("the driver was already started")
        self.failed = asyncio.Event()
        self.placement.bind(host)
        try:
            await self._prepare()
            names = self.actor_names
            if names is None:
                names = host.actor_names()
            metadata = ToRivetMetadata(
                {name: ActorName("{}") for name in names},
                json.dumps({"runtime": "rivetkit-python", "version": __version__}),
            )
            tunnel = self.placement.tunnel = Tunnel(self._dispatcher(host), self.placement.is_local)
            self._bind_actor_client(host)
            if tunnel.dispatcher is not None:
                # Hibernated connections are restored through the tunnel (the engine's
                # gateway kept their sockets; see tunnel.py).
                tunnel.dispatcher.runtime.conn_alive = tunnel.conn_alive
            envoy = self.placement.envoy = EnvoyClient(
                self.endpoints,
                namespace=self.namespace,
                pool=self.pool,
                envoy_key=self.envoy_key,
                version=self.version,
                token=self.token,
                metadata=metadata,
                handler=self,
                kv_timeout=self.kv_timeout,
            )
            tunnel.attach(envoy)
            await envoy.start(self.connect_timeout)
        except BaseException:
            await self.api.aclose()
            raise
        self._started = True
        logger.info(
            "envoy %s joined pool %r of namespace %r on %s",
            self.envoy_key,
            self.pool,
            self.namespace,
            self.endpoint,
        )

    def _bind_actor_client(self, host: ActorHost) -> None:
        """Hand the runtime the factory of ``c.client()`` (the gateway, see .actor_calls)."""
        from .actor_calls import EngineActorClient

        self._actor_client = EngineActorClient(
            self.endpoints, namespace=self.namespace, token=self.token, pool=self.pool
        )
        host.client_factory = self._actor_client.shared

    async def _prepare(self) -> None:
        try:
            await self.api.health()
        except RivetError as exc:
            raise EngineError("unreachable", exc.message) from None
        try:
            if self.create_namespace and not await self.api.namespace_exists():
                await self.api.create_namespace()
                logger.info("created namespace %r on the engine", self.namespace)
            if self.register_pool and await self.api.ensure_pool(self.pool):
                logger.info("registered pool %r on the engine", self.pool)
        except RivetError as exc:
            if exc.group == "namespace" and exc.code == "not_found":
                raise EngineError(
                    "namespace_not_found",
                    f"the namespace {self.namespace!r} does not exist on the engine",
                ) from None
            if exc.group in ("api", "guard") and exc.code in (
                "forbidden",
                "unauthorized",
                "missing_header",
            ):
                raise EngineError(
                    "forbidden",
                    f"the engine refused the token ({exc.group}.{exc.code}: {exc.message})",
                ) from None
            raise

    @staticmethod
    def _dispatcher(host: ActorHost) -> Dispatcher:
        # Imported here: dispatch sits above the drivers (it loads the runtime).
        from .actor_calls import ChainDispatcher

        # The tunnel's requests need the whole runtime API (instances, actions, ...), which
        # the one ActorHost, rivetkit.runtime.Runtime, has; the protocol declares only what
        # the driver itself calls.
        return ChainDispatcher(cast("Runtime", host))

    async def stop(self) -> None:
        """Drain: ``ToRivetStopping``, stop every actor (reason ``shutdown``) as the engine
        asks, report them, close the socket. Idempotent."""
        if not self._started or self._stopped:
            return
        envoy = self.envoy
        assert envoy is not None
        try:
            await self.placement.drain(envoy)
            await envoy.flush()
        finally:
            self._stopped = True
            await envoy.close()
            if self.tunnel is not None:
                self.tunnel.close()
            await self.placement.close()
            if self._actor_client is not None:
                await self._actor_client.aclose()
            if self._sql is not None:
                self._sql.shutdown()
            await self.api.aclose()

    # -- EnvoyHandler ----------------------------------------------------------------------

    def on_commands(self, commands: list[CommandWrapper]) -> None:
        """Start and stop actors as the engine commands."""
        self.placement.on_commands(commands)

    def on_tunnel_message(self, message: ToEnvoyTunnelMessage) -> None:
        """HTTP and WebSocket traffic: handed to the tunnel."""
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.handle(message)

    def on_connection(self, connected: bool) -> None:
        """The session became ready or dropped (nothing to do: events and KV resend)."""
        logger.debug("envoy session %s", "ready" if connected else "dropped")

    def on_lost(self) -> None:
        """Disconnected past the lost threshold: stop every local actor, KV cut off."""
        self.placement.on_lost()

    def on_evicted(self, reason: str) -> None:
        """Another envoy took our key: stop everything locally and report failure."""
        self.failure = f"evicted by the engine ({reason})"
        self.on_lost()
        if self.failed is not None:
            self.failed.set()

    # -- placement (see .placement and .manager) -------------------------------------------

    def running_generation(self, actor_id: str) -> int | None:
        """The generation of the actor's instance running here, or None."""
        return self.placement.running_generation(actor_id)

    def loaded(self) -> dict[str, str]:
        """``actor_id -> "starting" | "running" | "stopping"`` for the actors placed here."""
        return self.placement.loaded()

    async def ensure_started(self, actor_id: str) -> ActorRecord:
        """The record of the actor running here, waking it through the engine if needed.

        RivetError ``actor/not_found`` for an unknown or destroyed actor, or when the engine
        placed it on another envoy.
        """
        return await self.placement.ensure_started(actor_id)

    def request_sleep(self, actor_id: str, generation: int) -> None:
        """``EventActorIntent{Sleep}``: the engine answers with a ``SleepIntent`` stop."""
        self.placement.intent(actor_id, generation, "sleep")

    def request_destroy(self, actor_id: str, generation: int) -> None:
        """``EventActorIntent{Stop}``: the engine answers with a ``StopIntent`` stop, then
        destroys the actor and its KV."""
        self.placement.intent(actor_id, generation, "destroy")

    async def get_or_create_actor(
        self, name: str, key: Sequence[str], input: bytes | None
    ) -> tuple[ActorRecord, bool]:
        """The live actor with ``(name, key)``, created when missing (``PUT /actors``)."""
        return await self.manager.get_or_create_actor(name, key, input)

    async def create_actor(self, name: str, key: Sequence[str], input: bytes | None) -> ActorRecord:
        """Create an actor (``POST /actors``); ``actor/duplicate_key`` if taken."""
        return await self.manager.create_actor(name, key, input)

    async def get_actor(self, actor_id: str) -> ActorRecord | None:
        """The actor with this id (destroyed ones included), or None."""
        return await self.manager.get_actor(actor_id)

    async def find_actor(self, name: str, key: Sequence[str]) -> ActorRecord | None:
        """The live actor with ``(name, key)``, or None."""
        return await self.manager.find_actor(name, key)

    async def list_actors(self, name: str | None = None) -> list[ActorRecord]:
        """Live actors, optionally of one name, oldest first."""
        return await self.manager.list_actors(name)

    async def destroy_actor(self, actor_id: str) -> None:
        """Destroy an actor (``DELETE /actors/{id}``) and wait until the engine shows it
        destroyed. RivetError ``actor/not_found`` for an unknown or destroyed actor."""
        await self.manager.destroy_actor(actor_id)

    def on_destroyed(self, callback: DestroyCallback) -> None:
        """Call ``callback(actor_id)`` (plain or coroutine function) after each actor this
        envoy runs is stopped with reason ``destroy`` (the engine then deletes its data)."""
        self.placement.destroy_callbacks.append(callback)

    # -- what it is ------------------------------------------------------------------------

    @property
    def kind(self) -> DriverKind:
        """``"engine"``."""
        return "engine"

    @property
    def pool_name(self) -> str:
        """The engine pool this envoy serves (``pool``)."""
        return self.pool

    # -- SQL databases ---------------------------------------------------------------------

    def sql_backend(self, actor_id: str) -> SqlKvBackend:
        """The actor's SQL database, its pages kept in the actor's KV (see :mod:`.sqlkv`)."""
        from .sqlkv import DriverKv, SqlKvPool

        if self._sql is None:
            self._sql = SqlKvPool(kv_timeout=self.kv_timeout + 5.0)
        return self._sql.open(DriverKv(self, actor_id))

    # -- KV (see .kv) ----------------------------------------------------------------------

    async def kv_get(self, actor_id: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (None where missing)."""
        return await self.kv.get(actor_id, keys)

    async def kv_write(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]] = (),
        deletes: Sequence[bytes] = (),
    ) -> None:
        """Apply the puts, then the deletes of keys not put (see :mod:`.kv`)."""
        await self.kv.write(actor_id, puts, deletes)

    def kv_put_soon(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]],
        done: Callable[[bool, Any], None],
    ) -> bool:
        """Not offered through the engine: False, the caller awaits :meth:`kv_write`."""
        return False

    def kv_known_empty(self, actor_id: str) -> bool:
        """Never known without asking the engine: False."""
        return False

    async def kv_list(
        self,
        actor_id: str,
        start: bytes,
        end: bytes | None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` (``end=None``: no upper bound), in key order
        (descending with ``reverse``), at most ``limit``."""
        return await self.kv.list(actor_id, start, end, reverse=reverse, limit=limit)

    async def kv_delete_range(self, actor_id: str, start: bytes, end: bytes | None) -> None:
        """Delete entries with ``start <= key < end`` (``end=None``: no upper bound)."""
        await self.kv.delete_range(actor_id, start, end)

    # -- alarms (see .alarms) --------------------------------------------------------------

    async def set_alarm(self, actor_id: str, when_ms: int | None) -> None:
        """Set (or clear) the actor's alarm: ``EventActorSetAlarm`` for the engine (which
        wakes the actor when it sleeps) and a local timer while it runs here."""
        await self.alarms.set(actor_id, when_ms)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A snapshot for ``/health`` and ``/metrics``."""
        envoy = self.envoy
        return {
            "connected": bool(envoy is not None and envoy.ready),
            "envoy_key": self.envoy_key,
            "pool": self.pool,
            "namespace": self.namespace,
            "endpoint": self.endpoint,
            "endpoints": list(self.endpoints),
            "actors": self.placement.counts(),
            "pending_events": envoy.pending_events() if envoy is not None else 0,
            "stats": dict(envoy.stats) if envoy is not None else {},
            "tunnel": self.tunnel.counts() if self.tunnel is not None else {},
            "failure": self.failure,
        }


if TYPE_CHECKING:

    def _implements_driver(driver: EngineDriver) -> Driver:
        return driver

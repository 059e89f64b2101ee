"""The context ``c`` that every action and hook receives.

:class:`ActorContext` is generic over the types of the actor's state, vars and connection
state, each defaulting to ``Any`` (PEP 696 defaults): ``ActorContext`` alone, ``ActorContext[S]``
and ``ActorContext[S, V, CS]`` are all valid annotations. The parameters exist for type
checkers only: the runtime builds one untyped context per actor, and subscripting (in an
annotation pydantic or ``typing.get_type_hints`` evaluates) costs nothing per call.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic

from rivetkit.errors import RivetError
from rivetkit.runtime.kv import ActorKV

if sys.version_info >= (3, 13):
    from typing import TypeVar
else:  # PEP 696 (TypeVar defaults) before Python 3.13
    from typing_extensions import TypeVar

if TYPE_CHECKING:
    from rivetkit.client import Client
    from rivetkit.db import ActorDatabase
    from rivetkit.runtime.connection import Connection
    from rivetkit.runtime.instance import ActorInstance
    from rivetkit.runtime.queue import ActorQueue
    from rivetkit.runtime.schedule import ActorSchedule

T = TypeVar("T")
#: The type of the actor's state (``c.state``).
S = TypeVar("S", default=Any)
#: The type of the actor's vars (``c.vars``).
V = TypeVar("V", default=Any)
#: The type of each connection's state (``c.conn.state``).
CS = TypeVar("CS", default=Any)

_new_object: Any = object.__new__


class ActorContext(Generic[S, V, CS]):
    """What an actor's code can see and do (``c`` in actions and hooks).

    One context exists per running actor; an action called over a connection gets a light
    copy whose :attr:`conn` is that connection.

    For type checkers, ``ActorContext[S, V, CS]`` types :attr:`state` as ``S``, :attr:`vars`
    as ``V`` and ``conn.state`` as ``CS``; each defaults to ``Any``, so ``ActorContext[Counter]``
    types the state alone. Nothing is checked at run time.
    """

    __slots__ = ("_client_source", "_instance", "conn")

    def __init__(
        self,
        instance: ActorInstance,
        conn: Connection[CS] | None = None,
        client_source: Callable[[], Client] | None = None,
    ) -> None:
        self._instance = instance
        #: The connection of the current action (None outside a connection's action).
        self.conn: Connection[CS] | None = conn
        self._client_source = client_source

    def with_conn(self, conn: Connection[CS] | None) -> ActorContext[S, V, CS]:
        """A context for an action called over ``conn``."""
        # __init__'s three fields set here: no __init__ frame (one per action over a conn).
        ctx: ActorContext[S, V, CS] = _new_object(ActorContext)
        ctx._instance = self._instance
        ctx.conn = conn
        ctx._client_source = self._client_source
        return ctx

    def bind_client(self, source: Callable[[], Client] | None) -> None:
        """Set what :meth:`client` returns (called by the runtime with the host's factory)."""
        self._client_source = source

    # -- other actors ----------------------------------------------------------------------

    def client(self) -> Client:
        """A client of the actors of this registry: ``c.client().other.get_or_create(k).act()``.

        It has the API of :class:`rivetkit.client.Client` (handles, ``action``/``call``,
        ``connect()`` with events, queue ``send``, ``get_for_id``, ``resolve``) and is the
        same object on every call within a process; the host closes it when it stops. Close
        the connections you open with it (``on_sleep``) yourself. In embedded mode calls stay
        in process (no socket; values pass through the CBOR encoding); in engine mode they go
        through the engine's gateway. Errors of the called actor raise
        :class:`~rivetkit.client.ActorError` with its group and code.

        Raises ``actor/not_configured`` where no host provides one (``setup_runtime``).
        """
        source = self._client_source
        if source is None:
            raise RivetError(
                "actor",
                "not_configured",
                "c.client() has no client here: it is provided by the server "
                "(create_app, rivetkit serve, setup_test) and by engine mode, not by "
                "setup_runtime",
                metadata={"component": "client"},
            )
        return source()

    # -- identity --------------------------------------------------------------------------

    @property
    def actor_id(self) -> str:
        """The actor's id."""
        return self._instance.actor_id

    @property
    def name(self) -> str:
        """The actor's name (its definition's name)."""
        return self._instance.name

    @property
    def key(self) -> list[str]:
        """The actor's key segments."""
        return self._instance.key

    @property
    def input(self) -> Any:
        """The input given when the actor was created (None when none was)."""
        return self._instance.input

    @property
    def generation(self) -> int:
        """How many times this actor has been started, this time included."""
        return self._instance.generation

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose lines carry the actor's name, key and id."""
        return self._instance.log

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> S:
        """The durable state; mutate it or assign a new one.

        It holds what can be saved: None, bool, int, float, str, bytes, and lists, tuples
        and dicts of them (tuples come back as lists); see the "Values that round-trip"
        page. A write that cannot be saved fails the action with ``actor/invalid_state``.
        """
        return self._instance.state  # type: ignore[no-any-return]

    @state.setter
    def state(self, value: S) -> None:
        self._instance.set_state(value)

    @property
    def vars(self) -> V:
        """Ephemeral per-instance values, rebuilt on every start (never persisted)."""
        return self._instance.vars  # type: ignore[no-any-return]

    @vars.setter
    def vars(self, value: V) -> None:
        self._instance.vars = value

    async def save_state(self, *, immediate: bool = False) -> None:
        """Wait until the current state is saved; ``immediate`` skips the save throttle."""
        await self._instance.save_state(immediate=immediate)

    @property
    def db(self) -> ActorDatabase:
        """The actor's SQL database (declared with ``actor(..., db=Database(...))``)."""
        return self._instance.db

    @property
    def queue(self) -> ActorQueue:
        """The actor's durable FIFO queue."""
        return self._instance.queue

    @property
    def schedule(self) -> ActorSchedule:
        """Run actions later: ``after``, ``at``, ``cron``, ``every``."""
        return self._instance.schedule

    @property
    def kv(self) -> ActorKV:
        """The actor's user key/value store."""
        return self._instance.kv

    # -- connections and events ------------------------------------------------------------

    @property
    def conns(self) -> dict[str, Connection[CS]]:
        """The actor's live connections by id (a read-only view by convention)."""
        return self._instance.conns

    def broadcast(self, event: str, *args: Any) -> None:
        """Send the event ``event`` with ``args`` to every connection subscribed to it."""
        self._instance.broadcast(event, args)

    # -- lifecycle -------------------------------------------------------------------------

    def sleep(self) -> None:
        """Ask for this actor to sleep (it stops after the current work; state is kept)."""
        self._instance.request_sleep()

    def destroy(self) -> None:
        """Ask for this actor to be destroyed (all its data is deleted)."""
        self._instance.request_destroy()

    @property
    def aborted(self) -> bool:
        """True once the actor has begun to sleep or be destroyed."""
        return self._instance.abort_event.is_set()

    @property
    def abort_signal(self) -> asyncio.Event:
        """An event set when the actor begins to sleep or be destroyed."""
        return self._instance.abort_event

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` in the background; shutdown waits for it (within the grace)."""
        self._instance.wait_until(awaitable)

    async def keep_awake(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` while keeping the actor from going idle."""
        return await self._instance.keep_awake(awaitable)

    def __repr__(self) -> str:
        return f"<ActorContext {self.name} {self.key!r} {self.actor_id}>"

"""The driver protocol: what the runtime needs from the place actors live.

The runtime (``rivetkit.runtime``) knows nothing of SQLite files or the engine socket; it
talks to a :class:`Driver`. Two drivers implement it: the embedded driver (one SQLite file,
in-process placement; the default) and the engine driver (an envoy of the Rivet Engine).

A driver has three jobs:

* **placement**: the actors table (create, look up, list, destroy) and deciding when an actor
  runs. It starts an actor by calling :meth:`ActorHost.start_actor` and stops it by calling
  :meth:`ActorHost.stop_actor`; the runtime never starts or stops actors by itself, it only
  *asks* (:meth:`Driver.request_sleep`, :meth:`Driver.request_destroy`).
* **KV**: each actor's byte-keyed key/value store (keys compare as unsigned bytes).
* **alarms**: one wake-up time per actor, kept even while the actor sleeps or the process is
  down; when it is due the driver wakes the actor and calls :meth:`ActorHost.fire_alarm`.

It also declares what its callers ask of it besides: what it is (:attr:`Driver.kind`,
:attr:`Driver.pool_name`), each actor's SQL database (:meth:`Driver.sql_backend`) and the
destroy notification (:meth:`Driver.on_destroyed`). Callers use these members, never
``getattr``/``isinstance`` probes of a concrete driver.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from rivetkit.db import SqlBackend

#: Why an actor is stopped.
StopReason = Literal["sleep", "destroy", "shutdown"]

#: Which driver it is (``rivetkit_info``'s ``driver`` label).
DriverKind = Literal["embedded", "engine"]

#: Called with the actor id after an actor is destroyed (may be a coroutine function).
DestroyCallback = Callable[[str], "Awaitable[None] | None"]


class ActorRecord(NamedTuple):
    """One row of the actors table."""

    actor_id: str
    name: str
    #: The key as a list of segments (``[]`` for a keyless actor).
    key: list[str]
    #: CBOR bytes of the create input, or None.
    input: bytes | None
    #: Milliseconds since the epoch.
    create_ts: int
    #: Milliseconds since the epoch when destroyed, else None.
    destroy_ts: int | None
    #: Starts counted so far (the generation of the running or last instance; 0 = never ran).
    generation: int


class ActorHost(Protocol):
    """The runtime side that a driver drives (implemented by ``rivetkit.runtime.live_actors``)."""

    #: Makes the client of ``c.client()`` (set by the host: the server app, or the engine
    #: driver with its gateway); None until one is set.
    client_factory: Callable[[], Any] | None

    async def start_actor(self, record: ActorRecord, generation: int) -> None:
        """Start an instance of the actor; return once it is ready for requests."""
        ...

    async def stop_actor(self, actor_id: str, reason: StopReason) -> None:
        """Run the sleep or destroy shutdown; return once it has finished."""
        ...

    async def fire_alarm(self, actor_id: str) -> None:
        """The actor's alarm is due (the driver has started the actor first)."""
        ...

    def actor_names(self) -> list[str]:
        """The names of the actors this host can run (the engine driver announces them)."""
        ...


class Driver(Protocol):
    """Storage, placement and alarms for the actors of one process."""

    # -- what it is ------------------------------------------------------------------------

    @property
    def kind(self) -> DriverKind:
        """``"embedded"`` or ``"engine"``."""
        ...

    @property
    def pool_name(self) -> str:
        """The engine pool this driver serves (``""`` for the embedded driver)."""
        ...

    # -- life of the driver ----------------------------------------------------------------

    async def start(self, host: ActorHost) -> None:
        """Open storage, remember the host, arm the stored alarms."""
        ...

    async def stop(self) -> None:
        """Stop every running actor (reason ``shutdown``), flush and close storage."""
        ...

    # -- placement -------------------------------------------------------------------------

    async def get_or_create_actor(
        self, name: str, key: Sequence[str], input: bytes | None
    ) -> tuple[ActorRecord, bool]:
        """The live actor with ``(name, key)``, created when missing; ``(record, created)``."""
        ...

    async def create_actor(self, name: str, key: Sequence[str], input: bytes | None) -> ActorRecord:
        """Create an actor; RivetError ``actor/duplicate_key`` if ``(name, key)`` is taken."""
        ...

    async def get_actor(self, actor_id: str) -> ActorRecord | None:
        """The actor with this id (destroyed ones included), or None."""
        ...

    async def find_actor(self, name: str, key: Sequence[str]) -> ActorRecord | None:
        """The live (not destroyed) actor with ``(name, key)``, or None."""
        ...

    async def list_actors(self, name: str | None = None) -> list[ActorRecord]:
        """Live actors, optionally of one name, oldest first."""
        ...

    async def ensure_started(self, actor_id: str) -> ActorRecord:
        """Start the actor if it is not running (waking it); return its record.

        Concurrent calls share one start. RivetError ``actor/not_found`` for an unknown or
        destroyed actor.
        """
        ...

    def request_sleep(self, actor_id: str, generation: int) -> None:
        """Ask for the actor to be stopped with reason ``sleep`` (does not wait)."""
        ...

    def request_destroy(self, actor_id: str, generation: int) -> None:
        """Ask for the actor to be destroyed (does not wait); its data is then deleted."""
        ...

    async def destroy_actor(self, actor_id: str) -> None:
        """Destroy an actor from outside (manager API) and wait until it is gone."""
        ...

    def on_destroyed(self, callback: DestroyCallback) -> None:
        """Call ``callback(actor_id)`` after each destroy of an actor of this process, once
        its teardown is over (e.g. to drop what a transport cached about it)."""
        ...

    # -- KV (per actor; keys are compared as unsigned bytes) -------------------------------

    async def kv_get(self, actor_id: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (None where missing)."""
        ...

    async def kv_write(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]] = (),
        deletes: Sequence[bytes] = (),
    ) -> None:
        """Apply deletes, then puts, atomically; return once durable."""
        ...

    def kv_put_soon(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]],
        done: Callable[[bool, Any], None],
    ) -> bool:
        """Put ``puts`` as :meth:`kv_write` does without a coroutine: ``done(True, None)`` on
        the loop once committed, ``done(False, error)`` if the write failed. False, doing
        nothing, when the driver cannot (the caller then awaits :meth:`kv_write`)."""
        ...

    async def kv_list(
        self,
        actor_id: str,
        start: bytes,
        end: bytes | None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` (``end=None``: no upper bound), in key order."""
        ...

    def kv_known_empty(self, actor_id: str) -> bool:
        """True when the actor's KV is known to hold nothing (but maybe its inspector token,
        which ``rivetkit inspect token`` may put around the driver) without a store trip:
        every other read would answer nothing now. False when not known."""
        ...

    async def kv_delete_range(self, actor_id: str, start: bytes, end: bytes | None) -> None:
        """Delete entries with ``start <= key < end`` (``end=None``: no upper bound)."""
        ...

    # -- alarms ----------------------------------------------------------------------------

    async def set_alarm(self, actor_id: str, when_ms: int | None) -> None:
        """Set (or clear, with None) the actor's one alarm, in epoch milliseconds."""
        ...

    # -- SQL databases ---------------------------------------------------------------------

    def sql_backend(self, actor_id: str) -> SqlBackend:
        """The actor's SQL database (``c.db``), opened on first use by the caller."""
        ...


async def notify_destroyed(callbacks: Iterable[DestroyCallback], actor_id: str) -> None:
    """Call each :meth:`Driver.on_destroyed` callback with ``actor_id`` (awaiting coroutine
    ones); a failing callback is logged and does not stop the others."""
    for callback in list(callbacks):
        try:
            result = callback(actor_id)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logging.getLogger("rivetkit.driver").exception(
                "a destroy callback failed for actor %s", actor_id
            )


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: unbounded)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])

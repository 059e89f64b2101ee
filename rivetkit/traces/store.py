"""The traces' view of one actor's KV through its driver (:class:`DriverStore`).

The recorder knows this store by its type: with it, it asks the driver itself (one Python
call less per hand-over) whether a new actor's KV is known empty. :data:`DONE` is what an
awaitable step with nothing left to do returns.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

__all__ = ["DONE", "DriverStore"]


class _Done(tuple):  # type: ignore[type-arg]
    """An awaitable done at once, with no Python frame: ``await`` iterates an empty tuple."""

    __slots__ = ()

    if TYPE_CHECKING:

        def __await__(self) -> Generator[Any, None, None]:
            """Done at once (an empty iterator)."""
            ...

    else:
        __await__ = tuple.__iter__


#: An awaitable that is done at once (no coroutine made, no frame run by its ``await``).
DONE: Final = _Done()


class DriverStore:
    """The traces' view of one actor's KV through its driver; with the actor's ``name`` and
    ``key``, also who the actor is (the recorder's ``actor``: no tuple of its own)."""

    __slots__ = ("actor_id", "driver", "key", "name")

    def __init__(
        self, driver: Driver, actor_id: str, name: str = "", key: list[str] | None = None
    ) -> None:
        self.driver = driver
        self.actor_id = actor_id
        self.name = name
        self.key: list[str] = [] if key is None else key

    # write and list return the driver's coroutine (no coroutine of their own to await it).

    def write(
        self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]
    ) -> Coroutine[Any, Any, None]:
        """Apply ``deletes`` then ``puts`` atomically (awaitable)."""
        return self.driver.kv_write(self.actor_id, puts=puts, deletes=deletes)

    def put_soon(self, puts: list[tuple[bytes, bytes]], done: Callable[[bool, Any], None]) -> bool:
        """Put ``puts`` without awaiting (the driver's ``kv_put_soon``): ``done(ok, error)``
        on the loop once committed or failed; False, doing nothing, when the driver cannot."""
        return self.driver.kv_put_soon(self.actor_id, puts, done)

    def list(
        self, start: bytes, end: bytes | None, *, reverse: bool = False, limit: int | None = None
    ) -> Coroutine[Any, Any, list[tuple[bytes, bytes]]]:
        """Entries with ``start <= key < end`` in key order (``reverse``: last first;
        awaitable)."""
        return self.driver.kv_list(self.actor_id, start, end, reverse=reverse, limit=limit)

"""One execution of a workflow function (:class:`Run`): what its contexts share.

A run holds the history, the mode (``forward``, or ``rollback`` while compensations are
collected), the keys visited so far (for the scope-completeness checks), the rollback
handlers met on the way, and the flush lock; :meth:`Run.flush` writes the history with the
actor's state in one atomic KV write (:func:`rivetkit.workflow.storage.flush`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rivetkit.workflow import storage
from rivetkit.workflow.history import Entry, History

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["RollbackAction", "Run"]

#: A compensation met during a run: the step's entry, its handler, its recorded output.
RollbackAction = tuple[Entry, Callable[..., Any], Any]


class Run:
    """The shared part of one workflow execution."""

    def __init__(
        self,
        instance: ActorInstance,
        history: History,
        *,
        mode: str = "forward",
        on_error: Callable[..., Any] | None = None,
        on_flush: Callable[[], None] | None = None,
    ) -> None:
        self.instance = instance
        self.history = history
        #: ``forward`` (normal) or ``rollback`` (replaying to collect compensations).
        self.mode = mode
        self.visited: set[str] = set()
        self.rollback_actions: list[RollbackAction] = []
        self.on_error = on_error
        self._on_flush = on_flush
        self._lock = asyncio.Lock()
        #: Step body tasks cut short by a timeout (kept referenced while they go on).
        self.orphans: set[asyncio.Future[Any]] = set()

    def now_ms(self) -> int:
        """The wall clock in ms since the epoch (the runtime's clock: fakeable in tests)."""
        return int(self.instance.clock() * 1000)

    @property
    def evicted(self) -> bool:
        """The actor is stopping."""
        return self.instance.abort_event.is_set()

    async def flush(self) -> None:
        """Write the dirty history (with the actor's state snapshot, atomically)."""
        async with self._lock:
            if await storage.flush(self.instance, self.history) and self._on_flush is not None:
                self._on_flush()

    def report(self, event: dict[str, Any]) -> None:
        """Hand ``event`` to the workflow's ``on_error`` hook (its failures are logged)."""
        hook = self.on_error
        if hook is None:
            return
        try:
            result = hook(self.instance.context, event)
            if asyncio.iscoroutine(result):
                self.instance.wait_until(result)
        except Exception:
            self.instance.log.exception("the workflow's on_error hook failed")

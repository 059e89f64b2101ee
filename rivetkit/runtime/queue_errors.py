"""The errors of the actor queue (group ``queue``, plus ``actor.aborted`` for ended waits).

All of them are public (HTTP 400); :mod:`rivetkit.runtime.queue` raises them.
"""

from __future__ import annotations

from typing import Any

from rivetkit.errors import RivetError, actor_error

__all__ = ["aborted", "queue_error", "timed_out", "waiter_dropped"]


def queue_error(code: str, message: str, metadata: Any = None) -> RivetError:
    """An error of group ``queue``."""
    return RivetError("queue", code, message, metadata=metadata)


def timed_out(timeout: float | None) -> RivetError:
    """``queue.timed_out``: a wait of ``timeout`` seconds ended with nothing."""
    ms = 0 if timeout is None else int(timeout * 1000)
    return queue_error(
        "timed_out", f"Queue wait timed out after {ms} ms.", metadata={"timeout_ms": ms}
    )


def aborted() -> RivetError:
    """``actor.aborted``: the actor's abort signal (or the caller's ``signal``) ended a wait."""
    return actor_error("aborted", "Actor aborted.")


def waiter_dropped(ident: int) -> RivetError:
    """``queue.completion_waiter_dropped``: message ``ident`` will never be completed here."""
    return queue_error(
        "completion_waiter_dropped",
        f"queue message {ident} was dropped before it was completed (the actor stopped or "
        "the queue was reset)",
        metadata={"message_id": ident},
    )

"""A message received from the actor queue (:class:`QueueMessage`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rivetkit.runtime.queue_errors import queue_error

__all__ = ["Completer", "QueueMessage"]

#: How a message is completed: its queue deletes it durably, then answers a waiting sender.
Completer = Callable[["QueueMessage", Any], Awaitable[None]]


class QueueMessage:
    """A received message; completable ones must be completed with :meth:`complete`.

    Attributes: ``id`` (int, from 1), ``name``, ``body`` (the decoded CBOR body),
    ``created_at`` (milliseconds since the epoch), ``completable`` and ``completed``.
    """

    __slots__ = (
        "_complete_with",
        "_completing",
        "body",
        "completable",
        "completed",
        "created_at",
        "id",
        "name",
    )

    def __init__(
        self,
        complete_with: Completer,
        ident: int,
        name: str,
        body: Any,
        created_at: int,
        completable: bool,
    ) -> None:
        self._complete_with = complete_with
        self.id = ident
        self.name = name
        self.body = body
        #: Milliseconds since the epoch when the message was sent.
        self.created_at = created_at
        self.completable = completable
        self.completed = False
        self._completing = False

    async def complete(self, response: Any = None) -> None:
        """Finish a completable message: delete it durably, then hand ``response`` to the
        sender waiting for it (``enqueue_and_wait``, an HTTP send with ``wait``), if any.

        :raises RivetError: ``queue.complete_not_configured`` for a message received without
            ``completable=True``; ``queue.already_completed`` on a second call;
            ``queue.invalid_completion_payload`` when a sender waits and ``response`` is not
            CBOR-encodable. A failed write leaves the message completable again.
        """
        if not self.completable:
            raise queue_error(
                "complete_not_configured",
                f"Queue '{self.name}' does not support completion responses (receive it with "
                "completable=True).",
                metadata={"name": self.name},
            )
        if self.completed or self._completing:
            raise queue_error("already_completed", "Queue message was already completed.")
        self._completing = True
        try:
            await self._complete_with(self, response)
        finally:
            self._completing = False
        self.completed = True

    def __repr__(self) -> str:
        return f"QueueMessage(id={self.id}, name={self.name!r})"

"""What a stopped actor lets go of, so that reference counting frees it at once.

A running :class:`~rivetkit.runtime.instance.ActorInstance` and its collaborators point at
each other (the queue, the schedule, the saves, the connections, the sleep policy and the
context all keep their owner). Left as they are, every actor that stops leaves some fifty
objects in reference cycles that only a full collection of the cyclic garbage collector
frees: in a process creating thousands of actors a second, those collections were a quarter
of the CPU time.

:func:`release` runs once an instance has stopped (asleep or destroyed, its final save
done): each collaborator's back-reference becomes a :class:`StoppedOwner`, a weak reference
that behaves as the instance while anything still holds the instance, and the instance's own
context is replaced by one that reaches the instance the same way. Nothing else changes:

* a late caller holding the instance (or the context an action received, which holds the
  instance) sees exactly what it saw before, the collaborators included;
* a late caller holding only a collaborator (``q = c.queue``, kept after the actor slept)
  gets ``actor/destroying`` ("the actor is stopped") once nothing holds the instance any
  more, the error an action on a stopped instance gets, instead of a stale object.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from rivetkit.errors import RivetError, actor_error

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["StoppedOwner", "release"]


def _stopped() -> RivetError:
    return actor_error("destroying", "the actor is stopped")


class StoppedOwner:
    """The owner of a stopped actor's collaborators: forwards every attribute read and
    write to the instance while it is alive, and raises ``actor/destroying`` once it is gone."""

    __slots__ = ("_ref",)

    def __init__(self, instance: ActorInstance) -> None:
        object.__setattr__(self, "_ref", weakref.ref(instance))

    def __getattr__(self, name: str) -> Any:
        instance = self._ref()
        if instance is None:
            raise _stopped()
        return getattr(instance, name)

    def __setattr__(self, name: str, value: Any) -> None:
        instance = self._ref()
        if instance is None:
            raise _stopped()
        setattr(instance, name, value)

    def __repr__(self) -> str:
        instance = self._ref()
        return f"<StoppedOwner of {instance!r}>" if instance is not None else "<StoppedOwner>"


def release(instance: ActorInstance) -> None:
    """Break the reference cycles of the stopped ``instance`` (see the module docstring)."""
    owner: Any = StoppedOwner(instance)
    for part in (
        instance.queue,
        instance.schedule,
        instance.persistence,
        instance.connections,
        instance.sleep_policy,
    ):
        if getattr(part, "_owner", None) is instance:
            part._owner = owner
    gate: Any = instance._gate
    if gate is not None and gate._instance is instance:
        gate._instance = owner
    instance.queue.release()
    context = instance.context
    instance.context = type(context)(owner, None, context._client_source)

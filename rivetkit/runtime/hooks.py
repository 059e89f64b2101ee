"""Looking up an actor definition's hooks (shared by the instance and its collaborators)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition

__all__ = ["hook_fn", "is_sync"]


def is_sync(hook: Any) -> bool:
    """True for an absent hook or a synchronous one."""
    return hook is None or not hook.is_async


def hook_fn(definition: ActorDefinition, name: str) -> Callable[..., Any] | None:
    """The function of the hook ``name`` of ``definition`` (None: not set)."""
    hook = getattr(definition.hooks, name, None)
    return None if hook is None else hook.fn

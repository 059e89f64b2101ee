"""An actor definition's hooks as the instance and its collaborators call them: lookup,
the initial state and vars, and the actor's log prefix."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rivetkit.errors import actor_error
from rivetkit.runtime.phase import Phase

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["ActorLogAdapter", "hook_fn", "initial_state", "initial_vars", "is_sync", "run_hook"]


def is_sync(hook: Any) -> bool:
    """True for an absent hook or a synchronous one."""
    return hook is None or not hook.is_async


def hook_fn(definition: ActorDefinition, name: str) -> Callable[..., Any] | None:
    """The function of the hook ``name`` of ``definition`` (None: not set)."""
    hook = getattr(definition.hooks, name, None)
    return None if hook is None else hook.fn


async def initial_state(definition: ActorDefinition, context: Any, input_: Any) -> Any:
    """The state of a new actor: ``create_state(c, input)``, else the declared default."""
    factory = hook_fn(definition, "create_state")
    if factory is not None:
        result = factory(context, input_)
        if inspect.isawaitable(result):
            result = await result
        return result
    return definition.new_state_value()


async def initial_vars(definition: ActorDefinition, context: Any) -> Any:
    """The vars of a waking actor: ``create_vars(c)`` (within ``create_vars_timeout``), else
    the declared default."""
    factory = hook_fn(definition, "create_vars")
    if factory is not None:
        result = factory(context)
        if inspect.isawaitable(result):
            timeout = definition.options.create_vars_timeout
            try:
                result = await asyncio.wait_for(result, timeout)
            except asyncio.TimeoutError:
                raise actor_error(
                    "callback_timed_out",
                    f"create_vars did not finish within {timeout:g} s",
                    metadata={"callback": "create_vars"},
                ) from None
        return result
    return definition.new_vars_value()


async def run_hook(owner: ActorInstance) -> None:
    """The ``run`` hook of a started actor (its task): a failure while the actor runs is
    logged and puts the actor to sleep; the sleep policy hears of the end either way."""
    hook = hook_fn(owner.definition, "run")
    assert hook is not None
    try:
        result = hook(owner.context)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        if owner.phase == Phase.STARTED:
            owner.log.exception("run failed; the actor stops")
            owner.request_sleep()
        else:
            owner.log.exception("run failed during shutdown")
    finally:
        owner.sleep_policy.changed()
        # Once this task is done (can_sleep looks at it), not from inside it.
        owner._loop.call_soon(owner.sleep_policy.reset_idle)


class ActorLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes each line with the actor's name, key and id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Prefix ``msg`` with ``[name key id]``."""
        extra = self.extra or {}
        # The fields also travel as record attributes (the JSON log format shows them).
        kwargs["extra"] = {**extra, **(kwargs.get("extra") or {})}
        return f"[{extra['actor']} {extra['key']} {extra['actor_id']}] {msg}", kwargs

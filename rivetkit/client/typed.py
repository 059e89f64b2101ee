"""Typed action calls: ``await handle.call(increment, 5)``.

``call`` takes the decorated action function itself (importable from the module that defines
the actor), so a type checker checks the arguments against its parameters (after the context)
and infers the result from its return type; at run time the call sends the action's wire name
(set by ``@defn.action`` on the function, :data:`rivetkit.actor.ACTION_NAME_ATTRIBUTE`) and
the arguments as a positional list. Keyword arguments are accepted where the function takes
them positionally (they are put in their place); keyword-only parameters cannot travel.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["action_name_of", "wire_args"]


def action_name_of(action: Callable[..., Any]) -> str:
    """The wire name ``@defn.action`` gave ``action``.

    :raises TypeError: when ``action`` is not a function registered as an action (a str is
        pointed to ``.action(name, ...)``).
    """
    # Imported here: the client does not load the authoring layer until it is used.
    from rivetkit.actor import ACTION_NAME_ATTRIBUTE

    if isinstance(action, str):
        raise TypeError(
            f"call() takes the action's function, not its name: use .action({action!r}, ...) "
            "to call an action by name"
        )
    name = getattr(action, ACTION_NAME_ATTRIBUTE, None)
    if not isinstance(name, str):
        label = getattr(action, "__qualname__", None) or repr(action)
        raise TypeError(
            f"{label} is not a registered action: decorate it with @<actor>.action (and import "
            "the module that defines the actor), or call .action(name, ...)"
        )
    return name


@functools.lru_cache(maxsize=1024)
def _signature(action: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(action)
    except (TypeError, ValueError):
        return None


def wire_args(
    action: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """The positional wire arguments of ``action(c, *args, **kwargs)`` (``c`` left out).

    The arguments are bound to the function's signature (so a wrong count raises here, as
    calling the function would) and keyword arguments are put in their place.

    :raises TypeError: when the arguments do not fit the signature, or one goes to a
        keyword-only or ``**`` parameter (the wire carries positional arguments only).
    """
    signature = _signature(action)
    if signature is None:
        if kwargs:
            raise TypeError(
                f"{action!r} has no signature to place keyword arguments; pass them positionally"
            )
        return tuple(args)
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"action {action_name_of(action)!r}: {exc}") from None
    if bound.kwargs:
        names = ", ".join(sorted(bound.kwargs))
        raise TypeError(
            f"action arguments travel positionally; {names} cannot be sent as keyword-only"
        )
    return tuple(bound.args[1:])

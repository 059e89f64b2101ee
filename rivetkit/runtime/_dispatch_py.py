"""Pure-Python twin of action dispatch (compiled twin: ``rivetkit._speedups._dispatch``).

:class:`ActionTable` looks an action up by its wire name, validates the arguments and calls
it: a sync action's result comes back directly, an async action's coroutine is returned for
the caller to await (under its timeout). Unknown names raise ``actor/action_not_found``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rivetkit.errors import RivetError


def action_not_found(name: str) -> RivetError:
    """The ``actor/action_not_found`` error for ``name``."""
    return RivetError(
        "actor", "action_not_found", f"Action '{name}' not found", metadata={"name": name}
    )


class ActionTable:
    """The actions of one actor definition, by wire name."""

    __slots__ = ("_entries",)

    def __init__(self, actions: Mapping[str, Any]) -> None:
        # Each value is an ActionSpec-like object: name, fn, is_async, validate.
        self._entries: dict[str, tuple[Any, bool, Any]] = {
            name: (spec.fn, bool(spec.is_async), spec.validate) for name, spec in actions.items()
        }

    def is_async(self, name: str) -> bool:
        """True when ``name`` is an async action (raises for an unknown name)."""
        entry = self._entries.get(name)
        if entry is None:
            raise action_not_found(name)
        return entry[1]

    def call(self, name: str, ctx: Any, args: list[Any]) -> Any:
        """Validate ``args`` and call the action: its result (sync) or coroutine (async)."""
        entry = self._entries.get(name)
        if entry is None:
            raise action_not_found(name)
        fn, _, validate = entry
        if validate is not None:
            args = validate(args)
        return fn(ctx, *args)

    def names(self) -> list[str]:
        """The wire names, in definition order."""
        return list(self._entries)

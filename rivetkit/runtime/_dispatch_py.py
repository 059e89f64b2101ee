"""Pure-Python twin of action dispatch (compiled twin: ``rivetkit._speedups._dispatch``).

:class:`ActionTable` looks an action up by its wire name, validates the arguments and calls
it: a sync action's result comes back directly, an async action's coroutine is returned for
the caller to await (under its timeout). A sync action that takes longer than ``warn_after``
seconds (a monotonic clock read before and after it) is reported to ``on_slow(name,
seconds)``. Unknown names raise ``actor/action_not_found``; a
number of arguments the action's signature does not take raises ``actor/validation_error``
(a client's bad input, not an internal error), whether or not the action has a validator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import monotonic as _monotonic
from typing import Any

from rivetkit.errors import RivetError
from rivetkit.validation import validation_error


def action_not_found(name: str) -> RivetError:
    """The ``actor/action_not_found`` error for ``name``."""
    return RivetError(
        "actor", "action_not_found", f"Action '{name}' not found", metadata={"name": name}
    )


def bad_arguments(name: str, fn: Any, args: list[Any], error: TypeError) -> RivetError | None:
    """``actor/validation_error`` when calling the action ``fn`` raised ``error`` because the
    wire arguments do not fit its signature; None when the TypeError came from inside it.

    A call whose arguments do not bind raises before the function's frame runs, so the
    traceback holds no frame of ``fn``'s code. (A wrapper's own call of what it wraps is
    inside the wrapper: it stays an internal error.)
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return None
        tb = tb.tb_next
    count = len(args)
    msg = f"Action '{name}' does not take {count} argument{'' if count == 1 else 's'}"
    return validation_error(msg, [{"type": "arguments", "loc": [], "msg": msg}])


class ActionTable:
    """The actions of one actor definition, by wire name."""

    __slots__ = ("_blocking", "_entries", "_on_slow", "_warn_after")

    def __init__(
        self,
        actions: Mapping[str, Any],
        warn_after: float | None = None,
        on_slow: Callable[[str, float], object] | None = None,
    ) -> None:
        # Each value is an ActionSpec-like object: name, fn, is_async, validate (and
        # blocking: absent reads as False).
        self._entries: dict[str, tuple[Any, bool, Any]] = {
            name: (spec.fn, bool(spec.is_async), spec.validate) for name, spec in actions.items()
        }
        self._blocking = any(getattr(spec, "blocking", False) for spec in actions.values())
        # Both given, or no timing at all.
        self._warn_after = warn_after if on_slow is not None else None
        self._on_slow = on_slow

    @property
    def blocking(self) -> bool:
        """True when one of the actions is a blocking one (its actor needs a BlockingGate)."""
        return self._blocking

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
        fn, is_async, validate = entry
        if validate is not None:
            args = validate(args)
        warn_after = None if is_async else self._warn_after
        if warn_after is not None:
            started = _monotonic()
        try:
            output = fn(ctx, *args)
        except TypeError as exc:
            error = bad_arguments(name, fn, args, exc)
            if error is None:
                raise
            raise error from None
        if warn_after is not None:
            took = _monotonic() - started
            if took > warn_after and self._on_slow is not None:
                self._on_slow(name, took)
        return output

    def names(self) -> list[str]:
        """The wire names, in definition order."""
        return list(self._entries)

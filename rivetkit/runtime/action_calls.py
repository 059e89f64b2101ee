"""What an action call needs beside the dispatch twin: the per-definition action table and the
action's own deadline.

* :func:`action_table`: one :class:`~rivetkit.runtime.action_table.ActionTable` per actor
  definition, shared by its instances (rebuilt if the definition's actions changed);
* :func:`with_timeout`: await an action within ``action_timeout``; its own deadline raises
  :class:`ActionTimedOut`, a ``TimeoutError`` the action raised itself passes through;
  :func:`start_within` does its steps up to the action's first suspension without a
  coroutine of its own (most actions never suspend);
* :func:`start_action` and :func:`finish_action`: an instance's async action, its deadline
  and its bookkeeping (the save, the state check, the failures) around it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Generator
from time import monotonic
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar

from rivetkit.errors import RivetError, actor_error
from rivetkit.runtime.action_table import ActionTable
from rivetkit.runtime.blocking import slow_action_reporter, table_actions

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition
    from rivetkit.runtime.context import ActorContext
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "ActionTimedOut",
    "Suspended",
    "action_table",
    "finish_action",
    "start_action",
    "start_within",
    "with_timeout",
]

T = TypeVar("T")


class ActionTimedOut(Exception):
    """The action's own deadline passed (not a TimeoutError the action raised)."""


class Suspended:
    """What :func:`start_within` returns for an action that suspended: await ``rest``."""

    __slots__ = ("rest", "since")

    def __init__(self, rest: Awaitable[Any]) -> None:
        self.rest = rest
        self.since: int | None = None  # the caller's own bookkeeping


if sys.version_info >= (3, 11):

    async def with_timeout(awaitable: Awaitable[T], delay: float) -> T:
        """Await ``awaitable`` within ``delay`` seconds (:class:`ActionTimedOut` after).

        A coroutine runs its first step at once, without a timer: one that finishes without
        suspending (most actions) could not have been interrupted anyway. The deadline of
        one that suspends counts from the call, as it would with the timer armed first.
        """
        output = start_within(awaitable, delay)
        if type(output) is Suspended:
            return await output.rest  # type: ignore[no-any-return]
        return output  # type: ignore[no-any-return]

    def start_within(awaitable: Awaitable[Any], delay: float) -> Any:
        """:func:`with_timeout`'s steps without its coroutine: the output of ``awaitable``
        when its first step finishes it (the first step raises what it raises), else a
        :class:`Suspended` whose ``rest`` awaits the rest within what is left of ``delay``."""
        if type(awaitable) is not CoroutineType:
            return Suspended(_within(awaitable, asyncio.timeout(delay)))
        started = monotonic()  # (not the loop's clock: get_running_loop costs a getpid)
        try:
            first = awaitable.send(None)
        except StopIteration as stop:
            return stop.value
        left = delay - (monotonic() - started)
        return Suspended(_within(_Resume(awaitable, first), asyncio.timeout(left)))

    async def _within(awaitable: Awaitable[T], scope: asyncio.Timeout) -> T:
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise ActionTimedOut from None
            raise

    class _Resume:
        """Awaits the rest of a coroutine whose first step already ran and yielded
        ``first``: what ``await`` would have done from there, step for step."""

        __slots__ = ("_coro", "_first")

        def __init__(self, coro: CoroutineType[Any, Any, Any], first: Any) -> None:
            self._coro = coro
            self._first = first

        def __await__(self) -> Generator[Any, Any, Any]:
            coro = self._coro
            value = self._first
            self._first = None
            while True:
                try:
                    sent = yield value
                except BaseException as exc:  # cancellation (the timeout), close()
                    try:
                        value = coro.throw(exc)
                    except StopIteration as stop:
                        return stop.value
                else:
                    try:
                        value = coro.send(sent)
                    except StopIteration as stop:
                        return stop.value

else:  # pragma: no cover - Python 3.10

    async def with_timeout(awaitable: Awaitable[T], delay: float) -> T:
        """Await ``awaitable`` within ``delay`` seconds (:class:`ActionTimedOut` after)."""
        try:
            return await asyncio.wait_for(awaitable, delay)
        except asyncio.TimeoutError:
            raise ActionTimedOut from None

    def start_within(awaitable: Awaitable[Any], delay: float) -> Any:
        """:func:`with_timeout` as a :class:`Suspended` (no first step here on 3.10)."""
        return Suspended(with_timeout(awaitable, delay))


#: ``id -> (definition, actions dict, its size, table)``; rebuilt if the definition's actions
#: changed since.
_TABLES: dict[int, tuple[Any, dict[str, Any], int, ActionTable]] = {}


def action_table(definition: ActorDefinition) -> ActionTable:
    """The :class:`ActionTable` of ``definition``, shared by its instances."""
    actions = definition.actions
    cached = _TABLES.get(id(definition))
    if (
        cached is not None
        and cached[0] is definition
        and cached[1] is actions
        and cached[2] == len(actions)
    ):
        return cached[3]
    # Blocking actions become async wrappers that run them in a thread (runtime/blocking.py);
    # sync ones are timed for the slow action warning.
    table = ActionTable(
        table_actions(definition),
        definition.options.slow_sync_action_warning,
        slow_action_reporter(definition.name),
    )
    _TABLES[id(definition)] = (definition, actions, len(actions), table)
    return table


def start_action(instance: ActorInstance, name: str, args: list[Any], ctx: ActorContext) -> Any:
    """Run ``instance``'s async action ``name`` up to its first suspension (see
    :func:`start_within`): its output, else a :class:`Suspended` for :func:`finish_action`.
    Then, or on a failure, what ``ActorInstance._after_action`` does after an action."""
    since = instance._guard.restores
    try:
        output = start_within(instance.table.call(name, ctx, args), instance.options.action_timeout)
    except Exception as exc:
        failure = _failed(instance, name, exc)
        if failure is exc:
            raise
        raise failure from None
    if type(output) is Suspended:
        output.since = since
        return output
    instance._after_action(since)
    return output


async def finish_action(instance: ActorInstance, name: str, started: Suspended) -> Any:
    """The rest of an async action :func:`start_action` left suspended."""
    try:
        output = await started.rest
    except Exception as exc:
        failure = _failed(instance, name, exc)
        if failure is exc:
            raise
        raise failure from None
    instance._after_action(started.since)
    return output


def _failed(instance: ActorInstance, name: str, exc: Exception) -> Exception:
    """What an async action's failure ``exc`` raises (it may have changed the state)."""
    if isinstance(exc, ActionTimedOut):
        instance._after_action(raising=False)
        timeout = instance.options.action_timeout
        return actor_error(
            "action_timed_out",
            f"Action '{name}' timed out",
            metadata={"timeout_ms": int(timeout * 1000)},
        )
    if not isinstance(exc, RivetError):
        instance.log.exception("action %s failed", name)
    instance._after_action(raising=False)
    return exc

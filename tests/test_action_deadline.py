"""``with_timeout`` (rivetkit/runtime/action_calls.py): an action that finishes without
suspending runs without a timer; one that suspends keeps its deadline from the call, its
cancellation and the TimeoutError it raises itself behave as with ``asyncio.timeout``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rivetkit.runtime.action_calls import ActionTimedOut, Suspended, start_within, with_timeout


async def _value(value: Any) -> Any:
    return value


async def _raises(exc: BaseException) -> None:
    raise exc


async def _suspends(steps: int, value: Any) -> Any:
    for _ in range(steps):
        await asyncio.sleep(0)
    return value


async def _started(awaitable: Any, delay: float) -> Any:
    """``with_timeout`` as ``start_action`` does it: ``start_within``, then the rest."""
    output = start_within(awaitable, delay)
    if type(output) is Suspended:
        return await output.rest
    return output


# Both ways of awaiting an action within its deadline.
WITHIN = pytest.mark.parametrize("within", [with_timeout, _started])


@WITHIN
def test_finishes_without_suspending_and_without_a_timer(within: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        armed: list[Any] = []
        original = loop.call_at

        def spy(*args: Any, **kwargs: Any) -> Any:
            armed.append(args)
            return original(*args, **kwargs)

        loop.call_at = spy  # type: ignore[method-assign]
        try:
            assert await within(_value(42), 5.0) == 42
        finally:
            del loop.call_at
        assert armed == []

    asyncio.run(main())


@WITHIN
def test_values_and_errors_pass_through(within: Any) -> None:
    async def main() -> None:
        assert await within(_suspends(3, "done"), 5.0) == "done"
        with pytest.raises(ValueError, match="first step"):
            await within(_raises(ValueError("first step")), 5.0)

        async def later() -> None:
            await asyncio.sleep(0)
            raise KeyError("later")

        with pytest.raises(KeyError):
            await within(later(), 5.0)

        async def own_timeout() -> None:  # the action's own TimeoutError is not ours
            await asyncio.sleep(0)
            raise TimeoutError("mine")

        with pytest.raises(TimeoutError, match="mine"):
            await within(own_timeout(), 5.0)
        with pytest.raises(TimeoutError, match="mine"):
            await within(_raises(TimeoutError("mine")), 5.0)

    asyncio.run(main())


@WITHIN
def test_a_suspended_action_times_out_and_sees_the_cancellation(within: Any) -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        with pytest.raises(ActionTimedOut):
            await within(slow(), 0.01)

    asyncio.run(main())
    assert seen == ["cancelled"]


def test_the_deadline_counts_from_the_call() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines: list[float] = []
        original = loop.call_at

        def spy(when: float, *args: Any, **kwargs: Any) -> Any:
            deadlines.append(when)
            return original(when, *args, **kwargs)

        async def busy_then_wait() -> str:
            await asyncio.sleep(0)
            return "ok"

        loop.call_at = spy  # type: ignore[method-assign]
        try:
            before = loop.time()
            assert await with_timeout(busy_then_wait(), 100.0) == "ok"
        finally:
            del loop.call_at
        assert deadlines and before + 100.0 - 1e-6 <= deadlines[0] <= loop.time() + 100.0 + 1e-6

    asyncio.run(main())


def test_an_outer_cancellation_reaches_the_action() -> None:
    seen: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        task = asyncio.ensure_future(with_timeout(waits(), 60.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled"]


def test_other_awaitables_still_work() -> None:
    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        future.set_result(7)
        assert await with_timeout(future, 5.0) == 7
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(ActionTimedOut):
            await with_timeout(never, 0.01)

    asyncio.run(main())

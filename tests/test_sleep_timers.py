"""SleepTimers: the idle deadlines of all actors of a process on one TimerQueue and one loop
timer, with cheap re-arm and cancel."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Hashable

import pytest

from conftest import eventually
from rivetkit.runtime.timers import TOLERANCE, SleepTimers

pytestmark = pytest.mark.asyncio


async def test_one_loop_timer_fires_keys_in_deadline_order() -> None:
    fired: list[Hashable] = []
    timers = SleepTimers(fired.append)
    now = timers.now()
    for i, delay in enumerate([0.06, 0.02, 0.04, 0.02]):
        timers.arm(f"a{i}", now + delay)
    handle = timers._handle
    assert handle is not None and timers._armed_at == now + 0.02
    timers.arm("late", now + 10)  # a later deadline does not touch the loop timer
    assert timers._handle is handle
    await eventually(lambda: len(fired) == 4)
    assert fired == ["a1", "a3", "a2", "a0"]
    assert len(timers) == 1 and "late" in timers
    assert timers._armed_at == now + 10  # re-armed for what is left
    timers.close()


async def test_rearm_moves_a_deadline_and_cancel_forgets_it() -> None:
    fired: list[Hashable] = []
    timers = SleepTimers(fired.append)
    now = timers.now()
    timers.arm("x", now + 0.03)
    timers.arm("x", now + 0.06)  # later: replaces the first
    timers.arm("y", now + 0.03)
    assert timers.deadline("x") == now + 0.06 and len(timers) == 2
    assert timers.cancel("y") is True and timers.cancel("y") is False
    await asyncio.sleep(0.045)
    assert fired == []  # the loop timer fired for the stale entries and re-armed
    await eventually(lambda: fired == ["x"])
    assert len(timers) == 0 and timers._handle is None


async def test_cancelling_the_last_key_stops_the_loop_timer() -> None:
    timers = SleepTimers(lambda key: None)
    timers.arm("only", timers.now() + 5)
    assert timers._handle is not None
    timers.cancel("only")
    assert timers._handle is None and timers._armed_at == math.inf


async def test_a_failing_callback_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fired: list[Hashable] = []

    def on_due(key: Hashable) -> None:
        if key == "bad":
            raise RuntimeError("callback broke")
        fired.append(key)

    timers = SleepTimers(on_due)
    now = timers.now()
    timers.arm("bad", now)
    timers.arm("good", now + TOLERANCE / 2)  # within the tolerance: due together
    with caplog.at_level(logging.ERROR, logger="rivetkit.runtime"):
        await eventually(lambda: fired == ["good"])
    assert "callback broke" in caplog.text


async def test_callbacks_may_arm_again() -> None:
    fired: list[Hashable] = []
    timers: SleepTimers

    def on_due(key: Hashable) -> None:
        fired.append(key)
        if len(fired) < 3:
            timers.arm(key, timers.now() + 0.01)

    timers = SleepTimers(on_due)
    timers.arm("again", timers.now() + 0.01)
    await eventually(lambda: len(fired) == 3)
    await asyncio.sleep(0.03)
    assert fired == ["again"] * 3 and len(timers) == 0


async def test_many_keys_rearmed_often_share_one_handle() -> None:
    fired: list[Hashable] = []
    timers = SleepTimers(fired.append)
    now = timers.now()
    for round_ in range(20):
        for i in range(500):
            timers.arm(i, now + 60 + round_)  # every "request" pushes the deadline
    assert len(timers) == 500 and timers._armed_at == now + 60
    timers.close()
    assert timers._handle is None

"""The collector's first threshold while a runtime runs (rivetkit/runtime/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rivetkit import ActorOptions, actor, setup
from rivetkit.runtime import gc_tuning
from rivetkit.testing import setup_runtime

pytestmark = pytest.mark.asyncio

counter = actor("counter", state={"count": 0}, options=ActorOptions(sleep_timeout=0.05))


@counter.action
def increment(c: object) -> int:
    state = c.state  # type: ignore[attr-defined]
    state["count"] += 1
    return int(state["count"])


registry = setup(use=[counter])


@pytest.fixture(autouse=True)
def default_thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Python's default thresholds during the test, the previous ones after it."""
    monkeypatch.delenv(gc_tuning.ENV, raising=False)
    before = gc.get_threshold()
    gc.set_threshold(gc_tuning.PYTHON_DEFAULT, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def test_raised_while_a_runtime_runs_then_put_back() -> None:
    async with setup_runtime(registry) as client:
        assert gc.get_threshold() == (gc_tuning.GEN0_THRESHOLD, 10, 10)
        assert await client.get_or_create("counter", ["a"]).increment() == 1
    assert gc.get_threshold() == (gc_tuning.PYTHON_DEFAULT, 10, 10)


async def test_put_back_only_when_the_last_runtime_stops() -> None:
    async with setup_runtime(registry):
        async with setup_runtime(registry):
            assert gc.get_threshold()[0] == gc_tuning.GEN0_THRESHOLD
        assert gc.get_threshold()[0] == gc_tuning.GEN0_THRESHOLD
    assert gc.get_threshold()[0] == gc_tuning.PYTHON_DEFAULT


async def test_a_threshold_the_application_chose_is_left_alone() -> None:
    gc.set_threshold(2_000, 5, 5)
    async with setup_runtime(registry):
        assert gc.get_threshold() == (2_000, 5, 5)
    assert gc.get_threshold() == (2_000, 5, 5)


async def test_one_changed_while_running_is_not_put_back() -> None:
    async with setup_runtime(registry):
        gc.set_threshold(3_000, 10, 10)
    assert gc.get_threshold() == (3_000, 10, 10)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", gc_tuning.PYTHON_DEFAULT), ("5000", 5_000), ("many", gc_tuning.GEN0_THRESHOLD)],
)
async def test_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv(gc_tuning.ENV, value)
    async with setup_runtime(registry):
        assert gc.get_threshold()[0] == expected
    assert gc.get_threshold()[0] == gc_tuning.PYTHON_DEFAULT

"""Shared fixtures and helpers.

Every hot-path twin is tested through one parametrized fixture (``py``, ``cy``): the BARE
engine here, action dispatch in ``test_dispatch.py``; both use :func:`twin`.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections import Counter
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import settings

from rivetkit import _twins
from rivetkit.protocol import _bare_py

# No test asserts an absolute time: hypothesis' default 200 ms deadline per example fails
# a correct property on a loaded machine (the pure twins under CI's load), so it is off for
# every test; @settings(max_examples=...) elsewhere keeps this default.
settings.register_profile("rivetkit", deadline=None)
settings.load_profile("rivetkit")

TWIN_IDS = ["py", "cy"]


def compiled_module(name: str) -> ModuleType | None:
    """The compiled twin ``rivetkit._speedups.<name>``, or None when it was not built."""
    try:
        return importlib.import_module(f"rivetkit._speedups.{name}")
    except ImportError:
        return None


def compiled_twin() -> ModuleType | None:
    """The compiled BARE engine, or None when it was not built."""
    return compiled_module("_bare")


def twin(param: str, compiled_name: str, pure: ModuleType | str) -> ModuleType:
    """The twin a ``py``/``cy`` parametrized fixture asks for.

    ``py`` is the pure module ``pure`` (a module or its dotted name); ``cy`` is
    ``rivetkit._speedups.<compiled_name>``. A missing compiled twin fails the test when
    ``RIVETKIT_REQUIRE_SPEEDUPS=1`` (as in CI); otherwise the ``cy`` case is skipped with the
    reason shown in the summary.
    """
    if param == "py":
        return importlib.import_module(pure) if isinstance(pure, str) else pure
    module = compiled_module(compiled_name)
    if module is None:
        if _twins.SPEEDUPS_REQUIRED:
            pytest.fail(
                f"RIVETKIT_REQUIRE_SPEEDUPS=1 but rivetkit._speedups.{compiled_name} is not built"
            )
        pytest.skip(f"compiled twin rivetkit._speedups.{compiled_name} is not built")
    return module


def both_twins(compiled_name: str, pure: ModuleType | str) -> tuple[ModuleType, ModuleType]:
    """The pure and the compiled twin, for differential tests.

    Without the compiled twin the test is skipped, or fails under
    ``RIVETKIT_REQUIRE_SPEEDUPS=1`` (never a silent pass of a comparison that did not run).
    """
    return twin("py", compiled_name, pure), twin("cy", compiled_name, pure)


@pytest.fixture(params=TWIN_IDS)
def engine(request: pytest.FixtureRequest) -> ModuleType:
    """The BARE engine twin under test: ``py`` (pure) or ``cy`` (compiled)."""
    return twin(request.param, "_bare", _bare_py)


async def eventually(
    predicate: Callable[[], object], *, timeout: float = 5.0, interval: float = 0.005
) -> None:
    """Wait until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate!r}")
        await asyncio.sleep(interval)


class LoopClock:
    """The running event loop's clock, moved forward on demand: an injectable clock for
    everything kept in loop time (idle sleep, grace periods, action and hook timeouts).

    It still runs with real time too (real loop time plus the offset moved so far), so
    ``asyncio.sleep`` and :func:`eventually` keep working. Use it as a context manager inside
    the test (it patches the running loop and restores it on exit). The clock must not go
    back while deadlines are armed: enter it before the runtime starts, leave it after::

        with LoopClock() as clock:
            async with setup_test(registry) as client:
                ...
                await clock.advance(30)  # a 30 s deadline is now due, and has been handled
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._real = self.loop.time
        self.offset = 0.0

    def time(self) -> float:
        """The loop time: real plus the offset."""
        return self._real() + self.offset

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, then let what came due run."""
        self.offset += seconds
        for _ in range(5):
            await asyncio.sleep(0)

    def __enter__(self) -> LoopClock:
        self.loop.time = self.time  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.loop.time


def tasks_by_name() -> Counter[str]:
    """Live asyncio tasks, by coroutine name (the current task left out)."""
    current = asyncio.current_task()
    return Counter(
        getattr(task.get_coro(), "__qualname__", repr(task.get_coro()))
        for task in asyncio.all_tasks()
        if task is not current
    )


# The session-scoped real Rivet Engine (tests/engine_fixtures.py), shared by every module.
from engine_fixtures import own_engine, rivet_engine  # noqa: E402, F401

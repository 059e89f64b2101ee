"""Shared fixtures: every codec test runs over both twins of the BARE engine."""

from __future__ import annotations

from types import ModuleType

import pytest

from rivetkit import _twins
from rivetkit.protocol import _bare_py


def compiled_twin() -> ModuleType | None:
    """The compiled BARE engine, or None when it was not built."""
    try:
        from rivetkit._speedups import _bare
    except ImportError:
        return None
    return _bare


@pytest.fixture(params=["py", "cy"])
def engine(request: pytest.FixtureRequest) -> ModuleType:
    """The BARE engine twin under test: ``py`` (pure) or ``cy`` (compiled).

    A missing compiled twin fails the test when ``RIVETKIT_REQUIRE_SPEEDUPS=1`` (as in CI);
    otherwise the ``cy`` case is skipped with the reason shown in the summary.
    """
    if request.param == "py":
        return _bare_py
    module = compiled_twin()
    if module is None:
        if _twins.SPEEDUPS_REQUIRED:
            pytest.fail("RIVETKIT_REQUIRE_SPEEDUPS=1 but rivetkit._speedups._bare is not built")
        pytest.skip("compiled twin rivetkit._speedups._bare is not built")
    return module

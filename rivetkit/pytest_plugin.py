"""The pytest plugin of rivetkit (entry point ``pytest11``): the ``rivet_test`` fixture.

Installed with rivetkit, it is active in every pytest run; it only adds the fixture and
imports nothing from rivetkit until a test asks for it. With pytest-asyncio::

    import pytest

    @pytest.mark.asyncio
    async def test_counter(rivet_test):
        async with rivet_test(registry) as t:
            assert await t.counter.get_or_create(["k"]).increment(5) == 5

``rivet_test(registry, **options)`` is :func:`rivetkit.testing.setup_test` with ``data_dir``
defaulting to a directory under the test's ``tmp_path`` (kept after the test, like every
``tmp_path``, so a failed test's store can be inspected). Disable the plugin with
``-p no:rivetkit``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rivetkit.testing import TestClient

__all__ = ["RivetTest", "rivet_test"]


class RivetTest:
    """The ``rivet_test`` fixture's value: call it to get :func:`~rivetkit.testing.setup_test`
    with a data directory under the test's ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self._count = 0

    def __call__(
        self,
        registry: Any,
        data_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> contextlib.AbstractAsyncContextManager[TestClient]:
        """``setup_test(registry, data_dir, **options)``; ``data_dir`` defaults to
        ``tmp_path / "rivetkit-N"`` (a new one per call)."""
        from rivetkit.testing import setup_test

        if data_dir is None and options.get("driver") is None:
            self._count += 1
            path = self._tmp_path / f"rivetkit-{self._count}"
            path.mkdir()
            data_dir = path
        return setup_test(registry, data_dir, **options)


@pytest.fixture
def rivet_test(tmp_path: Path) -> RivetTest:
    """Run actors in process: ``async with rivet_test(registry) as t:`` (see
    :func:`rivetkit.testing.setup_test`)."""
    return RivetTest(tmp_path)

"""pytest configuration of the micro-benchmarks (``benchmarks/test_micro.py``)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_benchmark_generate_json(
    config: Any, benchmarks: Any, include_data: bool, machine_info: Any, commit_info: Any
) -> Generator[None, Any, None]:
    """Drop every timing sample from ``--benchmark-json`` (megabytes); the stats stay."""
    outcome = yield
    output = outcome.get_result()
    for bench in output.get("benchmarks", []):
        bench.get("stats", {}).pop("data", None)

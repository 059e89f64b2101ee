"""Run README.md's Python examples as tests, by the rules of ``docs/conftest.py``."""

from __future__ import annotations

from pathlib import Path

from docs.conftest import make_sybil

pytest_collect_file = make_sybil(Path(__file__).parent, ["README.md"]).pytest()

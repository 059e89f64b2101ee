"""Twin selection: RIVETKIT_PURE, RIVETKIT_REQUIRE_SPEEDUPS and rivetkit.SPEEDUPS."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import compiled_twin
from rivetkit import _twins

PROBE = "import rivetkit, rivetkit.protocol.bare as b; print(rivetkit.SPEEDUPS, b.Codec.__module__)"


def run_probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RIVETKIT_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def test_pure_forced() -> None:
    assert run_probe(RIVETKIT_PURE="1") == "False rivetkit.protocol._bare_py"


def test_pure_wins_over_require() -> None:
    out = run_probe(RIVETKIT_PURE="1", RIVETKIT_REQUIRE_SPEEDUPS="1")
    assert out == "False rivetkit.protocol._bare_py"


def test_compiled_by_default() -> None:
    if compiled_twin() is None:
        if _twins.SPEEDUPS_REQUIRED:
            pytest.fail("RIVETKIT_REQUIRE_SPEEDUPS=1 but the compiled twin is not built")
        pytest.skip("compiled twin not built")
    assert run_probe() == "True rivetkit._speedups._bare"
    assert run_probe(RIVETKIT_REQUIRE_SPEEDUPS="1") == "True rivetkit._speedups._bare"


def test_missing_compiled_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_twins, "PURE_FORCED", False)
    monkeypatch.setattr(_twins, "compiled", {})
    monkeypatch.setattr(_twins, "SPEEDUPS_REQUIRED", False)
    module = _twins.load("_no_such_twin", "rivetkit.protocol._bare_py")
    assert module.__name__ == "rivetkit.protocol._bare_py"
    assert not _twins.speedups_active()
    monkeypatch.setattr(_twins, "SPEEDUPS_REQUIRED", True)
    with pytest.raises(ImportError, match="RIVETKIT_REQUIRE_SPEEDUPS=1"):
        _twins.load("_no_such_twin", "rivetkit.protocol._bare_py")


def test_active_twin_matches_environment() -> None:
    import rivetkit

    if os.environ.get("RIVETKIT_PURE") == "1":
        assert rivetkit.SPEEDUPS is False
    elif _twins.SPEEDUPS_REQUIRED:
        assert rivetkit.SPEEDUPS is True

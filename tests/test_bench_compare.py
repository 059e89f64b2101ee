"""``benchmarks/bench_compare.py`` (``make bench-compare``): save, then gate the compiled rows.

The benchmarks here are two tiny ones, a compiled and a pure row, timed by an injected clock
that only the benchmarked call moves (1 µs per call), so every run measures exactly the same
and the 2x margins below cannot meet noise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "bench_compare.py"

CLOCK = '''
"""An injected benchmark clock: one nanosecond per reading, plus what ``spend`` adds."""
now = [0.0]


def read():
    now[0] += 1e-9
    return now[0]


def spend(seconds):
    now[0] += seconds
'''

TINY = """
import os

import pytest

import fakeclock


@pytest.fixture(params=["compiled", "pure"])
def twin(request):
    return request.param


def test_tiny(benchmark, twin):
    # SLOW_ONCE names a file: while it is missing, a row takes 2x as long, then creates it.
    marker = os.environ.get("SLOW_ONCE")
    slow = bool(marker) and not os.path.exists(marker)
    benchmark(fakeclock.spend, 2e-6 if slow else 1e-6)
    if slow:
        open(marker, "w").close()
"""

TIME_FIELDS = ("min", "max", "mean", "median", "q1", "q3", "iqr", "stddev", "ld15iqr", "hd15iqr")


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder holding the clock and the tiny benchmarks, after a first run of the script
    (which saved the baseline), and that run's output."""
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "fakeclock.py").write_text(CLOCK)
    (folder / "test_tiny.py").write_text(TINY)
    done = compare(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, done.stdout


@pytest.fixture
def tiny(first: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of that folder: the tiny benchmarks and their saved baseline."""
    shutil.copytree(first[0], tmp_path / "tiny")
    return tmp_path / "tiny"


def compare(
    folder: Path, *options: str, slow_once: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the script on the tiny benchmarks with the injected clock."""
    env = {**os.environ, "PYTHONPATH": str(folder)}
    if slow_once is not None:
        env["SLOW_ONCE"] = str(slow_once)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--storage", str(folder / "store"), *options,
         "--tests", str(folder / "test_tiny.py"),
         "--", "--benchmark-timer=fakeclock.read", "--benchmark-max-time=0.0001"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def saved_runs(folder: Path) -> list[Path]:
    """The runs saved in the storage, oldest first."""
    return sorted((folder / "store").glob("*/[0-9][0-9][0-9][0-9]_*.json"))


def scale(path: Path, factors: dict[str, float]) -> None:
    """Multiply the saved run's times by its twin's factor (0.5: twice as fast as measured)."""
    saved = json.loads(path.read_text())
    for bench in saved["benchmarks"]:
        factor = factors[bench["params"]["twin"]]
        stats = bench["stats"]
        for field in TIME_FIELDS:
            if field in stats:
                stats[field] *= factor
        stats["ops"] /= factor
    path.write_text(json.dumps(saved))


def test_first_run_saves_a_baseline_and_says_so(first: tuple[Path, str]) -> None:
    """With nothing saved, the run is saved (both twins) and the exit status is 0."""
    folder, output = first
    assert "no saved baseline of this machine" in output
    assert "baseline saved" in output
    runs = saved_runs(folder)
    assert [path.name for path in runs] == ["0001_baseline.json"]
    twins = {bench["params"]["twin"] for bench in json.loads(runs[0].read_text())["benchmarks"]}
    assert twins == {"compiled", "pure"}


def test_a_baseline_twice_as_fast_fails(tiny: Path) -> None:
    """The compiled row now takes 2x the baseline's median: exit status 1."""
    (baseline,) = saved_runs(tiny)
    scale(baseline, {"compiled": 0.5, "pure": 1.0})
    done = compare(tiny)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 compiled row(s) over +20%: running them once more" in done.stdout
    assert "FAILED, a compiled twin is more than 20% slower" in done.stdout
    assert "test_tiny[compiled]" in done.stdout + done.stderr
    assert saved_runs(tiny) == [baseline]  # a comparison saves nothing


def test_a_baseline_twice_as_slow_passes_and_pure_rows_do_not_gate(tiny: Path) -> None:
    """Compiled 2x slower in the baseline passes, even with a pure row that would fail."""
    (baseline,) = saved_runs(tiny)
    scale(baseline, {"compiled": 2.0, "pure": 0.5})
    done = compare(tiny)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed, no compiled twin is more than 20% slower" in done.stdout
    assert "1 deselected" in done.stdout


def test_the_threshold_is_an_option(tiny: Path) -> None:
    """A 2x slower compiled row passes a 150% threshold."""
    (baseline,) = saved_runs(tiny)
    scale(baseline, {"compiled": 0.5, "pure": 1.0})
    assert compare(tiny, "--threshold", "150").returncode == 0


def test_a_run_of_another_machine_is_not_a_baseline(tiny: Path) -> None:
    """A saved run from another host is ignored: a new baseline is saved instead."""
    (baseline,) = saved_runs(tiny)
    saved = json.loads(baseline.read_text())
    saved["machine_info"]["node"] = "another-host"
    baseline.write_text(json.dumps(saved))
    done = compare(tiny)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no saved baseline of this machine" in done.stdout
    assert [path.name for path in saved_runs(tiny)] == ["0001_baseline.json", "0002_baseline.json"]


def test_a_row_slower_only_once_is_noise(tiny: Path) -> None:
    """A row 2x slower in the first run and not in the re-run passes; ``--no-rerun`` fails."""
    done = compare(tiny, slow_once=tiny / "slowed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running them once more" in done.stdout
    assert "passed, no compiled twin is more than 20% slower" in done.stdout
    strict = compare(tiny, "--no-rerun", slow_once=tiny / "slowed-strict")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "running them once more" not in strict.stdout

"""Compare the compiled twins' micro-benchmarks with this machine's saved baseline.

``make bench-compare`` runs this. The baseline is the newest run saved in the storage
(``benchmarks/results/micro-history/``, pytest-benchmark's layout: a folder per machine id,
``Linux-CPython-3.11-64bit/0001_micro.json``, ...) that was measured on this machine: same host
name, CPU and Python (``make bench-micro`` saves every run there).

- No such run: the whole micro suite (both twins) runs once and is saved as the baseline
  (``NNNN_baseline.json``); it says so and exits 0.
- Otherwise only the compiled twins' rows (parameter ``twin`` = ``compiled``) run, with
  pytest-benchmark's ``--benchmark-compare=<that file>`` and
  ``--benchmark-compare-fail=median:<threshold>%``: the exit status is 1 when the median of one
  of them is more than ``--threshold`` percent (20) slower than in the baseline, in a first
  run and again when the rows over it run once more (a busy machine slows a row now and
  then, a regression every time; ``--no-rerun`` fails on the first). The pure twins do not
  gate.

    python benchmarks/bench_compare.py [--storage DIR] [--threshold PCT] [--save] [--no-rerun]
                                       [--tests PATH ...] [-- PYTEST_ARGS ...]

``--save`` saves a new baseline even when one exists. Arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.session import PerformanceRegression
from pytest_benchmark.utils import get_machine_id

HERE = Path(__file__).resolve().parent
STORAGE = HERE / "results" / "micro-history"
TESTS = HERE / "test_micro.py"
GATED_TWIN = "compiled"


class CompiledRowsOnly:
    """A pytest plugin that keeps only the rows of the compiled twin (``twin`` = ``compiled``),
    and of those only the node ids in ``only`` when it is given."""

    def __init__(self, only: frozenset[str] | None = None) -> None:
        self.only = only

    def wanted(self, item: Any) -> bool:
        """Whether this collected test runs."""
        return twin_of(item) == GATED_TWIN and (self.only is None or item.nodeid in self.only)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[Any]) -> None:
        """Deselect every other test."""
        keep = [item for item in items if self.wanted(item)]
        dropped = [item for item in items if not self.wanted(item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep


def twin_of(item: Any) -> str | None:
    """The ``twin`` parameter of a collected test, if it has one."""
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("twin")


def this_machine() -> dict[str, str]:
    """What must match for a saved run to count as measured on this machine."""
    from pytest_benchmark.plugin import get_cpu_info

    return {
        "node": platform.node(),
        "machine": platform.machine(),
        "python_version": platform.python_version(),
        "cpu": str(get_cpu_info().get("brand_raw", "")),  # type: ignore[no-untyped-call]
    }


def machine_of(saved: dict[str, Any]) -> dict[str, str]:
    """The same fields from a saved run's ``machine_info``."""
    info = saved.get("machine_info", {})
    return {
        "node": str(info.get("node", "")),
        "machine": str(info.get("machine", "")),
        "python_version": str(info.get("python_version", "")),
        "cpu": str(info.get("cpu", {}).get("brand_raw", "")),
    }


def find_baseline(storage: Path, machine: dict[str, str]) -> Path | None:
    """The newest saved run of this machine that holds compiled-twin rows, if any."""
    folder = storage / str(get_machine_id())  # type: ignore[no-untyped-call]
    for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.json"), reverse=True):
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        has_gated = any(
            bench.get("params", {}).get("twin") == GATED_TWIN for bench in saved["benchmarks"]
        )
        if has_gated and machine_of(saved) == machine:
            return path
    return None


def pytest_args(storage: Path, tests: list[str], extra: list[str]) -> list[str]:
    """The arguments shared by both modes."""
    return [
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-storage=file://{storage}",
        "--benchmark-columns=median,iqr,rounds",
        *tests,
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    """Save a baseline or compare with it; the exit status says whether a compiled row lost."""
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storage", type=Path, default=STORAGE, help=f"pytest-benchmark storage ({STORAGE})"
    )
    parser.add_argument("--threshold", type=int, default=20, help="percent (default 20)")
    parser.add_argument("--save", action="store_true", help="save a new baseline")
    parser.add_argument(
        "--tests", nargs="+", default=[str(TESTS)], help=f"the benchmarks to run ({TESTS})"
    )
    parser.add_argument(
        "--no-rerun",
        dest="rerun",
        action="store_false",
        help="fail at once, without running the slower rows a second time",
    )
    args = parser.parse_args(argv)
    storage = args.storage.resolve()
    base = pytest_args(storage, args.tests, extra)
    baseline = None if args.save else find_baseline(storage, this_machine())

    if baseline is None:
        print(f"bench-compare: no saved baseline of this machine in {storage}: saving one")
        status = pytest.main([*base, "--benchmark-save=baseline"])
        if status != 0:
            return int(status)
        print("bench-compare: baseline saved; run `make bench-compare` again after a change")
        return 0

    print(f"bench-compare: compiled twins against {baseline} (fail above +{args.threshold}%)")
    gate = [f"--benchmark-compare={baseline}", f"--benchmark-compare-fail=median:{args.threshold}%"]
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "now.json"
        status, regressed = run_gated([*base, *gate], result, None)
        slower = over_threshold(result, baseline, args.threshold) if regressed else frozenset()
        if slower and args.rerun:
            # A busy machine slows a row now and then; a regression slows it every time.
            print(
                f"bench-compare: {len(slower)} compiled row(s) over +{args.threshold}%: "
                "running them once more, to tell a regression from noise"
            )
            status, regressed = run_gated([*base, *gate], result, slower)
    if regressed:
        print(f"bench-compare: FAILED, a compiled twin is more than {args.threshold}% slower")
        return 1
    if status == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("bench-compare: no compiled-twin rows to compare")
        return 0
    if status == 0:
        print(f"bench-compare: passed, no compiled twin is more than {args.threshold}% slower")
    return int(status)


def run_gated(args: list[str], result: Path, only: frozenset[str] | None) -> tuple[int, bool]:
    """Run the compiled rows (those in ``only``, if given) with the gate: (exit status, whether
    one was over the threshold). The figures are written to ``result``."""
    try:
        status = pytest.main(
            [*args, f"--benchmark-json={result}"], plugins=[CompiledRowsOnly(only)]
        )
    except PerformanceRegression:
        return 1, True
    return int(status), False


def over_threshold(result: Path, baseline: Path, threshold: int) -> frozenset[str]:
    """The node ids whose median in ``result`` is more than ``threshold`` % above the
    baseline's (pytest-benchmark's ``median:N%`` check)."""
    before = {
        bench["fullname"]: float(bench["stats"]["median"])
        for bench in json.loads(baseline.read_text())["benchmarks"]
    }
    return frozenset(
        bench["fullname"]
        for bench in json.loads(result.read_text())["benchmarks"]
        if bench["fullname"] in before
        and float(bench["stats"]["median"]) > before[bench["fullname"]] * (1 + threshold / 100)
    )


if __name__ == "__main__":
    sys.exit(main())

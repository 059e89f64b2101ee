"""Run the test suite twice: with the compiled twins, then pure (RIVETKIT_PURE=1).

Used by cibuildwheel's test-command on every platform (no shell syntax needed):

    python ci/run_tests.py path/to/tests [extra pytest args...]

Exits non-zero when either pass fails (including pytest's exit 5: no tests collected).
"""

from __future__ import annotations

import os
import subprocess
import sys


def run(label: str, env: dict[str, str], args: list[str]) -> int:
    print(f"=== rivetkit tests ({label}) ===", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-x", *args], env=env)


def main(argv: list[str]) -> int:
    compiled = {k: v for k, v in os.environ.items() if k != "RIVETKIT_PURE"}
    # The pure pass forces the pure twins, so it must not also demand the compiled ones.
    pure = {k: v for k, v in compiled.items() if k != "RIVETKIT_REQUIRE_SPEEDUPS"}
    pure["RIVETKIT_PURE"] = "1"
    return run("compiled", compiled, argv) or run("pure", pure, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

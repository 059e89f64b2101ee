"""Run a benchmark script again in a child process on one twin, for scripts that compare the
compiled and pure twins: ``RIVETKIT_PURE=1`` for the pure one, ``RIVETKIT_REQUIRE_SPEEDUPS=1``
for the compiled one (so a missing build fails instead of silently measuring pure code).

The child prints its results as JSON on its last line of output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_twin(script: str, pure: bool, args: list[str], *, timeout: float) -> dict[str, Any]:
    """``python script --child *args`` with only the chosen twin importable; its JSON result.

    :raises subprocess.CalledProcessError: the child failed (for the compiled twin: most
        often, the extension modules are not built)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVETKIT_")}
    env["RIVETKIT_PURE" if pure else "RIVETKIT_REQUIRE_SPEEDUPS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, script, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result

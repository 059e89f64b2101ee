"""Run the test suite in a clone of the repository alone, with no ``../shared`` beside it.

    python ci/test_standalone.py [--pure] [--link-node-modules] [--keep] [pytest args...]

The project is developed in a workspace where a ``shared/`` folder (specs, schemas, golden
vectors) sits next to the checkout; this proves the repository does not need it. Steps, all
in a fresh temporary folder (never in the checkout):

1. ``git clone`` the checkout (its ``HEAD``: uncommitted changes are not in the clone, and a
   note says so) into ``<tmp>/repo``; there is no ``<tmp>/shared``;
2. ``make venv interop-deps`` in the clone, as on a fresh clone: its own venv with the
   compiled twins built in place, and the npm packages of ``tests/interop``
   (``--link-node-modules`` links the checkout's ``tests/interop/node_modules`` instead,
   to save the download);
3. check that ``import rivetkit`` there is the clone's own package (compiled, unless
   ``--pure``), then run the suite once: compiled with ``RIVETKIT_REQUIRE_SPEEDUPS=1``, or
   pure (``RIVETKIT_PURE=1``) with ``--pure``.

Exits with pytest's status (``5``, no tests collected, is a failure too); prints the time of
each step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Variables of the caller that must not leak into the clone's make or test run: make's
#: own (command-line variables travel in MAKEFLAGS), the venv, and anything that would point
#: the tests at the checkout or at the shared folder.
SCRUBBED = (
    "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VENV", "PYTEST_ARGS", "VECTORS",
    "PYTHONPATH", "VIRTUAL_ENV", "RIVETKIT_PURE", "RIVETKIT_VECTORS_DIR", "RIVETKIT_VECTORS",
)  # fmt: skip


def step(label: str, started: float) -> None:
    print(f"--- {label}: {time.monotonic() - started:.1f} s", flush=True)


def clone(repo: Path) -> None:
    """Clone the checkout's ``HEAD`` into ``repo``; say so when the work tree differs."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    note = " (the checkout has uncommitted changes: they are not in the clone)" if dirty else ""
    print(f"cloned HEAD {head}{note}", flush=True)


def check_import(python: Path, repo: Path, env: dict[str, str], pure: bool) -> None:
    """``import rivetkit`` in the clone resolves to the clone, with the twins asked for."""
    probe = "import rivetkit; print(rivetkit.__file__); print(rivetkit.SPEEDUPS)"
    out = subprocess.run(
        [str(python), "-c", probe], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    location = Path(out[0]).resolve()
    print(f"rivetkit imported from {location} (SPEEDUPS={out[1]})", flush=True)
    if not location.is_relative_to(repo.resolve()):
        raise SystemExit(f"rivetkit resolves to {location}, not to the clone {repo}")
    if out[1] != str(not pure):
        raise SystemExit(
            f"rivetkit.SPEEDUPS is {out[1]} in the {'pure' if pure else 'compiled'} run"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pure", action="store_true", help="run the pure pass instead")
    parser.add_argument(
        "--link-node-modules",
        action="store_true",
        help="link the checkout's tests/interop/node_modules instead of npm install",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args, pytest_args = parser.parse_known_args(argv)

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="rivetkit-standalone-"))
    label = "pure" if args.pure else "compiled"
    print(f"=== standalone suite (no ../shared, {label}) in {tmp}", flush=True)
    try:
        repo = tmp / "repo"
        clone(repo)
        if (tmp / "shared").exists() or not (repo / "tests" / "vectors").is_dir():
            raise SystemExit(f"{tmp}: expected tests/vectors in the clone and no shared/ beside it")
        step("clone", started)

        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        targets = ["venv"]
        modules = ROOT / "tests" / "interop" / "node_modules"
        if args.link_node_modules and modules.is_dir():
            (repo / "tests" / "interop" / "node_modules").symlink_to(
                modules, target_is_directory=True
            )
        else:
            targets.append("interop-deps")
        # The clone's build must compile the twins whichever pass runs.
        subprocess.run(
            ["make", *targets], cwd=repo, env={**env, "RIVETKIT_REQUIRE_SPEEDUPS": "1"}, check=True
        )
        step(f"make {' '.join(targets)} in the clone", started)

        if args.pure:
            env.pop("RIVETKIT_REQUIRE_SPEEDUPS", None)
            env["RIVETKIT_PURE"] = "1"
        else:
            env["RIVETKIT_REQUIRE_SPEEDUPS"] = "1"
        python = repo / ".venv" / "bin" / "python"
        check_import(python, repo, env, args.pure)

        print(f"=== rivetkit tests, clone without ../shared ({label}) ===", flush=True)
        status = subprocess.call(
            [str(python), "-m", "pytest", "-q", *pytest_args], cwd=repo, env=env
        )
        step(f"{label} pass (exit {status})", started)
        if status == 5:
            print("pytest collected no tests: that is a failure here", flush=True)
        return status
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

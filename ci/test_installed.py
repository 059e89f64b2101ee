"""Run the test suite against an installed wheel, from outside the checkout.

    python ci/test_installed.py [--pure] [--wheel PATH] [--keep] [pytest args...]

Steps, all in a fresh temporary folder (never in the checkout):

1. build the sdist and, from it, the wheel (``python -m build``): compiled, with
   ``RIVETKIT_REQUIRE_SPEEDUPS=1``, or with ``--pure`` the ``py3-none-any`` wheel
   (``RIVETKIT_PURE=1``); ``--wheel PATH`` skips the build and uses that wheel;
2. create a venv and install the wheel with its ``test`` extra;
3. copy ``tests/`` and ``examples/`` (and ``pyproject.toml`` for pytest's settings) next to
   it, link ``tests/interop/node_modules`` (the TypeScript client and the engine binary) from
   the checkout when it is there (the golden vectors travel with ``tests/vectors/``);
4. check that ``import rivetkit`` resolves to the venv's site-packages, then run the suite:
   compiled and then pure (``RIVETKIT_PURE=1``) for the compiled wheel, pure once for
   ``--pure``, each to the end. ``RIVETKIT_TEST_INSTALLED`` tells
   ``tests/test_packaging.py`` where it runs.

Exits with the suite's status; prints the time of each step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(
    "node_modules", "__pycache__", ".hypothesis", ".pytest_cache", ".rivetkit", "*.pyc"
)


def step(label: str, started: float) -> None:
    print(f"--- {label}: {time.monotonic() - started:.1f} s", flush=True)


def build_env(pure: bool) -> dict[str, str]:
    """The environment of the build: pure, or compiled with failures fatal."""
    env = {k: v for k, v in os.environ.items() if k not in ("RIVETKIT_PURE", "PYTHONPATH")}
    if pure:
        env.pop("RIVETKIT_REQUIRE_SPEEDUPS", None)
        env["RIVETKIT_PURE"] = "1"
    else:
        env["RIVETKIT_REQUIRE_SPEEDUPS"] = "1"
    return env


def build_wheel(outdir: Path, pure: bool) -> Path:
    """Build the sdist, then the wheel from it, into ``outdir``; return the wheel."""
    command = [sys.executable, "-m", "build", "--outdir", str(outdir), str(ROOT)]
    done = subprocess.run(
        command, env=build_env(pure), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if done.returncode:
        print(done.stdout[-6000:], file=sys.stderr)
        raise SystemExit(f"python -m build failed (exit {done.returncode})")
    (wheel,) = outdir.glob("*.whl")
    return wheel


def check_wheel(wheel: Path, pure: bool) -> None:
    """The wheel's tag and binaries match what was asked for."""
    with zipfile.ZipFile(wheel) as archive:
        binaries = [n for n in archive.namelist() if n.endswith((".so", ".pyd"))]
    is_pure = wheel.name.endswith("-py3-none-any.whl")
    if pure != is_pure or bool(binaries) == pure:
        raise SystemExit(f"{wheel.name}: expected a {'pure' if pure else 'compiled'} wheel")


def prepare_tests(work: Path) -> None:
    """Copy the tests and what they read next to each other, outside the checkout."""
    work.mkdir()
    shutil.copytree(ROOT / "tests", work / "tests", ignore=COPY_IGNORE)
    shutil.copytree(ROOT / "examples", work / "examples", ignore=COPY_IGNORE)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    modules = ROOT / "tests" / "interop" / "node_modules"
    if modules.is_dir():
        (work / "tests" / "interop" / "node_modules").symlink_to(modules, target_is_directory=True)


def venv_python(venv: Path) -> Path:
    scripts = venv / ("Scripts" if sys.platform == "win32" else "bin")
    return scripts / ("python.exe" if sys.platform == "win32" else "python")


def check_import(python: Path, venv: Path, work: Path, env: dict[str, str]) -> None:
    """``import rivetkit`` from the test folder resolves to the venv, not the checkout."""
    probe = "import rivetkit, sys; print(rivetkit.__file__); print(rivetkit.SPEEDUPS)"
    out = subprocess.run(
        [str(python), "-c", probe], cwd=work, env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    location = Path(out[0]).resolve()
    print(f"rivetkit imported from {location} (SPEEDUPS={out[1]})", flush=True)
    if not location.is_relative_to(venv.resolve()) or location.is_relative_to(ROOT):
        raise SystemExit(f"rivetkit resolves to {location}, not to the venv {venv}")
    if "site-packages" not in location.parts:
        raise SystemExit(f"rivetkit resolves to {location}, outside site-packages")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pure", action="store_true", help="the py3-none-any wheel")
    parser.add_argument("--wheel", type=Path, help="test this wheel instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args, pytest_args = parser.parse_known_args(argv)

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="rivetkit-installed-"))
    print(f"=== test-installed ({'pure' if args.pure else 'compiled'}) in {tmp}", flush=True)
    try:
        wheel = args.wheel.resolve() if args.wheel else build_wheel(tmp / "dist", args.pure)
        check_wheel(wheel, args.pure)
        size = wheel.stat().st_size
        step(f"wheel {wheel.name} ({size / 1024:.0f} KiB)", started)

        venv = tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv_python(venv)
        install = [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[test]"]
        subprocess.run(install, check=True, env=build_env(args.pure))
        step("fresh venv with the wheel and its test extra", started)

        work = tmp / "work"
        prepare_tests(work)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RIVETKIT_PURE")}
        env["RIVETKIT_TEST_INSTALLED"] = "pure" if args.pure else "compiled"
        # The pure pass forces the pure twins, so it must not also demand the compiled ones.
        pure_env = {k: v for k, v in env.items() if k != "RIVETKIT_REQUIRE_SPEEDUPS"}
        pure_env["RIVETKIT_PURE"] = "1"
        env["RIVETKIT_REQUIRE_SPEEDUPS"] = "1"
        passes = [("pure", pure_env)] if args.pure else [("compiled", env), ("pure", pure_env)]
        check_import(python, venv, work, passes[0][1])

        statuses = []
        for label, pass_env in passes:
            print(f"=== rivetkit tests, installed wheel ({label}) ===", flush=True)
            command = [str(python), "-m", "pytest", "-q", "tests", *pytest_args]
            statuses.append(subprocess.call(command, cwd=work, env=pass_env))
            step(f"{label} pass (exit {statuses[-1]})", started)
        return next((s for s in statuses if s), 0)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

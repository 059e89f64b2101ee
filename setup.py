"""Build rivetkit, compiling the Cython twins in rivetkit/_speedups/ when possible.

Every ``rivetkit/_speedups/*.pyx`` becomes the extension ``rivetkit._speedups.<stem>``.
The compiled twins are optional: each has a pure-Python twin with the same API.

Environment at build time:

* ``RIVETKIT_PURE=1``: build no extension at all; the wheel is ``py3-none-any``.
* ``RIVETKIT_REQUIRE_SPEEDUPS=1``: a missing Cython or a failed C build is an error
  (set in CI). Without it, the build warns and installs the pure-Python package.

All metadata lives in pyproject.toml.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Distribution, Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

HERE = Path(__file__).resolve().parent
PURE = os.environ.get("RIVETKIT_PURE") == "1"
REQUIRE = os.environ.get("RIVETKIT_REQUIRE_SPEEDUPS") == "1"

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError, ValueError)


def fallback(reason: object) -> None:
    """Warn that the compiled twins are skipped, or fail when they are required."""
    if REQUIRE:
        raise RuntimeError(f"RIVETKIT_REQUIRE_SPEEDUPS=1 but the speedups failed: {reason}")
    bar = "*" * 72
    print(
        f"\n{bar}\nWARNING: rivetkit's Cython speedups were not built ({reason}).\n"
        f"Installing the pure-Python package; it works the same, only slower.\n{bar}\n",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python unless RIVETKIT_REQUIRE_SPEEDUPS=1."""

    def run(self) -> None:
        try:
            super().run()
        except BUILD_ERRORS as exc:
            fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        if self.compiler.compiler_type in ("unix", "mingw32", "cygwin"):  # gcc or clang
            # -g0: no debug info (Python's own CFLAGS carry -g), a wheel a third of the size.
            ext.extra_compile_args = [*ext.extra_compile_args, "-O3", "-g0"]
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as exc:
            fallback(f"{ext.name}: {exc}")


class PureDistribution(Distribution):
    """A distribution with no binary parts, so bdist_wheel tags it py3-none-any."""

    def has_ext_modules(self) -> bool:
        return False


def extensions() -> list[Extension]:
    sources = sorted((HERE / "rivetkit" / "_speedups").glob("*.pyx"))
    if PURE or not sources:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        fallback("Cython is not installed")
        return []
    modules = [
        Extension(f"rivetkit._speedups.{src.stem}", [str(src.relative_to(HERE))]) for src in sources
    ]
    compiled = cythonize(modules, compiler_directives=COMPILER_DIRECTIVES)
    for ext in compiled:
        # Optional: an in-place (editable) install skips copying a module that failed.
        ext.optional = not REQUIRE
    return list(compiled)


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    distclass=PureDistribution if PURE else Distribution,
)

"""Choose between the compiled and the pure twin of each hot-path module.

Every module in :mod:`rivetkit._speedups` has a pure-Python twin with the same public API.
:func:`load` returns the compiled one unless ``RIVETKIT_PURE=1`` is set or it cannot be
imported; with ``RIVETKIT_REQUIRE_SPEEDUPS=1`` a missing compiled twin is an error instead of
a silent fallback. ``RIVETKIT_PURE=1`` wins over ``RIVETKIT_REQUIRE_SPEEDUPS=1``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_FORCED: bool = os.environ.get("RIVETKIT_PURE", "") == "1"
SPEEDUPS_REQUIRED: bool = os.environ.get("RIVETKIT_REQUIRE_SPEEDUPS", "") == "1"

#: Names of the hot-path twins that were loaded compiled (filled in by :func:`load`).
compiled: dict[str, bool] = {}


def load(compiled_name: str, pure_name: str) -> ModuleType:
    """Return the twin to use: ``rivetkit._speedups.<compiled_name>`` or ``pure_name``."""
    if not PURE_FORCED:
        try:
            module = importlib.import_module(f"rivetkit._speedups.{compiled_name}")
        except ImportError as exc:
            if SPEEDUPS_REQUIRED:
                raise ImportError(
                    f"RIVETKIT_REQUIRE_SPEEDUPS=1 but the compiled twin "
                    f"rivetkit._speedups.{compiled_name} cannot be imported ({exc}); "
                    "build it with `pip install .` and a C compiler, or unset the variable"
                ) from exc
        else:
            compiled[compiled_name] = True
            return module
    compiled[compiled_name] = False
    return importlib.import_module(pure_name)


def speedups_active() -> bool:
    """True when every hot-path twin loaded so far is the compiled one."""
    return bool(compiled) and all(compiled.values())

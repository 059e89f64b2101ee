"""The cyclic garbage collector's first threshold while actors run in this process.

An awake actor holds some fifty container objects (its instance and parts, its record, its
trace recorder, the request objects of its calls) for as long as it stays awake: at least
its ``sleep_timeout``. With Python's default first threshold (700 allocations), a process
creating a thousand actors a second collects its youngest generation more than a thousand
times per 10,000 actors and the whole heap about ten times, and those collections find
nothing to free: every such object outlives them, and a stopped actor leaves no reference
cycles behind (:mod:`~rivetkit.runtime.teardown`), so reference counting frees it. Measured
with ``benchmarks/bench_many_actors.py`` (10,000 actors): 1.8-2.8 s of collections with the
default, 0.3-0.9 s with 10,000, 0.05-0.13 s with 50,000 (4 young collections instead of
20-27: there an actor's objects mostly die with its sleep, 1 s after its call, before a collection
with this threshold looks at them, where one with 10,000 still traversed them once or twice).

So while a :class:`~rivetkit.runtime.live_actors.Runtime` runs, the first threshold is
:data:`GEN0_THRESHOLD` when it was Python's default (700) before: one that the application
set itself is left alone. The last runtime to stop puts back the value it found, unless
the application changed it meanwhile. ``RIVETKIT_GC_THRESHOLD=N`` uses ``N`` instead;
``RIVETKIT_GC_THRESHOLD=0`` leaves the collector as it is.

What it costs: cyclic garbage of the application's own (not the actors', which makes
none) waits for up to :data:`GEN0_THRESHOLD` allocations instead of 700 before a
collection frees it.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Final

__all__ = ["ENV", "GEN0_THRESHOLD", "PYTHON_DEFAULT", "acquire", "release"]

logger = logging.getLogger("rivetkit.runtime")

#: The first threshold while a runtime runs (unless :data:`ENV` says otherwise).
GEN0_THRESHOLD: Final = 50_000
#: Python's default first threshold: the only one replaced.
PYTHON_DEFAULT: Final = 700
#: The environment variable that sets another first threshold (0: leave it alone).
ENV: Final = "RIVETKIT_GC_THRESHOLD"

_users = 0  # runtimes running
_found: int | None = None  # the first threshold replaced (None: nothing replaced)
_set: int | None = None  # the one put in its place


def _wanted() -> int:
    raw = os.environ.get(ENV)
    if raw is None or raw.strip() == "":
        return GEN0_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        logger.warning("%s=%r is not an integer; using %d", ENV, raw, GEN0_THRESHOLD)
        return GEN0_THRESHOLD
    return max(0, value)


def acquire() -> None:
    """A runtime starts: raise the first threshold if it is Python's default."""
    global _users, _found, _set
    _users += 1
    if _users > 1:
        return
    wanted = _wanted()
    first, second, third = gc.get_threshold()
    if wanted == 0 or first != PYTHON_DEFAULT:
        return
    gc.set_threshold(wanted, second, third)
    _found, _set = first, wanted


def release() -> None:
    """A runtime stopped: the last one puts back the first threshold it replaced (unless
    someone changed it meanwhile)."""
    global _users, _found, _set
    if _users == 0:
        return
    _users -= 1
    if _users > 0 or _found is None:
        return
    first, second, third = gc.get_threshold()
    if first == _set:
        gc.set_threshold(_found, second, third)
    _found = _set = None

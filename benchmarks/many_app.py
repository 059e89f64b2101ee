"""The registry served by ``bench_many_actors.py`` and ``bench_many_sockets.py``.

* ``many``: a counter that sleeps 1 s after its last call (``increment``);
* ``room``: an actor clients connect to and subscribe to its ``tick`` event; ``tick()``
  broadcasts the wall time (seconds since the epoch) to them; ``ping()`` answers at once.

Only when the benchmark sets ``RIVETKIT_BENCH_TRACE`` (a file path) does this module trace the
server's Python heap: ``SIGUSR1`` starts :mod:`tracemalloc`, ``SIGUSR2`` collects garbage
and writes the traced size and the largest allocation sites as JSON to that path, ``SIGURG``
collects garbage and calls glibc's ``malloc_trim`` (then writes ``PATH.trimmed``), and
``SIGWINCH`` writes the cyclic garbage collector's figures since the start (collections and
seconds spent in them per generation, the total seconds, the objects they freed; from
``gc.callbacks``) as JSON to ``PATH.gc``. Nothing of this is in the package: it is the
benchmark's own code, imported by ``rivetkit serve``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import signal
import time
import tracemalloc
from typing import Any

from rivetkit import ActorOptions, actor, setup

many = actor("many", state={"count": 0}, options=ActorOptions(sleep_timeout=1.0))


@many.action
def increment(c: Any, amount: int = 1) -> int:
    """Add ``amount`` to the count and return it."""
    c.state["count"] += amount
    return int(c.state["count"])


room = actor("room", state={}, options=ActorOptions(sleep_timeout=600.0))


@room.action
def tick(c: Any) -> float:
    """Broadcast ``tick`` with the wall time to every subscriber; return that time."""
    now = time.time()
    c.broadcast("tick", now)
    return now


@room.action
def ping(c: Any) -> int:
    """Answer at once (latency probe)."""
    return 1


registry = setup(use=[many, room])


def _start_tracing(signum: int, frame: Any) -> None:
    gc.collect()
    tracemalloc.start(1)


def _dump_trace(signum: int, frame: Any) -> None:
    path = os.environ["RIVETKIT_BENCH_TRACE"]
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("lineno")
    current, peak = tracemalloc.get_traced_memory()
    top = [
        {
            "site": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
            "size": s.size,
            "count": s.count,
        }
        for s in stats[:40]
    ]
    traced = sum(s.size for s in stats)
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        json.dump({"traced": traced, "current": current, "peak": peak, "top": top}, out)
    os.replace(tmp, path)


def _trim(signum: int, frame: Any) -> None:
    """Collect garbage and give free heap pages back to the OS (glibc ``malloc_trim``):
    the RSS after it tells live memory from memory kept free by the allocators."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    path = os.environ["RIVETKIT_BENCH_TRACE"] + ".trimmed"
    with open(path, "w") as out:
        out.write("1")


_gc_figures: dict[str, Any] = {
    "collections": [0, 0, 0],
    "seconds": 0.0,
    "seconds_by_generation": [0.0, 0.0, 0.0],
    "collected": 0,
}
_gc_began = [0.0]


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_began[0] = time.perf_counter()
        return
    spent = time.perf_counter() - _gc_began[0]
    _gc_figures["seconds"] += spent
    _gc_figures["seconds_by_generation"][info["generation"]] += spent
    _gc_figures["collections"][info["generation"]] += 1
    _gc_figures["collected"] += info["collected"]


def _dump_gc(signum: int, frame: Any) -> None:
    path = os.environ["RIVETKIT_BENCH_TRACE"] + ".gc"
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        json.dump(_gc_figures, out)
    os.replace(tmp, path)


if os.environ.get("RIVETKIT_BENCH_TRACE"):
    gc.callbacks.append(_gc_callback)
    signal.signal(signal.SIGWINCH, _dump_gc)
    signal.signal(signal.SIGUSR1, _start_tracing)
    signal.signal(signal.SIGUSR2, _dump_trace)
    signal.signal(signal.SIGURG, _trim)

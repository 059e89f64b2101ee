"""The app of the engine cluster tests (``tests/test_engine_cluster.py``), served by
``rivetkit serve --engine`` processes.

``counter`` has ``durable_replies=True`` and a long save interval: an ``increment`` answers
only once its change is stored, so an acknowledged increment survives any crash after it.
It broadcasts ``newCount``, schedules ``fired`` on ``fire_later``, completes queue jobs on
``jobs`` from its run loop, and every answer that may move names the process (``pid``).
It does not sleep while the tests run (``sleep_timeout`` 600 s): they time routing and
failover, and 500 actors waking through the engine would blur the figures (and the wall
time) on a loaded machine.
"""

from __future__ import annotations

import os
from typing import Any

from rivetkit import ActorOptions, actor, setup

counter = actor(
    "counter",
    state={"count": 0, "fired": 0, "processed": 0},
    options=ActorOptions(state_save_interval=60.0, durable_replies=True, sleep_timeout=600.0),
)


@counter.action
def increment(c: Any, n: int = 1) -> dict[str, int]:
    """Add ``n``; the reply (held until the change is saved) has the new count."""
    c.state["count"] += n
    c.broadcast("newCount", c.state["count"])
    return {"count": c.state["count"], "pid": os.getpid()}


@counter.action
def stats(c: Any) -> dict[str, int]:
    """The counters, and the process that answered."""
    return {
        "count": c.state["count"],
        "fired": c.state["fired"],
        "processed": c.state["processed"],
        "pid": os.getpid(),
    }


@counter.action
async def fire_later(c: Any, seconds: float) -> None:
    """Schedule ``fired`` in ``seconds``."""
    await c.schedule.after(seconds, "fired")


@counter.action
async def fired(c: Any) -> None:
    """Run by the schedule."""
    c.state["fired"] += 1
    await c.save_state(immediate=True)


@counter.run
async def consume(c: Any) -> None:
    """Complete each ``jobs`` message with its ``x`` doubled."""
    async for job in c.queue.iter(["jobs"], completable=True):
        c.state["processed"] += 1
        await c.save_state(immediate=True)
        await job.complete({"doubled": 2 * job.body["x"]})


registry = setup(use=[counter])

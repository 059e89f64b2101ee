"""A child program for ``tests/test_queue_crash.py``: ``rivetkit serve tests/apps/queue_app.py``.

Actors:

* ``inbox``: a queue nobody consumes; action ``drain()`` receives (and deletes) everything
  queued and returns the bodies in FIFO order; ``size()`` returns the queue size.
* ``hanger``: a ``run`` loop taking completable receives of queue ``jobs``. It records every
  delivery in its state (saved before going on), then completes the job with
  ``{"done": id}``, except a job ``{"id": n, "hang": true}`` delivered for the first time,
  which it never completes (the parent kills the process meanwhile). Actions: ``seen()`` (the
  ids of every delivery, in order: the state in memory), ``saved()`` (the ids whose delivery
  this process has saved: what a SIGKILL cannot lose) and ``size()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rivetkit import actor, setup

inbox = actor("inbox", state={})


@inbox.action
async def drain(c: Any) -> list[Any]:
    bodies: list[Any] = []
    while True:
        batch = await c.queue.try_next_batch(count=1000)
        if not batch:
            return bodies
        bodies.extend(message.body for message in batch)


@inbox.action(name="size")
def inbox_size(c: Any) -> int:
    return int(c.queue.size)


hanger = actor("hanger", state={"seen": []})
# Ids whose delivery this process saw saved (save_state returned): seen() reads the state in
# memory, which has a delivery a moment before its save is durable.
SAVED: list[int] = []


@hanger.run
async def consume(c: Any) -> None:
    async for job in c.queue.iter(["jobs"], completable=True):
        ident = job.body["id"]
        first = ident not in c.state["seen"]
        c.state["seen"].append(ident)
        await c.save_state(immediate=True)
        SAVED.append(ident)
        if first and job.body.get("hang"):
            await asyncio.Event().wait()  # until the process is killed (or the actor aborted)
        await job.complete({"done": ident})


@hanger.action
def seen(c: Any) -> list[int]:
    return list(c.state["seen"])


@hanger.action
def saved(c: Any) -> list[int]:
    return list(SAVED)


@hanger.action(name="size")
def hanger_size(c: Any) -> int:
    return int(c.queue.size)


registry = setup(use=[inbox, hanger])

"""The worker of DESIGN.md §4: a ``run`` loop consuming the durable queue ``jobs``.

Each job ``{"x": n}`` takes 20 ms, increments the processed count and completes with
``{"doubled": 2 * n}``. The count is saved before the completion, so a crash may repeat a job
(it is delivered again, being completable) but never loses one.
"""

import asyncio

from rivetkit import actor, setup

worker = actor("worker", state={"processed": 0})


@worker.run
async def consume(c) -> None:
    async for job in c.queue.iter(["jobs"], completable=True):
        await asyncio.sleep(0.02)
        c.state["processed"] += 1
        await c.save_state(immediate=True)
        await job.complete({"doubled": 2 * job.body["x"]})


@worker.action
def processed(c) -> int:
    return c.state["processed"]


registry = setup(use=[worker])

"""An order as a durable workflow: wait for the payment, charge, cool down, ship.

The actor ``order`` (one per order key) runs the workflow ``process`` as its ``run`` handler.
It waits for a message on the queue ``pay`` (body ``{"amount": n}``), records the charge in
the step ``charge``, sleeps 2 seconds (``cool-down``), then marks the order shipped in the
step ``ship``. Each step's history entry and the state it changed are saved together, so a
restart never charges twice; a restart in the middle of the sleep resumes it where it was.

Action ``status()`` returns ``{"status", "charges", "amount"}`` (``amount`` absent until the
order is paid). A client pays with ``handle.send("pay", {"amount": 30})``.
"""

from typing import Any

from rivetkit import actor, setup
from rivetkit.workflow import workflow

order = actor("order", state={"status": "new", "charges": 0})


@order.run
@workflow
async def process(ctx):
    msg = await ctx.queue.next("payment", names=["pay"])

    async def charge(s):  # s: the step context (state, db, client, ...)
        s.state["charges"] += 1
        s.state["amount"] = msg.body["amount"]
        s.state["status"] = "charged"

    await ctx.step("charge", charge)
    await ctx.sleep("cool-down", 2.0)  # seconds in Python, ms on disk
    await ctx.step("ship", lambda s: s.state.update(status="shipped"))


@order.action
def status(c) -> dict[str, Any]:
    """``{"status", "charges", "amount"}``; ``amount`` is absent until the order is paid."""
    view = {"status": c.state["status"], "charges": c.state["charges"]}
    if "amount" in c.state:
        view["amount"] = c.state["amount"]
    return view


registry = setup(use=[order])

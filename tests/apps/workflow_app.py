"""Workflow actors for the subprocess durability tests (tests/test_workflow_durability.py).

Every step body appends a line to the file named by ``RIVETKIT_WF_EFFECTS``: a side effect
outside the actor, which survives a SIGKILL and shows how often a body really ran.

* ``crashy``: steps ``one``, ``two``, ``three``. ``two`` writes ``two-start``, then waits for
  the file ``<effects>.release`` to exist before writing ``two-end``.
* ``napper`` (``sleep_timeout`` 0.3 s): step ``before``, a ``RIVETKIT_WF_NAP``-second sleep
  (default 2), step ``after``; ``on_sleep`` writes ``slept``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rivetkit import ActorOptions, actor, setup
from rivetkit.workflow import workflow

EFFECTS = Path(os.environ.get("RIVETKIT_WF_EFFECTS", "effects.txt"))


def effect(line: str) -> None:
    """Append ``line`` to the effects file, durably."""
    with EFFECTS.open("a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


crashy = actor("crashy", state={"done": []})


@crashy.run
@workflow
async def crashy_flow(ctx):
    def one(s):
        effect("one")
        s.state["done"].append("one")

    async def two(s):
        effect("two-start")
        release = EFFECTS.with_suffix(".release")
        while not release.exists():
            await asyncio.sleep(0.02)
        effect("two-end")
        s.state["done"].append("two")

    def three(s):
        effect("three")
        s.state["done"].append("three")

    await ctx.step("one", one)
    await ctx.step("two", two, timeout=0)  # no timeout: it waits for the test
    await ctx.step("three", three)


@crashy.action
def done(c) -> list[str]:
    """The steps whose state change is saved."""
    return list(c.state["done"])


napper = actor("napper", state={"woke": False}, options=ActorOptions(sleep_timeout=0.3))


@napper.run
@workflow
async def nap_flow(ctx):
    def after(s):
        effect("after")
        s.state["woke"] = True

    await ctx.step("before", lambda s: effect("before"))
    await ctx.sleep("nap", float(os.environ.get("RIVETKIT_WF_NAP", "2")))
    await ctx.step("after", after)


@napper.on_sleep
def slept(c) -> None:
    effect("slept")


@napper.action
def woke(c) -> bool:
    """True once the step after the sleep ran."""
    return bool(c.state["woke"])


registry = setup(use=[crashy, napper])

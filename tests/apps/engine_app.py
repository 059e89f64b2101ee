"""An app for the engine scale-out test (``tests/test_engine_scale.py``).

``tally`` keeps a total; ``add(n)`` saves the state before it answers (so an acknowledged
``add`` survives a SIGKILL of the process), and every action also says which process answered.
"""

from __future__ import annotations

import os
from typing import Any

from rivetkit import actor, setup

tally = actor("tally", state={"total": 0})


@tally.action
async def add(c: Any, n: int) -> dict[str, int]:
    c.state["total"] += n
    await c.save_state(immediate=True)
    return {"total": c.state["total"], "pid": os.getpid()}


@tally.action
def total(c: Any) -> dict[str, int]:
    return {"total": c.state["total"], "pid": os.getpid()}


registry = setup(use=[tally])

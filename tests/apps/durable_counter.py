"""A child program for ``tests/test_durability.py``: increments counters until it is killed.

Usage: ``python tests/apps/durable_counter.py DATA_DIR MODE [KEYS] [CALLERS]``

``MODE`` is ``save`` (the action awaits ``c.save_state(immediate=True)`` before returning) or
``durable`` (the actor has ``durable_replies=True`` and the action does not save). In both
modes the save interval is 60 s, so nothing else would save the state before the kill.

The program runs the registry with :func:`rivetkit.testing.setup_test` on ``DATA_DIR``,
prints ``ready``, then has ``CALLERS`` concurrent callers on each of ``KEYS`` counters call
``increment`` in a loop, printing ``KEY VALUE`` for every acknowledged (returned) increment.
The parent SIGKILLs it and checks that a new process sees every acknowledged value.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the source tree importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rivetkit import ActorOptions, actor, setup
from rivetkit.registry import Registry

MODES = ("save", "durable")


def build_registry(mode: str) -> Registry:
    """The registry of one ``counter`` actor for ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    durable = mode == "durable"
    counter = actor(
        "counter",
        state={"count": 0, "creations": 0},
        options=ActorOptions(state_save_interval=60.0, durable_replies=durable),
    )

    @counter.on_create
    def on_create(c: Any, input: Any) -> None:
        c.state["creations"] += 1

    @counter.action
    async def increment(c: Any) -> int:
        c.state["count"] += 1
        value: int = c.state["count"]
        if not durable:
            await c.save_state(immediate=True)
        return value

    @counter.action
    def state(c: Any) -> dict[str, Any]:
        return dict(c.state)

    return setup(use=[counter])


async def main(data_dir: str, mode: str, n_keys: int, callers: int) -> None:
    from rivetkit.testing import setup_test

    async with setup_test(build_registry(mode), data_dir=data_dir) as client:
        out = sys.stdout
        out.write("ready\n")
        out.flush()

        async def caller(key: str) -> None:
            handle = client.counter.get_or_create([key])
            while True:
                value = await handle.increment()
                out.write(f"{key} {value}\n")
                out.flush()

        await asyncio.gather(*(caller(f"k{k}") for k in range(n_keys) for _ in range(callers)))


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0],
            args[1],
            int(args[2]) if len(args) > 2 else 2,
            int(args[3]) if len(args) > 3 else 3,
        )
    )

"""A child program for ``tests/test_faults_kill.py``: ``rivetkit serve tests/apps/faults_app.py``.

Actors (each keeps ``{"n": int, "creations": int}``):

* ``saver``: ``inc(by)`` adds ``by`` and awaits ``c.save_state(immediate=True)`` before
  returning, so an acknowledged value is on disk;
* ``durable``: ``durable_replies=True``; ``inc(by)`` does not save, the runtime holds the reply
  until the state is saved;
* ``lazy``: neither; its state is saved every 50 ms, so a kill may lose the latest changes,
  but what it finds after a restart must still be a value it acknowledged before (or the
  start), never a torn or corrupt one.

``state()`` returns the state. ``on_create`` counts creations: a restart must not create an
actor again.
"""

from __future__ import annotations

from typing import Any

from rivetkit import ActorOptions, actor, setup


def _counter(name: str, *, save: bool, durable: bool, interval: float) -> Any:
    counter = actor(
        name,
        state={"n": 0, "creations": 0},
        options=ActorOptions(state_save_interval=interval, durable_replies=durable),
    )

    @counter.on_create
    def on_create(c: Any, input: Any) -> None:
        c.state["creations"] += 1

    @counter.action
    async def inc(c: Any, by: int) -> int:
        c.state["n"] += by
        value: int = c.state["n"]
        if save:
            await c.save_state(immediate=True)
        return value

    @counter.action
    def state(c: Any) -> dict[str, Any]:
        return dict(c.state)

    return counter


saver = _counter("saver", save=True, durable=False, interval=60.0)
durable = _counter("durable", save=False, durable=True, interval=60.0)
lazy = _counter("lazy", save=False, durable=False, interval=0.05)

registry = setup(use=[saver, durable, lazy])

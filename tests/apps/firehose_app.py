"""An app for ``tests/test_backpressure.py``: an actor that broadcasts big events.

Actor ``firehose``: action ``blast(count, size)`` broadcasts ``count`` events ``blob`` of a
``size``-character string each; ``ping()`` answers ``"pong"``; ``disconnects()`` counts the
connections closed so far. Its raw ``on_websocket`` hook answers a message ``flood N SIZE``
by sending ``N`` binary messages of ``SIZE`` bytes (awaiting each ``send``), counting them in
``sent()``.
"""

from __future__ import annotations

from typing import Any

from rivetkit import actor, setup

firehose = actor("firehose", state={"disconnects": 0, "sent": 0})


@firehose.action
def blast(c: Any, count: int, size: int) -> int:
    """Broadcast ``count`` events ``blob`` of ``size`` characters."""
    for i in range(count):
        c.broadcast("blob", str(i % 10) * size)
    return count


@firehose.action
def ping(c: Any) -> str:
    """Answer ``"pong"``."""
    return "pong"


@firehose.action
def disconnects(c: Any) -> int:
    """Connections closed so far."""
    return int(c.state["disconnects"])


@firehose.action
def sent(c: Any) -> int:
    """Raw messages sent so far by ``flood``."""
    return int(c.state["sent"])


@firehose.on_disconnect
def on_disconnect(c: Any, conn: Any) -> None:
    c.state["disconnects"] += 1


@firehose.on_websocket
async def on_websocket(c: Any, ws: Any) -> None:
    async for message in ws:
        command, count, size = str(message).split()
        if command == "flood":
            payload = b"x" * int(size)
            for _ in range(int(count)):
                await ws.send(payload)
                c.state["sent"] += 1


registry = setup(use=[firehose])

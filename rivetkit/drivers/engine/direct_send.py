"""Writing a frame to the envoy socket at once, without waking the writer task.

Every tunnel answer used to go through :class:`~.envoy.EnvoyClient`'s write queue: an
``asyncio.Event`` woke the writer task, which sent the frame with ``ws.send`` (an async
context manager and a ``drain`` per frame). When nothing is queued and the socket can take
more, :func:`write_now` does what ``ws.send`` does for one binary frame (frame it with the
connection's protocol, hand the bytes to the transport) synchronously, in the caller's step.

It declines (returns False; the caller queues the frame for the writer task, which applies
backpressure and handles errors) whenever ``ws.send`` would not write at once: the connection
is not open, the transport is closing or has paused writing (its buffer is above the high
water mark), or a fragmented message is being sent. Order is kept by the caller, which writes
directly only while its queue is empty and the writer is not inside a send.
"""

from __future__ import annotations

import logging
from collections import deque

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

__all__ = ["write_now"]

logger = logging.getLogger("rivetkit.engine")


def write_now(ws: ClientConnection, frames: deque[bytes]) -> bool:
    """Send every frame of ``frames`` (binary messages, in order) on ``ws`` now, in one
    transport write, emptying ``frames``; False (``frames`` untouched) when they must go
    through the writer task instead."""
    if (
        ws.protocol.state is not State.OPEN
        or ws.paused
        or ws.send_in_progress is not None
        or ws.transport.is_closing()
    ):
        return False
    protocol = ws.protocol
    try:
        protocol.send_binary(frames[0])
    except Exception:  # not open after all: the writer task's ws.send reports it
        return False
    frames.popleft()
    while frames:
        protocol.send_binary(frames.popleft())
    try:
        ws.transport.write(b"".join(protocol.data_to_send()))
    except Exception:
        # The transport failed, so the connection is ending (as when ws.send fails).
        logger.debug("envoy: a direct write failed", exc_info=True)
    return True

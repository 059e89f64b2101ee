"""The envoy's outgoing frames: written at the end of each event-loop step, together.

:class:`FrameWriter` holds the frames for the engine. The frames pushed during one step of
the event loop go out at its end (``loop.call_soon``) in one transport write
(:func:`write_now`), instead of one ``ws.send`` each from a writer task woken by an
``asyncio.Event`` (an async context manager and a ``drain`` per frame). Under load several
answers leave per write, and no task wakes up for them.

:func:`write_now` declines (the frames stay queued and the writer task sends them with
``ws.send``, which applies backpressure and reports errors) whenever ``ws.send`` would not
write at once: the connection is not open, the transport is closing or has paused writing
(its buffer is above the high water mark), or a fragmented message is being sent. The
writer task is also used while it is inside a send, so the order of the frames is kept.
The frames are encoded by :func:`~.client_frames.masked_binary_frames` (the bytes
``websockets`` would write), or by ``websockets`` itself when it has extensions or logs
frames at debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .client_frames import masked_binary_frames

__all__ = ["FrameWriter", "write_now"]

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
    if protocol.expect_continuation_frame or protocol.extensions or protocol.debug:
        try:
            protocol.send_binary(frames[0])
        except Exception:  # not open after all: the writer task's ws.send reports it
            return False
        frames.popleft()
        while frames:
            protocol.send_binary(frames.popleft())
        parts = protocol.data_to_send()
    else:
        # What send_binary would queue, encoded at once; after anything websockets
        # queued itself (a pong, say), as data_to_send would return it.
        parts = protocol.data_to_send()
        parts += masked_binary_frames(frames)
        frames.clear()
    try:
        ws.transport.write(b"".join(parts))
    except Exception:
        # The transport failed, so the connection is ending (as when ws.send fails).
        logger.debug("envoy: a direct write failed", exc_info=True)
    return True


class FrameWriter:
    """The frames queued for one envoy socket at a time, and its writer task."""

    def __init__(self, stats: dict[str, int]) -> None:
        #: Frames not written yet, oldest first.
        self.out: deque[bytes] = deque()
        #: The socket of the current session (None between sessions).
        self.ws: ClientConnection | None = None
        self._stats = stats
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False  # the writer task is inside ws.send
        self._flush_soon = False
        self._wake = asyncio.Event()

    def start(self, ws: ClientConnection, first: bytes) -> None:
        """A new session on ``ws``: drop what was queued for the last one; ``first`` goes
        out before anything else."""
        self.ws = ws
        self._loop = asyncio.get_running_loop()
        self.out.clear()
        self.out.append(first)
        self._wake.clear()

    def push(self, frame: bytes) -> None:
        """Queue ``frame``; it goes out at the end of this event-loop step."""
        self.out.append(frame)
        if not self._flush_soon:
            loop = self._loop
            if loop is None:
                self._wake.set()
            else:
                self._flush_soon = True
                loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        out = self.out
        ws = self.ws
        count = len(out)
        if ws is not None and count and not self._writing and write_now(ws, out):
            self._stats["frames_out"] += count
        else:
            self._wake.set()

    async def run(self, ws: ClientConnection) -> None:
        """The writer task of ``ws``: sends what :meth:`push` could not write at once."""
        out = self.out
        wake = self._wake
        stats = self._stats
        try:
            while True:
                while out:
                    frame = out.popleft()
                    stats["frames_out"] += 1
                    self._writing = True
                    try:
                        await ws.send(frame)
                    finally:
                        self._writing = False
                wake.clear()
                await wake.wait()
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("envoy: writing to the engine failed")
            with contextlib.suppress(Exception):
                await ws.close(1011, "envoy.write_failed")

"""Streamed response bodies: the chunks of a :class:`~rivetkit.dispatch.http.Response` whose
body is an iterator, as the transports consume them.

* :class:`ChunkStream` gives the chunks as ``bytes`` (``str`` encoded UTF-8) from an async
  iterator, an async generator or a plain iterator, and closes its source once (an async
  generator's ``finally`` runs on :meth:`ChunkStream.aclose`, also when the client left);
* :func:`hold` keeps the actor's request open (awake, see
  :meth:`~rivetkit.runtime.instance.ActorInstance.begin_request`) until its stream ends;
* :func:`buffer_stream` collects a whole stream for a transport that cannot stream (the
  engine 2.3.19 gateway), up to a limit.

Every consumer must end with :meth:`ChunkStream.aclose` (in a ``finally``): that is what
ends the actor's request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rivetkit.dispatch.http import ChunkSource, Response
from rivetkit.errors import RivetError

__all__ = ["ChunkStream", "buffer_stream", "chunks_of", "hold", "no_end", "stream_too_long"]

logger = logging.getLogger("rivetkit.dispatch")


def no_end() -> None:
    """An ``on_end`` that does nothing."""


class ChunkStream:
    """The chunks of a streamed body as ``bytes``, closed once.

    :param source: an async iterator (or generator), or a plain iterator, of ``bytes`` or
        ``str`` chunks
    :param on_end: called once when the stream ends: exhausted, failed or closed
    """

    __slots__ = ("_closed", "_iterator", "_on_end", "_sync")

    def __init__(self, source: ChunkSource, on_end: Callable[[], None] = no_end) -> None:
        self._sync = not hasattr(source, "__aiter__")
        self._iterator: Any = iter(source) if self._sync else source.__aiter__()  # type: ignore[arg-type,union-attr]
        self._on_end = on_end
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the stream ended (exhausted, failed or closed)."""
        return self._closed

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            if self._sync:
                try:
                    chunk = next(self._iterator)
                except StopIteration:
                    raise StopAsyncIteration from None
            else:
                chunk = await self._iterator.__anext__()
            if isinstance(chunk, str):
                return chunk.encode("utf-8")
            if isinstance(chunk, bytes):
                return chunk
            if isinstance(chunk, (bytearray, memoryview)):
                return bytes(chunk)
            raise TypeError(
                f"a streamed Response chunk must be bytes or str, got {type(chunk).__name__}"
            )
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the source (its ``finally`` runs) and end the stream; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._iterator, "close" if self._sync else "aclose", None)
            if close is not None:
                result = close()
                if not self._sync:
                    await result
        except Exception:
            logger.exception("closing a streamed response failed")
        finally:
            self._on_end()


def chunks_of(source: ChunkSource) -> ChunkStream:
    """``source`` as a :class:`ChunkStream` (itself when it is one)."""
    return source if isinstance(source, ChunkStream) else ChunkStream(source)


def hold(response: Response, end: Callable[[], None]) -> ChunkStream:
    """The stream of ``response`` (which must have one), calling ``end`` once it ends."""
    assert response.stream is not None
    return ChunkStream(response.stream, end)


def stream_too_long(limit: int) -> RivetError:
    """``message/outgoing_too_long``: a streamed body beyond what the transport can buffer."""
    return RivetError(
        "message",
        "outgoing_too_long",
        f"Outgoing message too long (the engine's limit is {limit} bytes)",
        metadata={"limit": limit},
    )


async def buffer_stream(source: ChunkSource, limit: int) -> bytes:
    """The whole body of a streamed response, at most ``limit`` bytes (0: no limit).

    Beyond ``limit`` the source is closed and :func:`stream_too_long` raised; an error of
    the source propagates (the source closed either way)."""
    stream = chunks_of(source)
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if limit and size > limit:
                raise stream_too_long(limit)
            parts.append(chunk)
    finally:
        await stream.aclose()
    return b"".join(parts)

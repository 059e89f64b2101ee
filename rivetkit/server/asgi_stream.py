"""Sending a streamed :class:`~rivetkit.dispatch.http.Response` over ASGI (embedded mode).

The head goes first, without ``content-length`` (uvicorn then frames the body with chunked
transfer encoding), then one ``http.response.body`` message per chunk as the stream produces
it: uvicorn's protocols (and ours, :mod:`rivetkit.server.http_fastpath`) write each message
to the socket at once.

While the chunks flow, a second task waits for the client to leave (ASGI's
``http.disconnect``); when it does, the stream stops: the task pulling chunks is cancelled
and the stream closed (an async generator's ``finally`` runs), which ends the actor's
request. A request body the handler did not read is dropped meanwhile, so a handler reads
its body before it returns the streamed response.

At the server's shutdown, our uvicorn protocol closes the connection of a stream (which stops
it as a client leaving does) instead of waiting for its end, since an SSE feed may never end;
under uvicorn's own protocols the server waits for streams until its graceful timeout.

A failure of the stream after the head was sent cannot become an error response: it is
logged and the connection closed without the last chunk, so the client sees a truncated
body. Under our uvicorn protocol the transport is closed here; under another server the
error is raised to the server (uvicorn logs it and closes the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from rivetkit.dispatch.http import ChunkSource
from rivetkit.dispatch.streaming import ChunkStream, chunks_of
from rivetkit.errors import RivetError
from rivetkit.server.asgi_io import Receive, Scope, Send
from rivetkit.server.http_fastpath import mark_streaming

__all__ = ["StreamFailed", "send_stream"]

logger = logging.getLogger("rivetkit.server")


class StreamFailed(RivetError):
    """A streamed response failed after its head was sent (raised to a server that is not
    ours, so that it closes the connection)."""

    def __init__(self) -> None:
        super().__init__("response", "stream_failed", "the streamed response failed")


async def _pump(stream: ChunkStream, send: Send) -> None:
    async for chunk in stream:
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _client_gone(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # http.disconnect (body chunks still coming are dropped)


async def send_stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    source: ChunkSource,
    cycle: Any = None,
) -> None:
    """Send the head (``status``, ``headers`` without framing headers) and then the chunks of
    ``source`` until it ends or the client leaves; ``cycle`` is our uvicorn protocol's
    request cycle when nothing sits between it and the app (see
    :func:`rivetkit.server.http_fastpath.own_cycle`), else None. The stream is closed in every
    case."""
    stream = chunks_of(source)
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if cycle is not None:
            mark_streaming(cycle)  # a server shutdown closes the connection: the stream stops
        pump = asyncio.ensure_future(_pump(stream, send))
        gone = asyncio.ensure_future(_client_gone(receive))
        try:
            await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, pump):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        if pump.cancelled():
            return  # the client left
        error = pump.exception()
        if error is None:
            return
    finally:
        await stream.aclose()
    logger.error(
        "%s %s: the streamed response failed after its head was sent; the connection is closed",
        scope["method"],
        scope.get("path", "")[:200],
        exc_info=error,
    )
    if cycle is not None:
        cycle.transport.close()
        cycle.disconnected = True  # what connection_lost sets: uvicorn stays quiet
        return
    raise StreamFailed() from None

"""Server-Sent Events: a streamed :class:`~rivetkit.dispatch.http.Response` of events
(``text/event-stream``), as browsers' ``EventSource`` reads them.

    from rivetkit import Response, ServerSentEvent

    @ticker.on_request
    async def on_request(c, request):
        async def ticks():
            for n in range(3):
                yield ServerSentEvent({"n": n}, event="tick", id=str(n))
                await asyncio.sleep(1)
        return Response.sse(ticks(), keep_alive=15)

Each event is written as its fields, one per line, and a blank line: ``event: <name>``,
``id: <id>``, ``retry: <ms>``, and one ``data: <line>`` per line of the data (a data with
line breaks, ``\\n``, ``\\r\\n`` or ``\\r``, becomes several ``data`` lines, which the reader
joins again with ``\\n``). A comment is a line starting with ``:``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from rivetkit.dispatch.http import HeadersInit, Response

__all__ = ["SSE_HEADERS", "ServerSentEvent", "format_event", "sse_response"]

#: The headers of an SSE response (``headers`` given to :func:`sse_response` replace them).
SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)

_LINES = re.compile(r"\r\n|\r|\n")
_KEEP_ALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class ServerSentEvent:
    """One event of a Server-Sent Events stream.

    :param data: the data: a ``str`` sent as is (split into ``data`` lines at its line
        breaks), None for no ``data`` field, anything else as compact JSON
    :param event: the event type (``event:``; the reader's default is ``message``)
    :param id: the event id (``id:``; the reader sends it back as ``Last-Event-ID`` when
        it reconnects)
    :param retry: the reconnection delay the reader should use, in milliseconds (``retry:``)
    :param comment: a comment line (``: ...``), ignored by readers
    """

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def encode(self) -> bytes:
        """The event as it goes on the wire (UTF-8), ending with its blank line."""
        return format_event(self).encode("utf-8")


def _single_line(value: str, field: str) -> str:
    if "\n" in value or "\r" in value or (field == "id" and "\0" in value):
        raise ValueError(f"an SSE {field} must be one line, got {value!r}")
    return value


def format_event(event: ServerSentEvent | str | Any) -> str:
    """The text of one event: a :class:`ServerSentEvent`, or a data (``str``, or any other
    value as JSON) of an event with no other field. ``ValueError`` for an ``event`` or
    ``id`` with a line break (or an ``id`` with NUL), or a negative ``retry``."""
    if not isinstance(event, ServerSentEvent):
        event = ServerSentEvent(event)
    lines: list[str] = []
    if event.comment is not None:
        lines.extend(f": {line}" for line in _LINES.split(event.comment))
    if event.event is not None:
        lines.append(f"event: {_single_line(event.event, 'event')}")
    if event.id is not None:
        lines.append(f"id: {_single_line(event.id, 'id')}")
    if event.retry is not None:
        if not isinstance(event.retry, int) or isinstance(event.retry, bool) or event.retry < 0:
            raise ValueError(f"an SSE retry must be a non-negative int, got {event.retry!r}")
        lines.append(f"retry: {event.retry}")
    data = event.data
    if data is not None:
        if not isinstance(data, str):
            data = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        lines.extend(f"data: {line}" for line in _LINES.split(data))
    lines.append("\n")
    return "\n".join(lines)


async def _encoded(events: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[bytes]:
    if hasattr(events, "__aiter__"):
        source: Any = events.__aiter__()
        try:
            async for event in source:
                yield format_event(event).encode("utf-8")
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
    else:
        for event in events:
            yield format_event(event).encode("utf-8")


async def _with_keep_alive(chunks: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes]:
    """``chunks``, with a keep-alive comment whenever none came for ``interval`` seconds."""
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(chunks.__anext__())
            done, _ = await asyncio.wait((pending,), timeout=interval)
            if not done:
                yield _KEEP_ALIVE
                continue
            finished, pending = pending, None
            try:
                chunk = finished.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait((pending,))
        await chunks.aclose()  # type: ignore[attr-defined]


def sse_response(
    events: AsyncIterable[Any] | Iterable[Any],
    *,
    keep_alive: float | None = None,
    status: int = 200,
    headers: HeadersInit = None,
) -> Response:
    """A streamed :class:`~rivetkit.dispatch.http.Response` of ``events`` as Server-Sent
    Events, with the headers :data:`SSE_HEADERS` (``content-type: text/event-stream``,
    ``cache-control: no-cache``, ``x-accel-buffering: no``; ``headers`` replace them).

    ``events`` is an async iterator or generator (or an iterable) of
    :class:`ServerSentEvent`\\ s, ``str`` data or JSON values (see :func:`format_event`).
    ``keep_alive`` (seconds, None for none) sends a ``: keep-alive`` comment whenever no event
    came for that long, so that proxies keep an idle stream open. The stream ends when
    ``events`` does; when the client leaves, ``events`` is closed (a generator's ``finally``
    runs).
    """
    if keep_alive is not None and keep_alive <= 0:
        raise ValueError(f"keep_alive must be a positive number of seconds, got {keep_alive!r}")
    body = _encoded(events)
    if keep_alive is not None:
        body = _with_keep_alive(body, keep_alive)
    response = Response(body, status=status, headers=SSE_HEADERS)
    for name, value in Response(headers=headers).headers.items():
        response.headers[name] = value
    return response

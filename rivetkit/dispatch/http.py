"""Plain HTTP objects: what the transports hand to dispatch, and what ``on_request`` sees.

:class:`Request` and :class:`Response` carry no transport: the ASGI server (embedded mode)
and the engine tunnel (engine mode) build a :class:`Request` from their own wire form and send
back the :class:`Response`. The same two classes are the public API of raw HTTP handlers::

    from rivetkit import Response, actor

    api = actor("api", state={"hits": 0})

    @api.on_request
    async def on_request(c, request):
        if request.method == "GET" and request.path == "/hits":
            return Response.json({"hits": c.state["hits"]})
        if request.method == "POST" and request.path == "/hit":
            c.state["hits"] += 1
            return Response.json({"hits": c.state["hits"]})
        return Response.text("not found", status=404)

The handler sees the path after ``/request`` (``/request/hits`` → ``/hits``). Its return value
must be a :class:`Response`: a whole body, or a stream of chunks
(:mod:`rivetkit.dispatch.streaming`; Server-Sent Events with :meth:`Response.sse`); raising
answers a 500 ``RivetError`` (group and code kept, the message hidden unless
``RIVET_EXPOSE_ERRORS=1``).
"""

from __future__ import annotations

import json as _json
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Union
from urllib.parse import parse_qsl, unquote

from rivetkit.errors import RivetError

__all__ = ["Headers", "OnceHeaders", "Request", "Response"]

HeadersInit = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]], None]
#: The chunks of a streamed response body: ``bytes`` or ``str`` (sent as UTF-8) chunks.
ChunkSource = AsyncIterable[bytes | str] | Iterator[bytes | str]


class OnceHeaders(list[tuple[bytes, bytes]]):
    """A response's header list made for one answer (an actor's first): a transport that
    caches what it makes of a header list (its encoded head lines) does not keep this one,
    which no later answer will bring again."""

    __slots__ = ()


def _latin1(value: str) -> bytes:
    return value.encode("latin-1")


class Headers:
    """Case-insensitive HTTP headers that keep repeated names (a multi-dict).

    Built from a mapping, from ``(name, value)`` pairs of ``str``, or (by transports) from
    ASGI's lower-cased ``(bytes, bytes)`` pairs with :meth:`from_raw`. ``headers["x"]`` and
    :meth:`get` give the first value of a name; :meth:`get_all` gives every value.
    """

    __slots__ = ("_raw",)

    _raw: list[tuple[bytes, bytes]]

    def __init__(self, headers: HeadersInit = None) -> None:
        raw: list[tuple[bytes, bytes]] = []
        if headers is not None:
            if isinstance(headers, Headers):
                raw = list(headers._raw)
            else:
                pairs = headers.items() if isinstance(headers, Mapping) else headers
                for name, value in pairs:
                    if not isinstance(name, str) or not isinstance(value, str):
                        raise TypeError(
                            f"header names and values must be str, got {name!r}: {value!r}"
                        )
                    raw.append((_latin1(name.lower()), _latin1(value)))
        self._raw = raw

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Headers over ASGI-style pairs (names already lower-case); the list is not copied."""
        headers = cls.__new__(cls)
        headers._raw = raw
        return headers

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The ``(name, value)`` byte pairs, names lower-case (what ASGI sends)."""
        return self._raw

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (any case), or ``default``."""
        key = _latin1(name.lower())
        for k, v in self._raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = _latin1(name.lower())
        return [v.decode("latin-1") for k, v in self._raw if k == key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __setitem__(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        key = _latin1(name.lower())
        self._raw = [(k, v) for k, v in self._raw if k != key]
        self._raw.append((key, _latin1(value)))

    def __delitem__(self, name: str) -> None:
        key = _latin1(name.lower())
        self._raw = [(k, v) for k, v in self._raw if k != key]

    def append(self, name: str, value: str) -> None:
        """Add a value for ``name``, keeping the existing ones."""
        self._raw.append((_latin1(name.lower()), _latin1(value)))

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, names lower-case."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]

    def keys(self) -> list[str]:
        """The distinct names, lower-case, in first-seen order."""
        return list(dict.fromkeys(k.decode("latin-1") for k, _ in self._raw))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._raw) == sorted(other._raw)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class _Body:
    """A request body: given whole, or read once from a stream of chunks."""

    __slots__ = ("chunks", "data")

    def __init__(self, data: bytes | None, chunks: AsyncIterator[bytes] | None) -> None:
        self.data = data
        self.chunks = chunks

    async def read(self, limit: int | None) -> bytes:
        data = self.data
        if data is None and hasattr(self.chunks, "read_all"):
            # A transport's whole-body reader (one call instead of an iteration).
            chunks: Any = self.chunks
            self.chunks = None
            try:
                data = self.data = await chunks.read_all(limit)
            except BaseException:
                self.data = b""
                raise
        if data is None:
            parts: list[bytes] = []
            size = 0
            chunks = self.chunks
            assert chunks is not None
            self.chunks = None
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    self.data = b""  # what is left stays unread: the request is refused
                    raise incoming_too_long(limit)
                parts.append(chunk)
            data = self.data = parts[0] if len(parts) == 1 else b"".join(parts)
        if limit is not None and len(data) > limit:
            raise incoming_too_long(limit)
        return data


def incoming_too_long(limit: int) -> RivetError:
    """``message/incoming_too_long``: a request or message beyond ``limit`` bytes."""
    return RivetError(
        "message",
        "incoming_too_long",
        f"Incoming message too long (the limit is {limit} bytes)",
        metadata={"limit": limit},
    )


class Request:
    """An HTTP request.

    :param method: the method, e.g. ``"POST"`` (upper-cased)
    :param path: the path as sent on the wire, percent-encoded (``/a%20b``); :attr:`path`
        gives it decoded and :attr:`raw_path` as given
    :param query_string: the query without ``?``, percent-encoded
    :param headers: :class:`Headers`, a mapping, or ``(name, value)`` pairs
    :param body: the whole body, or an async iterator of its chunks (read once, on demand)
    """

    __slots__ = (
        "_body",
        "_disconnected",
        "_query",
        "headers",
        "method",
        "query_string",
        "raw_path",
    )

    #: Set by a transport that can tell when the client leaves: a factory of an awaitable
    #: that finishes once the client has gone (to be called only after the body was read).
    #: None (in-process and engine requests): a departure is not observed.
    _disconnected: Callable[[], Awaitable[None]] | None

    def __init__(
        self,
        method: str,
        path: str,
        *,
        query_string: str = "",
        headers: HeadersInit = None,
        body: bytes | AsyncIterator[bytes] = b"",
    ) -> None:
        self.method = method.upper()
        self.raw_path = path or "/"
        self.query_string = query_string
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        if isinstance(body, (bytes, bytearray, memoryview)):
            self._body = _Body(bytes(body), None)
        else:
            self._body = _Body(None, body)
        self._query: dict[str, list[str]] | None = None
        self._disconnected = None

    @classmethod
    def _raw(
        cls,
        method: str,
        path: str,
        query_string: str,
        headers: Headers,
        chunks: Any,
        disconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> Request:
        # Transport-internal fast path: headers already Headers, the body a stream of
        # chunks (an async iterator, possibly with a ``read_all(limit)`` method), and
        # optionally the client's departure (see ``_disconnected``).
        request = cls.__new__(cls)
        request.method = method.upper()
        request.raw_path = path or "/"
        request.query_string = query_string
        request.headers = headers
        request._body = _Body(None, chunks)
        request._query = None
        request._disconnected = disconnected
        return request

    def with_path(self, path: str, query_string: str | None = None) -> Request:
        """The same request (sharing its body) under another raw path and query."""
        other = Request.__new__(Request)
        other.method = self.method
        other.raw_path = path or "/"
        other.query_string = self.query_string if query_string is None else query_string
        other.headers = self.headers
        other._body = self._body
        other._query = None
        other._disconnected = self._disconnected
        return other

    @property
    def path(self) -> str:
        """The path, percent-decoded."""
        raw = self.raw_path
        return unquote(raw) if "%" in raw else raw

    @property
    def url(self) -> str:
        """``http://<host><raw path>[?<query>]`` (host from the ``Host`` header)."""
        host = self.headers.get("host") or "actor"
        query = f"?{self.query_string}" if self.query_string else ""
        return f"http://{host}{self.raw_path}{query}"

    @property
    def query(self) -> dict[str, list[str]]:
        """The query parameters: each name with its values, in order."""
        if self._query is None:
            parsed: dict[str, list[str]] = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                parsed.setdefault(name, []).append(value)
            self._query = parsed
        return self._query

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; RivetError ``message/incoming_too_long`` beyond ``limit`` bytes."""
        return await self._body.read(limit)

    async def body(self) -> bytes:
        """The whole body."""
        return await self._body.read(None)

    async def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return (await self.body()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not JSON)."""
        return _json.loads(await self.body())

    def __repr__(self) -> str:
        query = f"?{self.query_string}" if self.query_string else ""
        return f"<Request {self.method} {self.raw_path}{query}>"


class Response:
    """An HTTP response: ``Response(b"...", status=200, headers={...}, media_type=...)``.

    ``body`` may be ``bytes`` or ``str`` (sent as UTF-8), or a stream of chunks: an async
    iterator or async generator (or a plain iterator) of ``bytes``/``str`` chunks, sent as
    produced (chunked transfer encoding on the embedded server; buffered whole in engine mode,
    see ``docs/concepts/raw-http.md``). ``media_type`` sets ``Content-Type`` unless
    ``headers`` already do. ``Content-Length`` is set by the transport. :meth:`json`,
    :meth:`text` and :meth:`sse` build the common cases.
    """

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        body: bytes | str | ChunkSource = b"",
        *,
        status: int = 200,
        headers: HeadersInit = None,
        media_type: str | None = None,
    ) -> None:
        stream: ChunkSource | None = None
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        elif not isinstance(body, bytes):
            if not hasattr(body, "__aiter__") and not isinstance(body, Iterator):
                raise TypeError(
                    "a Response body must be bytes, str or an (async) iterator of chunks, "
                    f"got {type(body).__name__}"
                )
            stream, body = body, b""
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status!r}")
        self.body: bytes = body
        #: The chunks of a streamed body (``body`` is then empty); None for a whole body.
        self.stream: ChunkSource | None = stream
        self.status = status
        self.headers = Headers(headers)
        if media_type is not None and "content-type" not in self.headers:
            self.headers.append("content-type", media_type)

    @classmethod
    def json(cls, data: Any, *, status: int = 200, headers: HeadersInit = None) -> Response:
        """A JSON response (``application/json``)."""
        body = _json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return cls(body, status=status, headers=headers, media_type="application/json")

    @classmethod
    def text(cls, text: str, *, status: int = 200, headers: HeadersInit = None) -> Response:
        """A plain-text response (``text/plain; charset=utf-8``)."""
        return cls(text, status=status, headers=headers, media_type="text/plain; charset=utf-8")

    @classmethod
    def sse(
        cls,
        events: AsyncIterable[Any] | Iterable[Any],
        *,
        keep_alive: float | None = None,
        status: int = 200,
        headers: HeadersInit = None,
    ) -> Response:
        """A Server-Sent Events stream (``text/event-stream``) of ``events``.

        Each event is a :class:`~rivetkit.dispatch.sse.ServerSentEvent`, a ``str`` (its
        data) or any other value (its data as JSON). ``keep_alive`` (seconds) sends a
        ``: keep-alive`` comment when no event came for that long. See
        :func:`rivetkit.dispatch.sse.sse_response`.
        """
        from rivetkit.dispatch.sse import sse_response

        return sse_response(events, keep_alive=keep_alive, status=status, headers=headers)

    @classmethod
    def _raw(
        cls,
        status: int,
        raw_headers: list[tuple[bytes, bytes]],
        body: bytes,
        stream: ChunkSource | None = None,
    ) -> Response:
        # Transport-internal fast path: no validation, headers already bytes.
        response = cls.__new__(cls)
        response.body = body
        response.stream = stream
        response.status = status
        response.headers = Headers.from_raw(raw_headers)
        return response

    def __repr__(self) -> str:
        if self.stream is not None:
            return f"<Response {self.status} streamed>"
        return f"<Response {self.status} {len(self.body)} bytes>"

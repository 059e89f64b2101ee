"""Logging for ``rivetkit serve``: levels, the text and JSON formats, request ids.

:func:`configure_logging` installs one handler on the root logger, in one of two formats:

* ``text``: ``2026-01-02 03:04:05.678 INFO    rivetkit.server: message``
* ``json``: one JSON object per line with ``ts`` (ISO 8601, UTC), ``level``, ``logger``,
  ``message`` and, when known, ``actor``, ``key``, ``actor_id`` and ``request_id``;
  an exception is the string field ``exception`` (its traceback).

The level applies to the root logger, so to ``rivetkit.*``, uvicorn's loggers and the user's
own. A request's id (its ``x-rivet-ray-id`` header, or one made up) is held in a context
variable while the server handles it (:func:`set_request_context`), so the lines an actor
logs during that request carry it.
"""

from __future__ import annotations

import contextvars
import datetime
import itertools
import json
import logging
import os
import sys
from typing import Any, Final

__all__ = [
    "ACCESS_LOGGER",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "JsonFormatter",
    "RequestContext",
    "TextFormatter",
    "WebSocketAccessFilter",
    "configure_logging",
    "current_request",
    "new_request_id",
    "set_request_context",
]

#: The levels ``--log-level`` accepts.
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: The formats ``--log-format`` accepts.
LOG_FORMATS: Final = ("text", "json")
#: The logger of the access log (one line per HTTP request, off unless ``--access-log``).
ACCESS_LOGGER: Final = "rivetkit.access"


_PREFIX: Final = os.urandom(4).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    """A request id unique in this process and unlikely to repeat across processes."""
    return f"{_PREFIX}-{next(_counter):x}"


class RequestContext:
    """What the log lines written during one request carry: the request id and, once the
    gateway has found it, the actor (its id; its name and key, read from ``instance`` when
    one is attached). Built once per request and filled in place; the id is formatted only
    when a line asks for it."""

    __slots__ = ("_actor", "_key", "_number", "_request_id", "actor_id", "instance")

    def __init__(
        self,
        request_id: str | None = None,
        actor_id: str | None = None,
        actor: str | None = None,
        key: str | None = None,
    ) -> None:
        self._request_id = request_id
        self._number = next(_counter) if request_id is None else 0
        #: The actor's id, when known.
        self.actor_id = actor_id
        #: The running actor (anything with ``name`` and ``key``), when known.
        self.instance: Any = None
        self._actor = actor
        self._key = key

    @property
    def request_id(self) -> str:
        """The client's ``x-rivet-ray-id``, or an id unique in this process."""
        request_id = self._request_id
        if request_id is None:
            request_id = self._request_id = f"{_PREFIX}-{self._number:x}"
        return request_id

    @property
    def actor(self) -> str | None:
        """The actor's name, when known."""
        instance = self.instance
        return self._actor if instance is None else instance.name

    @property
    def key(self) -> str | None:
        """The actor's key (its parts joined with ``/``; ``-`` when empty), when known."""
        instance = self.instance
        if instance is None:
            return self._key
        return "/".join(instance.key) or "-"


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "rivetkit_request", default=None
)


def current_request() -> RequestContext | None:
    """The request being handled in this context, or None."""
    return _current.get()


def set_request_context(context: RequestContext | None) -> contextvars.Token[Any]:
    """Make ``context`` the current request's (give the token to ``reset`` to undo)."""
    return _current.set(context)


def reset_request_context(token: contextvars.Token[Any]) -> None:
    """Undo a :func:`set_request_context`."""
    _current.reset(token)


_FIELDS: Final = ("actor", "key", "actor_id", "request_id")


def _context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The actor and request fields of ``record``: its own (``extra=``) first, then the
    current request's."""
    fields: dict[str, Any] = {}
    request = _current.get()
    if request is not None:
        fields["request_id"] = request.request_id
        if request.actor_id is not None:
            fields["actor_id"] = request.actor_id
            actor = request.actor
            if actor is not None:
                fields["actor"] = actor
            key = request.key
            if key is not None:
                fields["key"] = key
    for name in _FIELDS:
        value = record.__dict__.get(name)
        if value is not None:
            fields[name] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, then the actor and
    request fields when known, then ``exception`` (a string) when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_context_fields(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``date time.ms LEVEL logger: message``, with ``(request ID)`` appended to lines
    written during a request."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )

    def format(self, record: logging.LogRecord) -> str:
        """The record as text."""
        text = super().format(record)
        request = _current.get()
        if request is not None and record.name != ACCESS_LOGGER:
            head, newline, tail = text.partition("\n")
            text = f"{head} (request {request.request_id}){newline}{tail}"
        return text


#: uvicorn's line for each accepted WebSocket (client address, path with query string).
_WEBSOCKET_ACCEPTED: Final = '%s - "WebSocket %s" [accepted]'
#: websockets' INFO lines for each socket, under uvicorn's logger: noise next to the above.
_WEBSOCKET_NOISE: Final = frozenset({"connection open", "connection closed"})


class WebSocketAccessFilter(logging.Filter):
    """uvicorn's per-WebSocket INFO lines are access lines: ``[accepted]`` is kept only with
    the access log, and then without its query string (which can hold tokens, as
    ``rvt-token``); websockets' ``connection open``/``connection closed`` are dropped."""

    def __init__(self, access_log: bool = False) -> None:
        super().__init__()
        self.access_log = access_log

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a line to drop; an ``[accepted]`` line kept loses its query string."""
        if record.levelno != logging.INFO:
            return True
        if record.msg in _WEBSOCKET_NOISE:
            return False
        if record.msg == _WEBSOCKET_ACCEPTED:
            if not self.access_log:
                return False
            args = record.args
            if isinstance(args, tuple) and len(args) == 2:
                record.args = (args[0], str(args[1]).split("?", 1)[0])
        return True


def configure_logging(level: str = "info", fmt: str = "text", *, access_log: bool = False) -> None:
    """Log to stderr at ``level`` in format ``fmt`` (``text`` or ``json``).

    Replaces the root logger's handlers; uvicorn's loggers lose theirs and propagate to it.
    The access log (:data:`ACCESS_LOGGER`) is on only with ``access_log``.

    :raises ValueError: for an unknown level or format
    """
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LOG_LEVELS)}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rivetkit"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO if access_log else logging.CRITICAL + 1)
    server_log = logging.getLogger("uvicorn.error")
    server_log.filters[:] = [
        f for f in server_log.filters if not isinstance(f, WebSocketAccessFilter)
    ]
    server_log.addFilter(WebSocketAccessFilter(access_log))

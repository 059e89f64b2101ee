"""One attempt to open an actor connection's socket: the ``/connect`` handshake up to ``Init``.

:func:`open_socket` resolves the gateway URL, opens the WebSocket with the ``rivet``
subprotocols and waits for the server's ``Init``. A failure raises :class:`OpenFailure`,
which says whether the connection's reconnect loop should try again (:func:`classify`: network
failures and, unless the target is an actor id, lifecycle and transient gateway errors) or
give up. :func:`close_error` and :func:`error_of` turn a WebSocket close and an ``Error``
message into :class:`~rivetkit.client.errors.ActorError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from rivetkit.client.errors import (
    CLIENT_GROUP,
    ActorError,
    connection_closed_error,
    is_lifecycle_boundary,
    is_query_retryable,
    parse_http_error,
)
from rivetkit.client.http import USER_AGENT, HttpSession
from rivetkit.client.query import ActorQuery, ForIdQuery
from rivetkit.client.urls import websocket_url
from rivetkit.errors import ProtocolError
from rivetkit.protocol.client_protocol import Error, Init
from rivetkit.protocol.messages import decode_to_client

__all__ = [
    "CLOSE_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "MAX_MESSAGE_SIZE",
    "OpenFailure",
    "abandon",
    "classify",
    "close_error",
    "error_of",
    "open_socket",
]

#: Largest message the client accepts from the server, in bytes.
MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024
#: How long the WebSocket handshake, and then the wait for ``Init``, may take (seconds).
HANDSHAKE_TIMEOUT: Final = 15.0
#: How long closing the socket may take (seconds).
CLOSE_TIMEOUT: Final = 5.0


class OpenFailure(Exception):
    """An attempt to open failed; ``error`` says why, ``retry`` whether to try again."""

    def __init__(self, error: ActorError, *, retry: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry = retry


def classify(error: ActorError, query: ActorQuery) -> OpenFailure:
    """The failure of an attempt to connect to ``query`` that ended with ``error``."""
    if error.group == CLIENT_GROUP:
        return OpenFailure(error, retry=error.code != "client_closed")
    retry = is_lifecycle_boundary(error) or (
        not isinstance(query, ForIdQuery) and is_query_retryable(error.group, error.code)
    )
    return OpenFailure(error, retry=retry)


def close_error(exc: ConnectionClosed) -> ActorError:
    """The error a closed socket stands for (its structured reason, or ``connection_lost``)."""
    received = exc.rcvd
    code = received.code if received is not None else 1006
    reason = received.reason if received is not None else ""
    clean = received is not None and exc.sent is not None
    return connection_closed_error(code, reason, clean=clean)


def error_of(body: Error) -> ActorError:
    """The :class:`ActorError` an ``Error`` message carries."""
    return ActorError(body.group, body.code, body.message, metadata=body.metadata, actor=body.actor)


async def abandon(ws: ClientConnection) -> None:
    """Close ``ws`` within :data:`CLOSE_TIMEOUT`, ignoring every failure."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)


async def open_socket(
    session: HttpSession,
    query: ActorQuery,
    subprotocols: Sequence[Subprotocol],
    on_message: Callable[[Any], None],
) -> tuple[ClientConnection, Init]:
    """Open a ``/connect`` socket to ``query`` and wait for ``Init``; raise :class:`OpenFailure`.

    Messages other than ``Init`` and a connection-level ``Error`` that arrive first go to
    ``on_message`` (the decoded body).
    """
    encoding = session.config.encoding
    try:
        session.check_open()
        await session.ensure_metadata()
        url = websocket_url(session.gateway_url(query, "/connect"))
    except ActorError as exc:
        raise classify(exc, query) from None
    try:
        ws = await session.ws_connect(
            url,
            subprotocols=list(subprotocols),
            compression=None,
            max_size=MAX_MESSAGE_SIZE,
            open_timeout=HANDSHAKE_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
            user_agent_header=USER_AGENT,
            proxy=None,
        )
    except InvalidStatus as exc:
        response = exc.response
        error = parse_http_error(
            response.status_code,
            response.reason_phrase,
            response.headers,
            bytes(response.body or b""),
            encoding,
        )
        raise classify(error, query) from None
    except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        error = ActorError.client(
            "connection_lost",
            f"cannot reach the server at {session.endpoint}: WebSocket connect to {url} "
            f"failed ({cause})",
            metadata={"endpoint": session.endpoint, "operation": "WebSocket connect", "url": url},
        )
        raise OpenFailure(error, retry=True) from None
    try:
        init = await asyncio.wait_for(
            _wait_init(ws, query, encoding, on_message), HANDSHAKE_TIMEOUT
        )
    except OpenFailure:
        await abandon(ws)
        raise
    except asyncio.TimeoutError:
        await abandon(ws)
        error = ActorError.client("connection_lost", "no Init from the server in time")
        raise OpenFailure(error, retry=True) from None
    except BaseException:
        await abandon(ws)
        raise
    return ws, init


async def _wait_init(
    ws: ClientConnection, query: ActorQuery, encoding: str, on_message: Callable[[Any], None]
) -> Init:
    while True:
        try:
            raw = await ws.recv()
        except ConnectionClosed as exc:
            raise classify(close_error(exc), query) from None
        try:
            message = decode_to_client(raw, encoding)
        except ProtocolError as exc:
            error = ActorError(exc.group, exc.code, exc.message)
            raise OpenFailure(error, retry=False) from None
        body = message.body
        if isinstance(body, Init):
            return body
        if isinstance(body, Error) and body.action_id is None:
            raise classify(error_of(body), query)
        on_message(body)

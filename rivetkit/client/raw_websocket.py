"""``handle.websocket(path)``: a raw WebSocket to an actor's ``on_websocket`` handler, as the
TypeScript client's ``handle.webSocket(path)`` opens it.

URL: the gateway URL of ``/websocket/{path}`` (``path``'s leading ``/`` dropped, its query
string kept, then the ``rvt-*`` parameters of a get/get_or_create target), ``ws://`` or
``wss://``. Subprotocols: ``rivet``, ``rivet_encoding.bare`` and, for truthy params,
``rivet_conn_params.<json>`` (the actor reads them as connection params); protocols the caller
adds follow them (the TypeScript client drops its ``protocols`` argument). The socket opens
through the session's ``ws_connect`` and is returned as it is: a websockets
``ClientConnection`` (``send``, ``recv``, ``async for``, ``close``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from rivetkit.client.errors import ActorError, parse_http_error
from rivetkit.client.handshake import CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_MESSAGE_SIZE
from rivetkit.client.http import USER_AGENT, HttpSession
from rivetkit.client.query import ActorQuery
from rivetkit.client.urls import connect_subprotocols, websocket_url

__all__ = ["RAW_WEBSOCKET_ENCODING", "open_raw_websocket", "raw_websocket_path"]

#: The encoding a raw socket announces (``rivet_encoding.bare``), as in the TypeScript client.
RAW_WEBSOCKET_ENCODING = "bare"


def raw_websocket_path(path: str) -> str:
    """``/websocket/`` + ``path`` without its leading ``/`` (its query string kept)."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    route, mark, query = path.partition("?")
    return "/websocket/" + route.lstrip("/") + mark + query


async def open_raw_websocket(
    session: HttpSession,
    query: ActorQuery,
    params: Any,
    path: str,
    protocols: Sequence[str] | None,
) -> ClientConnection:
    """Open one raw socket (no retries); an HTTP error answering the upgrade raises its
    :class:`ActorError`, a network failure ``client.connection_open_failed``."""
    subprotocols = connect_subprotocols(RAW_WEBSOCKET_ENCODING, params)
    subprotocols.extend(protocols or ())
    route = raw_websocket_path(path)
    await session.ensure_metadata()
    session.check_open()
    url = websocket_url(session.gateway_url(query, route))
    try:
        ws: ClientConnection = await session.ws_connect(
            url,
            subprotocols=[Subprotocol(p) for p in subprotocols],
            compression=None,
            max_size=MAX_MESSAGE_SIZE,
            open_timeout=HANDSHAKE_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
            user_agent_header=USER_AGENT,
            proxy=None,
        )
    except InvalidStatus as exc:
        response = exc.response
        raise parse_http_error(
            response.status_code,
            response.reason_phrase,
            response.headers,
            bytes(response.body or b""),
            "json",
        ) from None
    except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ActorError.client(
            "connection_open_failed",
            f"cannot reach the server at {session.endpoint}: WebSocket connect to {url} "
            f"failed ({cause})",
            metadata={"endpoint": session.endpoint, "operation": "WebSocket connect", "url": url},
        ) from None
    return ws

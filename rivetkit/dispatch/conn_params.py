"""What a client offers when it opens ``/connect`` (client protocol §2): its subprotocols
(``rivet_encoding.*``, ``rivet_conn_params.*``) and its connection params (from that
subprotocol or the ``x-rivet-conn-params`` header), checked against RivetKit's 4 KiB limit.

Bytes in, values out: each refusal is an ``actor.invalid_request`` :class:`RivetError`.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import unquote

from rivetkit.dispatch.http import Headers
from rivetkit.errors import RivetError

__all__ = [
    "MAX_CONN_PARAMS_SIZE",
    "conn_params_bytes",
    "encoding_of",
    "params_of",
    "parse_subprotocols",
    "ws_conn_params",
]

#: Largest connection params (JSON text), as in RivetKit.
MAX_CONN_PARAMS_SIZE: Final = 4096


def _invalid_request(message: str, metadata: Any = None) -> RivetError:
    return RivetError("actor", "invalid_request", message, metadata=metadata)


def parse_subprotocols(headers: Headers) -> list[str]:
    """The subprotocols a WebSocket client offered (``Sec-WebSocket-Protocol``), in order."""
    offered: list[str] = []
    for value in headers.get_all("sec-websocket-protocol"):
        for item in value.split(","):
            item = item.strip()
            if item:
                offered.append(item)
    return offered


def encoding_of(offered: list[str]) -> str:
    """The encoding a client asked for in its subprotocols (``json`` by default)."""
    for item in offered:
        if item.startswith("rivet_encoding."):
            return item[15:]
    return "json"


def params_of(offered: list[str]) -> str | None:
    """The percent-encoded connection params in a client's subprotocols, or None."""
    for item in offered:
        if item.startswith("rivet_conn_params."):
            return item[18:]
    return None


def _params_from_json(text: str, where: str, size: int | None = None) -> Any:
    """Decode the JSON ``text`` of connection params; the 4 KiB limit is on its bytes
    (``size``, or its UTF-8 length: a character may take up to 4 bytes)."""
    if size is None and len(text) * 4 > MAX_CONN_PARAMS_SIZE:
        size = (
            len(text)
            if len(text) > MAX_CONN_PARAMS_SIZE
            else len(text.encode("utf-8", "surrogatepass"))
        )
    if size is not None and size > MAX_CONN_PARAMS_SIZE:
        raise _invalid_request(
            f"connection params exceed {MAX_CONN_PARAMS_SIZE} bytes",
            metadata={"limit": MAX_CONN_PARAMS_SIZE},
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid_request(f"connection params in {where} are not valid JSON") from None


def conn_params_bytes(data: bytes) -> Any:
    """The connection params of an ``x-rivet-conn-params`` header (its raw bytes)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return _params_from_json(text, "x-rivet-conn-params", len(data))


def ws_conn_params(encoded: str | None) -> Any:
    """The connection params of a ``rivet_conn_params.*`` subprotocol (None: none)."""
    if encoded is None:
        return None
    if len(encoded) > MAX_CONN_PARAMS_SIZE * 9:  # the longest percent-encoding of 4 KiB
        raise _invalid_request(f"connection params exceed {MAX_CONN_PARAMS_SIZE} bytes")
    try:
        text = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise _invalid_request("connection params are not valid UTF-8") from None
    return _params_from_json(text, "the rivet_conn_params subprotocol")

"""URLs, query parameters, headers and subprotocols, exactly as ``rivetkit@2.3.19`` writes them.

Gateway URLs (spec ``client-protocol.md`` §1b):

* direct (``get_for_id``, ``create``): ``{endpoint}/gateway/{encodeURIComponent(actorId)}{path}``,
  with a token ``/gateway/{actorId}@{encodeURIComponent(token)}{path}``;
* query (``get``, ``get_or_create``): ``{endpoint}/gateway/{encodeURIComponent(name)}{path}``
  then ``?`` (``&`` when ``path`` has a query) and the ``rvt-*`` parameters in the order
  ``rvt-namespace``, ``rvt-method``, ``rvt-runner``, ``rvt-key``, ``rvt-input``,
  ``rvt-region``, ``rvt-crash-policy``, ``rvt-token``, form-encoded like ``URLSearchParams``
  (space as ``+``; only ``A-Za-z0-9*-._`` left bare). ``rvt-key`` is ``key.join(",")``
  without escaping, left out for the empty key.

Manager API URLs carry ``namespace=<ns>`` appended to their query (§1a).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote, quote_plus

from rivetkit.client.query import ActorQuery, ForIdQuery, GetOrCreateQuery, b64url_nopad

__all__ = [
    "CRASH_POLICY",
    "conn_params_header",
    "connect_subprotocols",
    "encode_uri_component",
    "form_encode",
    "gateway_url",
    "is_truthy_params",
    "manager_url",
    "query_string",
    "rvt_params",
    "websocket_url",
]

#: ``rvt-crash-policy`` and the manager API's ``crash_policy``: the client always sends it.
CRASH_POLICY: Final = "sleep"

# encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) as they are.
_URI_COMPONENT_SAFE: Final = "!~*'()"


def encode_uri_component(value: str) -> str:
    """JavaScript's ``encodeURIComponent`` (UTF-8 percent-encoding)."""
    return quote(value, safe=_URI_COMPONENT_SAFE)


def form_encode(value: str) -> str:
    """One value as ``URLSearchParams`` writes it (application/x-www-form-urlencoded)."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def query_string(params: Sequence[tuple[str, str]]) -> str:
    """``k=v&k2=v2`` with form encoding, in the given order."""
    return "&".join(f"{form_encode(k)}={form_encode(v)}" for k, v in params)


def rvt_params(
    query: ActorQuery, *, namespace: str, pool: str, token: str | None
) -> list[tuple[str, str]]:
    """The ``rvt-*`` parameters of a query-form gateway URL, in the client's order."""
    if isinstance(query, ForIdQuery):
        raise ValueError("a get_for_id target uses the direct gateway form, without rvt params")
    params: list[tuple[str, str]] = [("rvt-namespace", namespace)]
    if isinstance(query, GetOrCreateQuery):
        params.append(("rvt-method", "getOrCreate"))
        params.append(("rvt-runner", pool))
        if query.key:
            params.append(("rvt-key", ",".join(query.key)))
        if query.input_cbor is not None:
            params.append(("rvt-input", b64url_nopad(query.input_cbor)))
        if query.region is not None:
            params.append(("rvt-region", query.region))
        params.append(("rvt-crash-policy", CRASH_POLICY))
    else:
        params.append(("rvt-method", "get"))
        if query.key:
            params.append(("rvt-key", ",".join(query.key)))
    if token is not None:
        params.append(("rvt-token", token))
    return params


def gateway_url(
    endpoint: str,
    query: ActorQuery,
    path: str,
    *,
    namespace: str,
    pool: str,
    token: str | None,
) -> str:
    """The gateway URL of ``path`` (``/action/x``, ``/connect``, ...) on the target actor."""
    if not path.startswith("/"):
        path = "/" + path
    if isinstance(query, ForIdQuery):
        segment = encode_uri_component(query.actor_id)
        if token is not None:
            segment += "@" + encode_uri_component(token)
        return f"{endpoint}/gateway/{segment}{path}"
    separator = "&" if "?" in path else "?"
    params = query_string(rvt_params(query, namespace=namespace, pool=pool, token=token))
    return f"{endpoint}/gateway/{encode_uri_component(query.name)}{path}{separator}{params}"


def websocket_url(http_url: str) -> str:
    """``http(s)://`` becomes ``ws(s)://``."""
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://") :]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://") :]
    return http_url


def manager_url(
    endpoint: str, path: str, *, namespace: str, params: Sequence[tuple[str, str]] = ()
) -> str:
    """A manager API URL: ``path``, its ``params``, then ``namespace=<ns>``."""
    all_params = [*params, ("namespace", namespace)]
    return f"{endpoint}{path}?{query_string(all_params)}"


def is_truthy_params(params: Any) -> bool:
    """JavaScript truthiness of connection params (``{}`` and ``[]`` are truthy there)."""
    if params is None or params is False:
        return False
    if isinstance(params, (int, float)) and not isinstance(params, bool):
        return params != 0
    if isinstance(params, str):
        return params != ""
    return True


def _json_stringify(value: Any, *, ascii_only: bool) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"connection params must be JSON-serializable: {exc}") from None


def connect_subprotocols(encoding: str, params: Any) -> list[str]:
    """``rivet``, ``rivet_encoding.<enc>`` and, for truthy params,
    ``rivet_conn_params.<encodeURIComponent(JSON.stringify(params))>``.

    Unlike ``encodeURIComponent``, ``(`` and ``)`` are escaped too (``%28``/``%29``): they
    are not valid in a subprotocol token (RFC 7230 ``tchar``) and strict servers (Node's
    ``ws``, Python's ``websockets``) refuse the handshake over them. The server
    percent-decodes, so it reads the same params.
    """
    protocols = ["rivet", f"rivet_encoding.{encoding}"]
    if is_truthy_params(params):
        text = encode_uri_component(_json_stringify(params, ascii_only=False))
        protocols.append("rivet_conn_params." + text.replace("(", "%28").replace(")", "%29"))
    return protocols


def conn_params_header(params: Any) -> str | None:
    """The ``x-rivet-conn-params`` header (JSON), None when no params were given.

    Non-ASCII characters are written as JSON ``\\u`` escapes so the header stays ASCII.
    """
    if params is None:
        return None
    return _json_stringify(params, ascii_only=True)

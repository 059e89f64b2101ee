"""Which web pages and which ``Host`` names may reach the embedded server.

Browsers let any page send "simple" requests (a ``POST`` with ``Content-Type: text/plain``)
and open WebSockets to any address, ``127.0.0.1`` included; only the server can tell them
apart, by the ``Origin`` header a browser always sets on them. And a page on a name the
attacker controls can make that name resolve to ``127.0.0.1`` (DNS rebinding): its requests
then carry the attacker's name in ``Host``. So the server applies two checks before anything
else runs (see :class:`OriginPolicy`):

* **Origin**: a request or WebSocket upgrade whose ``Origin`` is not allowed is refused with
  403 ``request.forbidden_origin``. Allowed by default: loopback pages
  (``http(s)://localhost``, ``*.localhost``, ``127.x.x.x`` and ``[::1]``, any port), and the
  server's own origin. ``cors_origins`` replaces the loopback default; ``"*"`` allows any.
  Requests without ``Origin`` (non-browser clients) are allowed.
* **Host**: on a loopback listener, a ``Host`` that is not a loopback name or address is
  refused with 403 ``request.forbidden_host``; ``allowed_hosts`` adds names. On any other
  listener the check applies only when ``allowed_hosts`` is given.

Allowed origins get RivetKit's CORS answers (its gateway's ``cors`` middleware): a
preflight is answered 204 echoing the origin with credentials, the methods, the requested
headers and a max-age of a day; actual responses carry the origin, credentials and
``Access-Control-Expose-Headers: *``; all say ``Vary: Origin``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

from rivetkit.dispatch.http import Response
from rivetkit.errors import RivetError

__all__ = [
    "LOOPBACK_ORIGINS",
    "OriginPolicy",
    "Refusal",
    "cors_headers",
    "host_matches",
    "is_loopback_address",
    "is_loopback_name",
    "is_preflight",
    "origin_matches",
    "parse_origin",
    "preflight",
    "preflight_headers",
    "refuse_websocket",
    "split_host",
    "with_cors",
]

logger = logging.getLogger("rivetkit.server")

#: The origins allowed when none are configured: pages served from this machine.
LOOPBACK_ORIGINS: Final = (
    "http://localhost:*",
    "https://localhost:*",
    "http://*.localhost:*",
    "https://*.localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
)

_METHODS: Final = b"GET, POST, PUT, DELETE, OPTIONS, PATCH"
_MAX_AGE: Final = b"86400"
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}
_HOSTS_SEEN_MAX: Final = 256


def split_host(value: str) -> tuple[str, str | None]:
    """``(host, port)`` of a ``Host`` value or an origin's authority, the host lower-case and
    without IPv6 brackets (``"[::1]:80"`` gives ``("::1", "80")``); port None when absent."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        host, rest = value[1:end], value[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = value.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return value, None
    return host, port


def is_loopback_address(host: str) -> bool:
    """True for an IP address of this machine's loopback (``127.0.0.0/8``, ``::1``)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_name(host: str) -> bool:
    """True for a loopback host: ``localhost``, ``*.localhost`` (RFC 6761) or a loopback
    address."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost") or is_loopback_address(host)


def parse_origin(origin: str) -> tuple[str, str, str | None] | None:
    """``(scheme, host, port)`` of a serialized origin such as ``http://localhost:3000``
    (default ports dropped), or None when it is not one (``null``, a path, a bad port)."""
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or not scheme or not authority or "/" in authority or "@" in authority:
        return None
    host, port = split_host(authority)
    if not host:
        return None
    if port is not None:
        if port == "*":
            return scheme, host, port
        if not port.isdigit() or not 0 < int(port) < 65536:
            return None
        port = str(int(port))
        if _DEFAULT_PORTS.get(scheme) == port:
            port = None
    return scheme, host, port


def _host_pattern_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def origin_matches(origin: str, pattern: str) -> bool:
    """True when ``origin`` is allowed by ``pattern``: ``"*"`` (any origin), an exact origin
    (``https://app.example.com``), with a wildcard port (``http://localhost:*``) and/or a
    wildcard leftmost label (``https://*.example.com``)."""
    if pattern == "*":
        return True
    parsed, wanted = parse_origin(origin), parse_origin(pattern)
    if parsed is None or wanted is None:
        return origin.strip().lower() == pattern.strip().lower()  # e.g. "null" listed as is
    scheme, host, port = parsed
    if scheme != wanted[0] or not _host_pattern_matches(wanted[1], host):
        return False
    return wanted[2] == "*" or wanted[2] == port


def host_matches(host: str, pattern: str) -> bool:
    """True when the host name ``host`` (no port) is allowed by ``pattern``: ``"*"``, an exact
    name, or ``*.example.com`` / ``.example.com`` (any subdomain)."""
    pattern = pattern.strip().lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("."):
        pattern = "*" + pattern
    return _host_pattern_matches(split_host(pattern)[0], host)


def preflight_headers(origin: bytes, requested_headers: bytes | None) -> list[tuple[bytes, bytes]]:
    """The headers of the 204 answering an allowed origin's preflight (RivetKit's)."""
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-allow-methods", _METHODS),
        (b"access-control-allow-headers", requested_headers or b"*"),
        (b"access-control-expose-headers", b"*"),
        (b"access-control-max-age", _MAX_AGE),
        (b"vary", b"Origin"),
    ]


def cors_headers(origin: bytes) -> list[tuple[bytes, bytes]]:
    """The headers added to an actual response for an allowed origin (RivetKit's)."""
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"*"),
        (b"vary", b"Origin"),
    ]


def with_cors(raw: list[tuple[bytes, bytes]], origin: bytes) -> list[tuple[bytes, bytes]]:
    """A response's headers plus :func:`cors_headers` (a new list); unchanged when the
    response sets its own ``Access-Control-Allow-Origin`` (an actor's ``on_request``)."""
    for name, _ in raw:
        if name == b"access-control-allow-origin":
            return raw
    return [*raw, *cors_headers(origin)]


def is_preflight(method: str, raw_headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """For a CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``), the value
    of its ``Access-Control-Request-Headers`` (``b""`` when absent); None otherwise."""
    if method != "OPTIONS":
        return None
    preflight = False
    requested = b""
    for name, value in raw_headers:
        if name == b"access-control-request-method":
            preflight = True
        elif name == b"access-control-request-headers":
            requested = value
    return requested if preflight else None


class Refusal(RivetError):
    """A request refused by the :class:`OriginPolicy` (always answered 403)."""

    status = 403

    def body(self) -> bytes:
        """The JSON RivetError body of the 403."""
        data = {
            "group": self.group,
            "code": self.code,
            "message": self.message,
            "metadata": self.metadata,
        }
        return json.dumps(data, separators=(",", ":")).encode()

    def response(self) -> Response:
        """The 403 response."""
        return Response._raw(self.status, [(b"content-type", b"application/json")], self.body())


def preflight(origin: bytes, raw_headers: Iterable[tuple[bytes, bytes]]) -> Response | None:
    """The 204 answering a CORS preflight of an allowed ``origin``; None when the request
    (an ``OPTIONS``) is not a preflight: it then goes to the routes."""
    requested = is_preflight("OPTIONS", raw_headers)
    if requested is None:
        return None
    return Response._raw(204, preflight_headers(origin, requested), b"")


async def refuse_websocket(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    refusal: Refusal,
) -> None:
    """Refuse an ASGI WebSocket upgrade with an HTTP 403, before any actor runs: with the
    JSON RivetError body when the server supports ASGI's denial response, else a bare 403."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = refusal.body()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send(
            {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.code})


def _forbidden_origin(origin: str) -> Refusal:
    return Refusal(
        "request",
        "forbidden_origin",
        f"requests from the web origin {origin[:200]!r} are not allowed by this server "
        "(allow it with `rivetkit serve --cors-origin ORIGIN` or create_app(cors_origins=...))",
        metadata={"origin": origin[:200]},
    )


def _forbidden_host(host: str) -> Refusal:
    return Refusal(
        "request",
        "forbidden_host",
        f"the Host {host[:200]!r} is not allowed by this server (allow it with "
        "`rivetkit serve --allowed-host NAME` or create_app(allowed_hosts=...))",
        metadata={"host": host[:200]},
    )


class OriginPolicy:
    """The Origin and Host rules of one server (see the module docstring).

    :param cors_origins: origin patterns allowed (see :func:`origin_matches`); None: the
        loopback ones (:data:`LOOPBACK_ORIGINS`)
    :param allowed_hosts: ``Host`` names allowed besides loopback ones (see
        :func:`host_matches`); when given, the check applies on every listener
    :param listen_host: the address the server listens on, when known: a loopback one turns
        the Host check on. None (unknown): no Host check unless ``allowed_hosts`` are given
    """

    __slots__ = (
        "_any_origin",
        "_host_check",
        "_hosts_seen",
        "_origins_seen",
        "allowed_hosts",
        "cors_origins",
        "listen_host",
    )

    def __init__(
        self,
        *,
        cors_origins: Iterable[str] | None = None,
        allowed_hosts: Iterable[str] | None = None,
        listen_host: str | None = None,
    ) -> None:
        for name, value in (("cors_origins", cors_origins), ("allowed_hosts", allowed_hosts)):
            if isinstance(value, (str, bytes)):
                raise TypeError(f"{name} must be a list of strings, not a single string")
        self.cors_origins: tuple[str, ...] = (
            LOOPBACK_ORIGINS if cors_origins is None else tuple(_strings(cors_origins))
        )
        self.allowed_hosts: tuple[str, ...] = tuple(_strings(allowed_hosts or ()))
        self.listen_host = listen_host
        self._any_origin = "*" in self.cors_origins
        # Values already judged (a server sees a handful), so most requests parse none.
        self._hosts_seen: dict[bytes, bool] = {}
        self._origins_seen: dict[tuple[bytes, bytes | None], bool] = {}
        self._host_check: bool
        if "*" in self.allowed_hosts:
            self._host_check = False
        elif self.allowed_hosts:
            self._host_check = True
        else:
            self._host_check = listen_host is not None and is_loopback_name(listen_host.strip("[]"))

    def listening_on(self, host: str) -> OriginPolicy:
        """The same policy for a server listening on ``host``."""
        return OriginPolicy(
            cors_origins=self.cors_origins, allowed_hosts=self.allowed_hosts, listen_host=host
        )

    def host_allowed(self, host: str | None) -> bool:
        """True when a request with this ``Host`` value may proceed."""
        if not self._host_check or host is None:
            return True  # no Host: not a browser (HTTP/1.0 tools)
        return self._host_vetted(host)

    def _host_vetted(self, host: str) -> bool:
        """True for a loopback or allowed ``Host`` (one no rebound name can carry)."""
        name = split_host(host)[0]
        if is_loopback_name(name):
            return True
        return any(host_matches(name, pattern) for pattern in self.allowed_hosts)

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """True when a browser page of ``origin`` may call this server, reached as
        ``host``."""
        if self._any_origin:
            return True
        parsed = parse_origin(origin)
        if parsed is not None and host is not None and self._host_vetted(host):
            # The server's own pages (e.g. served by an actor's on_request) are same-origin;
            # only through a vetted Host, since a DNS-rebound page is same-origin too.
            own_host, own_port = split_host(host)
            port = own_port if own_port != _DEFAULT_PORTS.get(parsed[0]) else None
            if parsed[1] == own_host and parsed[2] == port:
                return True
        return any(origin_matches(origin, pattern) for pattern in self.cors_origins)

    def check(
        self, raw_headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[bytes | None, Refusal | None]:
        """``(origin to echo, refusal)`` for a request's raw headers: the refusal when it must
        be refused, else the origin (None when the request carries none)."""
        origin: bytes | None = None
        host: bytes | None = None
        for name, value in raw_headers:
            if name == b"origin":
                origin = value
            elif name == b"host":
                host = value
        if host is not None and self._host_check:
            known = self._hosts_seen.get(host)
            if known is None:
                known = self._host_vetted(host.decode("latin-1"))
                if len(self._hosts_seen) < _HOSTS_SEEN_MAX:
                    self._hosts_seen[host] = known
                    if not known:  # logged once per value
                        logger.warning(
                            "refused Host %r (not a loopback name; allow it with --allowed-host)",
                            host.decode("latin-1")[:200],
                        )
            if not known:
                return None, _forbidden_host(host.decode("latin-1"))
        if origin is None:
            return None, None
        allowed = self._origins_seen.get((origin, host))
        if allowed is None:
            host_text = None if host is None else host.decode("latin-1")
            allowed = self.origin_allowed(origin.decode("latin-1"), host_text)
            if len(self._origins_seen) < _HOSTS_SEEN_MAX:
                self._origins_seen[(origin, host)] = allowed
                if not allowed:  # logged once per value
                    logger.warning(
                        "refused a request from the web origin %r (allow it with --cors-origin)",
                        origin.decode("latin-1")[:200],
                    )
        if not allowed:
            return None, _forbidden_origin(origin.decode("latin-1"))
        return origin, None


def _strings(values: Iterable[str]) -> list[str]:
    out = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise TypeError(f"expected non-empty strings, got {value!r}")
        out.append(value.strip())
    return out

"""Client settings, resolved as the TypeScript client resolves them.

Each setting comes from, in order: the keyword argument; for ``namespace`` and ``token``,
the endpoint's user info (``http://NAMESPACE:TOKEN@host:port``); the environment
(``RIVET_ENGINE`` then ``RIVET_ENDPOINT``, ``RIVET_NAMESPACE``, ``RIVET_TOKEN``,
``RIVET_POOL``); the default (``http://127.0.0.1:6420``, ``default``, no token,
``default``). An endpoint with a query string or a fragment is refused, as there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from rivetkit.client.query import DEFAULT_MAX_INPUT_SIZE
from rivetkit.protocol.trees import ENCODINGS, Encoding

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_METADATA_TIMEOUT",
    "ClientConfig",
    "RetryOptions",
    "check_timeout",
    "parse_endpoint",
    "resolve_config",
]

#: Where the client connects without an endpoint (the port ``rivetkit serve`` uses).
DEFAULT_ENDPOINT: Final = "http://127.0.0.1:6420"
#: How long the metadata lookup retries before failing, in seconds.
DEFAULT_METADATA_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class RetryOptions:
    """Retries of get/get_or_create requests on actor lifecycle errors (spec §3).

    A request answered ``actor/not_found``, ``starting``, ``stopping``, ... is tried again
    every ``interval`` seconds, at most ``get_or_create_attempts`` times in all on a
    get_or_create handle and ``get_attempts`` times on a get handle (the TypeScript client's
    60 and 24 tries, 100 ms apart). Transient gateway errors (``actor/restarting``,
    ``guard/*`` lifecycle codes) are tried ``boundary_attempts`` times on every handle, from
    ``boundary_initial`` doubling up to ``boundary_max`` seconds apart.
    """

    get_or_create_attempts: int = 60
    get_attempts: int = 24
    interval: float = 0.1
    boundary_attempts: int = 5
    boundary_initial: float = 0.025
    boundary_max: float = 0.2


@dataclass(frozen=True)
class ClientConfig:
    """The resolved settings of a :class:`~rivetkit.client.Client`."""

    endpoint: str
    namespace: str
    token: str | None
    encoding: Encoding
    pool: str
    headers: Mapping[str, str] = field(default_factory=dict)
    disable_metadata_lookup: bool = False
    metadata_timeout: float | None = DEFAULT_METADATA_TIMEOUT
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    retry: RetryOptions = field(default_factory=RetryOptions)
    timeout: float | None = None


def check_timeout(timeout: Any, what: str = "timeout") -> float | None:
    """``timeout`` as seconds, or None; TypeError/ValueError unless a positive number."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"{what} must be positive (or None for no limit), not {timeout!r}")
    return float(timeout)


def parse_endpoint(endpoint: str) -> tuple[str, str | None, str | None]:
    """``(endpoint without user info or trailing /, namespace, token)`` from the URL.

    Raises ValueError on a scheme other than http/https, a query string or a fragment.
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"endpoint must be an http:// or https:// URL, got {endpoint!r}")
    if parts.query or endpoint.rstrip().endswith("?"):
        raise ValueError(f"endpoint must not have a query string: {endpoint!r}")
    if parts.fragment or "#" in endpoint:
        raise ValueError(f"endpoint must not have a fragment: {endpoint!r}")
    if not parts.hostname:
        raise ValueError(f"endpoint has no host: {endpoint!r}")
    namespace = unquote(parts.username) if parts.username else None
    token = unquote(parts.password) if parts.password else None
    netloc = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return clean, namespace, token


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def resolve_config(
    endpoint: str | None,
    *,
    encoding: str,
    namespace: str | None,
    token: str | None,
    headers: Mapping[str, str] | None,
    pool: str | None,
    disable_metadata_lookup: bool,
    metadata_timeout: float | None,
    max_input_size: int,
    retry: RetryOptions | None,
    timeout: float | None = None,
) -> ClientConfig:
    """Resolve the settings (see the module docstring); raises ValueError/TypeError early."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
    raw = endpoint or _env("RIVET_ENGINE", "RIVET_ENDPOINT") or DEFAULT_ENDPOINT
    if not isinstance(raw, str):
        raise TypeError(f"endpoint must be a str, not {type(raw).__name__}")
    clean, url_namespace, url_token = parse_endpoint(raw)
    if metadata_timeout is not None and metadata_timeout <= 0:
        raise ValueError("metadata_timeout must be positive (or None to retry forever)")
    if max_input_size < 0:
        raise ValueError("max_input_size must be >= 0")
    header_map = dict(headers or {})
    for name, value in header_map.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers must map str to str")
    return ClientConfig(
        endpoint=clean,
        namespace=namespace or url_namespace or _env("RIVET_NAMESPACE") or "default",
        token=token or url_token or _env("RIVET_TOKEN"),
        encoding=cast(Encoding, encoding),
        pool=pool or _env("RIVET_POOL") or "default",
        headers=header_map,
        disable_metadata_lookup=disable_metadata_lookup,
        metadata_timeout=metadata_timeout,
        max_input_size=max_input_size,
        retry=retry or RetryOptions(),
        timeout=check_timeout(timeout),
    )

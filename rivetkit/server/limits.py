"""The embedded server's limits against slow, greedy or endless clients.

:class:`ServerLimits` holds them (``rivetkit serve`` options, ``serve_in_background(...,
limits=)``); :func:`~rivetkit.server.runner.uvicorn_config` hands them to the protocol
classes of :mod:`rivetkit.server.http_fastpath` and :mod:`rivetkit.server.ws_fastpath`, which
enforce them:

* ``ws_max_buffer``: bytes a WebSocket may have waiting to be sent (in the transport, in the
  frames of this loop iteration, in senders waiting for the socket to drain). A client that
  falls further behind is disconnected with close code 1008 and reason
  ``ws.send_buffer_full`` (see :mod:`rivetkit.server.ws_budget`).
* ``header_timeout``: seconds a request may take to send its request line and headers (from
  the connection's start, or from the first byte of a later request on a kept-alive one);
  then it gets ``408`` and the connection is closed.
* ``max_headers`` and ``max_header_bytes``: more header fields, or a longer request head
  (request line plus headers), get ``431 Request Header Fields Too Large``.
* ``max_connections``: open connections (HTTP and WebSocket) beyond it are answered ``503``
  and closed at once; the default stays well below the open-file limit, so the server can
  always refuse clearly instead of failing to accept.
* ``keep_alive_timeout``: seconds an idle kept-alive HTTP connection stays open.

:func:`raise_open_file_limit` raises the process's soft ``RLIMIT_NOFILE`` to its hard limit
(the server calls it at start and logs the figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEP_ALIVE_TIMEOUT",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_WS_MAX_BUFFER",
    "ServerLimits",
    "add_cli_options",
    "connection_cap",
    "from_cli",
    "open_file_limit",
    "parse_size",
    "raise_open_file_limit",
]

logger = logging.getLogger("rivetkit.server")

#: Default ``ws_max_buffer``: 16 MiB.
DEFAULT_WS_MAX_BUFFER: Final = 16 * 1024 * 1024
#: Default ``header_timeout`` (seconds).
DEFAULT_HEADER_TIMEOUT: Final = 10.0
#: Default ``max_headers``.
DEFAULT_MAX_HEADERS: Final = 100
#: Default ``max_header_bytes``: 64 KiB.
DEFAULT_MAX_HEADER_BYTES: Final = 64 * 1024
#: Default ``keep_alive_timeout`` (seconds), uvicorn's.
DEFAULT_KEEP_ALIVE_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class ServerLimits:
    """Limits of the embedded server; every field has a default (see the module's text).

    ``max_connections=None`` derives the cap from the open-file limit at start
    (:func:`connection_cap`).
    """

    ws_max_buffer: int = DEFAULT_WS_MAX_BUFFER
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_headers: int = DEFAULT_MAX_HEADERS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_connections: int | None = None
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("ws_max_buffer", "max_headers", "max_header_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("header_timeout", "keep_alive_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        cap = self.max_connections
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_connections must be a positive int or None, got {cap!r}")

    def resolved(self) -> ServerLimits:
        """These limits with ``max_connections`` set (derived when None)."""
        if self.max_connections is not None:
            return self
        return dataclasses.replace(self, max_connections=connection_cap(open_file_limit()))


def open_file_limit() -> int | None:
    """The process's soft open-file limit (None where unknown, e.g. Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_cap(files: int | None) -> int:
    """The default connection cap for an open-file limit of ``files``: a quarter of it (at
    least 64) stays free for the data directory, actor databases, logs and the refusals."""
    if files is None:
        return 10_000
    return max(1, files - max(64, files // 4))


def raise_open_file_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (as far as the system allows);
    return the soft limit now in force (None where there is none to raise)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. macOS caps it below RLIM_INFINITY
            logger.debug("raising the open-file limit to %s failed: %s", hard, exc)
    return open_file_limit()


_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``16MiB``, ``64KiB``, ``500kb`` or ``1048576``.

    :raises ValueError: on anything else, or a size under 1 byte
    """
    stripped = text.strip().lower()
    digits = stripped.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = stripped[len(digits) :].strip()
    if unit not in _UNITS or not digits:
        raise ValueError(f"not a size: {text!r} (use e.g. 16MiB, 64KiB or a number of bytes)")
    size = int(float(digits) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"not a positive size: {text!r}")
    return size


def add_cli_options(parser: argparse.ArgumentParser) -> None:
    """Add the limit options of ``rivetkit serve`` to ``parser`` (see :func:`from_cli`)."""

    def size(text: str) -> int:
        try:
            return parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
        return value

    def count(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
        return int(text)

    group = parser.add_argument_group("limits (slow and greedy clients)")
    group.add_argument(
        "--ws-max-buffer",
        type=size,
        default=DEFAULT_WS_MAX_BUFFER,
        metavar="SIZE",
        help="bytes a WebSocket may have waiting to be sent before its client is "
        "disconnected (1008 ws.send_buffer_full) (16MiB)",
    )
    group.add_argument(
        "--header-timeout",
        type=seconds,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="SECONDS",
        help="time to send a request's line and headers, else 408 and close (%(default)g)",
    )
    group.add_argument(
        "--max-headers",
        type=count,
        default=DEFAULT_MAX_HEADERS,
        metavar="N",
        help="header fields per request, else 431 (%(default)s)",
    )
    group.add_argument(
        "--max-header-bytes",
        type=size,
        default=DEFAULT_MAX_HEADER_BYTES,
        metavar="SIZE",
        help="size of a request's line and headers, else 431 (64KiB)",
    )
    group.add_argument(
        "--max-connections",
        type=count,
        default=None,
        metavar="N",
        help="open connections; more are answered 503 and closed (default: the open-file "
        "limit less a quarter, at least 64, kept for files)",
    )
    group.add_argument(
        "--keep-alive-timeout",
        type=seconds,
        default=DEFAULT_KEEP_ALIVE_TIMEOUT,
        metavar="SECONDS",
        help="idle time before a kept-alive HTTP connection is closed (%(default)g)",
    )


def from_cli(args: argparse.Namespace) -> ServerLimits:
    """The :class:`ServerLimits` of options added by :func:`add_cli_options`."""
    return ServerLimits(
        ws_max_buffer=args.ws_max_buffer,
        header_timeout=args.header_timeout,
        max_headers=args.max_headers,
        max_header_bytes=args.max_header_bytes,
        max_connections=args.max_connections,
        keep_alive_timeout=args.keep_alive_timeout,
    )

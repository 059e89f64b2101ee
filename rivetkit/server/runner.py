"""Running a :class:`~rivetkit.server.app.RivetApp` under uvicorn, in the current event loop.

Used by ``rivetkit serve`` and by :func:`rivetkit.server.serve_in_background`. The runtime is
started *before* uvicorn listens (so a locked data directory fails fast, with no socket
open) and stopped *after* uvicorn has closed its connections (so every actor sleeps with its
state flushed); uvicorn's own lifespan handling is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn

from rivetkit.server.app import RivetApp
from rivetkit.server.http_fastpath import http_protocol
from rivetkit.server.http_guard import LIMITS_ATTRIBUTE
from rivetkit.server.limits import ServerLimits, raise_open_file_limit
from rivetkit.server.ws_fastpath import ws_protocol

__all__ = ["Server", "bind_socket", "uvicorn_config"]

logger = logging.getLogger("rivetkit.server")


def uvicorn_config(
    app: RivetApp,
    *,
    graceful_timeout: int = 10,
    limits: ServerLimits | None = None,
    **options: Any,
) -> Any:
    """A uvicorn ``Config`` for ``app``: our protocol classes (see
    :mod:`rivetkit.server.http_fastpath` and :mod:`rivetkit.server.ws_fastpath`; uvicorn's
    own when they do not fit the installed versions); no access log, no proxy headers, no
    ``server`` header, no permessage-deflate; lifespan off; logging left to the caller.
    ``options`` override any of these.

    ``limits`` (default :class:`ServerLimits()`) bound slow and greedy clients; first the
    process's soft open-file limit is raised to its hard limit (logged, with the connection
    cap derived from it when ``limits.max_connections`` is None)."""
    files = raise_open_file_limit()
    limits = (limits or ServerLimits()).resolved()
    logger.info(
        "open-file limit %s; at most %d connections (--max-connections)",
        "unknown" if files is None else files,
        limits.max_connections,
    )
    http = http_protocol()
    settings: dict[str, Any] = {
        "lifespan": "off",
        "http": http,
        "loop": "none",
        "ws": ws_protocol(),
        "ws_per_message_deflate": False,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "log_config": None,
        "timeout_graceful_shutdown": graceful_timeout,
        "timeout_keep_alive": limits.keep_alive_timeout,
    }
    settings.update(options)
    if isinstance(settings["http"], str):  # uvicorn's own protocol: the limits it has
        settings.setdefault("limit_concurrency", limits.max_connections)
        settings.setdefault("h11_max_incomplete_event_size", limits.max_header_bytes)
    config = uvicorn.Config(app, **settings)
    setattr(config, LIMITS_ATTRIBUTE, limits)
    return config


class Server(uvicorn.Server):
    """uvicorn's server, with signal handling of our own.

    ``handle_signals=False`` (tests) leaves signals alone; otherwise SIGINT and SIGTERM ask
    for a graceful stop and a second SIGINT forces it. Unlike uvicorn, the signal is not
    raised again afterwards, so the process can finish its own shutdown and exit 0.
    """

    def __init__(self, config: Any, *, handle_signals: bool = True) -> None:
        super().__init__(config)
        self._handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self._handle_signals:
            yield
            return
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, non-main thread
                continue
            installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    def request_exit(self) -> None:
        """Ask for a graceful stop; the main loop notices at once (not at its next tick)."""
        self.should_exit = True
        exit_event = getattr(self, "_exit_event", None)
        if exit_event is not None:
            exit_event.set()

    async def main_loop(self) -> None:
        # uvicorn's loop, waking on request_exit() instead of only every 0.1 s.
        self._exit_event = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._exit_event.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.request_exit()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to ``(host, port)`` (``port=0``: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without it
    # every response (headers, then body) waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock

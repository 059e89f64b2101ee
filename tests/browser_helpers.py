"""What the browser tests share: Debian's chromium driven by playwright (never a browser
download), skipped without them except in CI, and a tiny HTTP server for a test page."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "IN_CI", "chromium_or_skip", "serve_html"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Headless, and nothing that reaches outside this machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip(what: str = "the browser test") -> None:
    """Skip without Chromium or playwright, except in CI (then fail)."""
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright; never `playwright install`)")
    if missing:
        reason = f"{what} needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(reason + " (CI=true: not skipped)")
        pytest.skip(reason)


@contextlib.asynccontextmanager
async def serve_html(page: str) -> AsyncIterator[int]:
    """A server on 127.0.0.1 answering every GET with ``page``; yields its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = page.encode()
            head = (
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()

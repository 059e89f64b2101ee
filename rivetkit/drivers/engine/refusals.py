"""The engine's refusals: :class:`EngineError` and what a failed or closed envoy connection
means, in words a user can act on (bad token, unknown pool or namespace, unreachable)."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rivetkit.errors import RivetError

__all__ = ["REFUSALS", "EngineError", "close_reason", "connect_error"]


class EngineError(RivetError):
    """The engine refused us or cannot be reached (group ``engine``)."""

    def __init__(self, code: str, message: str, *, metadata: Any = None) -> None:
        super().__init__("engine", code, message, metadata=metadata)


# Close reasons of a refused connection (``group.code#ray_id``) and what they mean.
REFUSALS: Final = {
    "guard.missing_header": "the engine requires a token (use --token / RIVET_TOKEN)",
    "api.forbidden": "the engine refused the token",
    "api.unauthorized": "the engine refused the token",
    "ws.no_runner_config": "the pool is not registered on the engine (no runner config)",
    "namespace.not_found": "the namespace does not exist on the engine",
    "ws.invalid_request": "the engine rejected the connection parameters",
}


def close_reason(exc: ConnectionClosed) -> tuple[int | None, str]:
    """The close code and reason the engine sent, if any."""
    frame = exc.rcvd
    if frame is None:
        return None, ""
    return frame.code, frame.reason


def connect_error(exc: BaseException, url: str) -> EngineError:
    """An :class:`EngineError` for a failed connection to ``url``."""
    where = url.split("?")[0]
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        body = exc.response.body.decode("utf-8", "replace")[:300] if exc.response.body else ""
        return EngineError(
            "refused",
            f"the engine refused the envoy connection with HTTP {status} ({where}): {body}",
            metadata={"status": status},
        )
    if isinstance(exc, InvalidHandshake):
        return EngineError("refused", f"the envoy handshake failed ({where}): {exc}")
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        return EngineError(
            "unreachable", f"cannot connect to the engine at {where}: {exc or type(exc).__name__}"
        )
    return EngineError("unreachable", f"connecting to the engine at {where} failed: {exc!r}")

"""The per-actor inspector token (runtime spec §5).

Each actor has its own bearer token: 32 random bytes in base64url without padding (43
characters), stored as raw UTF-8 at the actor's KV key ``[3]``, where RivetKit's dashboard
also reads it. The runtime stores it at the actor's first start (as RivetKit's CoreInit
does); for an actor that has none yet (stored before that), it is created on first need: the
first inspector request to the actor, or ``rivetkit inspect token ACTOR_ID``
(:func:`token_from_data_dir`, embedded mode), whichever comes first. Once created it never
changes, so it is cached per actor id.

A request proves it knows the token with ``Authorization: Bearer <token>`` (the scheme is
case-insensitive and whitespace separates it from the token) or, on the inspector WebSocket,
the subprotocol ``rivet_inspector_token.<token>``. The comparison is constant-time
(:func:`hmac.compare_digest`). ``_RIVET_TEST_INSPECTOR_TOKEN``, when set and not empty,
replaces every actor's token (tests only; nothing is stored then): it logs a WARNING at its
first use (:func:`warn_test_token`) and must never be set in production.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from rivetkit.errors import RivetError
from rivetkit.runtime import keys

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "SUBPROTOCOL_PREFIX",
    "TOKEN_BYTES",
    "TOKEN_ENV",
    "actor_token",
    "bearer_token",
    "new_token",
    "subprotocol_token",
    "token_from_data_dir",
    "token_matches",
    "unauthorized",
    "warn_test_token",
]

logger = logging.getLogger("rivetkit.inspector")

#: Random bytes in a token.
TOKEN_BYTES: Final = 32
#: Test-only override of every actor's token.
TOKEN_ENV: Final = "_RIVET_TEST_INSPECTOR_TOKEN"
#: WebSocket subprotocol carrying the token.
SUBPROTOCOL_PREFIX: Final = "rivet_inspector_token."

# actor id -> its token (tokens never change once stored; ids are never reused).
_cache: dict[str, str] = {}
_CACHE_LIMIT: Final = 10_000
# Whether the test-only token override was warned about (once per process).
_warned = False
# actor id -> the creation in progress (two first requests must agree on one token).
_creating: dict[str, asyncio.Future[str]] = {}


def unauthorized() -> RivetError:
    """``inspector.unauthorized`` (HTTP 401)."""
    return RivetError(
        "inspector", "unauthorized", "Inspector request requires a valid bearer token"
    )


def new_token() -> str:
    """A fresh token: 32 random bytes, base64url, no padding."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    if not authorization:
        return None
    parts = authorization.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    token = parts[1].strip()
    return token or None


def subprotocol_token(offered: Iterable[str]) -> str | None:
    """The token of a ``rivet_inspector_token.<token>`` subprotocol among ``offered``."""
    for item in offered:
        if item.startswith(SUBPROTOCOL_PREFIX):
            token = item[len(SUBPROTOCOL_PREFIX) :]
            return token or None
    return None


def token_matches(candidate: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the actor's."""
    if not candidate or not expected:
        return False
    return hmac.compare_digest(
        candidate.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _override() -> str | None:
    value = os.environ.get(TOKEN_ENV) or None
    if value is not None:
        warn_test_token()
    return value


def warn_test_token() -> bool:
    """Log a WARNING (once per process) when :data:`TOKEN_ENV` is set; True when it is.

    The override gives every actor the same, known inspector token: it is for tests only
    and must never be set in production. The inspector calls this on first use; a server
    may call it at start.
    """
    if not os.environ.get(TOKEN_ENV):
        return False
    global _warned
    if not _warned:
        _warned = True
        logger.warning(
            "%s is set: every actor's inspector token is replaced by its value. This switch "
            "is for tests only; never set it in production.",
            TOKEN_ENV,
        )
    return True


async def actor_token(instance: ActorInstance) -> str:
    """The actor's token, created and stored at KV ``[3]`` if it has none yet."""
    override = _override()
    if override is not None:
        return override
    actor_id = instance.actor_id
    cached = _cache.get(actor_id)
    if cached is not None:
        return cached
    pending = _creating.get(actor_id)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    _creating[actor_id] = future
    try:
        (stored,) = await instance.kv_get([keys.INSPECTOR_TOKEN])
        if stored is not None:
            token = bytes(stored).decode("utf-8", "replace")
        else:
            token = new_token()
            await instance.kv_write(puts=[(keys.INSPECTOR_TOKEN, token.encode())])
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiters (if any) got it
        raise
    finally:
        _creating.pop(actor_id, None)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[actor_id] = token
    future.set_result(token)
    return token


def token_from_data_dir(data_dir: str | os.PathLike[str], actor_id: str) -> str:
    """The token of ``actor_id`` in an embedded data directory, created if missing.

    Safe while a server runs on the directory: the embedded store's offline access
    (:func:`rivetkit.drivers.embedded.offline.kv_put_if_absent`) only inserts the token when
    absent, in a transaction SQLite orders with the server's writes.

    :raises LookupError: no database in ``data_dir``, or no live actor ``actor_id``
    """
    # Imported here: the inspector does not load a concrete driver unless asked to.
    from rivetkit.drivers.embedded.offline import kv_put_if_absent

    value = kv_put_if_absent(data_dir, actor_id, keys.INSPECTOR_TOKEN, new_token().encode())
    return value.decode("utf-8", "replace")

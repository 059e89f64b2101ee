"""Inspector tokens for new actors, from a pool of operating-system randomness.

Every new actor stores an inspector token at its first start (32 random bytes, URL-safe
base64 without padding: what :func:`secrets.token_urlsafe` returns). ``os.urandom`` releases
the GIL around its system call, so in a process whose SQLite writer thread is busy each call
could wait for the GIL to come back: one ``os.urandom`` call here serves :data:`BATCH`
tokens. The bytes are the same kind (the kernel's CSPRNG, unpredictable and used once); a
forked child drops the pool it inherited, so no token is ever handed out twice.
"""

from __future__ import annotations

import base64
import os
from typing import Final

__all__ = ["BATCH", "TOKEN_BYTES", "inspector_token"]

#: Random bytes per token (as ``secrets.token_urlsafe(32)``).
TOKEN_BYTES: Final = 32
#: Tokens drawn from one ``os.urandom`` call.
BATCH: Final = 64

_pool = bytearray()  # random bytes not handed out yet


def _forget_pool() -> None:
    _pool.clear()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_pool)


def inspector_token() -> bytes:
    """A new inspector token: 43 URL-safe base64 characters (32 random bytes), as bytes."""
    if len(_pool) < TOKEN_BYTES:
        _pool.extend(os.urandom(TOKEN_BYTES * BATCH))
    raw = bytes(_pool[-TOKEN_BYTES:])
    del _pool[-TOKEN_BYTES:]
    return base64.urlsafe_b64encode(raw).rstrip(b"=")

"""Whether the installed uvicorn has what our protocol classes build on.

:mod:`rivetkit.server.http_fastpath` and :mod:`rivetkit.server.ws_fastpath` read and write
fields of uvicorn's own classes; each checks with :func:`sets_fields` that the installed
uvicorn still sets them, and falls back to uvicorn's protocol when it does not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sets_fields"]


def sets_fields(cls: type[Any], fields: frozenset[str]) -> bool:
    """True when ``cls.__init__`` sets every attribute in ``fields``."""
    code = getattr(getattr(cls, "__init__", None), "__code__", None)
    return code is not None and fields <= set(code.co_names)

"""Errors that say how to address an actor, for gateway URLs that name none.

``/gateway/{segment}/...`` without ``rvt-*`` parameters is the direct form: ``segment`` is an
actor id. A user trying ``curl -X POST .../gateway/todos/action/add`` meant the actor *name*
``todos``; the answer (still ``actor/not_found``, 404, as for any unknown id) says so and
shows the query form with an example URL for that name. An unknown name in the query form
(``actor/invalid_request``, 400) lists the registered names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from rivetkit.errors import RivetError

__all__ = ["MAX_LISTED_NAMES", "name_as_id", "unknown_id", "unknown_name"]

#: At most this many registered names are listed in an error.
MAX_LISTED_NAMES: Final = 20

_PARAMETERS: Final = (
    "rvt-method=get|getOrCreate (required), rvt-key=PART,PART (default: empty key), "
    "rvt-namespace, rvt-runner, rvt-input (base64url CBOR, getOrCreate only), rvt-token"
)


def _listed(names: Iterable[str]) -> tuple[list[str], str]:
    """The first :data:`MAX_LISTED_NAMES` names, and them as text (with the total when cut)."""
    every = list(names)
    shown = every[:MAX_LISTED_NAMES]
    text = ", ".join(shown) if shown else "none"
    if len(every) > len(shown):
        text += f", ... ({len(every)} in all)"
    return shown, text


def name_as_id(name: str, method: str, rest: str) -> RivetError:
    """``actor/not_found`` for a registered actor *name* used where an actor id goes."""
    from urllib.parse import quote

    path = rest if rest.startswith("/") else "/" + rest
    example = f"/gateway/{quote(name, safe='')}{path}?rvt-method=getOrCreate&rvt-key=my-key"
    hint = (
        f"{name!r} is an actor name, not an actor id: address an actor by name and key "
        f"with the rvt-* query parameters, e.g. {method} {example} "
        "(rvt-method=get finds an existing actor only)"
    )
    return RivetError(
        "actor",
        "not_found",
        f"actor {name[:100]!r} not found; {hint}",
        metadata={
            "name": name[:100],
            "hint": hint,
            "example": example,
            "parameters": _PARAMETERS,
        },
    )


def unknown_name(name: str, registered: Iterable[str]) -> RivetError:
    """``actor/invalid_request`` for an actor name no actor definition has."""
    shown, text = _listed(registered)
    return RivetError(
        "actor",
        "invalid_request",
        f"no actor named {name[:100]!r} is registered; registered names: {text}",
        metadata={"name": name[:100], "registered": shown},
    )


def unknown_id(actor_id: str, registered: Iterable[str]) -> RivetError:
    """``actor/not_found`` for a direct gateway URL whose segment is neither an actor id nor
    a registered name."""
    shown, text = _listed(registered)
    return RivetError(
        "actor",
        "not_found",
        f"actor {actor_id[:100]!r} not found (no actor has this id, and no actor is "
        f"registered under this name; registered names: {text}); to address an actor by "
        "name use /gateway/NAME/...?rvt-method=getOrCreate&rvt-key=KEY",
        metadata={"id": actor_id[:100], "registered": shown},
    )

"""The attribute guard: ``handle.<name>`` calls action ``<name>``, unless ``<name>`` looks like a
client method.

Handles and connections turn unknown attributes into action calls (``await
handle.increment(5)``), and the client turns them into actor names (``client.counter``). A
name that is a member of another client object (``handle.next_event``, ``conn.get_or_create``,
``handle.disconnect``, ``client.connect``) or a common habit from other libraries
(``dispose``, ``subscribe``, ``emit``) is far more likely a mistake than an action, so it
raises AttributeError saying where that method lives and how to call an action of that name
(``.action("name", ...)``) instead of sending a request that fails later with
``actor/action_not_found``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Final

__all__ = ["ACTION_VERBS", "HABITS", "client_members", "guard_client_method"]

#: Method names from other client libraries that are never taken for actions.
HABITS: Final = frozenset(
    {
        "aclose",
        "close",
        "disconnect",
        "dispose",
        "emit",
        "off",
        "publish",
        "subscribe",
        "unsubscribe",
    }
)


#: Client method names that are also everyday action names (``counter.get()``,
#: ``game.start()``): they stay action calls on handles and connections.
ACTION_VERBS: Final = frozenset({"create", "get", "next", "start"})


#: What the blocking faces say about the async members they lack.
_SYNC_HINTS: Final = {
    "websocket": "ActorHandle.websocket is async only: use rivetkit.client.Client",
    "aclose": "the blocking client and connections close with close()",
}


@functools.cache
def client_members() -> dict[str, tuple[str, ...]]:
    """Public method name -> the client classes that have it (sorted); properties and
    :data:`ACTION_VERBS` are left out."""
    # Imported here: this module is imported by the classes it lists.
    from rivetkit.client.client import ActorAccessor, Client
    from rivetkit.client.connection import ActorConnection
    from rivetkit.client.events import EventStream
    from rivetkit.client.handle import ActorHandle
    from rivetkit.client.sync import (
        SyncActorAccessor,
        SyncActorConnection,
        SyncActorHandle,
        SyncClient,
        SyncEventStream,
    )

    classes: tuple[type, ...] = (
        Client,
        ActorAccessor,
        ActorHandle,
        ActorConnection,
        EventStream,
        SyncClient,
        SyncActorAccessor,
        SyncActorHandle,
        SyncActorConnection,
        SyncEventStream,
    )
    owners: dict[str, list[str]] = {}
    for cls in classes:
        for name in dir(cls):
            if name.startswith("_") or name in ACTION_VERBS:
                continue
            # Methods only: properties (``status``, ``name``, ``error``) are data, and an
            # action of that name is no mistake.
            member = inspect.getattr_static(cls, name)
            if inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod)):
                owners.setdefault(name, []).append(cls.__name__)
    return {name: tuple(sorted(set(where))) for name, where in owners.items()}


def guard_client_method(obj: object, name: str) -> None:
    """Raise AttributeError when ``name`` (missing on ``obj``) looks like a client method.

    Called by the ``__getattr__`` of handles, connections and clients before they turn
    ``name`` into an action call or an actor accessor.
    """
    if name.startswith("_"):
        raise AttributeError(name)
    owners = client_members().get(name)
    if owners is None and name not in HABITS:
        return
    kind = type(obj).__name__
    if kind.startswith("Sync") and name in _SYNC_HINTS:
        where = _SYNC_HINTS[name]
    elif owners:
        where = f"it is a member of {', '.join(owners)}"
    else:
        where = "it is not a client method"
    if kind in ("Client", "SyncClient", "ActorAccessor", "SyncActorAccessor"):
        fix = (
            f'for an actor named {name!r} use client.get_or_create("{name}", key) '
            f"(or get/create/get_for_id)"
        )
    else:
        fix = f'to call an action named {name!r} use .action("{name}", ...)'
    raise AttributeError(f"{kind} has no attribute {name!r} ({where}); {fix}")

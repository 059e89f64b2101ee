"""``GET /metadata`` of a sleeping actor, answered without waking it (embedded mode).

The dashboard polls an actor's ``/metadata`` every second while it shows the actor. The
answer is the same for every actor of the process (:func:`rivetkit.inspector.ui.metadata`),
so the embedded server, which is its own gateway, answers it from the actor's record when the
actor sleeps: the poll neither wakes it nor keeps it awake, and the dashboard (reading
``sleep_ts`` from the manager API) shows it sleeping. Through the engine, the engine's
gateway wakes a sleeping actor for any request before our envoy sees it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import quote

from rivetkit.dispatch.http import Response
from rivetkit.protocol.actor_keys import serialize_key
from rivetkit.runtime.instance import Phase

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher

__all__ = ["metadata_if_asleep"]


async def metadata_if_asleep(dispatcher: Dispatcher, actor_id: str) -> Response | None:
    """The ``/metadata`` answer of ``actor_id`` when it exists and is not running; None when
    it runs (or is unknown, or destroyed): then the caller answers as usual."""
    runtime = dispatcher.runtime
    instance = runtime.instances.get(actor_id)
    if instance is not None and instance.phase == Phase.STARTED:
        return None
    record = await runtime.driver.get_actor(actor_id)
    if record is None or record.destroy_ts is not None:
        return None
    from rivetkit.inspector.ui import metadata

    key = serialize_key(record.key)
    if not (key.isascii() and key.isprintable()):
        key = quote(key, safe="/\\")
    headers = [
        (b"content-type", b"application/json"),
        (b"x-rivet-actor", actor_id.encode("latin-1", "replace")),
        (b"x-rivet-actor-generation", str(record.generation).encode()),
        (b"x-rivet-actor-key", key.encode()),
    ]
    return Response._raw(200, headers, json.dumps(metadata()).encode())

"""An actor's ``GET /metadata``, and how it counts toward the actor's sleep.

The Rivet dashboard reads an actor's ``/metadata`` to pick its inspector; its inline
("legacy") inspector then polls it every second while it shows the actor (its "Auto-wake
actors on select" setting, on by default, lets that poll wake a sleeping actor). The answer is
the same for every actor of the process (:func:`rivetkit.inspector.ui.metadata`) with the
actor's ``x-rivet-actor*`` headers.

* Embedded mode (the server is its own gateway): a sleeping actor's ``/metadata`` is answered
  from its record, without waking it, and a running actor's does not count as activity; so
  the poll neither wakes the actor nor keeps it awake, and the dashboard (reading ``sleep_ts``
  from the manager API) shows it sleeping.
* Engine mode: the engine's gateway wakes a sleeping actor for any request before our envoy
  sees it, so a poll that did not count as activity would make the actor sleep and wake
  again every ``sleep_timeout`` while the dashboard shows it. There the poll counts like any
  HTTP request, as in RivetKit (its core counts every HTTP request): while the inline
  inspector shows an actor, the actor stays awake, as RivetKit's does.
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

__all__ = ["metadata_response"]

_CONTENT_TYPE = (b"content-type", b"application/json")


def _body() -> bytes:
    from rivetkit.inspector.ui import metadata

    return json.dumps(metadata()).encode()


async def metadata_response(dispatcher: Dispatcher, actor_id: str) -> Response:
    """The answer to ``GET /metadata`` of ``actor_id`` (see the module docstring)."""
    if dispatcher.hibernatable_connections:
        asleep = await _asleep(dispatcher, actor_id)
        if asleep is not None:
            return asleep
        instance = await dispatcher._instance(actor_id)
        return Response._raw(200, [_CONTENT_TYPE, *dispatcher.headers_of(instance)], _body())
    instance = await dispatcher._instance(actor_id)
    instance.begin_request()
    try:
        return Response._raw(200, [_CONTENT_TYPE, *dispatcher.headers_of(instance)], _body())
    finally:
        instance.end_request()


async def _asleep(dispatcher: Dispatcher, actor_id: str) -> Response | None:
    """The answer for ``actor_id`` when it exists and is not running, from its record; None
    when it runs (or is unknown, or destroyed: then the usual path answers)."""
    runtime = dispatcher.runtime
    instance = runtime.instances.get(actor_id)
    if instance is not None and instance.phase == Phase.STARTED:
        return None
    record = await runtime.driver.get_actor(actor_id)
    if record is None or record.destroy_ts is not None:
        return None
    key = serialize_key(record.key)
    if not (key.isascii() and key.isprintable()):
        key = quote(key, safe="/\\")
    headers = [
        _CONTENT_TYPE,
        (b"x-rivet-actor", actor_id.encode("latin-1", "replace")),
        (b"x-rivet-actor-generation", str(record.generation).encode()),
        (b"x-rivet-actor-key", key.encode()),
    ]
    return Response._raw(200, headers, _body())

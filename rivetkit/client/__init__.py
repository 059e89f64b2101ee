"""The Python client of RivetKit actors, shaped like the TypeScript client ``rivetkit/client``.

    from rivetkit.client import Client

    async with Client("http://127.0.0.1:6420") as client:
        counter = client.counter.get_or_create(["k"])
        await counter.increment(5)                      # POST /gateway/counter/action/...
        async with counter.connect() as conn:           # WebSocket /connect
            conn.on("newCount", lambda n: print("count is", n))
            await conn.increment(1)

:class:`SyncClient` offers the same API, blocking. It speaks the protocol of
``rivetkit@2.3.19`` byte for byte (URLs, ``rvt-*`` parameters, json/cbor/bare encodings,
the ``/connect`` protocol, reconnects, error parsing), so it talks to ``rivetkit serve`` and
to the Rivet Engine's gateway alike. Modules: ``client`` (Client), ``handle`` (ActorHandle),
``connection`` (ActorConnection and its reconnect loop), ``handshake`` (opening one
``/connect`` socket up to ``Init``), ``events`` (event listeners and EventStream), ``sync``
(SyncClient, made from the async members by ``bridge``), ``errors`` (ActorError and error
parsing), ``urls`` (URL building), ``query`` (targets, keys, inputs), ``http`` (the HTTP
session and metadata lookup), ``config`` (settings), ``backoff`` (retry timing).
"""

from __future__ import annotations

from rivetkit.client.client import ActorAccessor, Client
from rivetkit.client.config import RetryOptions
from rivetkit.client.connection import ActorConnection, ActorEvent, ConnStatus, EventStream
from rivetkit.client.errors import ActorError
from rivetkit.client.handle import ActorHandle, QueueSendResult
from rivetkit.client.sync import (
    SyncActorConnection,
    SyncActorHandle,
    SyncClient,
    SyncEventStream,
)

__all__ = [
    "ActorAccessor",
    "ActorConnection",
    "ActorError",
    "ActorEvent",
    "ActorHandle",
    "Client",
    "ConnStatus",
    "EventStream",
    "QueueSendResult",
    "RetryOptions",
    "SyncActorConnection",
    "SyncActorHandle",
    "SyncClient",
    "SyncEventStream",
]

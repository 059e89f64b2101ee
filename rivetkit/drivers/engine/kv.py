"""The actors' KV on the engine: ``ToRivetKvRequest`` messages through the envoy session.

Requests are split to the engine's limits (128 keys and 976 KiB per put, 128 keys per get)
and lists are paged. A write with puts *and* deletes sends the puts first, then the deletes of
keys not put: the final state is the same as "deletes, then puts", and a crash in between
leaves data behind rather than losing it. Such a write, or a put split in several requests, is
not atomic on the engine (it has no multi-op transaction); a single put request is.

An actor the engine gave up (``Lost``) is *fenced*: its KV is refused here, since another
envoy may run it now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final

from rivetkit.errors import RivetError
from rivetkit.protocol.envoy_protocol import (
    KvDeleteRangeRequest,
    KvDeleteRequest,
    KvGetRequest,
    KvGetResponse,
    KvListAllQuery,
    KvListQuery,
    KvListRangeQuery,
    KvListRequest,
    KvListResponse,
    KvPutRequest,
)

if TYPE_CHECKING:
    from .envoy import EnvoyClient
    from .placement import Placement

__all__ = ["KEY_MAX", "LIST_PAGE", "MAX_KEYS", "MAX_KEY_SIZE", "MAX_PUT_PAYLOAD", "EngineKv"]

#: The engine's KV limits (engine/packages/pegboard/src/actor_kv/mod.rs).
MAX_KEYS: Final = 128
MAX_PUT_PAYLOAD: Final = 976 * 1024
MAX_KEY_SIZE: Final = 2048
#: Entries asked per KV list page.
LIST_PAGE: Final = 1024
#: Greater than every valid key (its tuple length is exactly the 2048-byte key limit).
KEY_MAX: Final = b"\xff" * (MAX_KEY_SIZE - 2)


class EngineKv:
    """The KV calls of the :class:`~rivetkit.drivers.base.Driver`, over the envoy session of
    ``placement`` (which also tells which actors are fenced)."""

    def __init__(self, placement: Placement) -> None:
        self._placement = placement

    def _envoy_for(self, actor_id: str) -> EnvoyClient:
        envoy = self._placement.envoy
        if envoy is None:
            raise RivetError("driver", "not_started", "the driver has not been started")
        actor = self._placement.actors.get(actor_id)
        if actor is not None and actor.fenced:
            raise RivetError(
                "driver",
                "fenced",
                f"actor {actor_id} was given up by the engine; its KV is no longer ours",
            )
        return envoy

    async def get(self, actor_id: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (None where missing)."""
        if not keys:
            return []
        envoy = self._envoy_for(actor_id)
        wanted = list(dict.fromkeys(bytes(k) for k in keys))
        chunks = [wanted[i : i + MAX_KEYS] for i in range(0, len(wanted), MAX_KEYS)]
        responses = await asyncio.gather(
            *(envoy.kv(actor_id, KvGetRequest(chunk)) for chunk in chunks)
        )
        found: dict[bytes, bytes] = {}
        for response in responses:
            if not isinstance(response, KvGetResponse):
                raise _unexpected(response)
            found.update(zip(response.keys, response.values))
        return [found.get(bytes(k)) for k in keys]

    async def write(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]] = (),
        deletes: Sequence[bytes] = (),
    ) -> None:
        """Apply the puts, then the deletes of keys not put (see the module docstring)."""
        if not puts and not deletes:
            return
        envoy = self._envoy_for(actor_id)
        waits: list[Coroutine[Any, Any, Any]] = []
        merged: dict[bytes, bytes] = {}
        for key, value in puts:
            merged[bytes(key)] = bytes(value)
        keys: list[bytes] = []
        values: list[bytes] = []
        size = 0
        for key, value in merged.items():
            entry = len(key) + 2 + len(value)
            if keys and (len(keys) >= MAX_KEYS or size + entry > MAX_PUT_PAYLOAD):
                waits.append(envoy.kv(actor_id, KvPutRequest(keys, values)))
                keys, values, size = [], [], 0
            keys.append(key)
            values.append(value)
            size += entry
        if keys:
            waits.append(envoy.kv(actor_id, KvPutRequest(keys, values)))
        removed = [k for k in dict.fromkeys(bytes(k) for k in deletes) if k not in merged]
        for start in range(0, len(removed), MAX_KEYS):
            waits.append(envoy.kv(actor_id, KvDeleteRequest(removed[start : start + MAX_KEYS])))
        # Sent in order now (the engine applies one actor's requests in order), awaited
        # together; the first failure is raised once all have answered.
        tasks = [asyncio.ensure_future(wait) for wait in waits]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def list(
        self,
        actor_id: str,
        start: bytes,
        end: bytes | None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` (``end=None``: no upper bound), in key order
        (descending with ``reverse``), at most ``limit``."""
        start = bytes(start)
        if end is not None:
            end = bytes(end)
            if start >= end:
                return []
        if limit is not None and limit <= 0:
            return []
        envoy = self._envoy_for(actor_id)
        entries: list[tuple[bytes, bytes]] = []
        lower, upper, exclusive = start, end, True
        while True:
            page = LIST_PAGE if limit is None else min(LIST_PAGE, limit - len(entries))
            query: KvListQuery
            if not lower and upper is None:
                query = KvListAllQuery()
            elif upper is None:
                query = KvListRangeQuery(lower, KEY_MAX, False)
            else:
                query = KvListRangeQuery(lower, upper, exclusive)
            response = await envoy.kv(actor_id, KvListRequest(query, reverse or None, page))
            if not isinstance(response, KvListResponse):
                raise _unexpected(response)
            batch = list(zip(response.keys, response.values))
            entries.extend(batch)
            if len(batch) < page or (limit is not None and len(entries) >= limit):
                return entries
            last = batch[-1][0]
            if reverse:
                upper, exclusive = last, True
            else:
                lower = last + b"\x00"

    async def delete_range(self, actor_id: str, start: bytes, end: bytes | None) -> None:
        """Delete entries with ``start <= key < end`` (``end=None``: no upper bound)."""
        start = bytes(start)
        envoy = self._envoy_for(actor_id)
        if end is None:
            await envoy.kv(actor_id, KvDeleteRangeRequest(start, KEY_MAX))
            await envoy.kv(actor_id, KvDeleteRequest([KEY_MAX]))
            return
        end = bytes(end)
        if start >= end:
            return
        await envoy.kv(actor_id, KvDeleteRangeRequest(start, end))


def _unexpected(response: object) -> RivetError:
    return RivetError(
        "kv", "engine_error", f"unexpected KV response from the engine: {type(response).__name__}"
    )

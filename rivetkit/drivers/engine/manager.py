"""The manager-side calls on the engine: create, look up, list and destroy actors.

They go through the engine's HTTP API (:class:`~.api.EngineApi`); the actors placed on this
envoy answer from their local record, and a destroy waits for the local teardown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rivetkit.drivers.base import ActorRecord
from rivetkit.errors import RivetError
from rivetkit.protocol.actor_keys import check_name_key

if TYPE_CHECKING:
    from .api import EngineApi
    from .placement import Placement

__all__ = ["EngineManager"]


class EngineManager:
    """The actors table of the :class:`~rivetkit.drivers.base.Driver`, kept by the engine.

    :param api: the engine's HTTP API
    :param placement: the actors placed on this envoy
    :param pool: the pool new actors are created in
    """

    def __init__(self, api: EngineApi, placement: Placement, pool: str) -> None:
        self._api = api
        self._placement = placement
        self._pool = pool

    async def get_or_create_actor(
        self, name: str, key: Sequence[str], input: bytes | None
    ) -> tuple[ActorRecord, bool]:
        """The live actor with ``(name, key)``, created when missing (``PUT /actors``)."""
        segments = check_name_key(name, key)
        return await self._api.get_or_create_actor(name, segments, input, self._pool)

    async def create_actor(self, name: str, key: Sequence[str], input: bytes | None) -> ActorRecord:
        """Create an actor (``POST /actors``); ``actor/duplicate_key`` if taken."""
        segments = check_name_key(name, key)
        return await self._api.create_actor(name, segments, input, self._pool)

    async def get_actor(self, actor_id: str) -> ActorRecord | None:
        """The actor with this id (destroyed ones included), or None."""
        local = self._placement.actors.get(actor_id)
        if local is not None:
            return local.record
        try:
            records = await self._api.get_actors([actor_id])
        except RivetError as exc:
            if exc.code in ("not_found", "invalid_input", "bad_request", "invalid_id"):
                return None
            raise
        return records[0] if records else None

    async def find_actor(self, name: str, key: Sequence[str]) -> ActorRecord | None:
        """The live actor with ``(name, key)``, or None."""
        segments = check_name_key(name, key)
        for record in await self._api.list_actors(name, segments):
            if record.destroy_ts is None:
                return record
        return None

    async def list_actors(self, name: str | None = None) -> list[ActorRecord]:
        """Live actors, optionally of one name, oldest first."""
        names = [name] if name is not None else await self._api.actor_names()
        records: list[ActorRecord] = []
        for one in names:
            records.extend(r for r in await self._api.list_actors(one) if r.destroy_ts is None)
        records.sort(key=lambda r: r.create_ts)
        return records

    async def destroy_actor(self, actor_id: str) -> None:
        """Destroy an actor (``DELETE /actors/{id}``) and wait until the engine shows it
        destroyed. RivetError ``actor/not_found`` for an unknown or destroyed actor."""
        actors = self._placement.actors
        record = await self.get_actor(actor_id)
        if record is None or (record.destroy_ts is not None and actor_id not in actors):
            raise RivetError("actor", "not_found", f"no actor {actor_id[:100]!r}")
        await self._api.destroy_actor(actor_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = await self._api.get_actors([actor_id])
            if not records or records[0].destroy_ts is not None:
                local = actors.get(actor_id)
                if local is not None:
                    await asyncio.shield(local.done)
                return
            await asyncio.sleep(0.05)
        raise RivetError("driver", "timeout", f"actor {actor_id} was not destroyed within 60 s")

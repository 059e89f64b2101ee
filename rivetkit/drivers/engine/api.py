"""The Rivet Engine's HTTP API (``spec/engine.md`` A), as much of it as an envoy needs.

Every call carries ``?namespace=`` and, with a token, ``Authorization: Bearer``. Errors come
back from the engine as JSON ``{group, code, message, metadata}`` and are raised as
:class:`~rivetkit.errors.RivetError` with the same group and code; a transport failure is
``engine/unreachable``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from rivetkit.drivers.base import ActorRecord
from rivetkit.errors import RivetError
from rivetkit.protocol.actor_keys import deserialize_key, serialize_key

__all__ = ["EngineApi", "actor_record"]

logger = logging.getLogger("rivetkit.engine")

#: Page size of actor listings.
_PAGE = 100


def actor_record(data: Mapping[str, Any]) -> ActorRecord:
    """An :class:`ActorRecord` from the engine's actor JSON (no input, generation 0: the
    engine's API shows neither)."""
    key = data.get("key")
    return ActorRecord(
        actor_id=str(data["actor_id"]),
        name=str(data["name"]),
        key=deserialize_key(key) if isinstance(key, str) else [],
        input=None,
        create_ts=int(data.get("create_ts") or 0),
        destroy_ts=int(data["destroy_ts"]) if data.get("destroy_ts") is not None else None,
        generation=0,
    )


class EngineApi:
    """An async client of the engine's HTTP API for one namespace.

    :param endpoint: the engine's URL (``http://127.0.0.1:6420``)
    :param namespace: the namespace name
    :param token: the admin token (``auth.admin_token``), or None
    :param timeout: seconds per request
    """

    def __init__(
        self,
        endpoint: str,
        *,
        namespace: str = "default",
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.namespace = namespace
        self.token = token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=self.endpoint, headers=headers, timeout=timeout, trust_env=False
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        namespaced: bool = True,
    ) -> Any:
        """One API call; the decoded JSON answer. RivetError on an error answer."""
        query = dict(params or {})
        if namespaced:
            query.setdefault("namespace", self.namespace)
        try:
            response = await self._client.request(
                method, path, params=query, json=body if body is not None else None
            )
        except httpx.HTTPError as exc:
            raise RivetError(
                "engine",
                "unreachable",
                f"the engine at {self.endpoint} did not answer {method} {path}: {exc!r}",
            ) from exc
        return _decode(response, method, path)

    # -- health ----------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``GET /health`` (``{"runtime": "engine", "status": "ok", "version"}``)."""
        result = await self.request("GET", "/health", namespaced=False)
        return result if isinstance(result, dict) else {}

    # -- namespaces and pools --------------------------------------------------------------

    async def namespace_exists(self) -> bool:
        """Whether this client's namespace exists."""
        result = await self.request(
            "GET", "/namespaces", params={"name": self.namespace}, namespaced=False
        )
        items = result.get("namespaces", []) if isinstance(result, dict) else []
        return any(isinstance(ns, dict) and ns.get("name") == self.namespace for ns in items)

    async def create_namespace(self) -> None:
        """Create this client's namespace."""
        await self.request(
            "POST",
            "/namespaces",
            body={"name": self.namespace, "display_name": self.namespace},
            namespaced=False,
        )

    async def runner_configs(self) -> dict[str, Any]:
        """The pools (runner configs) of the namespace, by name."""
        result = await self.request("GET", "/runner-configs")
        if isinstance(result, dict):
            configs = result.get("runner_configs", result)
            if isinstance(configs, dict):
                return configs
        return {}

    async def ensure_pool(self, pool: str, datacenter: str = "default") -> bool:
        """Register ``pool`` as a normal (non-serverless) runner config unless it exists;
        True when it was created."""
        if pool in await self.runner_configs():
            return False
        await self.request(
            "PUT",
            f"/runner-configs/{quote(pool, safe='')}",
            body={"datacenters": {datacenter: {"normal": {}}}},
        )
        return True

    async def envoys(self) -> list[dict[str, Any]]:
        """``GET /envoys``: the envoys the namespace knows (first page)."""
        result = await self.request("GET", "/envoys")
        items = result.get("envoys", []) if isinstance(result, dict) else []
        return [item for item in items if isinstance(item, dict)]

    # -- actors ----------------------------------------------------------------------------

    def _create_body(
        self, name: str, key: Sequence[str], input: bytes | None, pool: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "key": serialize_key(key),
            "runner_name_selector": pool,
            "crash_policy": "sleep",
        }
        if input is not None:
            body["input"] = base64.b64encode(input).decode("ascii")
        return body

    async def get_or_create_actor(
        self, name: str, key: Sequence[str], input: bytes | None, pool: str
    ) -> tuple[ActorRecord, bool]:
        """``PUT /actors``: ``(record, created)``."""
        result = await self.request(
            "PUT", "/actors", body=self._create_body(name, key, input, pool)
        )
        return actor_record(result["actor"]), bool(result.get("created", False))

    async def create_actor(
        self, name: str, key: Sequence[str], input: bytes | None, pool: str
    ) -> ActorRecord:
        """``POST /actors``."""
        result = await self.request(
            "POST", "/actors", body=self._create_body(name, key, input, pool)
        )
        return actor_record(result["actor"])

    async def get_actors(self, actor_ids: Sequence[str]) -> list[ActorRecord]:
        """``GET /actors?actor_ids=``: the actors found (destroyed ones included)."""
        if not actor_ids:
            return []
        result = await self.request("GET", "/actors", params={"actor_ids": ",".join(actor_ids)})
        return [actor_record(item) for item in result.get("actors", [])]

    async def list_actors(self, name: str, key: Sequence[str] | None = None) -> list[ActorRecord]:
        """``GET /actors?name=[&key=]``, every page."""
        params: dict[str, str] = {"name": name, "limit": str(_PAGE)}
        if key is not None:
            params["key"] = serialize_key(key)
        records: list[ActorRecord] = []
        seen: set[str] = set()
        while True:
            result = await self.request("GET", "/actors", params=params)
            items = result.get("actors", [])
            for item in items:
                record = actor_record(item)
                if record.actor_id not in seen:
                    seen.add(record.actor_id)
                    records.append(record)
            cursor = (result.get("pagination") or {}).get("cursor")
            if len(items) < _PAGE or not cursor or params.get("cursor") == cursor:
                return records
            params["cursor"] = str(cursor)

    async def actor_names(self) -> list[str]:
        """``GET /actors/names``: the actor names the namespace knows."""
        result = await self.request("GET", "/actors/names")
        names = result.get("names", {}) if isinstance(result, dict) else {}
        return list(names) if isinstance(names, (dict, list)) else []

    async def destroy_actor(self, actor_id: str) -> None:
        """``DELETE /actors/{id}`` (returns before the actor is gone)."""
        await self.request("DELETE", f"/actors/{quote(actor_id, safe='')}")

    async def sleep_actor(self, actor_id: str) -> None:
        """``POST /actors/{id}/sleep``."""
        await self.request("POST", f"/actors/{quote(actor_id, safe='')}/sleep", body={})

    async def wake_actor(self, actor_id: str) -> None:
        """Wake an actor by sending it a request through the gateway (``GET /health`` of the
        actor); returns once the engine has started it somewhere and it answered."""
        path = f"/gateway/{quote(actor_id, safe='')}/health"
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise RivetError(
                "engine", "unreachable", f"waking actor {actor_id} failed: {exc!r}"
            ) from exc
        _decode(response, "GET", path)


def _decode(response: httpx.Response, method: str, path: str) -> Any:
    text = response.content
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if response.is_success:
        return data if data is not None else {}
    if isinstance(data, dict) and "group" in data and "code" in data:
        raise RivetError(
            str(data["group"]),
            str(data["code"]),
            str(data.get("message") or f"{method} {path} failed"),
            metadata=data.get("metadata"),
        )
    raise RivetError(
        "engine",
        "http_error",
        f"{method} {path} answered {response.status_code}: {text[:200]!r}",
        metadata={"status": response.status_code},
    )

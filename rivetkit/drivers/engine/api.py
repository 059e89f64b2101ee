"""The Rivet Engine's HTTP API (``spec/engine.md`` A), as much of it as an envoy needs.

Every call carries ``?namespace=`` and, with a token, ``Authorization: Bearer``. Errors come
back from the engine as JSON ``{group, code, message, metadata}`` and are raised as
:class:`~rivetkit.errors.RivetError` with the same group and code; a transport failure is
``engine/unreachable``.

With several engine nodes (:class:`~.endpoints.Endpoints`), a request that could not be sent
(connection refused, connect timeout) is sent again to the next node; one that may have
reached a node is sent again only when it is idempotent (``GET``, ``PUT``, ``DELETE``). Each
node is tried at most once per request.
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

from .endpoints import Endpoints

__all__ = ["EngineApi", "actor_record"]

logger = logging.getLogger("rivetkit.engine")

#: Page size of actor listings.
_PAGE = 100
#: Methods sent again to another node after an error past the connect (idempotent ones).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Connect timeout (seconds) with several nodes, so a dead machine does not hold a request
#: for the whole request timeout before the next node is tried.
_FAILOVER_CONNECT_TIMEOUT = 10.0


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

    :param endpoint: the engine's URL (``http://127.0.0.1:6420``), or several (a sequence,
        a comma-separated string, or the :class:`~.endpoints.Endpoints` shared with the envoy)
    :param namespace: the namespace name
    :param token: the admin token (``auth.admin_token``), or None
    :param timeout: seconds per request
    """

    def __init__(
        self,
        endpoint: str | Sequence[str] | Endpoints,
        *,
        namespace: str = "default",
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoints = endpoint if isinstance(endpoint, Endpoints) else Endpoints(endpoint)
        self.namespace = namespace
        self.token = token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        timeouts = httpx.Timeout(timeout)
        if len(self.endpoints) > 1:
            timeouts = httpx.Timeout(timeout, connect=min(timeout, _FAILOVER_CONNECT_TIMEOUT))
        self._client = httpx.AsyncClient(headers=headers, timeout=timeouts, trust_env=False)

    @property
    def endpoint(self) -> str:
        """The engine URL in use."""
        return self.endpoints.current

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
        response = await self._send(
            method, path, params=query, json=body if body is not None else None
        )
        return _decode(response, method, path)

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        """Send to the node in use, then to the next ones as far as it is safe (see the
        module docstring); ``engine/unreachable`` naming every node tried when none answers."""
        endpoints = self.endpoints
        failures: list[tuple[str, httpx.HTTPError]] = []
        for remaining in range(len(endpoints) - 1, -1, -1):
            base = endpoints.current
            try:
                return await self._client.request(method, base + path, **options)
            except httpx.HTTPError as exc:
                failures.append((base, exc))
                not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if len(endpoints) == 1 or not (not_sent or method.upper() in _IDEMPOTENT):
                    break
                following = endpoints.advance(base)
                if remaining:
                    logger.warning(
                        "engine at %s did not answer %s %s (%r); trying %s",
                        base,
                        method,
                        path,
                        exc,
                        following,
                    )
        if len(endpoints) == 1:
            message = f"the engine at {endpoints.current} did not answer {method} {path}: "
            raise RivetError("engine", "unreachable", message + repr(failures[0][1]))
        message = f"no engine node answered {method} {path} (nodes {endpoints.describe()}): "
        raise RivetError(
            "engine",
            "unreachable",
            message + "; ".join(f"{base}: {exc!r}" for base, exc in failures),
            metadata={"endpoints": list(endpoints)},
        )

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
            response = await self._send("GET", path)
        except RivetError as exc:
            raise RivetError(
                "engine", "unreachable", f"waking actor {actor_id} failed: {exc.message}"
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

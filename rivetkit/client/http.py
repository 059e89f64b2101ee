"""The HTTP side of the client: one keep-alive ``httpx.AsyncClient``, the metadata lookup,
the manager API and gateway requests.

Metadata lookup: before its first request, the client calls
``GET {endpoint}/metadata?namespace=<ns>`` once (unless ``disable_metadata_lookup``), like
the TypeScript client. Its ``clientEndpoint``, ``clientNamespace`` and ``clientToken``, when
present, replace the endpoint, namespace and token for every later call. It is retried with
backoff (500 ms doubling up to 15 s) on network errors and on answers that are not a JSON
object; unlike the TypeScript client, which retries forever, it gives up after
``metadata_timeout`` seconds (30 by default; None retries forever) with
``client.metadata_lookup_failed``, and also at once on a 4xx answer carrying a RivetError
(e.g. ``auth/forbidden``: retrying cannot fix it). A failed lookup is tried afresh by the next
call. All calls waiting for the lookup share one attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
from websockets.asyncio.client import connect as websockets_connect

from rivetkit._version import __version__
from rivetkit.client.backoff import METADATA_BACKOFF, Backoff, Clock, Deadline
from rivetkit.client.config import ClientConfig, parse_endpoint
from rivetkit.client.errors import CLIENT_GROUP, ActorError, parse_http_error
from rivetkit.client.query import ActorQuery
from rivetkit.client.urls import gateway_url, manager_url

__all__ = ["USER_AGENT", "HttpSession", "Sleep", "WsConnect"]

log = logging.getLogger("rivetkit.client")

#: The User-Agent of every HTTP request.
USER_AGENT = f"RivetKit-Python/{__version__}"
#: httpcore's message when the server closed the connection before any byte of the response.
_NO_RESPONSE = "without sending a response"

#: An ``asyncio.sleep``-like coroutine function (injectable for tests).
Sleep = Callable[[float], Awaitable[None]]
#: ``websockets.asyncio.client.connect`` or a replacement taking the same arguments and
#: returning an object with the ``ClientConnection`` members the client uses (``send``,
#: ``recv``, ``close``, ``async for``, ``protocol.close_exc``, ``subprotocol``).
WsConnect = Callable[..., Awaitable[Any]]


class HttpSession:
    """HTTP state shared by a client's handles: settings, the httpx client, metadata.

    ``transport`` replaces httpx's network transport (tests use ``httpx.MockTransport``);
    ``ws_connect`` replaces ``websockets.asyncio.client.connect`` for the client's sockets
    (same call, same keyword arguments; the in-process client of :mod:`rivetkit.testing`);
    ``sleep`` and ``clock`` replace ``asyncio.sleep`` and ``time.monotonic`` in retry loops.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        ws_connect: WsConnect | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.endpoint = config.endpoint
        self.namespace = config.namespace
        self.token = config.token
        self.sleep = sleep
        self.clock = clock
        #: Opens a WebSocket: ``websockets.asyncio.client.connect`` unless replaced.
        self.ws_connect: WsConnect = ws_connect or websockets_connect
        self.metadata: dict[str, Any] | None = None
        self._metadata_task: asyncio.Task[dict[str, Any]] | None = None
        self._closed = False
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(None, connect=30.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=128),
            # Like the TypeScript client (Node's fetch), proxies from the environment and
            # .netrc are not used.
            trust_env=False,
            follow_redirects=False,
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Close the keep-alive connections; later requests raise ``client.client_closed``."""
        if self._closed:
            return
        self._closed = True
        task = self._metadata_task
        if task is not None and not task.done():
            task.cancel()
        await self._http.aclose()

    def check_open(self) -> None:
        """Raise ``client.client_closed`` once closed."""
        if self._closed:
            raise ActorError.client("client_closed", "the client is closed")

    # MARK: headers

    def base_headers(self) -> dict[str, str]:
        """The configured headers and the User-Agent (sent on every HTTP request)."""
        headers = {"user-agent": USER_AGENT}
        headers.update(self.config.headers)
        return headers

    # MARK: metadata

    async def ensure_metadata(self) -> None:
        """Wait for the metadata lookup (starting it if needed); see the module docstring."""
        if self.config.disable_metadata_lookup or self.metadata is not None:
            return
        self.check_open()
        task = self._metadata_task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(self._lookup_metadata())
            self._metadata_task = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The lookup was cancelled by aclose(): the caller gets client_closed, unless the
            # caller itself is being cancelled too (then its cancellation must go on, or a
            # retry loop catching Exception would swallow it and the task never ends).
            if task.cancelled() and self._closed and not _being_cancelled():
                raise ActorError.client("client_closed", "the client is closed") from None
            raise

    async def _lookup_metadata(self) -> dict[str, Any]:
        backoff = Backoff(*METADATA_BACKOFF)
        started = self.clock()
        deadline = Deadline(self.config.metadata_timeout, clock=self.clock)
        url = manager_url(self.endpoint, "/metadata", namespace=self.namespace)
        attempts = 0
        while True:
            attempts += 1
            try:
                metadata = await self._fetch_metadata(url)
            except ActorError as exc:
                if exc.group != CLIENT_GROUP and exc.status is not None and exc.status < 500:
                    raise
                error: ActorError = exc
            else:
                self._apply_metadata(metadata)
                self.metadata = metadata
                return metadata
            meta = error.metadata
            cause = meta["cause"] if isinstance(meta, dict) and "cause" in meta else error.message
            delay = backoff.next_delay()
            if not deadline.allows(delay):
                elapsed = self.clock() - started
                raise ActorError.client(
                    "metadata_lookup_failed",
                    f"cannot reach the server at {self.endpoint}: the metadata lookup "
                    f"(GET {url}) failed {attempts} time{'s' if attempts > 1 else ''} over "
                    f"{elapsed:.1f} s; last error: {cause}. Is the server running "
                    "there (rivetkit serve listens on http://127.0.0.1:6420 by default)? "
                    "Set the endpoint with Client(endpoint) or RIVET_ENDPOINT; "
                    "metadata_timeout bounds this wait.",
                    metadata={
                        "endpoint": self.endpoint,
                        "operation": "metadata lookup",
                        "attempts": attempts,
                        "elapsed": round(elapsed, 3),
                    },
                ) from error
            log.warning(
                "%s: metadata lookup attempt %d failed (%s); retrying in %.2f s",
                self.endpoint,
                attempts,
                cause,
                delay,
            )
            await self.sleep(delay)

    async def _fetch_metadata(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers=self._manager_headers(None))
        except httpx.HTTPError as exc:
            raise self.network_error("GET", url, exc, "metadata lookup") from exc
        if not response.is_success:
            raise self._error_of(response, "json")
        try:
            metadata = json.loads(response.content)
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            raise ActorError.client("invalid_response", f"GET {url} did not answer a JSON object")
        return metadata

    def _apply_metadata(self, metadata: Mapping[str, Any]) -> None:
        endpoint = metadata.get("clientEndpoint")
        if isinstance(endpoint, str) and endpoint:
            clean, url_ns, url_token = parse_endpoint(endpoint)
            self.endpoint = clean
            if url_ns:
                self.namespace = url_ns
            if url_token:
                self.token = url_token
        namespace = metadata.get("clientNamespace")
        if isinstance(namespace, str) and namespace:
            self.namespace = namespace
        token = metadata.get("clientToken")
        if isinstance(token, str) and token:
            self.token = token

    # MARK: requests

    def _error_of(self, response: httpx.Response, encoding: str) -> ActorError:
        return parse_http_error(
            response.status_code,
            response.reason_phrase,
            response.headers,
            response.content,
            encoding,
        )

    def _manager_headers(self, content_type: str | None) -> dict[str, str]:
        headers = self.base_headers()
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        if content_type is not None:
            headers["content-type"] = content_type
        return headers

    async def manager(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Any = None,
    ) -> Any:
        """Call the manager API (JSON in and out); non-2xx raises the parsed ActorError."""
        await self.ensure_metadata()
        self.check_open()
        url = manager_url(self.endpoint, path, namespace=self.namespace, params=params)
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = self._manager_headers(None if body is None else "application/json")
        try:
            response = await self._http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise self.network_error(method, url, exc, "manager API request") from exc
        if not response.is_success:
            raise self._error_of(response, "json")
        try:
            return json.loads(response.content) if response.content else None
        except ValueError:
            raise ActorError.client(
                "invalid_response", f"{method} {url} answered invalid JSON"
            ) from None

    def gateway_url(self, query: ActorQuery, path: str) -> str:
        """The gateway URL of ``path`` on the target (current endpoint, namespace, token)."""
        return gateway_url(
            self.endpoint,
            query,
            path,
            namespace=self.namespace,
            pool=self.config.pool,
            token=self.token,
        )

    async def gateway(
        self,
        method: str,
        query: ActorQuery,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request to an actor-level route through the gateway; returns the response.

        Adds the configured headers, ``x-rivet-token`` and the User-Agent. Network failures
        raise ``client.http_request_error``; HTTP errors are left to the caller.
        """
        await self.ensure_metadata()
        self.check_open()
        url = self.gateway_url(query, path)
        all_headers = self.base_headers()
        if headers:
            all_headers.update(headers)
        if self.token is not None:
            all_headers["x-rivet-token"] = self.token
        for attempt in (1, 2):
            try:
                return await self._http.request(method, url, content=content, headers=all_headers)
            except httpx.RemoteProtocolError as exc:
                # A kept-alive connection closed by the server just as we reused it: no byte
                # of an answer came back, so the server never took the request. Sent once
                # more on a new connection (a server that died would refuse that one).
                if attempt == 1 and _NO_RESPONSE in str(exc):
                    continue
                raise self.network_error(method, url, exc, "gateway request", attempt) from exc
            except httpx.HTTPError as exc:
                raise self.network_error(method, url, exc, "gateway request", attempt) from exc
        raise AssertionError("unreachable")

    def network_error(
        self, method: str, url: str, exc: BaseException, operation: str, attempts: int = 1
    ) -> ActorError:
        """``client.http_request_error`` for a request that got no answer: names the
        endpoint, the request, the number of attempts and the cause."""
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return ActorError.client(
            "http_request_error",
            f"cannot reach the server at {self.endpoint}: {method} {url} failed "
            f"({cause}; {attempts} attempt{'s' if attempts > 1 else ''})",
            metadata={
                "endpoint": self.endpoint,
                "operation": operation,
                "method": method,
                "url": url,
                "attempts": attempts,
                "cause": cause,
            },
        )

    def error_of(self, response: httpx.Response, encoding: str) -> ActorError:
        """The ActorError of a non-2xx gateway response (spec §3)."""
        return self._error_of(response, encoding)


def _being_cancelled() -> bool:
    """True when the current task was asked to cancel (always False before Python 3.11)."""
    current = asyncio.current_task()
    cancelling = getattr(current, "cancelling", None)
    return bool(cancelling is not None and cancelling())

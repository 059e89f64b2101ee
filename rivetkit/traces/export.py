"""Sending spans elsewhere as they are written: exporter hooks, and one for OTLP/HTTP.

An exporter is a callable given the OTLP JSON (``ExportTraceServiceRequest``) of the spans
that ended in a chunk the writer just stored: each span once, whole (its start too), with
the actor's resource attributes. It runs in the writer's background task, never on an
action's path; it may be a coroutine function; what it raises is logged and dropped. With
no exporter added, nothing of this runs.

:func:`otlp_http_exporter` makes one that POSTs to an OpenTelemetry collector's OTLP/HTTP
receiver (``{endpoint}/v1/traces``, JSON)::

    from rivetkit.traces.export import add_exporter, otlp_http_exporter

    add_exporter(otlp_http_exporter("http://127.0.0.1:4318"))
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from rivetkit.traces.otlp import to_otlp
from rivetkit.traces.schema import ReadRangeWire
from rivetkit.traces.wire import MAX_READ_LIMIT, build_chunk

if TYPE_CHECKING:
    from rivetkit.traces.recorder import ActorTraces, Sealed

__all__ = ["Exporter", "add_exporter", "export_sealed", "exporting", "otlp_http_exporter"]

logger = logging.getLogger("rivetkit.traces")

#: Given the OTLP JSON of some spans; may return an awaitable.
Exporter = Callable[[dict[str, Any]], Awaitable[None] | None]
_exporters: list[Exporter] = []
_END_MS: Final = 1 << 62


def add_exporter(exporter: Exporter) -> Callable[[], None]:
    """Send the spans of every actor of this process to ``exporter`` from now on; returns a
    function that removes it again."""
    if not callable(exporter):
        raise TypeError(f"an exporter must be callable, got {type(exporter).__name__}")
    _exporters.append(exporter)

    def remove() -> None:
        if exporter in _exporters:
            _exporters.remove(exporter)

    return remove


def exporting() -> bool:
    """True when an exporter is set."""
    return bool(_exporters)


async def export_sealed(traces: ActorTraces, sealed: Sealed) -> None:
    """Give the spans that ended in ``sealed`` to every exporter."""
    chunk = build_chunk(traces, sealed, whole=True)
    if not chunk.records:
        return
    wire = ReadRangeWire(0, _END_MS, MAX_READ_LIMIT, False, [], [chunk])
    otlp, _ = to_otlp(wire, traces.resource)
    for exporter in list(_exporters):
        try:
            result = exporter(otlp)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            logger.warning("a trace exporter failed: %s: %s", type(exc).__name__, exc)


def otlp_http_exporter(
    endpoint: str, *, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> Exporter:
    """An exporter that POSTs the spans, as OTLP JSON, to ``{endpoint}/v1/traces`` (an
    OpenTelemetry collector's OTLP/HTTP receiver; ``headers`` are added, e.g. an API key).
    A failed POST (an error status or no answer within ``timeout`` seconds) is logged."""
    import httpx

    url = endpoint.rstrip("/") + "/v1/traces"
    sent_headers = {"content-type": "application/json", **(headers or {})}

    async def export(otlp: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(url, json=otlp, headers=sent_headers)
        if response.status_code >= 300:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")

    return export

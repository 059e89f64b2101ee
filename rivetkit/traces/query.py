"""The inspector's trace query, over HTTP (OTLP JSON) and the WebSocket (``ReadRangeWire``).

``GET /inspector/traces?startMs=&endMs=&limit=`` answers ``{"otlp": <OTLP JSON export>,
"clamped": bool}``: spans with a record in ``startMs <= t < endMs`` (epoch milliseconds;
defaults 0 and now + 1 ms), at most ``limit`` of them (default 1000, capped at 10000;
``clamped`` tells that some were left out). An inspector WebSocket ``TraceQueryRequest``
gets the same records as vbare ``ReadRangeWire`` bytes, which the dashboard decodes with
``@rivetkit/traces``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from rivetkit.errors import RivetError
from rivetkit.traces.otlp import empty_export, to_otlp
from rivetkit.traces.schema import READ_RANGE, ReadRangeWire
from rivetkit.traces.wire import read_range_wire

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["DEFAULT_QUERY_LIMIT", "http_query", "query_json", "query_wire"]

#: ``limit`` of an HTTP trace query without one.
DEFAULT_QUERY_LIMIT: Final = 1000
_U64_MAX: Final = (1 << 64) - 1


async def query_wire(instance: ActorInstance, start_ms: int, end_ms: int, limit: int) -> bytes:
    """A trace query's answer as the inspector WebSocket sends it: vbare ``ReadRangeWire``."""
    traces = getattr(instance, "traces", None)
    if traces is None:
        return READ_RANGE.encode(ReadRangeWire(start_ms, end_ms, 0, False, [], []))
    return READ_RANGE.encode(await read_range_wire(traces, start_ms, end_ms, limit))


async def query_json(
    instance: ActorInstance, start_ms: int | None, end_ms: int | None, limit: int | None
) -> dict[str, Any]:
    """A trace query's answer over HTTP: ``{"otlp": <OTLP JSON>, "clamped": bool}``.

    ``start_ms`` defaults to 0, ``end_ms`` to now (+1 ms, so what just happened is in),
    ``limit`` to 1000 spans.
    """
    traces = getattr(instance, "traces", None)
    if traces is None:
        return {"otlp": empty_export(), "clamped": False}
    start = 0 if start_ms is None else start_ms
    end = traces.clock_ns() // 1_000_000 + 1 if end_ms is None else end_ms
    wire = await read_range_wire(
        traces, start, end, DEFAULT_QUERY_LIMIT if limit is None else limit
    )
    otlp, clamped = to_otlp(wire, traces.resource)
    return {"otlp": otlp, "clamped": clamped}


def _param(query: Mapping[str, Sequence[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    text = values[0].strip()
    if not text.isdigit() or len(text) > 20 or int(text) > _U64_MAX:
        raise RivetError(
            "actor", "invalid_request", f"Invalid query parameter `{name}`: {text[:40]!r}"
        )
    return int(text)


async def http_query(instance: ActorInstance, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """``GET /inspector/traces``: :func:`query_json` of the ``startMs``, ``endMs`` and
    ``limit`` query parameters (non-negative integers; else ``actor.invalid_request``)."""
    return await query_json(
        instance, _param(query, "startMs"), _param(query, "endMs"), _param(query, "limit")
    )

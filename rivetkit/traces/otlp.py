"""A trace query's records as OTLP v1 JSON (``ExportTraceServiceRequest``).

Spans are rebuilt as ``@rivetkit/traces``' ``readRangeWireToOtlp`` rebuilds them: records
in time order; a span's first record in the range opens it (from its base record when it
began before the range; a lone update, event or end opens nothing); at most ``limit``
spans. Ids are lowercase hex, times decimal strings of epoch nanoseconds, attribute values
OTLP ``AnyValue`` objects decoded from their CBOR; fields without a value are left out.
"""

from __future__ import annotations

import base64
from typing import Any

from rivetkit.protocol.values import cbor_loads_raw
from rivetkit.traces.schema import (
    KeyValue,
    ReadRangeWire,
    SpanEnd,
    SpanEvent,
    SpanLink,
    SpanSnapshot,
    SpanStart,
    SpanStatus,
    SpanUpdate,
)

__all__ = ["any_value", "empty_export", "to_otlp"]


def any_value(value: Any) -> dict[str, Any]:
    """The OTLP ``AnyValue`` of a decoded attribute value."""
    if value is None:
        return {"stringValue": ""}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if value.is_integer():
            return {"intValue": str(int(value))}
        return {"doubleValue": value}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {
            "kvlistValue": {
                "values": [
                    {"key": k, "value": any_value(v)}
                    for k, v in value.items()
                    if isinstance(k, str)
                ]
            }
        }
    return {"stringValue": str(value)}


def _attrs(attributes: list[KeyValue], strings: list[str], into: dict[str, Any]) -> None:
    for kv in attributes:
        key = strings[kv.key] if kv.key < len(strings) else ""
        try:
            into[key] = cbor_loads_raw(kv.value)
        except Exception:
            continue


def _kv_list(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attributes.items()]


def _status(status: SpanStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"code": int(status.code)}
    if status.message is not None:
        out["message"] = status.message
    return out


class _Span:
    __slots__ = (
        "attributes",
        "dropped_attributes",
        "dropped_links",
        "end_ns",
        "events",
        "flags",
        "kind",
        "links",
        "name",
        "parent_id",
        "span_id",
        "start_ns",
        "status",
        "trace_id",
        "trace_state",
    )

    def __init__(self, body: SpanStart | SpanSnapshot, strings: list[str], start_ns: int) -> None:
        self.trace_id = body.trace_id
        self.span_id = body.span_id
        self.end_ns: int | None = None
        self.events: list[dict[str, Any]] = []
        self.status: SpanStatus | None = None
        self.start_ns = start_ns
        self._load(body, strings)

    def _load(self, body: SpanStart | SpanSnapshot, strings: list[str]) -> None:
        self.trace_id = body.trace_id
        self.parent_id = body.parent_span_id
        self.name = strings[body.name] if body.name < len(strings) else ""
        self.kind = body.kind
        self.trace_state = body.trace_state
        self.flags = body.flags
        self.attributes: dict[str, Any] = {}
        _attrs(body.attributes, strings, self.attributes)
        self.dropped_attributes = body.dropped_attributes_count
        self.links = [_link(link, strings) for link in body.links]
        self.dropped_links = body.dropped_links_count
        if isinstance(body, SpanSnapshot):
            self.status = body.status
            self.start_ns = body.start_time_unix_ns

    def apply(self, body: Any, strings: list[str], abs_ns: int) -> None:
        if isinstance(body, SpanStart):
            if self.start_ns == 0:
                self.start_ns = abs_ns
        elif isinstance(body, SpanSnapshot):
            self._load(body, strings)
        elif isinstance(body, SpanUpdate):
            _attrs(body.attributes, strings, self.attributes)
            self.dropped_attributes += body.dropped_attributes_count
            if body.status is not None:
                self.status = body.status
        elif isinstance(body, SpanEvent):
            attributes: dict[str, Any] = {}
            _attrs(body.attributes, strings, attributes)
            event: dict[str, Any] = {
                "timeUnixNano": str(abs_ns),
                "name": strings[body.name] if body.name < len(strings) else "",
            }
            if attributes:
                event["attributes"] = _kv_list(attributes)
            if body.dropped_attributes_count:
                event["droppedAttributesCount"] = body.dropped_attributes_count
            self.events.append(event)
        elif isinstance(body, SpanEnd):
            self.end_ns = abs_ns
            if body.status is not None:
                self.status = body.status

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"traceId": self.trace_id.hex(), "spanId": self.span_id.hex()}
        if self.parent_id is not None:
            out["parentSpanId"] = self.parent_id.hex()
        out["name"] = self.name
        out["kind"] = self.kind
        if self.trace_state is not None:
            out["traceState"] = self.trace_state
        if self.flags:
            out["flags"] = self.flags
        out["startTimeUnixNano"] = str(self.start_ns)
        if self.end_ns:
            out["endTimeUnixNano"] = str(self.end_ns)
        if self.attributes:
            out["attributes"] = _kv_list(self.attributes)
        if self.dropped_attributes:
            out["droppedAttributesCount"] = self.dropped_attributes
        if self.events:
            out["events"] = self.events
        if self.links:
            out["links"] = self.links
        if self.dropped_links:
            out["droppedLinksCount"] = self.dropped_links
        if self.status is not None:
            out["status"] = _status(self.status)
        return out


def _link(link: SpanLink, strings: list[str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    _attrs(link.attributes, strings, attributes)
    out: dict[str, Any] = {"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()}
    if link.trace_state is not None:
        out["traceState"] = link.trace_state
    if attributes:
        out["attributes"] = _kv_list(attributes)
    if link.dropped_attributes_count:
        out["droppedAttributesCount"] = link.dropped_attributes_count
    return out


def _export(spans: list[dict[str, Any]], resource: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if resource:
        entry["resource"] = {"attributes": _kv_list(resource)}
    entry["scopeSpans"] = [{"spans": spans}]
    return {"resourceSpans": [entry]}


def empty_export(resource: dict[str, Any] | None = None) -> dict[str, Any]:
    """An export holding no span."""
    return _export([], resource)


def to_otlp(
    wire: ReadRangeWire, resource: dict[str, Any] | None = None
) -> tuple[dict[str, Any], bool]:
    """``(otlp_json, clamped)`` of a trace query's answer."""
    if wire.limit <= 0 or wire.end_time_ms <= wire.start_time_ms:
        return empty_export(resource), wire.clamped
    start_ns, end_ns = wire.start_time_ms * 1_000_000, wire.end_time_ms * 1_000_000
    base: dict[bytes, tuple[Any, list[str], int]] = {}
    for chunk in wire.base_chunks:
        for record in chunk.records:
            base[record.body.span_id] = (
                record.body,
                chunk.strings,
                chunk.base_unix_ns + record.time_offset_ns,
            )
    entries: list[tuple[int, int, Any, list[str]]] = []
    sequence = 0
    for chunk in wire.chunks:
        for record in chunk.records:
            abs_ns = chunk.base_unix_ns + record.time_offset_ns
            if start_ns <= abs_ns < end_ns:
                entries.append((abs_ns, sequence, record.body, chunk.strings))
                sequence += 1
    entries.sort(key=lambda e: (e[0], e[1]))
    spans: dict[bytes, _Span] = {}
    reached = False
    for abs_ns, _, body, strings in entries:
        span = spans.get(body.span_id)
        if span is None:
            if len(spans) >= wire.limit:
                reached = True
                continue
            found = base.get(body.span_id)
            if found is not None and isinstance(found[0], (SpanStart, SpanSnapshot)):
                span = _Span(found[0], found[1], found[2])
            elif isinstance(body, (SpanStart, SpanSnapshot)):
                span = _Span(body, strings, abs_ns)
            else:
                continue
            spans[body.span_id] = span
        span.apply(body, strings, abs_ns)
    return _export([s.to_json() for s in spans.values()], resource), wire.clamped or reached

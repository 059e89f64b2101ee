"""The Server-Sent Events format (rivetkit.dispatch.sse) and Response body types, without a
server: what a WHATWG EventSource reader makes of the bytes (tests/test_streaming.py reads the
same events from real servers)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rivetkit import Response, ServerSentEvent
from rivetkit.dispatch.sse import format_event


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events as a WHATWG EventSource reader dispatches them (data joined with \\n)."""
    events: list[dict[str, Any]] = []
    data: list[str] = []
    fields: dict[str, Any] = {}
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                events.append({**fields, "data": "\n".join(data)})
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    return events


@given(
    data=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60),
    event=st.none() | st.text(alphabet="abcdefgh-_:", min_size=1, max_size=8),
    id=st.none() | st.text(alphabet="0123456789abc ", max_size=8),
)
def test_sse_format_round_trips(data: str, event: str | None, id: str | None) -> None:
    text = format_event(ServerSentEvent(data, event=event, id=id))
    assert text.endswith("\n\n") and "\r" not in text
    # Each line break of the data (\n, \r\n, \r) became a data line; a reader gets \n.
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    parsed = parse_sse(text)
    assert len(parsed) == 1 and parsed[0]["data"] == expected
    assert parsed[0].get("event") == event
    assert parsed[0].get("id") == id


def test_sse_format_refuses_line_breaks_in_fields() -> None:
    with pytest.raises(ValueError):
        format_event(ServerSentEvent("x", event="a\nb"))
    with pytest.raises(ValueError):
        format_event(ServerSentEvent("x", id="1\r"))
    with pytest.raises(ValueError):
        format_event(ServerSentEvent("x", retry=-1))
    assert format_event(ServerSentEvent(comment="hi")) == ": hi\n\n"
    assert format_event({"a": [1, "é"]}) == 'data: {"a":[1,"é"]}\n\n'
    assert format_event("") == "data: \n\n"


def test_response_body_types() -> None:
    assert Response("é").body == "é".encode()
    streamed = Response(iter([b"a"]))
    assert streamed.body == b"" and streamed.stream is not None
    assert repr(streamed) == "<Response 200 streamed>"
    with pytest.raises(TypeError):
        Response({"not": "a body"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Response([b"a list is not an iterator"])  # type: ignore[arg-type]
    sse = Response.sse([], headers={"cache-control": "no-store"})
    assert sse.headers.get_all("cache-control") == ["no-store"]

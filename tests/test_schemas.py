"""Declared schemas (rivetkit/schemas.py): definition-time checks, the normalizers, and every
schema (valid, invalid, undeclared) through :func:`rivetkit.testing.setup_test` in the three
encodings (queue sends over HTTP, connection params over HTTP and WebSocket, events over
WebSocket). The same checks run on a real server in tests/test_schemas_server.py."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from rivetkit import UserError, actor, setup
from rivetkit.errors import RivetError
from rivetkit.runtime.queue import ActorQueue
from rivetkit.schemas import ActorSchemas, EventPayloadError
from rivetkit.testing import setup_test
from tests.schemas_app import registry
from tests.schemas_checks import check_conn_params, check_events, check_queues, expect

ENCODINGS = ["json", "cbor", "bare"]


class Point(BaseModel):
    x: int
    y: int = 0


@dataclasses.dataclass
class Size:
    w: int
    h: int


class NotATypePydanticKnows:
    pass


# MARK: definition time


def test_nothing_declared_means_no_schemas() -> None:
    a = actor("plain", events={"e": None})
    assert a.schemas is None
    assert ActorQueue(a)._schemas is None  # type: ignore[arg-type]  # the queue reads no schema


def test_types_are_built_at_definition_time() -> None:
    a = actor(
        "typed",
        queues={"points": Point, "sizes": Size, "n": int, "names": list[str]},
        events={"moved": Point},
        conn_params=dict[str, str],
    )
    schemas = a.schemas
    assert isinstance(schemas, ActorSchemas)
    assert sorted(schemas.queues or {}) == ["n", "names", "points", "sizes"]
    assert schemas.queue_body("points", {"x": "1"}) == {"x": 1, "y": 0}
    assert schemas.queue_body("sizes", {"w": 1, "h": 2}) == {"w": 1, "h": 2}
    assert schemas.queue_body("n", "3") == 3
    assert schemas.queue_body("names", ("a",)) == ["a"]
    assert schemas.event_args("moved", [{"x": 2}]) == [{"x": 2, "y": 0}]
    assert schemas.event_args("undeclared", (1, 2)) == [1, 2]
    assert "moved" in a.events  # declared with a type: still an event (can_subscribe works)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"queues": {"q": NotATypePydanticKnows}}, "actor 'bad', queue 'q'.*NotATypePydanticKnows"),
        ({"events": {"e": NotATypePydanticKnows}}, "actor 'bad', event 'e'"),
        ({"conn_params": NotATypePydanticKnows}, "actor 'bad', conn_params"),
        ({"queues": {"q": "Point"}}, "not a string"),
        ({"queues": {"": int}}, "non-empty str"),
        ({"queues": [("q", int)]}, "mapping"),
        ({"can_publish": lambda c: True}, "can_publish must accept 3"),
        ({"can_publish": 5}, "must be callable"),
    ],
)
def test_definition_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        actor("bad", **kwargs)


def test_can_publish_decorator() -> None:
    a = actor("gated")

    @a.can_publish
    def gate(c: Any, name: str, body: Any) -> bool:
        return True

    assert a.schemas is not None and a.schemas.can_publish is gate
    assert a.schemas.queues is None  # no queues declared: every name accepted
    with pytest.raises(TypeError, match="already set"):
        a.can_publish(gate)


def test_conn_params_none_can_be_declared() -> None:
    a = actor("none_params", conn_params=None)
    assert a.schemas is not None and a.schemas.conn_params is not None
    assert a.schemas.conn_params(None) is None
    with pytest.raises(RivetError) as info:
        a.schemas.conn_params({"user": "x"})
    assert (info.value.group, info.value.code) == ("actor", "validation_error")


def test_validation_error_shape() -> None:
    a = actor("shape", queues={"points": list[Point]})
    assert a.schemas is not None
    with pytest.raises(RivetError) as info:
        a.schemas.queue_body("points", [{"x": 1}, {"x": "no"}])
    error = info.value
    assert error.metadata["field"] == "1.x"
    assert error.metadata["errors"][0]["loc"] == [1, "x"]
    assert error.message.startswith("Invalid queue `points` message: 1.x: ")
    with pytest.raises(RivetError) as info:
        a.schemas.queue_body("other", 1)
    assert (info.value.group, info.value.code) == ("queue", "not_declared")


def test_event_payload_error() -> None:
    a = actor("ev", events={"pair": tuple[int, str], "one": int})
    assert a.schemas is not None
    # Several arguments are checked as one list, as in RivetKit.
    assert a.schemas.event_args("pair", ("1", "a")) == [1, "a"]
    with pytest.raises(EventPayloadError, match=r"'one'.*valid integer"):
        a.schemas.event_args("one", ["x"])
    with pytest.raises(EventPayloadError, match="'one'"):
        a.schemas.event_args("one", [])


# MARK: through the client, in process


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_queues_in_process(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        await check_queues(t, f"q-{encoding}")


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_conn_params_in_process(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        await check_conn_params(t, f"p-{encoding}")


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_events_in_process(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        await check_events(t, f"e-{encoding}")


# MARK: can_publish, sync, without declared queues


def _gate(c: Any, name: str, body: Any) -> bool:
    if name == "boom":
        raise RuntimeError("a bug in the gate")
    if name == "user":
        raise UserError("not now", code="not_now")
    return name != "closed"


gated = actor("gated_sync", can_publish=_gate)


@gated.action
async def drain(c: Any) -> list[Any]:
    return [[m.name, m.body] for m in await c.queue.try_next_batch(count=100)]


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_sync_can_publish_without_queues(encoding: str) -> None:
    async with setup_test(setup(use=[gated]), encoding=encoding) as t:
        h = t.gated_sync.get_or_create(["g"])
        await h.send("open", {"any": "body"})  # no queues declared: any name, any body
        await expect(h.send("closed", 1), "auth", "forbidden")
        await expect(h.send("boom", 1), "core", "internal_error")
        error = await expect(h.send("user", 1), "user", "not_now")
        assert error.message == "not now"
        assert await h.drain() == [["open", {"any": "body"}]]

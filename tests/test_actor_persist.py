"""actor-persist v1..v4: RivetKit's vectors, upgrades, the legacy v4 shape, bad bytes."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import strategy_for
from vectors_dir import load_cases, vectors_dir

from rivetkit.errors import ProtocolError
from rivetkit.protocol import actor_persist
from rivetkit.protocol.actor_persist import Actor, Conn, QueueMessage, QueueMetadata, ScheduleEvent
from rivetkit.protocol.vectors import from_vector, to_vector

VECTORS = vectors_dir() / "actor-persist.json"
CASES = load_cases(VECTORS.name)
HANDLER_NAMES = {
    "Actor": "actor",
    "Conn": "conn",
    "QueueMetadata": "queue_metadata",
    "QueueMessage": "queue_message",
    "LastPushedAlarm": "last_pushed_alarm",
}


@pytest.fixture
def handlers(engine: ModuleType) -> actor_persist.Handlers:
    return actor_persist.build(engine)


def test_vectors_present() -> None:
    assert len(CASES) >= 18, f"expected RivetKit's vectors at {VECTORS}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(handlers: actor_persist.Handlers, case: dict[str, Any]) -> None:
    handler = getattr(handlers, HANDLER_NAMES[case["type"]])
    raw = bytes.fromhex(case["hex"])
    node = handler.latest.plan
    assert to_vector(handler.decode(raw), node) == case["value"]
    if "upgraded_from" in case:
        version, old = handler.decode_raw(raw)
        assert version == case["upgraded_from"]
        assert raw[:2] == version.to_bytes(2, "little")
        assert old is not None
    else:
        assert handler.encode(from_vector(case["value"], node)) == raw


def test_spec_examples(handlers: actor_persist.Handlers) -> None:
    # Bytes computed in the runtime spec §2.6 from the schema.
    assert handlers.actor.encode(Actor(None, True, b"\xa0", [])).hex() == "04000001 01a000".replace(
        " ", ""
    )
    message = QueueMessage("job", bytes.fromhex("a16178182a"), 456, None, None, None, None)
    assert handlers.queue_message.encode(message).hex() == (
        "0400036a6f6205a16178182ac801000000000000" + "00000000"
    )
    assert handlers.queue_metadata.encode(QueueMetadata(3, 2)).hex() == "04000300000000000000" + (
        "02000000"
    )
    assert handlers.last_pushed_alarm.encode(1700000000000).hex() == "0100010068e5cf8b010000"
    conn = Conn(
        "conn-1", b"\xf6", b"\xf6", [actor_persist.Subscription("updated")],
        b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", 9, 10, "/connect", {},
    )  # fmt: skip
    assert handlers.conn.encode(conn).hex() == (
        "040006636f6e6e2d3101f601f6010775706461746564010203040506070809000a00082f636f6e6e65637400"
    )


def test_legacy_v4_raw_args(handlers: actor_persist.Handlers) -> None:
    # rivetkit-core's test bytes: v4 from a short-lived writer that stored args as plain data.
    raw = bytes.fromhex(
        "0400" "01" "05" + b"input".hex() + "01" "05" + b"state".hex() + "01"
        "07" + b"event-1".hex() + "2a00000000000000" "0f" + b"handleTurnTimer".hex() + "0180"
    )  # fmt: skip
    actor = handlers.actor.decode(raw)
    assert actor == Actor(
        b"input", True, b"state", [ScheduleEvent("event-1", 42, "handleTurnTimer", b"\x80")]
    )
    raw2 = bytes.fromhex(
        "0400" "00" "01" "05" + b"state".hex() + "01"
        "07" + b"event-1".hex() + "2a00000000000000" "0f" + b"handleTurnTimer".hex() + "020199"
    )  # fmt: skip
    assert handlers.actor.decode(raw2).scheduled_events[0].args == b"\x01\x99"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("empty", ""),
        ("one byte", "04"),
        ("unknown version", "0900"),
        ("version zero", "0000"),
        ("future version", "0500000101a000"),
        ("truncated body", "040000010101"),
        ("trailing", "04000001 01a00000".replace(" ", "")),
    ],
)
def test_bad_actor_bytes(handlers: actor_persist.Handlers, name: str, raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        handlers.actor.decode(bytes.fromhex(raw))
    assert (info.value.group, info.value.code) == ("protocol", "invalid_persisted_data")


def test_queue_versions_are_v4_only(handlers: actor_persist.Handlers) -> None:
    body = handlers.queue_metadata.encode(QueueMetadata(1, 0))[2:]
    for version in (b"\x03\x00", b"\x01\x00"):
        with pytest.raises(ProtocolError, match="unsupported version"):
            handlers.queue_metadata.decode(version + body)


def test_every_prefix_of_every_vector_fails_cleanly(handlers: actor_persist.Handlers) -> None:
    for case in CASES:
        handler = getattr(handlers, HANDLER_NAMES[case["type"]])
        raw = bytes.fromhex(case["hex"])
        for cut in range(len(raw)):
            try:
                handler.decode(raw[:cut])
            except ProtocolError as exc:
                assert exc.code == "invalid_persisted_data"
            else:  # a prefix may only decode if it is itself a complete value
                assert cut >= 2


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actor=strategy_for(Actor), conn=strategy_for(Conn), message=strategy_for(QueueMessage))
def test_round_trips(
    handlers: actor_persist.Handlers, actor: Actor, conn: Conn, message: QueueMessage
) -> None:
    assert handlers.actor.decode(handlers.actor.encode(actor)) == actor
    assert handlers.conn.decode(handlers.conn.encode(conn)) == conn
    assert handlers.queue_message.decode(handlers.queue_message.encode(message)) == message

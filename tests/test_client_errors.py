"""Client: error parsing (spec §3), close reasons, retry predicates and backoff timing."""

from __future__ import annotations

import json

import cbor2
import pytest

from rivetkit.client import ActorError
from rivetkit.client.backoff import CONNECT_BACKOFF, METADATA_BACKOFF, Backoff, Deadline
from rivetkit.client.errors import (
    connection_closed_error,
    is_lifecycle_boundary,
    is_query_retryable,
    parse_close_reason,
    parse_http_error,
)
from rivetkit.errors import RivetError
from rivetkit.protocol.client_protocol import ActorSpecifier
from rivetkit.protocol.http_bodies import http_error_to

JSON = {"content-type": "application/json"}
OCTET = {"content-type": "application/octet-stream"}


def test_actor_error_is_a_rivet_error() -> None:
    error = ActorError("user", "c", "m", metadata={"a": 1}, status=400, ray_id="r")
    assert isinstance(error, RivetError)
    assert (error.group, error.code, error.message, error.metadata) == ("user", "c", "m", {"a": 1})
    assert (error.status, error.ray_id, error.actor) == (400, "r", None)
    assert str(error) == "user.c: m"


@pytest.mark.parametrize("encoding", ["bare", "cbor", "json"])
def test_json_error_body_is_read_as_json_whatever_the_encoding(encoding: str) -> None:
    body = json.dumps(
        {
            "group": "user",
            "code": "negative_amount",
            "message": "amount must be >= 0",
            "metadata": {"min": 0},
            "actor": {"actorId": "a1", "generation": 3, "key": "k"},
        }
    ).encode()
    headers = {**JSON, "x-rivet-ray-id": "ray-9"}
    error = parse_http_error(400, "Bad Request", headers, body, encoding)
    assert (error.group, error.code, error.message) == (
        "user",
        "negative_amount",
        "amount must be >= 0",
    )
    assert error.metadata == {"min": 0}
    assert error.actor == ActorSpecifier("a1", 3, "k")
    assert (error.status, error.ray_id) == (400, "ray-9")


@pytest.mark.parametrize("encoding", ["bare", "cbor", "json"])
def test_error_body_in_request_encoding(encoding: str) -> None:
    body = http_error_to("actor", "action_not_found", "nope", [1, "x"], encoding)
    headers = JSON if encoding == "json" else OCTET
    error = parse_http_error(404, "Not Found", headers, body, encoding)
    assert (error.group, error.code, error.message, error.metadata) == (
        "actor",
        "action_not_found",
        "nope",
        [1, "x"],
    )


def test_bare_error_without_content_type() -> None:
    body = http_error_to("user", "x", "y", None, "bare")
    error = parse_http_error(500, "", {}, body, "bare")
    assert (error.group, error.code, error.metadata) == ("user", "x", None)


def test_unparseable_error_body() -> None:
    error = parse_http_error(502, "Bad Gateway", {"content-type": "text/html"}, b"<h1>oops", "bare")
    assert (error.group, error.code, error.status) == ("client", "http_request_error", 502)
    assert error.message == "Bad Gateway (502):\n<h1>oops"
    # JSON content type with a body that is not a RivetError
    error = parse_http_error(500, "Err", JSON, b'{"x":1}', "json")
    assert error.code == "http_request_error"
    error = parse_http_error(500, "Err", OCTET, cbor2.dumps([1]), "cbor")
    assert error.code == "http_request_error"


def test_query_retryable_codes() -> None:
    for code in (
        "not_found",
        "starting",
        "stopping",
        "not_configured",
        "dropped_reply",
        "destroying",
        "destroyed_while_waiting",
    ):
        assert is_query_retryable("actor", code)
    assert not is_query_retryable("actor", "action_not_found")
    assert not is_query_retryable("user", "not_found")


def test_lifecycle_boundary() -> None:
    assert is_lifecycle_boundary(RivetError("actor", "restarting", "m"))
    assert is_lifecycle_boundary(RivetError("guard", "service_unavailable", "m"))
    assert is_lifecycle_boundary(RivetError("guard", "tunnel_closed", "m"))
    assert is_lifecycle_boundary(RivetError("core", "internal_error", "Actor is stopping"))
    assert not is_lifecycle_boundary(RivetError("guard", "forbidden", "m"))
    assert not is_lifecycle_boundary(RivetError("user", "restarting", "m"))


def test_parse_close_reason() -> None:
    assert parse_close_reason("message.incoming_too_long") == (
        "message",
        "incoming_too_long",
        None,
    )
    assert parse_close_reason("actor.init_error#ray-1") == ("actor", "init_error", "ray-1")
    assert parse_close_reason("Disposed") is None
    assert parse_close_reason("") is None
    assert parse_close_reason("has space.x") is None


def test_connection_closed_error() -> None:
    error = connection_closed_error(1011, "actor.invalid_request", clean=True)
    assert (error.group, error.code) == ("actor", "invalid_request")
    assert error.message == "Connection closed: actor.invalid_request"
    error = connection_closed_error(1006, "", clean=False)
    assert (error.group, error.code) == ("client", "connection_lost")
    assert error.message == "Connection lost (code: 1006, reason: )"
    error = connection_closed_error(1001, "going away", clean=True)
    assert error.message.startswith("Connection closed (code: 1001")


# MARK: backoff


def take(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next_delay() for _ in range(n)]


def test_connect_backoff_matches_ts_client() -> None:
    backoff = Backoff(*CONNECT_BACKOFF)
    assert take(backoff, 10) == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.attempt == 10
    backoff.reset()
    assert backoff.peek() == 0.25
    assert take(backoff, 2) == [0.25, 0.5]


def test_metadata_backoff() -> None:
    assert take(Backoff(*METADATA_BACKOFF), 7) == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]


def test_backoff_never_overflows() -> None:
    backoff = Backoff(0.25, 30.0)
    backoff._attempt = 10_000
    assert backoff.next_delay() == 30.0


def test_backoff_rejects_bad_settings() -> None:
    for args in ((0, 1), (2, 1), (1, 2, 0.5)):
        with pytest.raises(ValueError):
            Backoff(*args[:2], factor=args[2] if len(args) > 2 else 2.0)


def test_deadline_with_fake_clock() -> None:
    now = [100.0]
    deadline = Deadline(5.0, clock=lambda: now[0])
    assert deadline.remaining() == 5.0
    assert deadline.allows(4.9) and not deadline.allows(5.0)
    now[0] = 104.0
    assert not deadline.expired and deadline.remaining() == 1.0
    now[0] = 106.0
    assert deadline.expired and deadline.remaining() == 0.0
    forever = Deadline(None, clock=lambda: now[0])
    assert forever.remaining() is None and forever.allows(1e9) and not forever.expired

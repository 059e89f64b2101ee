"""Fuzzing the text parsers: serialized actor keys, the gateway's query and direct URL forms,
the dispatcher's header / subprotocol / path helpers, and the client's error, close-reason
and endpoint parsers.

Each either returns or raises the project's error for bad input (a RivetError for what
reaches the server, ``ValueError`` where the client's API documents it), never anything else.
``RIVETKIT_FUZZ_EXAMPLES`` sets the examples per test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from rivetkit.client.config import parse_endpoint
from rivetkit.client.errors import ActorError, connection_closed_error, parse_http_error
from rivetkit.dispatch import connect, router
from rivetkit.dispatch.http import Headers
from rivetkit.errors import RivetError
from rivetkit.protocol.actor_keys import check_name_key, deserialize_key, serialize_key
from rivetkit.server import gateway

#: Text built from the characters the parsers care about, plus anything.
_SPECIAL = st.sampled_from([*"\\/0,&=%+@?#-_$ ", "%ff", "%2C", "%00", "rvt-", "\ud800"])
TEXT = st.lists(st.one_of(_SPECIAL, st.text(max_size=4)), max_size=24).map("".join)


def rejects_with(error: type[BaseException], call: Callable[[], Any]) -> Any:
    """``call()``'s value, or None when it raised ``error``; anything else propagates."""
    try:
        return call()
    except error:
        return None


# -- keys ---------------------------------------------------------------------------------------


@FUZZ
@given(text=TEXT)
def test_deserialize_any_key(text: str) -> None:
    key = deserialize_key(text)
    assert isinstance(key, list)
    assert all(isinstance(part, str) for part in key)
    # A parsed key serializes to a canonical form that parses back to the same key.
    assert deserialize_key(serialize_key(key)) == key


@FUZZ
@given(key=st.lists(st.one_of(TEXT, st.just("")), max_size=6))
def test_key_round_trip(key: list[str]) -> None:
    assert deserialize_key(serialize_key(key)) == key
    assert check_name_key("n", key) == key


# -- gateway ------------------------------------------------------------------------------------


_PARAM = st.tuples(
    st.sampled_from(
        ["rvt-method", "rvt-key", "rvt-input", "rvt-namespace", "rvt-runner", "rvt-pool",
         "rvt-crash-policy", "rvt-token", "rvt-region", "rvt-skip-ready-wait", "rvt-x", "a",
         "rvt-%6d", "%ff"]
    ),
    st.one_of(
        TEXT,
        st.sampled_from(["get", "getOrCreate", "create", "sleep", "oAA", "9w", "AAAA", "!!!"]),
    ),
)  # fmt: skip


@FUZZ
@given(params=st.lists(_PARAM, max_size=6), segment=TEXT, extra=TEXT)
def test_gateway_query_form(params: list[tuple[str, str]], segment: str, extra: str) -> None:
    query = "&".join(f"{name}={value}" for name, value in params) + extra
    split = rejects_with(RivetError, lambda: gateway.split_query(query))
    if split is None:
        return
    found, _rest = split
    assert all(name.startswith("rvt-") for name in found)
    target = rejects_with(RivetError, lambda: gateway.parse_query(segment, found))
    if target is not None:
        assert target.method in ("get", "getOrCreate")
        assert all(isinstance(part, str) for part in target.key)


@FUZZ
@given(segment=TEXT)
def test_gateway_direct_form(segment: str) -> None:
    result = rejects_with(RivetError, lambda: gateway.parse_direct(segment))
    if result is not None:
        actor_id, _token = result
        assert actor_id and isinstance(actor_id, str)


@FUZZ
@given(text=st.one_of(TEXT, st.binary(max_size=64).map(lambda b: b.hex())), urlsafe=st.booleans())
def test_gateway_input(text: str, urlsafe: bool) -> None:
    rejects_with(RivetError, lambda: gateway.decode_input(text, urlsafe=urlsafe, what="input"))


@FUZZ
@given(data=st.binary(max_size=64))
def test_gateway_input_base64_of_garbage(data: bytes) -> None:
    import base64

    for urlsafe, text in (
        (True, base64.urlsafe_b64encode(data).decode().rstrip("=")),
        (False, base64.b64encode(data).decode()),
    ):
        rejects_with(
            RivetError,
            lambda text=text, urlsafe=urlsafe: gateway.decode_input(
                text, urlsafe=urlsafe, what="in"
            ),  # type: ignore[misc]
        )


# -- dispatcher helpers -------------------------------------------------------------------------


@FUZZ
@given(segment=TEXT)
def test_path_segments(segment: str) -> None:
    rejects_with(RivetError, lambda: router._decode_segment(segment))


@FUZZ
@given(
    protocols=st.lists(TEXT, max_size=4),
    params=st.one_of(
        st.none(), TEXT, TEXT.map(lambda t: quote(t, safe="", errors="surrogatepass"))
    ),
    header=st.binary(max_size=80),
)
def test_connection_params(protocols: list[str], params: str | None, header: bytes) -> None:
    # The server's headers are latin-1 text of the raw bytes.
    value = ",".join(protocols).encode("utf-8", "surrogatepass").decode("latin-1")
    headers = Headers([("sec-websocket-protocol", value)])
    offered = connect.parse_subprotocols(headers)
    assert all(isinstance(item, str) and item for item in offered)
    connect.encoding_of(offered)
    rejects_with(RivetError, lambda: connect.ws_conn_params(connect.params_of(offered)))
    rejects_with(RivetError, lambda: connect.ws_conn_params(params))
    rejects_with(RivetError, lambda: connect.conn_params_bytes(header))
    encoding, _raw = router._action_headers([(b"x-rivet-encoding", header)])
    assert isinstance(encoding, str)


# -- client -------------------------------------------------------------------------------------


@FUZZ
@given(
    status=st.integers(min_value=100, max_value=599),
    body=st.one_of(
        st.binary(max_size=120),
        st.dictionaries(
            st.sampled_from(["group", "code", "message", "metadata", "actor"]),
            st.one_of(st.text(max_size=8), st.integers(), st.none(), st.lists(st.integers())),
        ).map(lambda d: __import__("json").dumps(d).encode()),
    ),
    content_type=st.sampled_from(["application/json", "application/octet-stream", "", "x"]),
    encoding=st.sampled_from(["json", "cbor", "bare"]),
)
def test_client_http_errors(status: int, body: bytes, content_type: str, encoding: str) -> None:
    error = parse_http_error(status, "Bad", {"content-type": content_type}, body, encoding)
    assert isinstance(error, ActorError)
    assert isinstance(error.group, str) and isinstance(error.code, str)


@FUZZ
@given(reason=TEXT, code=st.integers(min_value=0, max_value=4999), clean=st.booleans())
def test_client_close_reasons(reason: str, code: int, clean: bool) -> None:
    assert isinstance(connection_closed_error(code, reason, clean=clean), ActorError)


@FUZZ
@given(
    endpoint=st.one_of(
        TEXT,
        st.tuples(st.sampled_from(["http://", "https://", "ws://", ""]), TEXT).map("".join),
    )
)
def test_client_endpoints(endpoint: str) -> None:
    rejects_with(ValueError, lambda: parse_endpoint(endpoint))

"""Which Python values round-trip, in each encoding, over a real server (issue 16, point 7).

The table of ``docs/concepts/values.md`` as assertions: action arguments and results in the
json, cbor and bare encodings, state across a sleep (read back from the store), the values
refused (``actor/invalid_output`` for a result, ``actor/invalid_state`` for state, the
client's ``EncodeError`` for an argument) with messages that name the offending path and type
and say which values are allowed, and the nesting limit. Hypothesis checks that every value
built from the portable types comes back equal in every encoding.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import math
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rivetkit import actor, setup
from rivetkit.client import ActorError, SyncActorHandle, SyncClient
from rivetkit.errors import EncodeError
from rivetkit.protocol.values import MAX_DEPTH
from rivetkit.server import serve_in_background

ENCODINGS = ["json", "cbor", "bare"]


class Point:
    """A class of the user's: no encoding knows it."""


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


# Values only the server can produce (a client cannot send them as arguments).
MADE: dict[str, Any] = {
    "naive_datetime": {"when": datetime.datetime(2024, 1, 2, 3, 4, 5)},
    "aware_datetime": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc),
    "decimal": decimal.Decimal("1.50"),
    "uuid": uuid.UUID(int=1),
    "point": {"items": [1, Point()]},
    "spaced": {"a key": Point()},
    "nan": float("nan"),
    "bytes_key": {b"k": 1},
    "tuple_key": {(1, 2): "pair"},
    "too_deep": nested(MAX_DEPTH + 1),
    "deepest": nested(MAX_DEPTH),
}


def values_registry() -> Any:
    box = actor("values", state={"v": None})

    @box.action
    def echo(c: Any, value: Any) -> Any:
        return value

    @box.action
    def make(c: Any, name: str) -> Any:
        return MADE[name]

    @box.action
    def store(c: Any, value: Any) -> None:
        c.state["v"] = value

    @box.action
    def store_made(c: Any, name: str) -> None:
        c.state["v"] = MADE[name]

    @box.action
    def load(c: Any) -> Any:
        return c.state["v"]

    @box.action
    def nap(c: Any) -> None:
        c.sleep()

    return setup(use=[box])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A real server (embedded mode) on its own thread and event loop."""
    ready = threading.Event()
    handles: list[Any] = []

    async def serve() -> None:
        async with serve_in_background(values_registry()) as url:
            done = asyncio.Event()
            handles.append((str(url), asyncio.get_running_loop(), done))
            ready.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60), "the server did not start"
    url, loop, done = handles[0]
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(30)


@pytest.fixture(scope="module")
def clients(endpoint: str) -> Iterator[dict[str, SyncClient]]:
    opened = {encoding: SyncClient(endpoint, encoding=encoding) for encoding in ENCODINGS}
    try:
        yield opened
    finally:
        for client in opened.values():
            client.close()


def box(clients: dict[str, SyncClient], encoding: str, key: str) -> SyncActorHandle:
    return clients[encoding].values.get_or_create([encoding, key])


def after_sleep(handle: SyncActorHandle) -> Any:
    """The stored value as the next start reads it back from the store."""
    handle.nap()
    return handle.load()


# -- what round-trips ------------------------------------------------------------------------

SAME_EVERYWHERE: list[Any] = [
    None,
    True,
    0,
    -(2**70),  # beyond 2**53: carried as a $BigInt
    1.5,
    -0.0,
    "é\u2603",
    b"\x00\xff",
    [1, "a", None],
    {"a": {"b": [b"x"]}},
    {1, 2},  # a set arrives as a set
    ["$Set", [1]],  # a list that looks like a tag is escaped, not taken for one
    nested(MAX_DEPTH - 1),  # the deepest argument (the argument list is the first level)
]

# (sent, json gives, cbor and bare give)
CHANGED: list[tuple[Any, Any, Any]] = [
    ((1, 2), [1, 2], [1, 2]),
    (frozenset({3}), {3}, {3}),
    (bytearray(b"ab"), b"ab", b"ab"),
    ({1: "a"}, {"1": "a"}, {1: "a"}),
    ({True: 1, None: 2}, {"true": 1, "null": 2}, {True: 1, None: 2}),
    ({1.5: "x"}, {"1.5": "x"}, {1.5: "x"}),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_portable_values_come_back_equal(clients: dict[str, SyncClient], encoding: str) -> None:
    handle = box(clients, encoding, "same")
    for value in SAME_EVERYWHERE:
        assert handle.echo(value) == value
        handle.store(value)
        assert after_sleep(handle) == value


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_values_that_change_on_the_way(clients: dict[str, SyncClient], encoding: str) -> None:
    handle = box(clients, encoding, "changed")
    for sent, json_gives, cbor_gives in CHANGED:
        expected = json_gives if encoding == "json" else cbor_gives
        result = handle.echo(sent)
        assert result == expected and type(result) is type(expected)
        handle.store(sent)
        # State is saved as CBOR whatever the client's encoding: keys keep their type there.
        stored = after_sleep(handle)
        assert stored == expected and type(stored) is type(expected)


def test_state_keeps_what_cbor_keeps(clients: dict[str, SyncClient]) -> None:
    handle = box(clients, "cbor", "state-types")
    handle.store({1: (2, 3)})
    assert after_sleep(handle) == {1: [2, 3]}  # the int key survives the store, the tuple not
    json_handle = clients["json"].values.get_or_create(["cbor", "state-types"])
    assert json_handle.load() == {"1": [2, 3]}  # the same state, read over json


@pytest.mark.parametrize("encoding", ["cbor", "bare"])
def test_nan_travels_in_cbor_only(clients: dict[str, SyncClient], encoding: str) -> None:
    handle = box(clients, encoding, "nan")
    assert math.isnan(handle.echo(float("nan")))
    assert handle.echo(float("inf")) == float("inf")
    with pytest.raises(EncodeError, match="Out of range float"):
        clients["json"].values.get_or_create(["json", "nan"]).echo(float("nan"))


# -- what is refused -------------------------------------------------------------------------


def refused(handle: SyncActorHandle, action: str, *args: Any) -> ActorError:
    with pytest.raises(ActorError) as info:
        handle.action(action, *args)
    return info.value


@pytest.mark.parametrize(
    ("name", "path", "type_name"),
    [
        ("naive_datetime", "output['when']", "datetime"),
        ("point", "output['items'][1]", "Point"),
        ("spaced", "output['a key']", "Point"),
        ("decimal", "output", "Decimal"),
        ("uuid", "output", "UUID"),
        ("aware_datetime", "output", "datetime"),
        ("nan", "output", "float"),
        ("bytes_key", "output", "bytes key"),
        ("tuple_key", "output", "tuple key"),
    ],
)
def test_json_refuses_an_output_naming_its_path(
    clients: dict[str, SyncClient], name: str, path: str, type_name: str
) -> None:
    error = refused(box(clients, "json", "refused"), "make", name)
    assert (error.group, error.code) == ("actor", "invalid_output")
    assert error.metadata == {"path": path, "encoding": "json"}
    assert f"{path} " in error.message and type_name in error.message
    assert "values that travel in every encoding are None, bool, int" in error.message


@pytest.mark.parametrize("encoding", ["cbor", "bare"])
def test_cbor_refuses_naive_datetimes_and_classes(
    clients: dict[str, SyncClient], encoding: str
) -> None:
    handle = box(clients, encoding, "refused")
    for name, path, type_name in [
        ("naive_datetime", "output['when']", "datetime"),
        ("point", "output['items'][1]", "Point"),
    ]:
        error = refused(handle, "make", name)
        assert (error.group, error.code) == ("actor", "invalid_output")
        assert error.metadata == {"path": path, "encoding": encoding}
        assert type_name in error.message and "docs/concepts/values.md" in error.message
    # What cbor2 encodes by itself travels (to Python clients) in cbor and bare.
    assert handle.make("decimal") == decimal.Decimal("1.50")
    assert handle.make("uuid") == uuid.UUID(int=1)
    assert handle.make("tuple_key") == {(1, 2): "pair"}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_unsaveable_state_is_refused_in_every_encoding(
    clients: dict[str, SyncClient], encoding: str
) -> None:
    handle = box(clients, encoding, "state-refused")
    handle.store([1])
    for name, path, type_name in [
        ("naive_datetime", "state['v']['when']", "datetime"),
        ("point", "state['v']['items'][1]", "Point"),
        ("spaced", "state['v']['a key']", "Point"),
    ]:
        error = refused(handle, "store_made", name)
        assert (error.group, error.code) == ("actor", "invalid_state")
        assert error.metadata == {"path": path}
        assert type_name in error.message
        assert "state holds None, bool, int, float, str, bytes" in error.message
    error = refused(handle, "store_made", "too_deep")
    assert error.code == "invalid_state" and f"deeper than {MAX_DEPTH} levels" in error.message
    assert after_sleep(handle) == [1]  # every refused write was undone


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_nesting_limit(clients: dict[str, SyncClient], encoding: str) -> None:
    """256 levels from the top of what is encoded: a result, the state, the argument list."""
    handle = box(clients, encoding, "deep")
    assert handle.make("deepest") == nested(MAX_DEPTH)
    error = refused(handle, "make", "too_deep")
    assert error.code == "invalid_output" and f"deeper than {MAX_DEPTH} levels" in error.message
    assert error.metadata["path"] == "output" + "[0]" * MAX_DEPTH
    assert handle.echo(nested(MAX_DEPTH - 1)) == nested(MAX_DEPTH - 1)
    # One level more: the json and bare clients refuse to send it, the server refuses the
    # cbor client's echo of it.
    with pytest.raises((EncodeError, ActorError), match=f"deeper than {MAX_DEPTH} levels"):
        handle.echo(nested(MAX_DEPTH + 1))


def test_client_refuses_arguments_its_encoding_cannot_carry(
    clients: dict[str, SyncClient],
) -> None:
    for encoding in ENCODINGS:
        with pytest.raises(EncodeError):
            box(clients, encoding, "args").echo(Point())
    with pytest.raises(EncodeError, match="not JSON-serializable"):
        box(clients, "json", "args").echo(decimal.Decimal(1))


# -- every portable value, generated ---------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.binary(max_size=12)
)
PORTABLE = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)


@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=PORTABLE)
def test_generated_portable_values_round_trip(
    clients: dict[str, SyncClient], encoding: str, value: Any
) -> None:
    handle = box(clients, encoding, "generated")
    assert handle.echo(value) == value
    handle.store(value)
    assert handle.load() == value

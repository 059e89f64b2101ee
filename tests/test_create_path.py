"""The embedded driver's create path in fewer store trips and statements: a new actor's
start reads the offline keys in the operation that counts its generation
(rivetkit/drivers/embedded/fresh.py, placement.py), and the table operations
(rivetkit/drivers/embedded/tables.py) answer as they did one statement per key or column."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rivetkit.drivers.embedded import EmbeddedDriver, tables
from rivetkit.drivers.embedded.offline import kv_put_if_absent
from rivetkit.errors import RivetError
from rivetkit.runtime import keys


class _ReadingHost:
    """Reads the actor's snapshot and inspector token at each start, as the runtime does."""

    def __init__(self) -> None:
        self.driver: EmbeddedDriver | None = None
        self.seen: list[list[bytes | None]] = []

    async def start_actor(self, record: Any, generation: int) -> None:
        assert self.driver is not None
        self.seen.append(
            await self.driver.kv_get(record.actor_id, [keys.PERSIST, keys.INSPECTOR_TOKEN])
        )

    async def stop_actor(self, actor_id: str, reason: Any) -> None:
        return None

    async def fire_alarm(self, actor_id: str) -> None:
        return None


async def _driver(tmp_path: Path) -> tuple[EmbeddedDriver, _ReadingHost]:
    host = _ReadingHost()
    driver = EmbeddedDriver(tmp_path)
    host.driver = driver
    await driver.start(host)  # type: ignore[arg-type]
    return driver, host


@pytest.mark.asyncio
async def test_a_new_actor_start_reads_the_token_with_its_generation(tmp_path: Path) -> None:
    driver, host = await _driver(tmp_path)
    try:
        record = await driver.create_actor("counter", ["a"], None)
        reads = driver.store.read_ops
        started = await driver.ensure_started(record.actor_id)
        assert started.generation == 1
        assert host.seen == [[None, None]]
        assert driver.store.read_ops == reads  # answered from the generation's operation
        stored = await driver.get_actor(record.actor_id)
        assert stored is not None and stored.generation == 1
        # That answer serves the start's read only: a token put offline since is seen.
        token = kv_put_if_absent(tmp_path, record.actor_id, keys.INSPECTOR_TOKEN, b"t" * 43)
        reads = driver.store.read_ops
        assert await driver.kv_get(record.actor_id, [keys.PERSIST, keys.INSPECTOR_TOKEN]) == [
            None,
            token,
        ]
        assert driver.store.read_ops == reads + 1
    finally:
        await driver.stop()


@pytest.mark.asyncio
async def test_a_token_put_offline_before_the_first_start_is_seen(tmp_path: Path) -> None:
    driver, host = await _driver(tmp_path)
    try:
        record, created = await driver.get_or_create_actor("counter", ["a"], None)
        assert created and record.actor_id in driver.fresh
        token = kv_put_if_absent(tmp_path, record.actor_id, keys.INSPECTOR_TOKEN, b"u" * 43)
        await driver.ensure_started(record.actor_id)
        assert host.seen == [[None, token]]
    finally:
        await driver.stop()


@pytest.mark.asyncio
async def test_a_write_made_during_the_start_is_seen_by_its_read(tmp_path: Path) -> None:
    driver, host = await _driver(tmp_path)
    try:
        record = await driver.create_actor("counter", ["a"], None)
        starting = asyncio.ensure_future(driver.ensure_started(record.actor_id))
        for _ in range(3):
            await asyncio.sleep(0)
        await driver.kv_write(record.actor_id, puts=[(keys.INSPECTOR_TOKEN, b"w")])
        await starting
        assert record.actor_id not in driver.fresh
        assert host.seen == [[None, b"w"]]
    finally:
        await driver.stop()


@pytest.mark.asyncio
async def test_a_failed_start_leaves_the_next_start_correct(tmp_path: Path) -> None:
    driver, host = await _driver(tmp_path)
    try:
        record = await driver.create_actor("counter", ["a"], None)
        calls = 0
        original = host.start_actor

        async def failing_once(rec: Any, generation: int) -> None:
            nonlocal calls
            calls += 1
            await original(rec, generation)
            if calls == 1:
                raise RuntimeError("start failed")

        host.start_actor = failing_once  # type: ignore[method-assign,assignment]
        with pytest.raises(RuntimeError):
            await driver.ensure_started(record.actor_id)
        token = kv_put_if_absent(tmp_path, record.actor_id, keys.INSPECTOR_TOKEN, b"v" * 43)
        assert (await driver.ensure_started(record.actor_id)).generation == 2
        assert host.seen == [[None, None], [None, token]]
    finally:
        await driver.stop()


@pytest.mark.asyncio
async def test_a_destroyed_actor_does_not_start(tmp_path: Path) -> None:
    driver, _host = await _driver(tmp_path)
    try:
        record = await driver.create_actor("counter", ["a"], None)
        await driver.ensure_started(record.actor_id)
        await driver.destroy_actor(record.actor_id)
        with pytest.raises(RivetError) as info:
            await driver.ensure_started(record.actor_id)
        assert info.value.code == "not_found"
        with pytest.raises(RivetError) as info:
            await driver.ensure_started("no-such-actor")
        assert info.value.code == "not_found"
    finally:
        await driver.stop()


# -- the table operations against one statement per key / the read-then-write form ----------


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    tables.init_schema(connection)
    yield connection
    connection.close()


def _kv_get_one_by_one(
    conn: sqlite3.Connection, actor_id: str, keys_: list[Any]
) -> list[bytes | None]:
    out: list[bytes | None] = []
    for key in keys_:
        tables.check_bytes("keys", key)
        row = conn.execute(
            "SELECT value FROM kv WHERE actor_id = ? AND key = ?", (actor_id, key)
        ).fetchone()
        out.append(None if row is None else row[0])
    return out


_KEY = st.binary(max_size=4)


@given(
    stored=st.dictionaries(_KEY, st.binary(max_size=8), max_size=12),
    other=st.dictionaries(_KEY, st.binary(max_size=8), max_size=4),
    asked=st.lists(
        st.tuples(_KEY, st.sampled_from(["bytes", "bytearray", "memoryview"])), max_size=80
    ),
)
@settings(max_examples=150, deadline=None)
def test_kv_get_answers_as_one_statement_per_key(
    tmp_path_factory: pytest.TempPathFactory,
    stored: dict[bytes, bytes],
    other: dict[bytes, bytes],
    asked: list[tuple[bytes, str]],
) -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        tables.init_schema(connection)
        tables.kv_write(connection, "a", list(stored.items()), [])
        tables.kv_write(connection, "b", list(other.items()), [])
        wrap = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}
        keys_ = [wrap[how](key) for key, how in asked]
        assert tables.kv_get(connection, "a", keys_) == _kv_get_one_by_one(connection, "a", keys_)
    finally:
        connection.close()


def test_kv_get_checks_every_key(conn: sqlite3.Connection) -> None:
    for keys_ in ([b"a", "x"], ["x"], [b"a", b"b", 3]):
        with pytest.raises(TypeError, match="KV keys must be bytes"):
            tables.kv_get(conn, "a", keys_)  # type: ignore[arg-type]
    assert tables.kv_get(conn, "a", []) == []


@pytest.mark.parametrize("returning", [True, False])
def test_begin_generation_counts_starts_of_live_actors(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch, returning: bool
) -> None:
    monkeypatch.setattr(tables, "_RETURNING", returning)
    conn.execute("BEGIN")
    record = tables.create_actor(conn, "counter", ["k", "é"], "k/é", b"\xa0", 1234)
    first = tables.begin_generation(conn, record.actor_id)
    assert first == record._replace(generation=1)
    second, values = tables.begin_generation_reading(conn, record.actor_id, [keys.PERSIST])
    assert second == record._replace(generation=2) and values == [None]
    assert tables.get_actor(conn, record.actor_id) == second
    tables.mark_destroyed(conn, record.actor_id, 5678)
    for actor_id in (record.actor_id, "unknown"):
        with pytest.raises(RivetError) as info:
            tables.begin_generation(conn, actor_id)
        assert info.value.code == "not_found"
    conn.execute("COMMIT")


def test_insert_draws_another_id_when_one_is_taken(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn.execute("BEGIN")
    taken = tables.create_actor(conn, "counter", ["a"], "a", None, 1).actor_id
    ids = iter([taken, "f" * 30])
    monkeypatch.setattr(tables, "new_actor_id", lambda: next(ids))
    record, created = tables.get_or_create_actor(conn, "counter", ["b"], "b", None, 2)
    assert created and record.actor_id == "f" * 30
    assert tables.find_actor(conn, "counter", "b") == record
    conn.execute("COMMIT")


# -- the gateway's query split against the decode-everything form ----------------------------


def _split_query_reference(query_string: str) -> tuple[dict[str, str], str]:
    """split_query as it was: every name and value through unquote_plus."""
    from urllib.parse import unquote_plus

    from rivetkit.server.gateway import invalid_request

    def decode(text: str, what: str) -> str:
        try:
            return unquote_plus(text, errors="strict")
        except UnicodeDecodeError:
            raise invalid_request(f"{what} is not valid UTF-8") from None

    params: dict[str, str] = {}
    rest: list[str] = []
    for piece in query_string.split("&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition("=")
        name = decode(raw_name, "a query parameter name")
        if not name.startswith("rvt-"):
            rest.append(piece)
            continue
        if name == "rvt-pool":
            name = "rvt-runner"
        if name not in _GATEWAY_NAMES:
            raise invalid_request(
                f"unknown gateway parameter {name[:60]!r}", metadata={"parameter": name[:60]}
            )
        if name in params:
            raise invalid_request(
                f"gateway parameter {name!r} is given twice", metadata={"parameter": name}
            )
        params[name] = decode(raw_value, f"gateway parameter {name!r}")
    return params, "&".join(rest)


_GATEWAY_NAMES = [
    "rvt-namespace",
    "rvt-method",
    "rvt-runner",
    "rvt-key",
    "rvt-input",
    "rvt-region",
    "rvt-crash-policy",
    "rvt-token",
    "rvt-skip-ready-wait",
]
_QUERY_NAME = st.sampled_from([*_GATEWAY_NAMES, "rvt-pool", "rvt-x", "rvt%2Dkey", "a", "b+c", ""])
_QUERY_TEXT = st.text(alphabet="ab,/+%=2C3éF0-", max_size=8)


@given(
    pieces=st.lists(
        st.one_of(
            st.tuples(_QUERY_NAME, st.none()),
            st.tuples(_QUERY_NAME, _QUERY_TEXT),
            st.tuples(_QUERY_TEXT, _QUERY_TEXT),
        ),
        max_size=8,
    )
)
@settings(max_examples=400, deadline=None)
def test_split_query_answers_as_decoding_everything(pieces: list[tuple[str, str | None]]) -> None:
    from rivetkit.server.gateway import split_query

    query = "&".join(name if value is None else f"{name}={value}" for name, value in pieces)

    def outcome(fn: Any) -> Any:
        try:
            return fn(query)
        except RivetError as exc:
            return ("error", exc.group, exc.code, exc.message, exc.metadata)

    assert outcome(split_query) == outcome(_split_query_reference)


# -- one-write operations run without a savepoint: a failing one still fails alone ----------


@pytest.mark.asyncio
async def test_a_failing_one_write_operation_fails_alone(tmp_path: Path) -> None:
    driver, _host = await _driver(tmp_path)
    try:
        store = driver.store
        taken = await driver.create_actor("counter", ["a"], None)
        # Submitted together (one batch when the writer is idle): the failing ones answer
        # their error, the others commit.
        futures: list[asyncio.Future[Any]] = [
            store.write(tables.kv_write, taken.actor_id, [(b"k1", b"1")], []),
            store.write(tables.create_actor, "counter", ["a"], "a", None, 1),
            store.write(tables.begin_generation, "unknown"),
            store.write(tables.get_or_create_actor, "counter", ["b"], "b", None, 2),
            store.write(tables.begin_generation_reading, taken.actor_id, [b"k1", b"zz"]),
            store.write(tables.create_actor, "counter", [], "", None, 3),
            store.write(tables.kv_write, taken.actor_id, [(b"k2", b"2")], []),
        ]
        results: list[Any] = list(await asyncio.gather(*futures, return_exceptions=True))
        assert results[0] is None and results[6] is None
        assert isinstance(results[1], RivetError) and results[1].code == "duplicate_key"
        assert isinstance(results[2], RivetError) and results[2].code == "not_found"
        created, was_created = results[3]
        assert was_created and created.key == ["b"]
        record, values = results[4]
        assert record.generation == 1 and values == [b"1", None]
        assert results[5].key == []
        # (written around the driver: read the store itself)
        assert await store.read(tables.kv_get, taken.actor_id, [b"k1", b"k2"]) == [b"1", b"2"]
        assert sorted(r.key for r in await driver.list_actors("counter")) == [[], ["a"], ["b"]]
        stored = await driver.get_actor(taken.actor_id)
        assert stored is not None and stored.generation == 1
    finally:
        await driver.stop()


def test_one_write_operations_change_nothing_when_they_fail(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn.execute("BEGIN")
    record = tables.create_actor(conn, "counter", ["a"], "a", None, 1)
    before = conn.total_changes
    with pytest.raises(RivetError):
        tables.create_actor(conn, "counter", ["a"], "a", None, 2)
    with pytest.raises(RivetError):
        tables.begin_generation(conn, "unknown")
    with pytest.raises(TypeError):
        tables.begin_generation_reading(conn, record.actor_id, ["not bytes"])  # type: ignore[list-item]
    assert conn.total_changes == before
    assert tables.get_actor(conn, record.actor_id) == record
    conn.execute("COMMIT")

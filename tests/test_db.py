"""Per-actor SQL databases (``c.db``) on the embedded driver."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rivetkit import actor, setup
from rivetkit.db import Database
from rivetkit.errors import RivetError
from rivetkit.testing import setup_test

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_registry() -> Any:
    calls: list[int] = []

    def seed(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("INSERT INTO items (name) VALUES ('seed')")

    shop = actor(
        "shop",
        db=Database(
            migrations=[
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);",
                seed,
            ]
        ),
    )

    @shop.action
    async def names(c: Any) -> list[str]:
        return [row["name"] for row in await c.db.query("SELECT name FROM items ORDER BY id")]

    @shop.action
    async def add_two(c: Any, first: str, second: str, fail: bool = False) -> None:
        async with c.db.transaction():
            await c.db.execute("INSERT INTO items (name) VALUES (?)", first)
            await c.db.execute("INSERT INTO items (name) VALUES (?)", second)
            if fail:
                raise ValueError("roll back")

    @shop.action
    async def bad(c: Any) -> None:
        await c.db.execute("INSERT INTO nowhere VALUES (1)")

    plain = actor("plain", state={})

    @plain.action
    async def use_db(c: Any) -> None:
        await c.db.query("SELECT 1")

    return setup(use=[shop, plain]), calls


@pytest.mark.asyncio
async def test_notes_example(tmp_path: Path) -> None:
    registry = load_example("notes").registry
    async with setup_test(registry, tmp_path) as client:
        notes = client.notes.get_or_create(["n"])
        assert await notes.add("one") == 1
        assert await notes.add("two") == 2
        assert await notes.list() == [{"id": 1, "text": "one"}, {"id": 2, "text": "two"}]
        actor_id = await notes.resolve()
    # The data survives a restart; a destroy deletes the file.
    async with setup_test(registry, tmp_path) as client:
        notes = client.notes.get_for_id(actor_id)
        assert [row["text"] for row in await notes.list()] == ["one", "two"]
        assert (tmp_path / "actors" / f"{actor_id}.sqlite").exists()
        await client.runtime.driver.destroy_actor(actor_id)
        assert not (tmp_path / "actors" / f"{actor_id}.sqlite").exists()
        fresh = client.notes.get_or_create(["n"])
        assert await fresh.list() == []


@pytest.mark.asyncio
async def test_migrations_run_once_and_transactions(tmp_path: Path) -> None:
    registry, calls = make_registry()
    async with setup_test(registry, tmp_path) as client:
        shop = client.shop.get_or_create(["s"])
        assert await shop.names() == ["seed"]
        await shop.add_two("a", "b")
        with pytest.raises(RivetError):
            await shop.add_two("c", "d", True)
        with pytest.raises(RivetError):
            await shop.add_two("e", "a")  # unique violation on the second insert
        assert await shop.names() == ["seed", "a", "b"]
    async with setup_test(registry, tmp_path) as client:
        assert await client.shop.get_or_create(["s"]).names() == ["seed", "a", "b"]
    assert calls == [1]


@pytest.mark.asyncio
async def test_errors(tmp_path: Path) -> None:
    registry, _ = make_registry()
    async with setup_test(registry, tmp_path) as client:
        with pytest.raises(RivetError) as info:
            await client.shop.get_or_create(["s"]).bad()
        assert info.value.group == "sqlite"
        with pytest.raises(RivetError) as info:
            await client.plain.get_or_create(["p"]).use_db()
        assert (info.value.group, info.value.code) == ("actor", "not_configured")


@pytest.mark.asyncio
async def test_concurrent_statements_do_not_interleave_a_transaction(tmp_path: Path) -> None:
    registry, _ = make_registry()
    async with setup_test(registry, tmp_path) as client:
        shop = client.shop.get_or_create(["s"])
        await asyncio.gather(*(shop.add_two(f"x{i}", f"y{i}") for i in range(10)))
        names = await shop.names()
        assert len(names) == 21
        for i in range(10):
            assert names.index(f"y{i}") == names.index(f"x{i}") + 1


def test_database_declaration_checks() -> None:
    with pytest.raises(TypeError):
        Database(migrations=[42])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        actor("x", db="CREATE TABLE t (x)")  # type: ignore[arg-type]


def test_migration_script_split_into_statements() -> None:
    """Statements are cut at each ending ";", even several on one line, but not inside
    strings, comments or trigger bodies; a trailing comment is no statement."""
    from rivetkit.db import _statements

    assert _statements("CREATE TABLE a(x); CREATE TABLE b(y);") == [
        "CREATE TABLE a(x);",
        " CREATE TABLE b(y);",
    ]
    assert _statements("INSERT INTO a VALUES ('x;y'); SELECT 1") == [
        "INSERT INTO a VALUES ('x;y');",
        " SELECT 1",
    ]
    trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x=1; DELETE FROM a; END;"
    assert _statements(trigger + "\n-- done; really\n") == [trigger]
    assert _statements("-- a; b\nSELECT 1;") == ["-- a; b\nSELECT 1;"]

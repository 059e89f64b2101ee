"""The inspector's SQL sandbox (rivetkit/inspector/sandbox.py) on both drivers.

Regression of issue 14 "seen 2": with actor A's inspector token,
``POST /gateway/{A}/inspector/database/execute`` could ``ATTACH`` the data directory's
``rivetkit.db`` (every actor's inspector token in ``m.kv``), another actor's database file
(and write into it), or a new file anywhere. Every inspector statement now runs under an
SQLite authorizer refusing that (403 ``inspector.forbidden_statement``), while the actor's own
``c.db`` stays unrestricted. The embedded driver runs behind a real server on 127.0.0.1, the
engine driver as an envoy of the real engine (tests/engine_fixtures.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from engine_fixtures import engine_env

from rivetkit import actor, setup
from rivetkit.client import Client
from rivetkit.db import Database
from rivetkit.drivers.embedded.driver import DB_FILE_NAME
from rivetkit.drivers.engine import LocalEngine
from rivetkit.inspector.token import actor_token
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

vault = actor(
    "vault",
    state={"n": 0},
    db=Database(migrations=["CREATE TABLE secrets (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"]),
)


@vault.action
async def put(c: Any, text: str) -> int:
    result = await c.db.execute("INSERT INTO secrets (text) VALUES (?)", text)
    return int(result.last_row_id or 0)


@vault.action
async def texts(c: Any) -> list[str]:
    return [row["text"] for row in await c.db.query("SELECT text FROM secrets ORDER BY id")]


@vault.action
async def tune(c: Any, version: int) -> int:
    """Actor code may run what the inspector may not: a PRAGMA write and a transaction."""
    async with c.db.transaction():
        await c.db.execute(f"PRAGMA user_version = {int(version)}")
        rows = await c.db.query("PRAGMA user_version")
    return int(rows[0]["user_version"])


@vault.action
async def try_extension(c: Any) -> str:
    """Extension loading is disabled on the connection itself, for actor code too."""
    try:
        await c.db.query("SELECT load_extension('/nonexistent/evil')")
    except Exception as exc:
        return str(exc)
    return "loaded"


registry = setup(use=[vault])


@dataclass
class Target:
    """One driver's way in: the gateway root, a client, and the live actors."""

    driver: str
    endpoint: str
    client: Client
    runtime: Any
    data_dir: Path | None

    async def create(self) -> tuple[str, Any]:
        handle = self.client.vault.get_or_create([f"v-{uuid.uuid4().hex[:10]}"])
        await handle.action("put", "secret")
        return await handle.resolve(), handle

    async def headers(self, actor_id: str) -> dict[str, str]:
        token = await actor_token(self.runtime.instances[actor_id])
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-data")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def embedded(data_dir: Path) -> AsyncIterator[Target]:
    async with (
        serve_in_background(registry, data_dir=data_dir) as endpoint,
        Client(endpoint) as client,
    ):
        runtime = endpoint.app.runtime  # type: ignore[attr-defined]
        yield Target("embedded", endpoint, client, runtime, data_dir)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def engine(rivet_engine: LocalEngine) -> AsyncIterator[Target]:
    async with engine_env(registry, rivet_engine) as env, env.client() as client:
        yield Target("engine", rivet_engine.endpoint, client, env.runtime, None)


@pytest.fixture(params=["embedded", "engine"])
def target(request: pytest.FixtureRequest) -> Target:
    found: Target = request.getfixturevalue(request.param)
    return found


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def execute(
    http: httpx.AsyncClient, target: Target, actor_id: str, sql: str, **body: Any
) -> httpx.Response:
    return await http.post(
        f"{target.endpoint}/gateway/{actor_id}/inspector/database/execute",
        headers=await target.headers(actor_id),
        json={"sql": sql, **body},
    )


def assert_forbidden(response: httpx.Response, *fragments: str) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert (body["group"], body["code"]) == ("inspector", "forbidden_statement"), body
    assert body["metadata"]["denied"] in body["message"]
    for fragment in fragments:
        assert fragment in body["message"], body
    assert "Traceback" not in response.text
    return body


# -- issue 14, seen 2: the three escapes (embedded data directory) ----------------------------


async def test_attach_of_the_data_directory_database_is_refused(
    http: httpx.AsyncClient, embedded: Target
) -> None:
    a, _ = await embedded.create()
    b, _ = await embedded.create()
    assert embedded.data_dir is not None
    b_token = (await embedded.headers(b))["Authorization"].split()[1]
    main_db = embedded.data_dir / DB_FILE_NAME
    attached = await execute(http, embedded, a, f"ATTACH DATABASE '{main_db}' AS m")
    assert_forbidden(attached, "ATTACH")
    read = await execute(http, embedded, a, "SELECT actor_id, key, value FROM m.kv")
    assert read.status_code != 200 and b_token not in read.text, read.text


async def test_attach_of_another_actors_database_is_refused(
    http: httpx.AsyncClient, embedded: Target
) -> None:
    a, _ = await embedded.create()
    b, b_handle = await embedded.create()
    assert embedded.data_dir is not None
    b_file = embedded.data_dir / "actors" / f"{b}.sqlite"
    assert b_file.is_file()
    attached = await execute(http, embedded, a, f"ATTACH '{b_file}' AS other")
    assert_forbidden(attached, "ATTACH")
    write = await execute(http, embedded, a, "INSERT INTO other.secrets (text) VALUES ('pwned')")
    assert write.status_code != 200, write.text
    assert await b_handle.action("texts") == ["secret"]


async def test_attach_of_a_new_file_outside_the_data_directory_is_refused(
    http: httpx.AsyncClient, embedded: Target, tmp_path: Path
) -> None:
    a, _ = await embedded.create()
    outside = tmp_path / "outside.db"
    assert_forbidden(await execute(http, embedded, a, f"ATTACH '{outside}' AS x"), "ATTACH")
    copy = tmp_path / "copy.db"
    assert_forbidden(await execute(http, embedded, a, f"VACUUM INTO '{copy}'"), "VACUUM")
    assert not outside.exists() and not copy.exists()
    assert list(tmp_path.iterdir()) == []


# -- each denied statement, both drivers ------------------------------------------------------

DENIED = [
    ("ATTACH DATABASE ':memory:' AS m", "ATTACH"),
    ("ATTACH '' AS scratch", "ATTACH"),
    ("DETACH DATABASE m", "DETACH"),
    ("SELECT load_extension('/nonexistent/evil')", "load_extension"),
    ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer"),
    ("PRAGMA journal_mode = MEMORY", "journal_mode"),
    ("PRAGMA writable_schema = ON", "writable_schema"),
    ("PRAGMA foreign_keys = OFF", "foreign_keys"),
    ("PRAGMA user_version = 7", "user_version"),
    ("PRAGMA main.synchronous = OFF", "synchronous"),
    ("PRAGMA wal_checkpoint(TRUNCATE)", "wal_checkpoint"),
    ("PRAGMA temp_store_directory = '/tmp'", "temp_store_directory"),
    ("VACUUM", "VACUUM"),
    ("BEGIN", "BEGIN"),
    ("SAVEPOINT inspector", "SAVEPOINT"),
    ("CREATE VIRTUAL TABLE leak USING json_each", "json_each"),
]


@pytest.mark.parametrize(("sql", "named"), DENIED, ids=[sql for sql, _ in DENIED])
async def test_denied_statement(
    http: httpx.AsyncClient, target: Target, sql: str, named: str
) -> None:
    actor_id, handle = await target.create()
    assert_forbidden(await execute(http, target, actor_id, sql), named)
    # Nothing was left behind: no transaction holds the actor's database, no setting changed.
    assert await handle.action("put", "after") == 2
    pragmas = await execute(http, target, actor_id, "PRAGMA user_version")
    assert pragmas.json() == {"rows": [{"user_version": 0}]}


async def test_a_script_of_several_statements_is_refused(
    http: httpx.AsyncClient, target: Target
) -> None:
    actor_id, handle = await target.create()
    for sql in ("DELETE FROM secrets; ATTACH ':memory:' AS m", "SELECT 1; SELECT 2"):
        response = await execute(http, target, actor_id, sql)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_request"
    assert await handle.action("texts") == ["secret"]
    for single in ("SELECT ';' AS s;", "SELECT 1; -- a comment", "SELECT 1 /* ; */"):
        response = await execute(http, target, actor_id, single)
        assert response.status_code == 200, (single, response.text)


ALLOWED = [
    ("SELECT id, text FROM secrets", [{"id": 1, "text": "secret"}]),
    ("PRAGMA table_info(secrets)", None),
    ("PRAGMA main.index_list('secrets')", []),
    ("SELECT name FROM pragma_table_list WHERE name = 'secrets'", [{"name": "secrets"}]),
    ("PRAGMA user_version", [{"user_version": 0}]),
    ("PRAGMA foreign_keys", [{"foreign_keys": 1}]),
    ("PRAGMA integrity_check", [{"integrity_check": "ok"}]),
    ("CREATE TABLE extra (x INTEGER)", []),
    ("CREATE VIRTUAL TABLE search USING fts5(body)", []),
]


@pytest.mark.parametrize(("sql", "rows"), ALLOWED, ids=[sql for sql, _ in ALLOWED])
async def test_allowed_statement(
    http: httpx.AsyncClient, target: Target, sql: str, rows: list[dict[str, Any]] | None
) -> None:
    actor_id, _ = await target.create()
    response = await execute(http, target, actor_id, sql)
    assert response.status_code == 200, response.text
    if rows is not None:
        assert response.json() == {"rows": rows}
    else:
        assert [row["name"] for row in response.json()["rows"]] == ["id", "text"]


async def test_schema_and_rows_routes_still_work(http: httpx.AsyncClient, target: Target) -> None:
    actor_id, _ = await target.create()
    headers = await target.headers(actor_id)
    base = f"{target.endpoint}/gateway/{actor_id}/inspector/database"
    schema = await http.get(f"{base}/schema", headers=headers)
    assert schema.status_code == 200, schema.text
    (table,) = schema.json()["schema"]["tables"]
    assert table["table"]["name"] == "secrets" and table["records"] == 1
    assert [column["name"] for column in table["columns"]] == ["id", "text"]
    rows = await http.get(f"{base}/rows", headers=headers, params={"table": "secrets"})
    assert rows.json() == {"rows": [{"id": 1, "text": "secret"}]}


async def test_actor_code_stays_unrestricted_while_the_inspector_is_refused(
    http: httpx.AsyncClient, target: Target
) -> None:
    actor_id, handle = await target.create()
    refused, tuned = await asyncio.gather(
        asyncio.gather(
            *(execute(http, target, actor_id, "PRAGMA user_version = 99") for _ in range(15))
        ),
        asyncio.gather(*(handle.action("tune", version) for version in range(1, 16))),
    )
    for response in refused:
        assert_forbidden(response, "user_version")
    assert sorted(tuned) == list(range(1, 16))
    assert await handle.action("tune", 42) == 42
    read = await execute(http, target, actor_id, "PRAGMA user_version")
    assert read.json() == {"rows": [{"user_version": 42}]}


async def test_extension_loading_is_disabled_for_actor_code_too(target: Target) -> None:
    _, handle = await target.create()
    assert "not authorized" in await handle.action("try_extension")

"""The inspector's HTTP routes (runtime spec §5) over a real server on 127.0.0.1: the per-actor
token (KV [3], constant-time check, the CLI), every route's shape, PATCH persisted across a
sleep, and the database routes with and without a database."""

from __future__ import annotations

import asyncio
import hmac
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from conftest import eventually
from rivetkit import ActorOptions, UserError, actor, setup
from rivetkit.db import Database
from rivetkit.inspector import token as token_module
from rivetkit.inspector.token import token_from_data_dir
from rivetkit.runtime.instance import Phase
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

inspected = actor(
    "inspected",
    state={"count": 0, "tags": ["a"]},
    db=Database(
        migrations=[
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);\n"
            "CREATE TABLE refs (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id));",
        ]
    ),
    options=ActorOptions(sleep_timeout=30),
)


@inspected.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@inspected.action
def describe(c: Any, info: dict[str, Any]) -> dict[str, Any]:
    return {"got": info}


@inspected.action
def refuse(c: Any) -> None:
    raise UserError("no way", code="refused")


@inspected.action
async def remind(c: Any, seconds: float) -> str:
    return str(await c.schedule.after(seconds, "increment", 5))


@inspected.action(name="getCount")
def get_count(c: Any) -> int:
    return int(c.state["count"])


plain = actor("plain")


@plain.action
def ping(c: Any) -> str:
    return "pong"


registry = setup(use=[inspected, plain])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspector-data")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint(data_dir: Path) -> AsyncIterator[Any]:
    async with serve_in_background(registry, data_dir=data_dir) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=15) as client:
        yield client


async def create(http: httpx.AsyncClient, name: str, key: str) -> str:
    response = await http.put("/actors", json={"name": name, "key": key})
    assert response.status_code == 200, response.text
    actor_id: str = response.json()["actor"]["actor_id"]
    return actor_id


async def wake(http: httpx.AsyncClient, actor_id: str, action: str = "getCount") -> Any:
    response = await http.post(f"/gateway/{actor_id}/action/{action}", json={"args": []})
    assert response.status_code == 200, response.text
    return response.json()["output"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, group: str, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert (body["group"], body["code"]) == (group, code), body
    assert "metadata" in body
    return body


# -- the token --------------------------------------------------------------------------------


async def test_auth_missing_wrong_and_right(http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "inspected", "auth")
    url = f"/gateway/{actor_id}/inspector/state"
    missing = await http.get(url)
    body = assert_error(missing, 401, "inspector", "unauthorized")
    assert body["message"] == "Inspector request requires a valid bearer token"
    assert missing.headers["referrer-policy"] == "no-referrer"
    wrong = await http.get(url, headers=auth("x" * 43))
    assert_error(wrong, 401, "inspector", "unauthorized")
    not_bearer = await http.get(url, headers={"Authorization": "Basic abc"})
    assert_error(not_bearer, 401, "inspector", "unauthorized")
    empty = await http.get(url, headers={"Authorization": "Bearer"})
    assert_error(empty, 401, "inspector", "unauthorized")

    token = token_from_data_dir(data_dir, actor_id)  # readable while the server runs
    assert len(token) == 43 and "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    right = await http.get(url, headers={"Authorization": f"bEaReR   {token}"})
    assert right.status_code == 200, right.text
    assert right.headers["content-type"] == "application/json"
    assert right.headers["referrer-policy"] == "no-referrer"
    assert right.json() == {"state": {"count": 0, "tags": ["a"]}, "isStateEnabled": True}
    # The same token every time, and another actor's token does not open this one.
    assert token_from_data_dir(data_dir, actor_id) == token
    other_id = await create(http, "inspected", "auth-other")
    other = token_from_data_dir(data_dir, other_id)
    assert other != token
    assert_error(await http.get(url, headers=auth(other)), 401, "inspector", "unauthorized")


async def test_token_created_on_first_request_is_stored(
    http: httpx.AsyncClient, endpoint: Any, data_dir: Path
) -> None:
    actor_id = await create(http, "inspected", "first-need")
    assert_error(
        await http.get(f"/gateway/{actor_id}/inspector/rpcs"), 401, "inspector", "unauthorized"
    )
    instance = endpoint.app.runtime.instances[actor_id]
    (stored,) = await instance.kv_get([b"\x03"])
    assert stored is not None and len(stored) == 43
    assert token_from_data_dir(data_dir, actor_id) == stored.decode()


async def test_compare_digest_is_used(
    http: httpx.AsyncClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor_id = await create(http, "inspected", "digest")
    token = token_from_data_dir(data_dir, actor_id)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    ok = await http.get(f"/gateway/{actor_id}/inspector/rpcs", headers=auth(token))
    assert ok.status_code == 200
    # One character off (not "A" blindly: a token may end in "A", 1 time in 64).
    wrong = token[:-1] + ("B" if token.endswith("A") else "A")
    bad = await http.get(f"/gateway/{actor_id}/inspector/rpcs", headers=auth(wrong))
    assert bad.status_code == 401
    assert calls == [
        (token.encode(), token.encode()),
        (wrong.encode(), token.encode()),
    ]


async def test_test_override_env(http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    actor_id = await create(http, "plain", "override")
    monkeypatch.setenv(token_module.TOKEN_ENV, "test-token")
    response = await http.get(f"/gateway/{actor_id}/inspector/rpcs", headers=auth("test-token"))
    assert response.json() == {"rpcs": ["ping"]}


async def test_cli_prints_the_token(http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "inspected", "cli")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rivetkit", "inspect", "token", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # Read from the data directory while the server runs on it (the token is created then).
    out = await asyncio.to_thread(cli, actor_id, "--data", str(data_dir))
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token == token_from_data_dir(data_dir, actor_id)
    response = await http.get(f"/gateway/{actor_id}/inspector/rpcs", headers=auth(token))
    assert response.status_code == 200
    missing = await asyncio.to_thread(cli, "nope", "--data-dir", str(data_dir))
    assert missing.returncode == 1
    assert "no actor" in missing.stderr
    no_dir = await asyncio.to_thread(cli, actor_id, "--data", str(data_dir / "absent"))
    assert no_dir.returncode == 1


# -- the routes -------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def target(http: httpx.AsyncClient, data_dir: Path) -> tuple[str, dict[str, str]]:
    actor_id = await create(http, "inspected", "routes")
    return actor_id, auth(token_from_data_dir(data_dir, actor_id))


async def test_state_connections_rpcs_summary(
    http: httpx.AsyncClient, target: tuple[str, dict[str, str]]
) -> None:
    actor_id, headers = target
    base = f"/gateway/{actor_id}/inspector"
    assert await wake(http, actor_id, "increment") == 1
    state = await http.get(f"{base}/state", headers=headers)
    assert state.json() == {"state": {"count": 1, "tags": ["a"]}, "isStateEnabled": True}
    rpcs = (await http.get(f"{base}/rpcs", headers=headers)).json()
    assert sorted(rpcs["rpcs"]) == ["describe", "getCount", "increment", "refuse", "remind"]
    conns = (await http.get(f"{base}/connections", headers=headers)).json()
    assert conns == {"connections": []}
    summary = (await http.get(f"{base}/summary", headers=headers)).json()
    assert summary == {
        "state": {"count": 1, "tags": ["a"]},
        "isStateEnabled": True,
        "connections": [],
        "rpcs": rpcs["rpcs"],
        "queueSize": 0,
        "isDatabaseEnabled": True,
        "isWorkflowEnabled": False,
        "workflowState": None,
        "workflowHistory": None,
    }
    traces = (await http.get(f"{base}/traces", headers=headers)).json()
    assert traces["clamped"] is False and "resourceSpans" in traces["otlp"]  # test_traces.py
    history = (await http.get(f"{base}/workflow-history", headers=headers)).json()
    assert history == {"history": None, "workflowState": None, "isWorkflowEnabled": False}
    replay = await http.post(f"{base}/workflow/replay", headers=headers, json={})
    assert replay.json() == {"history": None, "workflowState": None, "isWorkflowEnabled": False}
    unknown = await http.get(f"{base}/nothing", headers=headers)
    body = assert_error(unknown, 404, "actor", "not_found")
    assert body["message"] == "Inspector route was not found"
    wrong_method = await http.delete(f"{base}/state", headers=headers)
    assert_error(wrong_method, 404, "actor", "not_found")
    tabs = await http.get(f"{base}/tab-config")  # no token needed
    assert tabs.json() == {"tabs": []}


async def test_connections_shape(
    http: httpx.AsyncClient, endpoint: Any, target: tuple[str, dict[str, str]]
) -> None:
    actor_id, headers = target
    instance = endpoint.app.runtime.instances[actor_id]
    conn = await instance.connect({"user": "ann"})
    conn.state = {"seen": 2}
    conn.subscribe("tick")
    try:
        conns = await http.get(f"/gateway/{actor_id}/inspector/connections", headers=headers)
        assert conns.json() == {
            "connections": [
                {
                    "type": None,
                    "id": conn.id,
                    "details": {
                        "type": None,
                        "params": {"user": "ann"},
                        "stateEnabled": True,
                        "state": {"seen": 2},
                        "subscriptions": 1,
                        "isHibernatable": False,
                    },
                }
            ]
        }
    finally:
        await instance.disconnect(conn)


async def test_action_route(http: httpx.AsyncClient, target: tuple[str, dict[str, str]]) -> None:
    actor_id, headers = target
    base = f"/gateway/{actor_id}/inspector/action"
    ok = await http.post(f"{base}/increment", headers=headers, json={"args": [10]})
    assert ok.status_code == 200 and ok.json()["output"] >= 10
    props = await http.post(f"{base}/describe", headers=headers, json={"properties": {"a": 1}})
    assert props.json() == {"output": {"got": {"a": 1}}}
    both = await http.post(f"{base}/describe", headers=headers, json={"args": [], "properties": {}})
    assert both.status_code == 400
    assert both.json() == {"error": "use either args or properties, not both"}
    bad_props = await http.post(f"{base}/describe", headers=headers, json={"properties": [1]})
    assert bad_props.status_code == 400 and "error" in bad_props.json()
    missing = await http.post(f"{base}/nope", headers=headers, json={"args": []})
    assert_error(missing, 404, "actor", "action_not_found")
    refused = await http.post(f"{base}/refuse", headers=headers, json={"args": []})
    body = assert_error(refused, 500, "user", "refused")
    assert body["message"] == "no way"
    not_json = await http.post(f"{base}/increment", headers=headers, content=b"{oops")
    assert_error(not_json, 400, "actor", "invalid_request")


async def test_queue_routes(http: httpx.AsyncClient, target: tuple[str, dict[str, str]]) -> None:
    actor_id, headers = target
    base = f"/gateway/{actor_id}/inspector/queue"
    empty = (await http.get(base, headers=headers)).json()
    assert empty["size"] == 0 and empty["messages"] == [] and empty["truncated"] is False
    assert isinstance(empty["maxSize"], int) and empty["maxSize"] > 0
    sent = []
    for i in range(3):
        response = await http.post(base, headers=headers, json={"name": "jobs", "body": {"i": i}})
        assert response.status_code == 200, response.text
        sent.append(response.json())
    assert [s["name"] for s in sent] == ["jobs"] * 3
    assert all(isinstance(s["id"], str) and isinstance(s["createdAtMs"], int) for s in sent)
    listed = (await http.get(base, headers=headers, params={"limit": 2})).json()
    assert listed["size"] == 3 and listed["truncated"] is True
    assert [m["id"] for m in listed["messages"]] == [int(s["id"]) for s in sent[:2]]
    assert set(listed["messages"][0]) == {"id", "name", "createdAtMs"}
    summary = (await http.get(f"/gateway/{actor_id}/inspector/summary", headers=headers)).json()
    assert summary["queueSize"] == 3
    bad_name = await http.post(base, headers=headers, json={"name": ""})
    assert_error(bad_name, 400, "inspector", "invalid_request")
    bad_limit = await http.get(base, headers=headers, params={"limit": "x"})
    assert_error(bad_limit, 400, "actor", "invalid_request")
    cleared = await http.delete(base, headers=headers)
    assert cleared.status_code == 200 and cleared.json() == {}
    assert (await http.get(base, headers=headers)).json()["size"] == 0


async def test_schedules_route(http: httpx.AsyncClient, target: tuple[str, dict[str, str]]) -> None:
    actor_id, headers = target
    response = await http.post(f"/gateway/{actor_id}/action/remind", json={"args": [3600]})
    event_id = response.json()["output"]
    listed = (await http.get(f"/gateway/{actor_id}/inspector/schedules", headers=headers)).json()
    (entry,) = [s for s in listed["schedules"] if s["id"] == event_id]
    assert entry["kind"] == "at" and entry["action"] == "increment" and entry["args"] == [5]
    assert isinstance(entry["nextRunAt"], int)
    assert set(entry) == {
        "id",
        "name",
        "kind",
        "action",
        "args",
        "nextRunAt",
        "lastRunAt",
        "expression",
        "timezone",
        "intervalMs",
        "maxHistory",
    }


async def test_database_routes(http: httpx.AsyncClient, target: tuple[str, dict[str, str]]) -> None:
    actor_id, headers = target
    base = f"/gateway/{actor_id}/inspector/database"
    insert = await http.post(
        f"{base}/execute",
        headers=headers,
        json={"sql": "INSERT INTO notes (text) VALUES (?)", "args": ["hello"]},
    )
    assert insert.status_code == 200, insert.text
    assert insert.json() == {"rows": []}
    named = await http.post(
        f"{base}/execute",
        headers=headers,
        json={"sql": "INSERT INTO notes (text) VALUES (:t)", "properties": {"t": "named"}},
    )
    assert named.status_code == 200, named.text
    selected = await http.post(
        f"{base}/execute", headers=headers, json={"sql": "SELECT id, text FROM notes ORDER BY id"}
    )
    assert selected.json() == {"rows": [{"id": 1, "text": "hello"}, {"id": 2, "text": "named"}]}
    schema = (await http.get(f"{base}/schema", headers=headers)).json()["schema"]
    names = [t["table"]["name"] for t in schema["tables"]]
    assert names == ["notes", "refs"]
    notes = schema["tables"][0]
    assert notes["table"] == {"schema": "main", "name": "notes", "type": "table"}
    assert [c["name"] for c in notes["columns"]] == ["id", "text"]
    assert notes["records"] == 2 and notes["foreignKeys"] == []
    refs = schema["tables"][1]
    assert refs["foreignKeys"][0]["table"] == "notes"
    rows = await http.get(
        f"{base}/rows", headers=headers, params={"table": "notes", "limit": 1, "offset": 1}
    )
    assert rows.json() == {"rows": [{"id": 2, "text": "named"}]}
    no_table = await http.get(f"{base}/rows", headers=headers)
    assert_error(no_table, 400, "actor", "invalid_request")
    unknown = await http.get(f"{base}/rows", headers=headers, params={"table": "ghost"})
    assert_error(unknown, 400, "inspector", "invalid_request")
    empty_sql = await http.post(f"{base}/execute", headers=headers, json={"sql": "  "})
    assert_error(empty_sql, 400, "inspector", "invalid_request")
    both = await http.post(
        f"{base}/execute", headers=headers, json={"sql": "SELECT 1", "args": [1], "properties": {}}
    )
    assert_error(both, 400, "inspector", "invalid_request")
    broken = await http.post(f"{base}/execute", headers=headers, json={"sql": "SELEC nothing"})
    body = assert_error(broken, 500, "sqlite", "query_failed")
    assert "syntax error" in body["message"]


async def test_database_not_enabled(http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "plain", "nodb")
    headers = auth(token_from_data_dir(data_dir, actor_id))
    base = f"/gateway/{actor_id}/inspector"
    for response in (
        await http.get(f"{base}/database/schema", headers=headers),
        await http.get(f"{base}/database/rows", headers=headers, params={"table": "x"}),
        await http.post(f"{base}/database/execute", headers=headers, json={"sql": "SELECT 1"}),
    ):
        assert_error(response, 400, "database", "not_enabled")
    state = (await http.get(f"{base}/state", headers=headers)).json()
    assert state == {"state": None, "isStateEnabled": False}
    patch = await http.patch(f"{base}/state", headers=headers, json={"state": {"x": 1}})
    assert_error(patch, 400, "actor", "state_not_enabled")
    summary = (await http.get(f"{base}/summary", headers=headers)).json()
    assert summary["isDatabaseEnabled"] is False and summary["isStateEnabled"] is False


async def test_patch_state_persisted_across_sleep(
    http: httpx.AsyncClient, endpoint: Any, data_dir: Path
) -> None:
    actor_id = await create(http, "inspected", "patch")
    headers = auth(token_from_data_dir(data_dir, actor_id))
    base = f"/gateway/{actor_id}/inspector/state"
    patched = await http.patch(base, headers=headers, json={"state": {"count": 41, "tags": []}})
    assert patched.status_code == 200 and patched.json() == {"ok": True}
    runtime = endpoint.app.runtime
    first = runtime.instances[actor_id]
    first.request_sleep()
    await eventually(lambda: first.phase == Phase.TERMINATED, timeout=15)
    # Woken again from storage: the patched state is what it loads.
    assert await wake(http, actor_id, "increment") == 42
    assert runtime.instances[actor_id] is not first
    state = (await http.get(base, headers=headers)).json()
    assert state["state"] == {"count": 42, "tags": []}
    bad = await http.patch(base, headers=headers, content=b"[1]")
    assert_error(bad, 400, "actor", "invalid_request")


async def test_serve_logs_how_to_get_the_token(tmp_path: Path) -> None:
    """``rivetkit serve`` (embedded) says at startup how to print an actor's token."""
    app = Path(__file__).resolve().parents[1] / "examples" / "counter.py"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rivetkit",
        "serve",
        str(app),
        "--port",
        "0",
        "--data",
        str(tmp_path / "data"),
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, f"the server exited early: {lines}"
            lines.append(line)
            if "inspector" in line:
                break
        assert f"rivetkit inspect token ACTOR_ID --data {tmp_path / 'data'}" in line
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)

"""What the Rivet dashboard reads to pick its inspector, and the page it embeds (issue 18).

* ``GET /metadata`` of an actor reports the RivetKit version we are compatible with (the
  dashboard gates its features on it) and ours as ``implementationVersion``;
* ``/inspector/ui/`` and its assets are served without a token; other names under it are
  404 ``inspector.ui_asset_not_found``;
* ``/inspector/schedules`` gives a recurring schedule's ``lastRunAt``, and
  ``/inspector/schedules/history`` its runs;
* in Chromium, our page inside a cross-origin iframe speaks the dashboard's postMessage
  protocol: ``ready``, then on ``init`` the ``tabs-available`` of the actor, a tab drawn on
  ``set-active-tab``, ``token-refresh-needed`` on a wrong token.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, chromium_or_skip, serve_html

import rivetkit
from rivetkit import actor, setup
from rivetkit.db import Database
from rivetkit.inspector import ui
from rivetkit.inspector.token import actor_token
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_test

pytestmark = pytest.mark.asyncio(loop_scope="module")

ticker = actor("ticker", state={"ticks": 0})


@ticker.action
async def start(c: Any) -> str:
    return await c.schedule.every("tick", 10, "tick")


@ticker.action
def tick(c: Any) -> int:
    c.state["ticks"] += 1
    return int(c.state["ticks"])


@ticker.action
async def later(c: Any) -> str:
    return await c.schedule.after(3600, "tick")


ledger = actor(
    "ledger",
    db=Database(migrations=["CREATE TABLE entries (id INTEGER PRIMARY KEY, amount INTEGER)"]),
)


@ledger.action
async def record(c: Any, amount: int) -> None:
    await c.db.execute("INSERT INTO entries (amount) VALUES (?)", amount)


registry = setup(use=[ticker, ledger])


def semver(text: str) -> tuple[int, int, int]:
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", text)
    assert match, text
    return int(match[1]), int(match[2]), int(match[3])


async def inspector_get(t: Any, actor_id: str, path: str, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=t.server.transport(), base_url=t.server.endpoint
    ) as http:
        return await http.get(f"/gateway/{actor_id}{path}", headers=headers)


async def test_metadata_reports_the_compatible_rivetkit_version() -> None:
    async with setup_test(registry) as t:
        actor_id = await t.ticker.get_or_create(["m"]).resolve()
        response = await inspector_get(t, actor_id, "/metadata", None)
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "runtime": "rivetkit",
        "version": ui.COMPAT_VERSION,
        "type": "local",
        "implementation": "rivetkit-python",
        "implementationVersion": rivetkit.__version__,
    }
    # What the dashboard decides from it: the iframe inspector (from 2.3.0), with schedules
    # and negotiated inspector protocol versions (from 2.3.4).
    assert semver(body["version"]) >= semver(ui.IFRAME_MIN_VERSION)
    assert semver(body["version"]) >= (2, 3, 4)


async def test_ui_assets_need_no_token() -> None:
    async with setup_test(registry) as t:
        actor_id = await t.ticker.get_or_create(["ui"]).resolve()
        page = await inspector_get(t, actor_id, "/inspector/ui/?actorId=x&theme=dark", None)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script src="inspector.js"></script>' in page.text
        script = await inspector_get(t, actor_id, "/inspector/ui/inspector.js", None)
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert '"tabs-available"' in script.text
        for path in ("/inspector/ui/inspector.css", "/inspector/tab.css"):
            sheet = await inspector_get(t, actor_id, path, None)
            assert (sheet.status_code, sheet.headers["content-type"]) == (
                200,
                "text/css; charset=utf-8",
            )
        missing_paths = (
            "/inspector/ui",
            "/inspector/ui/inspector.js.map",
            "/inspector/ui/app.js",
            "/inspector/ui/x/y",
        )
        for path in missing_paths:
            missing = await inspector_get(t, actor_id, path, None)
            assert missing.status_code == 404, path
            assert missing.json()["code"] == "ui_asset_not_found"


async def test_recurring_schedule_last_run_and_history() -> None:
    async with setup_test(registry) as t:
        handle = t.ticker.get_or_create(["sched"])
        schedule_id = await handle.action("start")
        once_id = await handle.action("later")
        actor_id = await handle.resolve()
        token = await actor_token(t.runtime.instances[actor_id])
        listed = (await inspector_get(t, actor_id, "/inspector/schedules", token)).json()
        assert {s["id"]: s["lastRunAt"] for s in listed["schedules"]} == {
            schedule_id: None,
            once_id: None,
        }
        await t.advance(11)
        await t.advance(10)
        listed = (await inspector_get(t, actor_id, "/inspector/schedules", token)).json()
        by_id = {s["id"]: s for s in listed["schedules"]}
        recurring = by_id[schedule_id]
        assert recurring["kind"] == "every" and recurring["intervalMs"] == 10_000
        assert isinstance(recurring["lastRunAt"], int)
        assert recurring["lastRunAt"] < recurring["nextRunAt"]
        assert by_id[once_id]["lastRunAt"] is None

        path = f"/inspector/schedules/history?id={schedule_id}&limit=5"
        history = (await inspector_get(t, actor_id, path, token)).json()["history"]
        assert len(history) == 2
        assert history[0]["firedAt"] == recurring["lastRunAt"]  # newest first
        assert [entry["result"] for entry in history] == ["ok", "ok"]
        assert all(entry["action"] == "tick" for entry in history)

        denied = await inspector_get(t, actor_id, path, "wrong")
        assert denied.status_code == 401
        missing = await inspector_get(t, actor_id, "/inspector/schedules/history", token)
        assert (missing.status_code, missing.json()["code"]) == (400, "invalid_request")
        once = await inspector_get(t, actor_id, f"/inspector/schedules/history?id={once_id}", token)
        assert once.json() == {"history": []}


# -- the page in Chromium, embedded by a page of another origin --------------------------------

#: A stand-in for the dashboard: embeds our page as the dashboard does (same sandbox, same
#: URL parameters) and records every message the page posts.
SHELL = """<!doctype html>
<html><head><meta charset="utf-8"><title>shell</title></head><body>
<iframe id="inspector" sandbox="allow-scripts allow-same-origin" style="width:1000px;height:600px"></iframe>
<script>
window.received = [];
window.addEventListener("message", (event) => {
  window.received.push({origin: event.origin, data: event.data});
});
function open(src) { document.getElementById("inspector").src = src; }
function send(message, origin) {
  document.getElementById("inspector").contentWindow.postMessage(message, origin);
}
</script></body></html>
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shell_origin() -> AsyncIterator[str]:
    async with serve_html(SHELL) as port:
        # "localhost", not 127.0.0.1: another origin than the actor server's.
        yield f"http://localhost:{port}"


async def received(page: Any, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """The messages of type ``kind`` the page posted to the shell, once there are ``count``."""
    await page.wait_for_function(
        "([kind, count]) => window.received.filter(m => m.data.type === kind).length >= count",
        arg=[kind, count],
    )
    found: list[dict[str, Any]] = await page.evaluate(
        "(kind) => window.received.filter(m => m.data.type === kind)", kind
    )
    return found


async def test_page_speaks_the_dashboard_protocol(shell_origin: str) -> None:
    chromium_or_skip("the inspector page test")
    from playwright.async_api import async_playwright

    async with serve_in_background(registry) as endpoint:
        async with rivetkit.client.Client(endpoint) as client:
            handle = client.ledger.get_or_create(["page"])
            await handle.action("record", 42)
            actor_id = await handle.resolve()
        token = await actor_token(endpoint.app.runtime.instances[actor_id])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                context = await browser.new_context()
                context.set_default_timeout(30_000)
                page = await context.new_page()
                await page.goto(shell_origin + "/")
                query = f"actorId={actor_id}&shellOrigin={shell_origin}&theme=light"
                await page.evaluate(
                    "(src) => open(src)", f"{endpoint}/gateway/{actor_id}/inspector/ui/?{query}"
                )
                (ready,) = await received(page, "ready")
                assert ready == {"origin": endpoint, "data": {"type": "ready", "v": 1}}
                frame = page.frame_locator("#inspector")

                init = {
                    "type": "init",
                    "v": 1,
                    "actorId": actor_id,
                    "authToken": token,
                    "activeTab": "database",
                    "theme": "light",
                }
                await page.evaluate("([m, o]) => send(m, o)", [init, endpoint])
                (tabs,) = await received(page, "tabs-available")
                ids = [tab["id"] for tab in tabs["data"]["tabs"]]
                assert [i for i in ids if i != "traces"] == [
                    "database",
                    "queue",
                    "schedules",
                    "connections",
                    "console",
                ], ids
                assert all(set(t) == {"id", "label", "icon"} for t in tabs["data"]["tabs"])
                database = frame.locator("section[data-tab='database']")
                await database.locator("button[data-table='entries']").click()
                await database.get_by_role("cell", name="42", exact=True).wait_for()
                light = await frame.locator("html").get_attribute("class")
                assert "dark" not in (light or "")

                await page.evaluate(
                    "([m, o]) => send(m, o)",
                    [{"type": "set-active-tab", "v": 1, "tab": "queue"}, endpoint],
                )
                await (
                    frame.locator("section[data-tab='queue']")
                    .get_by_text("0 messages queued")
                    .wait_for()
                )

                # A wrong token: the page asks the dashboard for a new one.
                bad = {**init, "authToken": "wrong"}
                await page.evaluate("([m, o]) => send(m, o)", [bad, endpoint])
                (refresh, *_) = await received(page, "token-refresh-needed")
                assert refresh["data"] == {"type": "token-refresh-needed", "v": 1}
                everything = await page.evaluate("() => window.received")
                assert all(m["origin"] == endpoint for m in everything)
                assert json.dumps(everything).count(token) == 0  # the page never echoes it
            finally:
                await browser.close()

"""The Rivet dashboard served by the engine (``/ui/``) inspects our actors with every tab
(issue 18, points 1 and 6).

A real engine of this module's own (``own_engine``: the dashboard shows one pool at a time) runs ``examples/app.py``'s registry as an
envoy in a pool of its own. We put data in first: a counter value (and an open connection),
a notes row, a message on a worker queue its run loop does not consume, a reminder an hour
away on the timer, a payment to an order. Then Debian's chromium (playwright; never a browser download) opens the
dashboard, finds each actor (component card, then the actor's key), and checks the tabs the
dashboard draws from what our page at ``/inspector/ui/`` announces, and what each shows:
the state value (edited live from the Console), the table and its row, the queued message,
the schedule, the steps of the paid ``order``'s workflow; the dashboard's own Metadata tab
too. The sleepy ``timer``, shown, falls asleep and stays asleep, and the list shows it so. No request to ``/gateway/*/inspector/*`` may fail. Requests to other hosts (the
dashboard's analytics) are aborted. Last, with our page blocked, the dashboard's own inline
inspector (its fallback) shows the same tabs.

Screenshots of every tab go to a folder printed at the start (kept after the run;
``DASHBOARD_SCREENSHOTS=DIR`` chooses it).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import browser_helpers
import pytest
import pytest_asyncio
from browser_helpers import CHROMIUM, CHROMIUM_ARGS
from engine_fixtures import FAST_RETRY, engine_env

from conftest import eventually
from rivetkit.client import Client
from rivetkit.drivers.engine import LocalEngine
from rivetkit.runtime.instance import Phase
from rivetkit.runtime.live_actors import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Generous: the first dashboard load compiles a large bundle on a shared 2-core machine.
TIMEOUT_MS = 60_000
KEY = f"dash-{uuid.uuid4().hex[:8]}"


def chromium_or_skip(what: str = "the dashboard test") -> None:
    """Skip without Chromium or playwright, except in CI (then fail)."""
    browser_helpers.chromium_or_skip(what)


def example_registry() -> Any:
    """``examples/app.py``'s registry (the examples import each other by module name)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import app  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    return app.registry


class Seeded:
    """The engine, the actors' ids and the client that put data in them."""

    def __init__(
        self, engine: LocalEngine, ids: dict[str, str], client: Client, runtime: Runtime
    ) -> None:
        self.engine = engine
        self.ids = ids
        self.client = client
        self.runtime = runtime

    def asleep(self, name: str) -> bool:
        """Whether actor ``name`` is not running in our envoy."""
        instance = self.runtime.instances.get(self.ids[name])
        return instance is None or instance.phase != Phase.STARTED


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def seeded(own_engine: LocalEngine) -> AsyncIterator[Seeded]:
    """Our example app on the engine, with data in counter, notes, worker and timer."""
    chromium_or_skip()
    async with (
        engine_env(example_registry(), own_engine) as env,
        Client(own_engine.endpoint, pool=env.pool, retry=FAST_RETRY) as client,
    ):
        counter = client.counter.get_or_create([KEY])
        assert await counter.action("increment", 5) == 5
        notes = client.notes.get_or_create([KEY])
        assert await notes.action("add", "hello dashboard") == 1
        worker = client.worker.get_or_create([KEY])
        await worker.send("reports", {"week": 1})  # the run loop only consumes "jobs"
        timer = client.timer.get_or_create([KEY])
        await timer.action("remindIn", 3600, "an hour later")
        order = client.order.get_or_create([KEY])
        await order.send("pay", {"amount": 30})  # its workflow charges, cools down, ships
        ids = {}
        for name, handle in (
            ("counter", counter),
            ("notes", notes),
            ("worker", worker),
            ("timer", timer),
            ("order", order),
        ):
            ids[name] = await handle.resolve()
        async with counter.connect():  # listed by the Connections tab
            yield Seeded(own_engine, ids, client, env.runtime)


@pytest.fixture(scope="module")
def shots(pytestconfig: pytest.Config) -> Path:
    """The folder the screenshots go to: ``$DASHBOARD_SCREENSHOTS`` or a new temporary one
    outside pytest's own (which keeps only its last runs); printed, kept after the run."""
    chosen = os.environ.get("DASHBOARD_SCREENSHOTS")
    if chosen:
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="rivetkit-dashboard-"))
    line = f"dashboard screenshots: {folder}"
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if capture is not None:  # shown whether or not output is captured
        with capture.global_and_fixture_disabled():
            print(f"\n{line}", flush=True)
    else:
        print(line)
    return folder


class Watcher:
    """Every failed request to an actor's inspector, and the inspector sockets opened."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.sockets: list[str] = []
        self.frames = 0

    def attach(self, page: Any) -> None:
        page.on("response", self._response)
        page.on("requestfailed", self._failed)
        page.on("websocket", self._socket)

    @staticmethod
    def _inspector(url: str) -> bool:
        return re.search(r"/gateway/[^/]+/inspector/", url) is not None

    def _response(self, response: Any) -> None:
        if self._inspector(response.url) and response.status >= 400:
            self.failures.append(f"{response.status} {response.url}")

    def _failed(self, request: Any) -> None:
        if self._inspector(request.url):
            self.failures.append(f"failed {request.url}: {request.failure}")

    def _socket(self, socket: Any) -> None:
        if self._inspector(socket.url):
            self.sockets.append(socket.url)
            socket.on("framereceived", self._frame)

    def _frame(self, _payload: Any) -> None:
        self.frames += 1


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def dashboard(seeded: Seeded) -> AsyncIterator[tuple[Any, Watcher]]:
    """A chromium page on the engine's dashboard, outside requests aborted."""
    from playwright.async_api import async_playwright

    origin = seeded.engine.endpoint

    async def local_only(route: Any) -> None:
        if route.request.url.startswith(origin) or route.request.url.startswith("ws"):
            await route.continue_()
        else:
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            await context.route("**/*", local_only)
            page = await context.new_page()
            watcher = Watcher()
            watcher.attach(page)
            yield page, watcher
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def final_screenshot(
    request: pytest.FixtureRequest, dashboard: tuple[Any, Watcher], shots: Path
) -> AsyncIterator[None]:
    """A screenshot after each test, passed or not (``after-<test>.png``)."""
    yield
    await shoot(dashboard[0], shots, f"after-{request.node.name}")


async def open_actor(page: Any, seeded: Seeded, name: str) -> Any:
    """Open actor ``name`` as a person would: the namespace's component card, then the key.
    Returns the inspector iframe's locator root."""
    await page.goto(f"{seeded.engine.endpoint}/ui/")
    await page.get_by_text(name, exact=True).first.click()
    # The row is a link; its left edge (the status dot) opens it (the key itself copies).
    row = page.locator("a[href*='actorId=']", has_text=KEY).first
    await row.click(position={"x": 20, "y": 16})
    await page.wait_for_url(re.compile(re.escape(seeded.ids[name])))
    frame = page.frame_locator("iframe[title^='Inspector for actor']")
    return frame


async def open_tab(page: Any, frame: Any, label: str, tab_id: str) -> Any:
    """Click the dashboard's tab ``label``; wait for our page to draw tab ``tab_id``."""
    await page.get_by_role("tab", name=label).click()
    section = frame.locator(f"section[data-tab='{tab_id}']")
    await section.wait_for()
    return section


async def tab_labels(page: Any) -> list[str]:
    """The dashboard's tab strip once our page announced its tabs."""
    await page.get_by_role("tab", name="Connections").wait_for()
    await page.wait_for_function(
        "() => [...document.querySelectorAll('[role=tab]')].every(t => !t.disabled)"
    )
    labels = await page.get_by_role("tab").all_inner_texts()
    return [label.strip() for label in labels]


async def shoot(page: Any, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"))


async def test_counter_state_console_connections(
    dashboard: tuple[Any, Watcher], seeded: Seeded, shots: Path
) -> None:
    page, watcher = dashboard
    frame = await open_actor(page, seeded, "counter")
    labels = await tab_labels(page)
    expected = ["State", "Queue", "Schedules", "Connections", "Console", "Metadata"]
    assert [label for label in labels if label != "Traces"] == expected, labels

    state = await open_tab(page, frame, "State", "state")
    await state.get_by_text('"count": 5').wait_for()
    await shoot(page, shots, "counter-state")

    console = await open_tab(page, frame, "Console", "console")
    await console.locator("#action").select_option("increment")
    await console.locator("#args").fill("[2]")
    await console.get_by_role("button", name="Call").click()
    await console.get_by_text("→ 7").wait_for()
    await shoot(page, shots, "counter-console")

    state = await open_tab(page, frame, "State", "state")
    await state.get_by_text('"count": 7').wait_for()

    conns = await open_tab(page, frame, "Connections", "connections")
    await conns.get_by_text("1 connection").wait_for()
    await shoot(page, shots, "counter-connections")

    for label, tab_id in (("Queue", "queue"), ("Schedules", "schedules")):
        section = await open_tab(page, frame, label, tab_id)
        await section.get_by_text("Nothing here.").wait_for()

    if "Traces" in labels:  # the actor has spans (tracing is on): its actions are listed
        traces = await open_tab(page, frame, "Traces", "traces")
        await traces.get_by_role("cell", name=re.compile("increment")).first.wait_for()
        await shoot(page, shots, "counter-traces")

    await page.get_by_role("tab", name="Metadata").click()
    await page.get_by_text(seeded.ids["counter"]).first.wait_for()
    await shoot(page, shots, "counter-metadata")
    assert watcher.sockets, "our page never opened the inspector WebSocket"
    assert watcher.frames > 0
    assert watcher.failures == []


async def test_notes_database(dashboard: tuple[Any, Watcher], seeded: Seeded, shots: Path) -> None:
    page, watcher = dashboard
    frame = await open_actor(page, seeded, "notes")
    labels = await tab_labels(page)
    assert "Database" in labels and "State" not in labels, labels  # notes has no state
    database = await open_tab(page, frame, "Database", "database")
    await database.locator("button[data-table='notes']").click()
    await database.get_by_text("hello dashboard").wait_for()
    await database.locator("#sql").fill("SELECT count(*) AS total FROM notes")
    await database.get_by_role("button", name="Run").click()
    await database.get_by_role("columnheader", name="total").wait_for()
    await shoot(page, shots, "notes-database")
    assert watcher.failures == []


async def test_worker_queue(dashboard: tuple[Any, Watcher], seeded: Seeded, shots: Path) -> None:
    page, watcher = dashboard
    frame = await open_actor(page, seeded, "worker")
    assert "Queue" in await tab_labels(page)
    queue = await open_tab(page, frame, "Queue", "queue")
    await queue.get_by_text("1 message queued").wait_for()
    await queue.get_by_role("cell", name="reports", exact=True).wait_for()
    await shoot(page, shots, "worker-queue")

    # Live: a second message shows up without a reload (the inspector socket's push).
    await seeded.client.worker.get_or_create([KEY]).send("reports", {"week": 2})
    await queue.get_by_text("2 messages queued").wait_for()
    state = await open_tab(page, frame, "State", "state")
    await state.get_by_text('"processed": 0').wait_for()
    assert watcher.failures == []


async def test_timer_schedules(dashboard: tuple[Any, Watcher], seeded: Seeded, shots: Path) -> None:
    page, watcher = dashboard
    frame = await open_actor(page, seeded, "timer")
    assert "Schedules" in await tab_labels(page)
    schedules = await open_tab(page, frame, "Schedules", "schedules")
    await schedules.get_by_role("cell", name="fire", exact=True).wait_for()
    await schedules.get_by_text('["an hour later"]').wait_for()
    await shoot(page, shots, "timer-schedules")

    # Shown with our page (no polling, an inspector socket that keeps nobody awake), the
    # sleepy timer (sleep_timeout 1 s) falls asleep, stays asleep, and shows as sleeping.
    await eventually(lambda: seeded.asleep("timer"), timeout=30)
    row = page.locator(f"a[href*='actorId={seeded.ids['timer']}']")
    await row.locator("svg[data-icon='moon']").wait_for()
    for _ in range(30):  # three sleep timeouts: a wake would show
        await asyncio.sleep(0.1)
        assert seeded.asleep("timer")
    await shoot(page, shots, "timer-asleep")
    assert watcher.failures == []


async def test_order_workflow(dashboard: tuple[Any, Watcher], seeded: Seeded, shots: Path) -> None:
    page, watcher = dashboard
    frame = await open_actor(page, seeded, "order")
    labels = await tab_labels(page)
    assert labels[:2] == ["Workflow", "State"], labels
    workflow = await open_tab(page, frame, "Workflow", "workflow")
    for step in ("charge", "ship"):
        await workflow.get_by_role("cell", name=step, exact=True).wait_for()
    await workflow.get_by_text("Workflow state: completed").wait_for()
    await shoot(page, shots, "order-workflow")
    assert watcher.failures == []


async def test_legacy_fallback_has_every_tab(
    dashboard: tuple[Any, Watcher], seeded: Seeded, shots: Path
) -> None:
    """When our page cannot load, the dashboard offers its inline ("legacy") inspector; with
    the version we report it negotiates inspector protocol v6 and shows the same tabs."""
    page, watcher = dashboard
    context = page.context
    before = len(watcher.failures)

    async def no_page(route: Any) -> None:
        await route.abort()

    await context.route(re.compile(r".*/inspector/ui/.*"), no_page)
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    try:
        await page.goto(f"{seeded.engine.endpoint}/ui/")
        await page.get_by_text("timer", exact=True).first.click()
        row = page.locator("a[href*='actorId=']", has_text=KEY).first
        await row.click(position={"x": 20, "y": 16})
        # The dashboard waits 8 s for the page, then offers its own inspector.
        await page.get_by_role("button", name="Use legacy inspector").click()
        await page.get_by_role("tab", name="Schedules").click()
        await page.get_by_test_id("schedules-tab").get_by_text("fire", exact=True).wait_for()
        labels = [label.strip() for label in await page.get_by_role("tab").all_inner_texts()]
        assert labels == ["State", "Queue", "Schedules", "Connections", "Console", "Metadata"]
        await shoot(page, shots, "timer-legacy-schedules")
        assert any(url.endswith("/inspector/connect?protocol_version=6") for url in sockets)
    finally:
        await context.unroute(re.compile(r".*/inspector/ui/.*"), no_page)
        # Only the page requests this test aborted may have failed.
        caused = watcher.failures[before:]
        del watcher.failures[before:]
    assert all("/inspector/ui/" in failure for failure in caused), caused

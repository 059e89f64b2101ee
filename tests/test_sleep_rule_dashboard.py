"""The engine's dashboard watching a sleepy actor of ours: it sleeps, stays asleep, and the
dashboard shows it sleeping (issue 18, point 3).

A real engine runs a registry with one actor that sleeps after 1 s idle (as
``examples/timer.py``) as an envoy; Debian's chromium (playwright, never a browser download)
opens the dashboard on that actor. The dashboard keeps the actor's inspector socket open (our
inspector page at ``/inspector/ui/``, in its iframe): the socket must neither keep the actor
awake nor wake it again after it sleeps (through the engine it hibernates at the gateway).
Wakes are counted with ``on_wake`` over several sleep timeouts; no duration is asserted.
A screenshot of the sleeping actor goes to the folder the test prints.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_fixtures import FAST_RETRY, engine_env
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, Watcher, chromium_or_skip

from conftest import eventually
from rivetkit import ActorOptions, actor, setup
from rivetkit.client import Client
from rivetkit.drivers.engine import LocalEngine

pytestmark = pytest.mark.asyncio

KEY = f"nap-{uuid.uuid4().hex[:8]}"
SLEEP_TIMEOUT = 1.0

sleeper = actor("sleeper", state={"n": 0}, options=ActorOptions(sleep_timeout=SLEEP_TIMEOUT))
WAKES: list[str] = []


@sleeper.on_wake
def woke(c: Any) -> None:
    WAKES.append(c.actor_id)


@sleeper.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


registry = setup(use=[sleeper])


def screenshots() -> Path:
    chosen = os.environ.get("DASHBOARD_SCREENSHOTS")
    folder = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="rivetkit-sleep-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_the_dashboard_shows_a_sleeping_actor_asleep(
    own_engine: LocalEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    folder = screenshots()
    with capsys.disabled():
        print(f"\nsleep-rule dashboard screenshots: {folder}", flush=True)
    origin = own_engine.endpoint

    async def local_only(route: Any) -> None:
        if route.request.url.startswith(origin) or route.request.url.startswith("ws"):
            await route.continue_()
        else:
            await route.abort()

    async with (
        engine_env(registry, own_engine) as env,
        Client(own_engine.endpoint, pool=env.pool, retry=FAST_RETRY) as client,
        async_playwright() as playwright,
    ):
        handle = client.sleeper.get_or_create([KEY])
        assert await handle.bump() == 1
        actor_id = await handle.resolve()
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
            await page.goto(f"{origin}/ui/")
            await page.get_by_text("sleeper", exact=True).first.click()
            row = page.locator("a[href*='actorId=']", has_text=KEY).first
            await row.click(position={"x": 20, "y": 16})
            await page.get_by_role("tab", name="State").wait_for()
            await eventually(lambda: bool(watcher.sockets), timeout=TIMEOUT_MS / 1000)

            def asleep() -> bool:
                return actor_id not in env.runtime.instances

            # Watched, idle: it sleeps after sleep_timeout (the inspector socket is no
            # connection), however often it was woken to be shown.
            await eventually(asleep, timeout=60)
            wakes = WAKES.count(actor_id)
            await asyncio.sleep(5 * SLEEP_TIMEOUT)  # five sleep timeouts, still watched
            assert WAKES.count(actor_id) == wakes, "the dashboard woke it again"
            assert asleep()
            await page.screenshot(path=str(folder / "sleeping-actor.png"))  # the moon icon
            # The dashboard's own Metadata tab reads the engine: "Sleeping since ...".
            await page.get_by_role("tab", name="Metadata").click()
            await page.get_by_text("Sleeping since", exact=True).first.wait_for()
            await page.screenshot(path=str(folder / "sleeping-metadata.png"))
            assert WAKES.count(actor_id) == wakes and asleep()
            assert watcher.failures == []
        finally:
            await browser.close()

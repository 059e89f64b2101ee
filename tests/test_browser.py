"""A real headless Chromium calls an actor from a web page (issue 14, build 3).

The actor server runs on 127.0.0.1 with its default origins (loopback pages). A second tiny
server serves one page; its script calls ``increment`` with ``fetch`` (JSON, so the browser
sends a preflight first) and over a ``/connect`` WebSocket (Init, then an action). From
``http://localhost:PORT`` both work; from ``http://evil.test:PORT`` (mapped to 127.0.0.1 by
Chromium's resolver rules, as a DNS-rebinding or foreign page would be) neither does, and the
actor's count does not move.

Debian's ``chromium`` driven by playwright (never a browser download). Without it the test
is skipped, except in CI (``CI=true``), where it fails instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from browser_helpers import CHROMIUM, chromium_or_skip, serve_html
from browser_helpers import CHROMIUM_ARGS as BROWSER_ARGS
from server_actors import registry

from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM_ARGS = [*BROWSER_ARGS, "--host-resolver-rules=MAP evil.test 127.0.0.1"]
QUERY = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key={key}"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rivetkit browser test</title></head><body>
<script>
async function callActor(base, key) {
  const query = "?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=" + key;
  const out = {};
  try {
    const response = await fetch(base + "/gateway/counter/action/increment" + query, {
      method: "POST",
      headers: {"Content-Type": "application/json", "x-rivet-encoding": "json"},
      body: JSON.stringify({args: [2]}),
    });
    out.fetch = {status: response.status, body: await response.json()};
  } catch (error) {
    out.fetch = {error: String(error)};
  }
  out.ws = await new Promise((resolve) => {
    const seen = [];
    const ws = new WebSocket(
      base.replace("http", "ws") + "/gateway/counter/connect" + query,
      ["rivet", "rivet_encoding.json"],
    );
    const timer = setTimeout(() => resolve({error: "timeout", seen}), 5000);
    const done = (result) => { clearTimeout(timer); resolve(result); };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      seen.push(message.body.tag);
      if (message.body.tag === "Init") {
        ws.send(JSON.stringify({body: {tag: "ActionRequest",
          val: {id: ["$BigInt", "0"], name: "increment", args: [3]}}}));
      } else if (message.body.tag === "ActionResponse") {
        ws.close(1000);
        done({seen, output: message.body.val.output});
      }
    };
    ws.onerror = () => done({error: "error", seen});
    ws.onclose = (event) => done({error: "closed", code: event.code, seen});
  });
  return out;
}
</script></body></html>
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def page_port() -> AsyncIterator[int]:
    """A tiny HTTP server answering every GET with :data:`PAGE`."""
    async with serve_html(PAGE) as port:
        yield port


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


async def count(endpoint: str, key: str) -> int:
    """The counter's value, read by a non-browser client."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{endpoint}/gateway/counter/action/getCount?" + QUERY.format(key=key),
            json={"args": []},
        )
        assert response.status_code == 200, response.text
        return int(response.json()["output"])


async def run_page(browser: Any, page_url: str, endpoint: str, key: str) -> dict[str, Any]:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(page_url)
        result: dict[str, Any] = await page.evaluate(
            "([base, key]) => callActor(base, key)", [endpoint, key]
        )
        return result
    finally:
        await context.close()


async def test_loopback_page_calls_the_actor(browser: Any, page_port: int, endpoint: str) -> None:
    result = await run_page(browser, f"http://localhost:{page_port}/", endpoint, "browser-ok")
    assert result["fetch"] == {"status": 200, "body": {"output": 2}}, result
    assert result["ws"]["seen"][0] == "Init", result
    assert result["ws"]["output"] == 5, result
    assert await count(endpoint, "browser-ok") == 5


async def test_foreign_page_cannot(browser: Any, page_port: int, endpoint: str) -> None:
    result = await run_page(browser, f"http://evil.test:{page_port}/", endpoint, "browser-evil")
    assert "error" in result["fetch"], result  # the preflight was refused: fetch throws
    assert result["ws"]["error"] in ("error", "closed"), result
    assert result["ws"]["seen"] == [], result  # the socket never opened
    assert await count(endpoint, "browser-evil") == 0

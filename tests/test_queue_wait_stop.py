"""An HTTP queue send with ``wait`` whose actor stops before the message is completed
(real server on 127.0.0.1).

As in RivetKit: the waiting request is an in-flight HTTP request, so it keeps the actor from
falling asleep when idle; when the actor is made to stop anyway (``c.sleep()``), its grace
period waits for the request, then the actor's completion waiters are dropped and the sender
gets ``queue.completion_waiter_dropped``. The message itself is durable: it stays queued and
the next generation receives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from rivetkit import ActorOptions, actor, setup
from rivetkit.runtime.instance import Phase
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

holder = actor(
    "qholder",
    state={},
    options=ActorOptions(sleep_timeout=0.1, sleep_grace_period=0.5),
)


@holder.action
def nap(c: Any) -> None:
    c.sleep()


@holder.action
async def take(c: Any) -> Any:
    message = await c.queue.try_next(completable=True)
    if message is None:
        return None
    await message.complete({"ok": message.body})
    return message.body


registry = setup(use=[holder])
QUERY = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key={key}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


async def test_waiting_sender_and_a_forced_sleep(endpoint: str) -> None:
    runtime = endpoint.app.runtime  # type: ignore[attr-defined]
    base = f"{endpoint}/gateway/qholder"
    query = QUERY.format(key="w")
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.post(f"{base}/action/take?{query}", json={"args": []})).json() == {
            "output": None
        }
        (instance,) = [i for i in runtime.instances.values() if i.name == "qholder"]
        waiting = asyncio.ensure_future(
            http.post(f"{base}/queue/jobs?{query}", json={"body": {"n": 1}, "wait": True})
        )
        await asyncio.sleep(0.5)  # five sleep timeouts: the waiting sender keeps it awake
        assert instance.phase == Phase.STARTED and not waiting.done()
        await http.post(f"{base}/action/nap?{query}", json={"args": []})
        response = await asyncio.wait_for(waiting, 20)
        assert response.status_code == 400
        assert (response.json()["group"], response.json()["code"]) == (
            "queue",
            "completion_waiter_dropped",
        )
        assert instance.phase == Phase.TERMINATED
        # The message was stored: the next generation receives (and completes) it.
        taken = await http.post(f"{base}/action/take?{query}", json={"args": []})
        assert taken.json() == {"output": {"n": 1}}

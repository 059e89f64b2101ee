"""Workflows across real process deaths: a ``rivetkit serve tests/apps/workflow_app.py`` child
on a temporary data directory, SIGKILLed and started again on the same directory.

Step bodies append to an effects file outside the actor (``RIVETKIT_WF_EFFECTS``), which
counts how often each body really ran:

* SIGKILL while step ``two`` runs: after the restart ``two`` runs again (its attempt was not
  recorded), ``one`` (completed before the kill) does not, and the workflow finishes;
* SIGKILL while the workflow sleeps: the restarted process wakes the actor at the deadline by
  itself (the driver's alarm, no request needed) and the workflow finishes;
* in one process, the actor goes to sleep during the workflow's sleep and the alarm wakes it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_queue_crash import kill, server

from rivetkit.client import Client

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
]

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "apps" / "workflow_app.py"
TOKEN = "workflow-durability-token"
TIMEOUT = 30.0


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects.txt"
    path.touch()
    monkeypatch.setenv("RIVETKIT_WF_EFFECTS", str(path))
    monkeypatch.setenv("_RIVET_TEST_INSPECTOR_TOKEN", TOKEN)
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


async def until(check, what: str, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def workflow_state(endpoint: str, actor_id: str) -> str | None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        answer = await http.get(f"{endpoint}/gateway/{actor_id}/inspector/workflow-history")
    assert answer.status_code == 200, answer.text
    state: str | None = answer.json()["workflowState"]
    return state


async def test_sigkill_inside_a_step_runs_it_again_and_not_the_one_before(
    tmp_path: Path, effects: Path
) -> None:
    data = tmp_path / "data"
    with server(data, APP) as (endpoint, process):
        async with Client(endpoint) as client:
            crashy = client.crashy.get_or_create(["k"])
            assert await crashy.done() == []
            await until(lambda: "two-start" in lines(effects), "step two to start")
            kill(process)  # inside step two; step one completed before it started
    assert lines(effects) == ["one", "two-start"]

    with server(data, APP) as (endpoint, _process):
        async with Client(endpoint) as client:
            crashy = client.crashy.get_or_create(["k"])
            assert await crashy.done() == ["one"]  # step one's state change was saved with it
            await until(lambda: lines(effects).count("two-start") == 2, "step two to run again")
            effects.with_suffix(".release").touch()
            await until(lambda: "three" in lines(effects), "step three")

            async def finished() -> bool:
                return await crashy.done() == ["one", "two", "three"]

            await until(finished, "the state of the three steps")
    assert lines(effects) == ["one", "two-start", "two-start", "two-end", "three"]


async def test_sigkill_during_a_sleep_the_alarm_fires_after_the_restart(
    tmp_path: Path, effects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVETKIT_WF_NAP", "3")
    data = tmp_path / "data"
    with server(data, APP) as (endpoint, process):
        async with Client(endpoint) as client:
            napper = client.napper.get_or_create(["k"])
            actor_id = await napper.resolve()
            assert await napper.woke() is False
            await until(lambda: "before" in lines(effects), "step before")

            async def sleeping() -> bool:
                return await workflow_state(endpoint, actor_id) == "sleeping"

            await until(sleeping, "the workflow to record its sleep")
            kill(process)
    assert "after" not in lines(effects)

    with server(data, APP) as (endpoint, _process):
        # No request: the alarm of the sleep's deadline starts the actor in this process.
        await until(lambda: "after" in lines(effects), "the alarm to wake the workflow")
        async with Client(endpoint) as client:
            assert await client.napper.get(["k"]).woke() is True
    assert lines(effects).count("before") == 1
    assert lines(effects).count("after") == 1


async def test_the_actor_sleeps_during_the_workflow_sleep_and_wakes_at_its_end(
    tmp_path: Path, effects: Path
) -> None:
    with server(tmp_path / "data", APP) as (endpoint, _process):
        async with Client(endpoint) as client:
            napper = client.napper.get_or_create(["k"])
            assert await napper.woke() is False
        await until(lambda: "after" in lines(effects), "the workflow to finish")
        # The actor slept in the middle (later wakes may add more "slept" lines).
        assert lines(effects)[:3] == ["before", "slept", "after"]
        async with Client(endpoint) as client:
            assert await client.napper.get(["k"]).woke() is True

"""A reminder survives a SIGKILL: the alarm is stored with the schedule and fires after restart.

Two forms: a real ``rivetkit serve examples/timer.py`` killed with SIGKILL and served again
on the same data directory (real clock, nobody calls the actor after the restart: only the
stored alarm can wake it), and a child process running ``setup_test`` on a data directory,
killed the same way, then reopened here with a fake clock.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_actors import load_example
from test_server_cli import free_port, rivetkit, wait_healthy

from conftest import eventually
from rivetkit.drivers.embedded.driver import DB_FILE_NAME
from rivetkit.protocol import actor_persist
from rivetkit.protocol.values import cbor_loads
from rivetkit.runtime import keys
from rivetkit.testing import setup_test

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parent.parent
TIMER = ROOT / "examples" / "timer.py"
GATEWAY = (
    "/gateway/timer/action/{action}?rvt-namespace=default&rvt-method=getOrCreate"
    "&rvt-runner=default&rvt-key=kill&rvt-crash-policy=sleep"
)


def read_snapshot(data: Path, actor_id: str) -> actor_persist.Actor | None:
    """The actor's persisted snapshot, read beside the running server (WAL readers)."""
    db = sqlite3.connect(f"file:{data / DB_FILE_NAME}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute(
            "SELECT value FROM kv WHERE actor_id = ? AND key = ?", (actor_id, keys.PERSIST)
        ).fetchone()
    finally:
        db.close()
    return None if row is None else actor_persist.ACTOR.decode(row[0])


def test_reminder_fires_after_sigkill_of_the_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    first = rivetkit("serve", str(TIMER), "--port", str(port), "--data", str(data))
    try:
        wait_healthy(port, first)
        response = httpx.post(
            f"http://127.0.0.1:{port}" + GATEWAY.format(action="remindIn"),
            json={"args": [1.5, "survived"]},
        )
        assert response.status_code == 200, response.text
        actor_id = response.headers["x-rivet-actor"]
        first.send_signal(signal.SIGKILL)  # no shutdown, no final save: only what was acked
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    snapshot = read_snapshot(data, actor_id)
    assert snapshot is not None and len(snapshot.scheduled_events) == 1
    assert cbor_loads(snapshot.state) == {"fired": []}
    port2 = free_port()
    second = rivetkit("serve", str(TIMER), "--port", str(port2), "--data", str(data))
    try:
        wait_healthy(port2, second)
        # Nobody calls the actor: the stored alarm wakes it, `fire` runs, and the state is
        # saved (throttle, or the sleep one idle second later).
        deadline = time.monotonic() + 15
        while True:
            snapshot = read_snapshot(data, actor_id)
            assert snapshot is not None
            if cbor_loads(snapshot.state) == {"fired": ["survived"]}:
                break
            assert time.monotonic() < deadline, "the reminder did not fire after the restart"
            time.sleep(0.05)
        assert snapshot.scheduled_events == []
        response = httpx.post(
            f"http://127.0.0.1:{port2}" + GATEWAY.format(action="fired"), json={"args": []}
        )
        assert response.json() == {"output": ["survived"]}
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {examples!r})
    from timer import registry
    from rivetkit.testing import setup_test

    async def main():
        async with setup_test(registry, {data!r}, clock=lambda: {now!r}) as client:
            handle = client.timer.get_or_create("child")
            await handle.remindIn(60, "from the child")
            print(await handle.resolve(), flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.asyncio
async def test_reminder_fires_after_sigkill_of_a_setup_test_process(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    data = tmp_path / "data"
    script = CHILD.format(examples=str(ROOT / "examples"), data=str(data), now=now)
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    try:
        assert child.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        actor_id = line.strip()
        assert actor_id, child.communicate(timeout=30)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    registry = load_example("timer").registry
    clock: list[float] = [now + 30]

    async with setup_test(registry, data, clock=lambda: clock[0]) as client:
        driver: Any = client.runtime.driver
        await driver.poll_alarms()
        assert actor_id not in client.runtime.instances  # not due yet: nothing woke it
        clock[0] = now + 60
        await driver.poll_alarms()
        await eventually(lambda: actor_id in client.runtime.instances)
        instance = client.runtime.instances[actor_id]
        await eventually(lambda: instance.state == {"fired": ["from the child"]})
        assert instance.generation == 2  # woken by the alarm, not by a call
        assert await client.timer.get_for_id(actor_id).fired() == ["from the child"]

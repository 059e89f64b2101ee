"""Queue durability across SIGKILL of a real ``rivetkit serve`` process.

The child serves ``tests/apps/queue_app.py`` on 127.0.0.1; the parent talks to it with the
Python client over HTTP (``POST /queue/{name}``), kills it with SIGKILL, starts a new server on
the same data directory and checks:

* every message whose send was acknowledged is still queued, in FIFO order, exactly once;
* a message received with ``completable=True`` and not completed when the process died is
  delivered again by the next process (and then completed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivetkit.client import ActorError, Client

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
]

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "apps" / "queue_app.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(data_dir: Path, app: Path = APP) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``rivetkit serve`` child of ``app`` on a free port; killed (SIGKILL) on exit if still
    alive. (Also used by ``tests/test_faults_kill.py``.)"""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rivetkit", "serve", str(app), "--host", "127.0.0.1",
         "--port", str(port), "--data", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the server did not start:\n{output}")
            time.sleep(0.05)
        yield endpoint, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=15) == -signal.SIGKILL


async def test_sigkill_loses_no_acknowledged_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    acked: dict[int, list[int]] = {s: [] for s in range(8)}
    with server(data_dir) as (endpoint, process):
        async with Client(endpoint) as client:
            inbox = client.inbox.get_or_create(["crash"])
            await inbox.resolve()

            async def sender(s: int) -> None:
                n = 0
                while True:
                    try:
                        await inbox.send("q", {"s": s, "n": n})
                    except (ActorError, OSError):
                        return  # the server is gone: this send was never acknowledged
                    acked[s].append(n)
                    n += 1

            senders = [asyncio.ensure_future(sender(s)) for s in range(8)]
            while sum(map(len, acked.values())) < 400:
                await asyncio.sleep(0.01)
                assert not all(task.done() for task in senders)
            kill(process)  # mid-load: sends are in flight
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
    with server(data_dir) as (endpoint, _):
        async with Client(endpoint) as client:
            bodies = await client.inbox.get_or_create(["crash"]).drain()
    by_sender: dict[int, list[int]] = {s: [] for s in acked}
    for body in bodies:
        by_sender[body["s"]].append(body["n"])
    for s, numbers in acked.items():
        got = by_sender[s]
        # Everything acknowledged is there, once, in order; at most one more (sent, stored,
        # not yet acknowledged when the process died) per sender.
        assert got[: len(numbers)] == numbers, (s, got[:10], numbers[:10])
        assert len(got) - len(numbers) in (0, 1)
        assert got == list(range(len(got)))


async def test_sigkill_redelivers_an_uncompleted_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with server(data_dir) as (endpoint, process):
        async with Client(endpoint) as client:
            hanger = client.hanger.get_or_create(["crash"])
            await hanger.send("jobs", {"id": 1})
            await hanger.send("jobs", {"id": 2, "hang": True})
            await hanger.send("jobs", {"id": 3})
            deadline = time.monotonic() + 10
            # 1 completed; 2 received, never completed; both saved (seen() alone is the state
            # in memory: a kill before its save landed would lose 2's delivery).
            while await hanger.saved() != [1, 2]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert await hanger.size() == 2  # 2 (in flight) and 3
            kill(process)
    with server(data_dir) as (endpoint, _):
        async with Client(endpoint) as client:
            hanger = client.hanger.get_or_create(["crash"])
            # Waking the actor restarts its run loop: 2 again (completed now), then 3.
            result = await hanger.send("jobs", {"id": 4}, wait=True, timeout=10)
            assert result is not None and result.status == "completed"
            assert result.response == {"done": 4}
            assert await hanger.seen() == [1, 2, 2, 3, 4]
            assert await hanger.size() == 0

"""Typed action calls, ``handle.call(increment, 5)``: at run time against a real server (async
and sync, handles and connections), and under ``mypy --strict`` (argument types and count
checked against the action's definition, the result type inferred)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rivetkit import actor, setup
from rivetkit.client import Client, SyncClient
from rivetkit.server import serve_in_background

typed = actor("typed", state={"count": 0, "log": []})


@typed.action
async def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@typed.action(name="getCount")
def get_count(c: Any) -> int:
    return int(c.state["count"])


@typed.action
def note(c: Any, text: str, times: int = 1) -> list[str]:
    c.state["log"].extend([text] * times)
    return list(c.state["log"])


def not_an_action(c: Any) -> int:
    return 0


registry = setup(use=[typed])


@pytest.mark.asyncio
async def test_call_sends_the_wire_name_and_returns_the_result() -> None:
    async with serve_in_background(registry) as endpoint, Client(str(endpoint)) as client:
        handle = client.typed.get_or_create(["a"])
        assert await handle.call(increment, 5) == 5
        assert await handle.call(increment) == 6
        assert await handle.call(get_count) == 6  # explicit wire name "getCount"
        assert await handle.call(note, "x", times=2) == ["x", "x"]  # keyword put in place
        async with handle.connect() as conn:
            assert await conn.call(increment, 1) == 7
            assert await conn.call(get_count) == 7


@pytest.mark.asyncio
async def test_call_refuses_what_is_not_an_action() -> None:
    async with Client("http://127.0.0.1:9", disable_metadata_lookup=True) as client:
        handle = client.typed.get(["a"])
        with pytest.raises(TypeError, match="not_an_action is not a registered action"):
            await handle.call(not_an_action)
        with pytest.raises(TypeError, match=r"\.action\('increment', \.\.\.\)"):
            await handle.call("increment")  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            await handle.call(increment, 1, 2, 3)  # type: ignore[call-arg]


def test_sync_call() -> None:
    import asyncio
    import threading

    ready = threading.Event()
    stop: list[Any] = []
    endpoint: list[str] = []

    async def serve() -> None:
        async with serve_in_background(registry) as url:
            endpoint.append(str(url))
            done = asyncio.Event()
            stop.append((asyncio.get_running_loop(), done))
            ready.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        with SyncClient(endpoint[0]) as client:
            handle = client.typed.get_or_create(["s"])
            assert handle.call(increment, 2) == 2
            assert handle.call(get_count) == 2
            with handle.connect() as conn:
                assert conn.call(increment) == 3
            with pytest.raises(TypeError, match="not a registered action"):
                handle.call(not_an_action)
    finally:
        loop, done = stop[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(30)


USER_FILE = """
    from typing import Any
    from rivetkit import actor
    from rivetkit.client import Client, SyncClient

    counter = actor("counter", state={"count": 0})

    @counter.action
    async def increment(c: Any, amount: int = 1) -> int:
        return 0

    @counter.action(name="getCount")
    def get_count(c: Any) -> int:
        return 0

    async def main(client: Client) -> None:
        h = client.counter.get_or_create(["k"])
        reveal_type(await h.call(increment, 5))
        reveal_type(await h.call(get_count))
        await h.call(increment, "x")
        await h.call(increment, 1, 2)
        conn = h.connect()
        reveal_type(await conn.call(increment, 2))
        await conn.call(get_count, 1)

    def sync_main(client: SyncClient) -> None:
        h = client.counter.get_or_create(["k"])
        reveal_type(h.call(increment, 5))
        h.call(increment, "x")
        conn = h.connect()
        reveal_type(conn.call(get_count))
        conn.call(increment, amount="y")
"""


def test_mypy_checks_call_against_the_action(tmp_path: Path) -> None:
    source = tmp_path / "user_app.py"
    source.write_text(textwrap.dedent(USER_FILE))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    lines = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if ": " in line]
    revealed = [line for line in lines if line.startswith("note: Revealed type")]
    assert revealed == ['note: Revealed type is "int"'] * 5, result.stdout
    errors = [
        line.split(":")[1]
        for line in result.stdout.splitlines()
        if ": error: " in line and "call-overload" in line
    ]
    # Wrong type, wrong count (async handle, async connection, sync handle, sync connection).
    assert errors == ["20", "21", "24", "29", "32"], result.stdout

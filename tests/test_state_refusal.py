"""Unsaveable state is refused where it is written (issue 14, "seen 1" / "build 1").

An action (or hook) that leaves the state in a form CBOR cannot store fails with
``actor/invalid_state`` naming the offending path, and the state goes back to what it was before
that action, so nothing unsaveable is ever acknowledged or saved later. Checked in-process
(``setup_runtime``), over HTTP against a real server, and across a SIGTERM and a restart of
``rivetkit serve``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from rivetkit import ActorOptions, actor, setup
from rivetkit.client import ActorError, Client
from rivetkit.errors import RivetError
from rivetkit.protocol.values import cbor_loads
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_runtime

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.asyncio

# One definition of the "box" actor, also written to a file for the subprocess test.
BOX_SOURCE = '''
import asyncio

from rivetkit import ActorOptions, UserError, actor, setup


class Custom:
    """Any class instance: CBOR cannot store it."""


def make_box(name="box", **options):
    box = actor(name, state={"count": 0, "items": [1, 2, 3]}, options=ActorOptions(**options))

    @box.action
    def add(c, amount=1):
        c.state["count"] += amount
        return c.state["count"]

    @box.action
    def put_custom(c):
        c.state["count"] += 100  # another change of the same action: undone too
        c.state["v"] = Custom()
        return "ok"

    @box.action
    def put_cycle(c):
        loop = {}
        loop["self"] = loop
        c.state["count"] += 100
        c.state["loop"] = loop
        return "ok"

    @box.action
    def put_nested(c):
        c.state["items"][2] = Custom()
        return "ok"

    @box.action
    def put_then_fail(c):
        c.state["count"] += 100
        c.state["v"] = Custom()
        raise UserError("nope", code="nope")

    @box.action
    async def slow_add(c, amount, delay):
        c.state["count"] += amount
        await asyncio.sleep(delay)
        return c.state["count"]

    @box.action
    async def slow_put_custom(c, delay):
        await asyncio.sleep(delay)
        c.state["v"] = Custom()
        return "ok"

    @box.action(name="getState")
    def get_state(c):
        return c.state

    return box


registry = setup(use=[make_box()])
'''

namespace: dict[str, Any] = {}
exec(compile(BOX_SOURCE, "box_app", "exec"), namespace)
make_box = namespace["make_box"]


def box_registry(**options: Any) -> Any:
    return setup(use=[make_box(**options)])


async def stored_state(client: Any, actor_id: str) -> Any:
    """The state as saved at KV [1] (after flushing the live instance)."""
    from rivetkit.protocol import actor_persist

    instance = await client.runtime.instance(actor_id)
    await instance.flush()
    (raw,) = await client.runtime.driver.kv_get(actor_id, [b"\x01"])
    return cbor_loads(actor_persist.ACTOR.decode(raw).state)


# -- in-process (setup_runtime) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "path", "words"),
    [
        ("put_custom", "state['v']", "Custom"),
        ("put_cycle", "state['loop']['self']", "reference cycle"),
        ("put_nested", "state['items'][2]", "Custom"),
    ],
)
async def test_unsaveable_write_is_refused_and_undone(action: str, path: str, words: str) -> None:
    async with setup_runtime(box_registry()) as client:
        box = client.box.get_or_create(["k"])
        assert await box.add(1) == 1
        with pytest.raises(RivetError) as info:
            await box.action(action)
        error = info.value
        assert (error.group, error.code) == ("actor", "invalid_state")
        assert error.metadata == {"path": path}
        assert path in error.message and words in error.message
        # The whole action is undone (its other change too), later writes work and are saved.
        assert await box.getState() == {"count": 1, "items": [1, 2, 3]}
        assert await box.add(2) == 3
        assert await stored_state(client, await box.resolve()) == {"count": 3, "items": [1, 2, 3]}


async def test_refused_with_durable_replies_nothing_stays() -> None:
    async with setup_runtime(box_registry(durable_replies=True)) as client:
        box = client.box.get_or_create(["k"])
        assert await box.add(1) == 1
        with pytest.raises(RivetError) as info:
            await box.put_custom()
        assert info.value.code == "invalid_state"
        assert await box.add(1) == 2  # the next action does not save the refused change
        assert await stored_state(client, await box.resolve()) == {"count": 2, "items": [1, 2, 3]}


async def test_failing_action_that_broke_the_state_keeps_its_own_error() -> None:
    async with setup_runtime(box_registry()) as client:
        box = client.box.get_or_create(["k"])
        with pytest.raises(RivetError) as info:
            await box.put_then_fail()
        assert (info.value.group, info.value.code) == ("user", "nope")
        assert await box.getState() == {"count": 0, "items": [1, 2, 3]}


async def test_interleaved_action_is_refused_after_a_restore() -> None:
    """A restore undoes what actions in flight wrote since the checkpoint: they are refused."""
    async with setup_runtime(box_registry()) as client:
        box = client.box.get_or_create(["k"])
        slow = asyncio.ensure_future(box.slow_add(5, 0.2))
        await asyncio.sleep(0.05)  # slow_add has written and is waiting
        with pytest.raises(RivetError) as info:
            await box.put_custom()
        assert info.value.code == "invalid_state"
        with pytest.raises(RivetError) as info:
            await slow
        assert info.value.code == "invalid_state"
        assert info.value.metadata == {"path": None, "restored": True}
        assert await box.getState() == {"count": 0, "items": [1, 2, 3]}
        # An action that only starts after the restore is not affected.
        assert await box.slow_add(1, 0.01) == 1


async def test_serial_actor_restores_only_the_failing_action() -> None:
    async with setup_runtime(box_registry(serial=True)) as client:
        box = client.box.get_or_create(["k"])
        first = asyncio.ensure_future(box.slow_add(5, 0.05))
        second = asyncio.ensure_future(box.slow_put_custom(0.01))
        assert await first == 5
        with pytest.raises(RivetError):
            await second
        assert await box.getState() == {"count": 5, "items": [1, 2, 3]}


async def test_on_connect_that_breaks_the_state_refuses_the_connection() -> None:
    hooked = actor("hooked", state={"n": 0})

    @hooked.on_connect
    def on_connect(c: Any, conn: Any) -> None:
        c.state["n"] += 1
        if conn.params == "bad":
            c.state["bad"] = object()

    @hooked.action
    def n(c: Any) -> int:
        return int(c.state["n"])

    async with setup_runtime(setup(use=[hooked])) as client:
        handle = client.hooked.get_or_create()
        instance = await client.runtime.instance(await handle.resolve())
        await instance.connect("good")
        with pytest.raises(RivetError) as info:
            await instance.connect("bad")
        assert info.value.code == "invalid_state"
        assert info.value.metadata == {"path": "state['bad']"}
        assert await handle.n() == 1
        assert len(instance.conns) == 1


async def test_scheduled_action_that_breaks_the_state_is_undone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timed = make_box("timed")

    @timed.action
    async def later(c: Any, action: str) -> None:
        await c.schedule.after(0, action)

    now = [1_000_000.0]
    async with setup_runtime(setup(use=[timed]), clock=lambda: now[0]) as client:
        handle = client.timed.get_or_create()
        assert await handle.add(1) == 1
        await handle.later("put_custom")
        now[0] += 1
        await client.runtime.driver.poll_alarms()
        for _ in range(100):
            if "state['v']" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "state['v']" in caplog.text
        assert await handle.getState() == {"count": 1, "items": [1, 2, 3]}
        assert await stored_state(client, await handle.resolve()) == {
            "count": 1,
            "items": [1, 2, 3],
        }


async def test_run_loop_gets_the_error_from_save_state_and_saves_recover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    looper = actor("looper", state={"n": 0}, options=ActorOptions(state_save_interval=0.01))
    seen: list[str] = []

    @looper.run
    async def run(c: Any) -> None:
        c.state["n"] = 1
        c.state["bad"] = {1, object}  # a set holding a class: unsaveable
        try:
            await c.save_state(immediate=True)
        except RivetError as exc:
            seen.append(exc.code)
        await asyncio.sleep(0.05)
        c.state["n"] = 2
        c.state["later"] = object()  # no action checks it: the save restores the checkpoint
        await asyncio.sleep(10)

    @looper.action
    def get(c: Any) -> Any:
        return c.state

    caplog.set_level(logging.ERROR, logger="rivetkit.actor")
    async with setup_runtime(setup(use=[looper])) as client:
        handle = client.looper.get_or_create()
        actor_id = await handle.resolve()
        await handle.get()  # wakes the actor: run starts
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == ["invalid_state"]
        await asyncio.sleep(0.1)
        instance = await client.runtime.instance(actor_id)
        await instance.flush()
        assert "state['later']" in caplog.text
        assert await stored_state(client, actor_id) == {"n": 0}


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


EDGE_VALUES: dict[str, Any] = {
    "deep_ok": _nested(200),
    "deep_bad": _nested(300),
    "big_int_ok": 10**600,
    "big_int_bad": 10**5000,
    "text": ["é中文🙂" * 50 for _ in range(20)],  # non-ASCII text: the exact check decides
    "mapping": __import__("types").MappingProxyType({"a": 1}),  # only the save's encoding takes
}


@pytest.mark.parametrize(
    ("kind", "refused"),
    [
        ("deep_ok", False),
        ("deep_bad", True),
        ("big_int_ok", False),
        ("big_int_bad", True),
        ("text", False),
        ("mapping", False),
    ],
)
async def test_the_check_refuses_exactly_what_the_save_refuses(kind: str, refused: bool) -> None:
    edge = actor("edge", state={"n": 0})

    @edge.action
    def put(c: Any, name: str) -> None:
        c.state["n"] += 1
        c.state["v"] = EDGE_VALUES[name]

    @edge.action
    def n(c: Any) -> int:
        return int(c.state["n"])

    async with setup_runtime(setup(use=[edge])) as client:
        handle = client.edge.get_or_create()
        if refused:
            with pytest.raises(RivetError) as info:
                await handle.put(kind)
            assert info.value.code == "invalid_state"
            assert info.value.metadata["path"].startswith("state['v']")
            assert await handle.n() == 0
        else:
            await handle.put(kind)
            assert await handle.n() == 1
            instance = await client.runtime.instance(await handle.resolve())
            await instance.flush()  # the save takes it


# -- a real server ---------------------------------------------------------------------------


async def test_http_client_gets_invalid_state_with_its_path() -> None:
    async with serve_in_background(box_registry()) as endpoint, Client(endpoint) as client:
        box = client.box.get_or_create(["http"])
        assert await box.add(1) == 1
        with pytest.raises(ActorError) as info:
            await box.put_nested()
        error = info.value
        assert (error.group, error.code, error.status) == ("actor", "invalid_state", 500)
        assert error.metadata == {"path": "state['items'][2]"}
        assert "state['items'][2]" in error.message
        conn = await box.connect()
        try:
            with pytest.raises(ActorError) as info:
                await conn.put_custom()
            assert info.value.code == "invalid_state"
            assert await conn.getState() == {"count": 1, "items": [1, 2, 3]}
        finally:
            await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(app: Path, data: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "rivetkit", "serve", str(app), "--data", str(data)]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not start")


async def test_no_acknowledged_write_is_lost_across_sigterm_and_restart(tmp_path: Path) -> None:
    app = tmp_path / "box_app.py"
    app.write_text(textwrap.dedent(BOX_SOURCE))
    data = tmp_path / "data"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_server(app, data, port)
    acknowledged = 0
    try:
        async with Client(endpoint) as client:
            box = client.box.get_or_create(["restart"])
            for _ in range(3):
                acknowledged = await box.add(1)
            with pytest.raises(ActorError) as info:
                await box.put_custom()
            assert info.value.code == "invalid_state"
            for _ in range(2):
                acknowledged = await box.add(1)  # later good writes are kept
        server.send_signal(signal.SIGTERM)
        stderr = server.communicate(timeout=30)[1].decode()
        assert server.returncode == 0, stderr
        assert "final save failed" not in stderr
        assert "saving the state failed" not in stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert acknowledged == 5
    server = start_server(app, data, port)
    try:
        async with Client(endpoint) as client:
            box = client.box.get_or_create(["restart"])
            assert await box.getState() == {"count": 5, "items": [1, 2, 3]}
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)

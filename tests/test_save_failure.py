"""A save that fails (disk full, I/O error) never leaves the actor acknowledging writes it
cannot keep (issue 14, "build 1").

The fault is injected through the driver: :class:`FaultyDriver` is the embedded driver whose
KV batch writes raise ``OSError(ENOSPC)`` while ``failing`` is set. While saves fail, actions
that change the state answer ``actor/state_save_failed`` (and are undone), actions that only
read keep working, the save is retried, and everything works again once storage recovers.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rivetkit import ActorOptions, actor, setup
from rivetkit.client import ActorError, Client
from rivetkit.drivers.embedded import EmbeddedDriver
from rivetkit.errors import RivetError
from rivetkit.protocol import actor_persist
from rivetkit.protocol.values import cbor_loads
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_runtime

pytestmark = pytest.mark.asyncio

INTERVAL = 0.02


class FaultyDriver(EmbeddedDriver):
    """The embedded driver, whose KV writes fail while :attr:`failing` is set."""

    failing = False
    failures = 0

    async def kv_write(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]] = (),
        deletes: Sequence[bytes] = (),
    ) -> None:
        if self.failing:
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        await super().kv_write(actor_id, puts, deletes)


def ledger_registry(**options: Any) -> Any:
    ledger = actor(
        "ledger",
        state={"n": 0},
        options=ActorOptions(state_save_interval=INTERVAL, **options),
    )

    @ledger.action
    def add(c: Any, amount: int = 1) -> int:
        c.state["n"] += amount
        return int(c.state["n"])

    @ledger.action
    def get(c: Any) -> int:
        return int(c.state["n"])

    @ledger.action
    async def slow_add(c: Any, amount: int, delay: float) -> int:
        c.state["n"] += amount
        await asyncio.sleep(delay)
        return int(c.state["n"])

    return setup(use=[ledger])


async def stored_n(driver: EmbeddedDriver, actor_id: str) -> int:
    (raw,) = await driver.kv_get(actor_id, [b"\x01"])
    return int(cbor_loads(actor_persist.ACTOR.decode(raw).state)["n"])


async def until(condition: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_writes_refused_while_saves_fail_then_accepted_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rivetkit.actor")
    driver = FaultyDriver(tmp_path)
    async with setup_runtime(ledger_registry(), driver=driver) as client:
        ledger = client.ledger.get_or_create(["a"])
        assert await ledger.add(1) == 1
        actor_id = await ledger.resolve()
        await until(lambda: _is(stored_n(driver, actor_id), 1))

        driver.failing = True
        # Acknowledged before any save failed: it is kept in memory and saved later.
        assert await ledger.add(1) == 2
        await until(lambda: _true(driver.failures >= 2))  # a save failed and was retried

        with pytest.raises(RivetError) as info:
            await ledger.add(10)
        error = info.value
        assert (error.group, error.code) == ("actor", "state_save_failed")
        assert "No space left on device" in error.message
        assert error.metadata == {"cause": "OSError"}
        assert await ledger.get() == 2  # reads still work, and the refused write is undone

        driver.failing = False
        await until(lambda: _is(stored_n(driver, actor_id), 2))  # the retry saved the ack'd write
        assert await ledger.add(1) == 3
        await until(lambda: _is(stored_n(driver, actor_id), 3))
    assert "writes are refused until a retry succeeds" in caplog.text
    assert "saving the state works again" in caplog.text


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _true(value: bool) -> bool:
    return value


async def test_final_save_is_retried_within_the_grace_period(tmp_path: Path) -> None:
    driver = FaultyDriver(tmp_path)
    async with setup_runtime(ledger_registry(), driver=driver) as client:
        ledger = client.ledger.get_or_create(["b"])
        assert await ledger.add(5) == 5
        actor_id = await ledger.resolve()
        driver.failing = True
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, setattr, driver, "failing", False)  # storage comes back
    assert driver.failures >= 1
    reopened = EmbeddedDriver(tmp_path)
    await reopened.start(_Idle())
    try:
        assert await stored_n(reopened, actor_id) == 5
    finally:
        await reopened.stop()


class _Idle:
    async def start_actor(self, record: Any, generation: int) -> None: ...
    async def stop_actor(self, actor_id: str, reason: Any) -> None: ...
    async def fire_alarm(self, actor_id: str) -> None: ...


async def test_real_server_answers_503_state_save_failed(tmp_path: Path) -> None:
    driver = FaultyDriver(tmp_path)
    async with (
        serve_in_background(ledger_registry(), driver=driver) as endpoint,
        Client(endpoint) as client,
    ):
        ledger = client.ledger.get_or_create(["http"])
        assert await ledger.add(1) == 1
        driver.failing = True
        await ledger.action("get")  # reads never fail
        await asyncio.sleep(0)
        instance = await endpoint.app.runtime.instance(await ledger.resolve())  # type: ignore[attr-defined]
        instance.mark_dirty()  # force a save attempt
        await until(lambda: _true(driver.failures >= 1))
        with pytest.raises(ActorError) as info:
            await ledger.add(1)
        assert (info.value.code, info.value.status) == ("state_save_failed", 503)
        assert await ledger.action("get") == 1
        driver.failing = False
        await until(lambda: _accepts(ledger))
        assert await ledger.action("get") == 2


async def _accepts(ledger: Any) -> bool:
    try:
        await ledger.add(1)
    except ActorError as exc:
        assert exc.code == "state_save_failed"
        return False
    return True


async def test_final_save_that_never_works_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    driver = FaultyDriver(tmp_path)
    async with setup_runtime(ledger_registry(sleep_grace_period=0.3), driver=driver) as client:
        ledger = client.ledger.get_or_create(["c"])
        assert await ledger.add(1) == 1
        driver.failing = True
        runtime = client.runtime
    assert driver.failures >= 2  # retried within the grace period
    assert runtime.failed_final_saves == 1
    assert "the final save failed" in caplog.text


async def test_action_whose_write_a_refusal_undid_is_refused_too(tmp_path: Path) -> None:
    """A refused write restores the checkpoint, undoing what a concurrent action wrote: that
    action must not be acknowledged either."""
    driver = FaultyDriver(tmp_path)
    async with setup_runtime(ledger_registry(), driver=driver) as client:
        ledger = client.ledger.get_or_create(["d"])
        assert await ledger.add(1) == 1
        driver.failing = True
        instance = await client.runtime.instance(await ledger.resolve())
        instance.mark_dirty()
        await until(lambda: _true(driver.failures >= 1))
        slow = asyncio.ensure_future(ledger.slow_add(5, 0.2))
        await asyncio.sleep(0.05)  # slow_add has written and waits
        with pytest.raises(RivetError) as info:
            await ledger.add(1)
        assert info.value.code == "state_save_failed"
        with pytest.raises(RivetError) as info:
            await slow
        assert info.value.code == "state_save_failed"
        assert await ledger.get() == 1
        driver.failing = False

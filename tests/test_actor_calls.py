"""``c.client()``: actors calling actors in embedded mode.

In process with :func:`rivetkit.testing.setup_test` (outer client in every encoding) and on a
real server (``serve_in_background``): calls, typed ``call``, ``get_for_id``/``resolve``,
``connect()`` with events, queue ``send``; a callee's user error reaches the outer client
unchanged; a call to self and a cycle A -> B -> A are answered for non-serial actors and
refused at once with ``actor/call_cycle`` for serial ones; a callee that sleeps between two
calls is woken; ``setup_runtime`` refuses ``c.client()`` clearly.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from rivetkit.client import ActorError, Client
from rivetkit.errors import RivetError
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_runtime, setup_test
from tests.actor_calls_app import registry

pytestmark = pytest.mark.asyncio

ENCODINGS = ["json", "cbor", "bare"]


async def expect_error(call: Any, group: str, code: str) -> ActorError:
    with pytest.raises(ActorError) as info:
        await call
    assert (info.value.group, info.value.code) == (group, code), info.value
    return info.value


async def check_calls(client: Client) -> None:
    """The whole API through ``c.client()``, asked from ``client``."""
    a = client.acct.get_or_create(["a"])
    assert await a.call_add("b", 5) == 5
    assert await a.call_add("b", 2) == 7
    assert await client.acct.get_or_create(["b"]).add(0) == 7
    assert await a.call_typed("b", 1) == 8
    assert await a.same_client() is True
    actor_id, value = await a.by_id("b")
    assert actor_id == await client.acct.get_or_create(["b"]).resolve()
    assert value == 8
    assert await a.listen("b", "hello") == ["hello"]
    await a.post("q", {"x": 1, "raw": b"\x00\x01"})
    assert await client.acct.get_or_create(["q"]).take() == {"x": 1, "raw": b"\x00\x01"}


async def check_errors_and_cycles(client: Client) -> None:
    a = client.acct.get_or_create(["e"])
    error = await expect_error(a.relay_fail("f"), "user", "bad_luck")
    assert error.message == "no luck"
    assert error.metadata == {"tries": 3}
    # A call to itself and a cycle through another actor: answered (actions interleave).
    assert await a.add_to_self(3) == 3
    assert await a.round_trip("r") == 4
    # Serial: refused at once, naming the chain, not after action_timeout (5 s).
    started = time.monotonic()
    s = client.ser.get_or_create(["s"])
    error = await expect_error(s.outer(), "actor", "call_cycle")
    assert error.metadata["chain"] == ["ser['s']", "ser['s']"]
    assert "serial" in error.message
    error = await expect_error(s.outer_via("v"), "actor", "call_cycle")
    assert error.metadata["chain"] == ["ser['s']", "ser['s']"]
    assert time.monotonic() - started < 4.0
    # A serial actor calling another serial actor is no cycle.
    assert await s.outer_other("t") == "inner"
    # The serial actor is free again.
    assert await s.inner() == "inner"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_calls_in_process(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        await check_calls(t)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_errors_and_cycles_in_process(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        await check_errors_and_cycles(t)


async def test_callee_sleeps_and_wakes() -> None:
    async with setup_test(registry) as t:
        a = t.acct.get_or_create(["w"])
        assert await a.bump_sleepy("z") == {"wakes": 1, "n": 1}
        sleepy_id = await t.sleepy.get_or_create(["z"]).resolve()
        await t.advance(5)  # idle past sleep_timeout (1 s): it sleeps
        assert sleepy_id not in t.runtime.instances
        assert await a.bump_sleepy("z") == {"wakes": 2, "n": 2}
        assert sleepy_id in t.runtime.instances


async def test_app_client_is_the_actors_client() -> None:
    async with setup_test(registry) as t:
        shared = t.app.client()
        assert shared is t.app.client()
        assert await shared.acct.get_or_create(["h"]).call_add("i", 4) == 4
        other = t.app.client(timeout=10.0)
        assert other is not shared
        assert await other.acct.get_or_create(["i"]).add(1) == 5


async def test_real_server() -> None:
    async with serve_in_background(registry) as endpoint, Client(endpoint) as client:
        await check_calls(client)
        await check_errors_and_cycles(client)


async def test_setup_runtime_has_no_client() -> None:
    async with setup_runtime(registry) as r:
        handle = r.acct.get_or_create(["x"])
        with pytest.raises(RivetError) as info:
            await handle.call_add("y", 1)
        assert (info.value.group, info.value.code) == ("actor", "not_configured")
        context = r.runtime.instances[await handle.resolve()].context
        with pytest.raises(RivetError, match="setup_runtime"):
            context.client()

"""Faults on the real engine: the engine process dies and comes back while actors are busy.

A dedicated engine (its own data directory and loopback ports) runs one envoy (this process)
with a few ``ledger`` actors that acknowledge an ``add`` only once its state is saved. Clients
keep adding while the engine is SIGKILLed and started again on the same data and ports: the
envoy reconnects with the same key, the actors answer again, and no acknowledged ``add`` is
lost (an ``add`` whose answer was lost with the engine may or may not have been applied, so
each total lies between the acknowledged and the attempted sums).

The envoy's socket is also cut while an action has KV requests in flight: they are sent
again on the next socket and the action completes with every write in place.

The other faults are covered elsewhere: a socket dropped under a KV request and a malformed
frame in ``test_engine_envoy.py`` (a scripted engine, deterministic), a dropped socket between
requests in ``test_engine.py::test_reconnect_keeps_serving``, and a wrong token, unknown
namespace, unregistered pool or unreachable engine in ``test_engine.py``
(``test_refusals_are_clear``, ``test_engine_with_a_token``) and ``test_engine_cli.py``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from engine_fixtures import engine_binary, envoy, free_port, new_pool

from rivetkit import actor, setup
from rivetkit.client import ActorError, Client, RetryOptions
from rivetkit.drivers.engine import LocalEngine

pytestmark = pytest.mark.asyncio

ledger = actor("ledger", state={"total": 0})


@ledger.action
async def add(c: Any, n: int) -> int:
    c.state["total"] += n
    await c.save_state(immediate=True)
    return int(c.state["total"])


@ledger.action
def total(c: Any) -> int:
    return int(c.state["total"])


kvstress = actor("kvstress", state={})


@kvstress.action(name="writeMany")
async def write_many(c: Any, batches: int, per_batch: int) -> int:
    """Many KV puts, ``per_batch`` of them in flight at once."""
    for b in range(batches):
        await asyncio.gather(
            *(c.kv.put(f"k{b:03d}-{i:03d}", f"{b}.{i}".encode()) for i in range(per_batch))
        )
    return len(await c.kv.list_prefix("k"))


registry = setup(use=[ledger, kvstress])

ACTORS = 4
#: Seconds the whole test may take at most (the engine restart and the envoy's reconnect
#: backoff included); generous for a loaded 2-core machine.
DEADLINE = 120.0


def _engine(data: Path, ports: tuple[int, int, int]) -> LocalEngine:
    guard, peer, metrics = ports
    return LocalEngine(engine_binary(), data, port=guard, api_peer_port=peer, metrics_port=metrics)


async def test_engine_killed_and_restarted_while_actors_are_busy(tmp_path: Path) -> None:
    ports = (free_port(), free_port(), free_port())
    engine = _engine(tmp_path / "engine", ports)
    await asyncio.to_thread(engine.start)
    restarted: LocalEngine | None = None
    acked = [0] * ACTORS
    attempted = [0] * ACTORS
    stop = asyncio.Event()
    retry = RetryOptions(get_attempts=3, get_or_create_attempts=3, interval=0.1)
    try:
        async with (
            envoy(registry, engine, pool="faults") as (_, driver),
            Client(engine.endpoint, pool="faults", encoding="json", retry=retry) as client,
        ):
            assert driver.envoy is not None
            handles = [client.ledger.get_or_create([f"l{i}"]) for i in range(ACTORS)]
            for handle in handles:
                await handle.resolve()

            async def busy(i: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    attempted[i] += n
                    try:
                        await asyncio.wait_for(handles[i].add(n), 20)
                    except Exception:  # the engine is gone: refused, reset, 5xx, timeout
                        await asyncio.sleep(0.1)
                        continue
                    acked[i] += n

            workers = [asyncio.create_task(busy(i)) for i in range(ACTORS)]
            # Busy first, then the engine dies under the load.
            deadline = time.monotonic() + 30
            while min(acked) == 0:
                assert time.monotonic() < deadline, "the actors never answered"
                await asyncio.sleep(0.05)
            connects = driver.envoy.stats["connects"]
            assert engine.process is not None
            engine.process.kill()
            await asyncio.to_thread(engine.process.wait)
            before = list(acked)
            await asyncio.sleep(0.5)  # the clients fail meanwhile; the envoy retries
            restarted = _engine(tmp_path / "engine", ports)
            await asyncio.to_thread(restarted.start)
            back = time.monotonic()
            # The envoy is back (same key) and every actor acknowledges new adds again.
            deadline = time.monotonic() + DEADLINE
            while not (
                driver.envoy.ready
                and driver.envoy.stats["connects"] > connects
                and all(a > b for a, b in zip(acked, before, strict=True))
            ):
                assert time.monotonic() < deadline, (acked, before, driver.status())
                await asyncio.sleep(0.1)
            print(f"every actor answered again {time.monotonic() - back:.1f} s after the restart")
            stop.set()
            await asyncio.gather(*workers)
            totals = [await handle.total() for handle in handles]
            for i in range(ACTORS):
                assert acked[i] <= totals[i] <= attempted[i], (i, acked, totals, attempted)
    finally:
        stop.set()
        if restarted is not None:
            await asyncio.to_thread(restarted.stop)
        await asyncio.to_thread(engine.stop)


async def test_socket_dropped_with_kv_requests_in_flight(rivet_engine: LocalEngine) -> None:
    pool = new_pool()
    async with (
        envoy(registry, rivet_engine, pool=pool) as (_, driver),
        Client(rivet_engine.endpoint, pool=pool, encoding="json") as client,
    ):
        session = driver.envoy
        assert session is not None
        handle = client.kvstress.get_or_create(["cut"])
        await handle.resolve()
        base, connects = session.stats["kv_requests"], session.stats["connects"]
        in_flight: list[int] = []

        async def cut() -> None:
            # Once the action is well under way, with KV requests unanswered right now.
            while session.stats["kv_requests"] < base + 60 or not session._kv:
                await asyncio.sleep(0.0005)
            ws = session._ws
            assert ws is not None
            in_flight.append(len(session._kv))
            ws.transport.abort()

        cutter = asyncio.create_task(cut())
        try:
            assert await handle.writeMany(10, 20) == 200
        finally:
            cutter.cancel()
        assert in_flight and in_flight[0] >= 1, "the socket was not cut under a KV request"
        assert session.stats["connects"] > connects
        assert session.stats["kv_timeouts"] == 0


async def _gateway_that_drops(drops: int) -> tuple[asyncio.Server, list[bytes]]:
    """A gateway stand-in on 127.0.0.1: its first ``drops`` requests get the connection
    closed without an answer (as a kept-alive connection closed by the server just as the
    client reused it); then each gets a JSON action answer."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                requests.append(head.split(b"\r\n", 1)[0])
                if len(requests) <= drops:
                    writer.close()
                    return
                body = b'{"output":42}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, requests


@pytest.mark.parametrize("drops", [1, 2])
async def test_connection_closed_without_an_answer(drops: int) -> None:
    """The client sends a request once more when the gateway closed the connection without
    any byte of an answer (the server never took it); twice is an error."""
    server, requests = await _gateway_that_drops(drops)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(
            f"http://127.0.0.1:{port}", encoding="json", disable_metadata_lookup=True
        ) as client:
            handle = client.get_for_id("ledger", "a1")
            if drops == 1:
                assert await handle.total() == 42
                assert len(requests) == 2
            else:
                with pytest.raises(ActorError) as info:
                    await handle.total()
                assert (info.value.group, info.value.code) == ("client", "http_request_error")
                assert len(requests) == 2
    finally:
        server.close()
        await server.wait_closed()

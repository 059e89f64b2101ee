"""Engine mode at production shape (issue 21): engine nodes on PostgreSQL (+ NATS), envoys
spread over them, faults.

It needs PostgreSQL (``initdb``, ``postgres``) and, for two nodes, ``nats-server`` (see
``tests/cluster_fixtures.py``): a test skips without them, and fails under CI, which installs
both (``require_cluster_tools``).

* one engine node on PostgreSQL (its single-node mode): the state of an actor survives the
  engine stopping and starting again on the same database, its envoy reconnecting;
* the issue's shape, started once for the module (:func:`shape`): two engine nodes on one
  PostgreSQL and one NATS, the lost threshold lowered (``QUICK_LOSS``), three
  ``rivetkit serve --engine`` processes of one pool (two start on node A, one on node B; each
  is given both nodes, its own first), serving ``tests/apps/cluster_app.py``:

  - 500 actors created through node A's gateway answer through node B's (state); a sample
    gets a connection with events, a queue send and a schedule that fires, through B;
  - an envoy SIGKILLed while some of its actors are being incremented: its actors answer
    again from the others with their saved state, no acknowledged increment lost;
  - node B, then node A SIGKILLed and restarted under a steady stream of increments
    (``durable_replies=True``): clients of the live node keep working, the envoys of the
    dead node reconnect to the live one, no acknowledged increment is lost.

The tests of the shape run in file order and share its actors; each also runs alone.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, TypeVar

import pytest
from apps.cluster_app import registry
from cluster_fixtures import Cluster, require_cluster_tools
from engine_fixtures import FAST_RETRY, QUICK_LOSS, ROOT, answered, envoy, new_pool
from test_engine_cli import Serve

from rivetkit.client import Client, RetryOptions
from rivetkit.drivers.engine.api import EngineApi

pytestmark = pytest.mark.asyncio

T = TypeVar("T")


async def _together(calls: Iterable[Awaitable[T]], timeout: float | None = None) -> list[T]:
    """Await ``calls`` concurrently; on the first failure (or after ``timeout`` seconds) cancel
    the others before raising, so no task outlives the test (and its clients)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        done, pending = await asyncio.wait(
            tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        for task in done:
            task.result()  # raises the first failure
        if pending:
            raise TimeoutError(f"{len(pending)} of {len(tasks)} calls still running")
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _needs(nodes: int) -> None:
    require_cluster_tools(nodes)


async def test_single_node_postgres_state_survives_an_engine_restart() -> None:
    _needs(1)
    running = Cluster(1)
    await asyncio.to_thread(running.start)
    try:
        node = running.engines[0]
        pool = new_pool()
        async with envoy(registry, node, pool=pool) as (_, driver):
            async with Client(node.endpoint, pool=pool, retry=FAST_RETRY) as client:
                handle = client.counter.get_or_create(["survivor"])
                for _ in range(3):
                    await handle.increment(2)
                assert (await handle.stats())["count"] == 6
            assert driver.envoy is not None
            connects = driver.envoy.stats["connects"]
            node = await asyncio.to_thread(running.restart, 0)

            async def reconnected() -> None:
                assert driver.envoy is not None
                assert driver.envoy.stats["connects"] > connects

            await answered(reconnected, 60)
            async with Client(node.endpoint, pool=pool, retry=FAST_RETRY) as client:
                handle = client.counter.get_or_create(["survivor"])
                assert (await answered(handle.stats, 60))["count"] == 6
                assert (await handle.increment(1))["count"] == 7
    finally:
        await asyncio.to_thread(running.stop)


APP = ROOT / "tests" / "apps" / "cluster_app.py"
#: Actors created through node A and called through node B (the issue's figure).
ACTORS = 500
#: Actors of that population that also get a connection with events, a queue send and a
#: schedule.
SAMPLE = 20
#: Calls in flight at once while populating and checking the 500.
CONCURRENCY = 40
#: Actors incremented without pause while engine nodes are SIGKILLed and restarted.
WORKERS = 16
#: Retries for handles whose actor may be moving (lost envoy, dead node): ~20 s of tries.
MOVING = RetryOptions(get_attempts=80, get_or_create_attempts=80, interval=0.25)
#: Each envoy's engine nodes, by node index: two envoys start on node A, one on node B;
#: each knows the other node too and fails over to it (``--engine A,B``).
HOMES = (0, 0, 1)


async def _live_envoys(api: EngineApi, pool: str) -> list[str]:
    return [
        item["envoy_key"]
        for item in await api.envoys()
        if item.get("pool_name") == pool and item.get("stop_ts") is None
    ]


class Shape:
    """The module's cluster: two engine nodes on PostgreSQL + NATS and three
    ``rivetkit serve --engine`` envoys of one pool (``HOMES``)."""

    def __init__(self, cluster: Cluster, pool: str) -> None:
        self.cluster = cluster
        self.pool = pool
        self.envoys: list[Serve] = []

    def endpoints(self, home: int) -> str:
        """``--engine`` of an envoy whose first node is ``home``: that node, then the other."""
        nodes = self.cluster.engines
        return ",".join(nodes[i].endpoint for i in (home, 1 - home))

    def client(self, node: int) -> Client:
        """A client of the pool through node ``node``'s gateway."""
        return Client(self.cluster.engines[node].endpoint, pool=self.pool, retry=MOVING)

    def live(self) -> list[Serve]:
        """The envoy processes still running."""
        return [serve for serve in self.envoys if serve.process.poll() is None]

    def start(self) -> None:
        """Register the pool, start the envoys and wait until all three joined."""

        async def joined(count: int) -> None:
            api = EngineApi(self.cluster.engines[0].endpoint)
            try:
                await api.ensure_pool(self.pool)
                if count == 0:
                    return
                deadline = time.monotonic() + 60
                while len(await _live_envoys(api, self.pool)) < count:
                    assert time.monotonic() < deadline, "the envoys did not all join"
                    await asyncio.sleep(0.1)
            finally:
                await api.aclose()

        asyncio.run(joined(0))
        for home in HOMES:
            self.envoys.append(
                Serve(
                    str(APP),
                    *("--engine", self.endpoints(home), "--pool", self.pool, "--port", "0"),
                )
            )
        for serve in self.envoys:
            serve.wait_for(r"health and metrics on", 60)
        asyncio.run(joined(len(HOMES)))

    def stop(self) -> None:
        """SIGKILL the envoys still running (their actors need no drain: the cluster goes)."""
        for serve in self.envoys:
            if serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait()


@pytest.fixture(scope="module")
def shape() -> Iterator[Shape]:
    """Two engine nodes, three envoys: started once for the tests of the issue's shape."""
    _needs(2)
    running = Cluster(2, extra_config=QUICK_LOSS)
    running.start()
    built = Shape(running, new_pool())
    try:
        built.start()
        yield built
    finally:
        built.stop()
        running.stop()


class Population:
    """The ``ACTORS`` counters created through node A: their keys, expected counts, and the
    process each answered from last."""

    def __init__(self, count: int) -> None:
        self.keys = [f"n{i}" for i in range(count)]
        self.counts = [0] * count
        self.pids = [0] * count
        self.created_in = 0.0


@pytest.fixture(scope="module")
def population(shape: Shape) -> Population:
    """``ACTORS`` counters created (and incremented once) through node A's gateway."""
    made = Population(ACTORS)

    async def create() -> None:
        limit = asyncio.Semaphore(CONCURRENCY)
        async with shape.client(0) as via_a:

            async def one(i: int) -> None:
                async with limit:
                    reply = await via_a.counter.get_or_create([made.keys[i]]).increment(1)
                made.counts[i], made.pids[i] = reply["count"], reply["pid"]

            started = time.monotonic()
            await _together(one(i) for i in range(ACTORS))
            made.created_in = time.monotonic() - started

    asyncio.run(create())
    assert made.counts == [1] * ACTORS
    return made


async def test_500_actors_created_through_a_answer_through_b(
    shape: Shape, population: Population
) -> None:
    """Every actor created through node A answers through node B with its state; a sample
    also gets a connection with events, a queue send and a schedule that fires, all
    through B."""
    pids = {serve.process.pid for serve in shape.envoys}
    assert set(population.pids) <= pids
    spread = {pid: population.pids.count(pid) for pid in pids}
    limit = asyncio.Semaphore(CONCURRENCY)
    async with shape.client(0) as via_a, shape.client(1) as via_b:

        async def through_b(i: int) -> None:
            async with limit:
                reply = await via_b.counter.get([population.keys[i]]).increment(1)
            assert reply["count"] == population.counts[i] + 1
            population.counts[i], population.pids[i] = reply["count"], reply["pid"]

        started = time.monotonic()
        await _together(through_b(i) for i in range(ACTORS))
        called_in = time.monotonic() - started

        sample = range(SAMPLE)

        async def events(i: int) -> None:
            handle = via_b.counter.get([population.keys[i]])
            seen: list[int] = []
            got = asyncio.Event()

            def on_count(value: int) -> None:
                seen.append(value)
                got.set()

            async with handle.connect() as conn:
                conn.on("newCount", on_count)
                await conn.stats()  # the connection (and its subscription) is up
                reply = await via_a.counter.get([population.keys[i]]).increment(1)
                await asyncio.wait_for(got.wait(), 30)
            population.counts[i] = reply["count"]
            assert seen == [reply["count"]]

        started = time.monotonic()
        await _together(events(i) for i in sample)

        async def queue_and_schedule(i: int) -> None:
            handle = via_b.counter.get([population.keys[i]])
            result = await handle.send("jobs", {"x": i}, wait=True, timeout=30)
            assert result is not None and result.status == "completed"
            assert result.response == {"doubled": 2 * i}
            await handle.fire_later(0.5)

        await _together(queue_and_schedule(i) for i in sample)

        async def fired(i: int) -> None:
            stats = await via_a.counter.get([population.keys[i]]).stats()
            assert (stats["fired"], stats["processed"]) == (1, 1), stats
            assert stats["count"] == population.counts[i]

        await answered(lambda: _together(fired(i) for i in sample), 30)
        sampled_in = time.monotonic() - started
    print(
        f"\n{ACTORS} actors created through node A in {population.created_in:.1f} s "
        f"(per envoy: {sorted(spread.values(), reverse=True)}), all called through node B "
        f"in {called_in:.1f} s; {SAMPLE} with events, a queue send and a schedule through B "
        f"in {sampled_in:.1f} s"
    )


async def test_envoy_sigkilled_its_actors_answer_again_with_their_state(
    shape: Shape, population: Population
) -> None:
    """The busiest envoy of node A is SIGKILLed while ``WORKERS`` of its actors are being
    incremented through node A (``durable_replies=True``): once the engine declares it lost
    (the lowered threshold, ``QUICK_LOSS``), each of its actors answers again through node B
    from another envoy, with its saved count, and no acknowledged increment is lost."""
    on_a = [serve for serve, home in zip(shape.envoys, HOMES, strict=True) if home == 0]
    victim = max(on_a, key=lambda serve: population.pids.count(serve.process.pid))
    moved = [i for i, pid in enumerate(population.pids) if pid == victim.process.pid]
    assert moved, "node A's envoys hold none of the actors"
    busy = moved[:WORKERS]
    workers = Incrementers(shape, [population.keys[i] for i in busy])
    limit = asyncio.Semaphore(CONCURRENCY)
    async with shape.client(1) as via_b:

        async def back(i: int) -> float:
            handle = via_b.counter.get([population.keys[i]])
            while True:
                try:
                    # A call that reached the dead envoy waits for the gateway's own
                    # timeout: give up on it sooner and ask again.
                    async with limit:
                        stats = await asyncio.wait_for(handle.stats(), 5)
                except Exception:
                    await asyncio.sleep(0.25)
                    continue
                if stats["pid"] != dead:
                    if i in busy:
                        assert stats["count"] >= population.counts[i]
                    else:
                        assert stats["count"] == population.counts[i]
                    population.pids[i] = stats["pid"]
                    return time.monotonic() - killed
                await asyncio.sleep(0.25)

        dead = victim.process.pid
        workers.start()
        try:
            await workers.each_acked(60)
            victim.process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            victim.process.wait()
            answered = await _together((back(i) for i in moved), 180)
            await workers.each_acked(60)
        finally:
            await workers.stop()
        recovered_in = max(answered)
        acknowledged, not_acknowledged = workers.totals
        for i in busy:
            stats = await via_b.counter.get([population.keys[i]]).stats()
            workers.check(population.keys[i], stats["count"])
            population.counts[i] = stats["count"]
        assert {population.pids[i] for i in moved} <= {s.process.pid for s in shape.live()}

        async def unchanged(i: int) -> None:
            async with limit:
                stats = await via_b.counter.get([population.keys[i]]).stats()
            assert stats["count"] == population.counts[i]
            assert stats["pid"] == population.pids[i]

        # The other envoys' actors did not move (a sample: every call costs wall time).
        stayed = [i for i in range(ACTORS) if i not in set(moved)]
        await _together(unchanged(i) for i in stayed[::5])
    print(
        f"\nenvoy SIGKILLed with {len(moved)} of the {ACTORS} actors: the first answered "
        f"again after {min(answered):.1f} s, half of them after "
        f"{statistics.median(answered):.1f} s, all of them after {recovered_in:.1f} s; "
        f"{acknowledged} increments of {len(busy)} of them acknowledged, {not_acknowledged} "
        "not, none lost"
    )


async def _timed(check: Any, timeout: float) -> float:
    """Seconds until ``check()`` stops raising (see :func:`_eventually`)."""
    started = time.monotonic()
    await answered(check, timeout)
    return time.monotonic() - started


def _connected_to(serve: Serve, endpoint: str) -> int:
    """How many times the envoy of ``serve`` logged a connection to ``endpoint``."""
    return sum(1 for line in list(serve.lines) if f"envoy: connected to {endpoint}" in line)


class Incrementers:
    """One task per key incrementing its counter without pause (``durable_replies=True``)
    through the node ``via`` names, recording every acknowledged count.

    A call that gets no answer within 5 s (caught by a kill: it waits for the gateway's own
    timeout) counts as not acknowledged: it may or may not have been applied.
    """

    def __init__(self, shape: Shape, keys: list[str]) -> None:
        self.keys = keys
        self.acked: list[list[int]] = [[] for _ in keys]
        self.unacked = [0] * len(keys)
        #: The node the calls go through (an index of ``shape.cluster.engines``).
        self.via = 0
        self._clients = [shape.client(0), shape.client(1)]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _run(self, i: int) -> None:
        while not self._stop.is_set():
            handle = self._clients[self.via].counter.get_or_create([self.keys[i]])
            try:
                reply = await asyncio.wait_for(handle.increment(1), 5)
            except Exception:
                self.unacked[i] += 1
                await asyncio.sleep(0.2)
                continue
            self.acked[i].append(reply["count"])

    def start(self) -> None:
        """Start the tasks."""
        self._tasks = [asyncio.create_task(self._run(i)) for i in range(len(self.keys))]

    async def stop(self) -> None:
        """Stop the tasks and close the clients."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients:
            await client.aclose()

    async def each_acked(self, timeout: float) -> float:
        """Seconds until every key got one more acknowledgement than it has now."""
        marks = [len(values) for values in self.acked]
        started = time.monotonic()
        while any(len(v) <= m for v, m in zip(self.acked, marks, strict=True)):
            assert time.monotonic() - started < timeout, (
                f"not every counter answered within {timeout:g} s: "
                f"{[len(v) - m for v, m in zip(self.acked, marks, strict=True)]}"
            )
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    def check(self, key: str, count: int) -> None:
        """``count`` (read after :meth:`stop`) holds every acknowledged increment of ``key``,
        whose acknowledged counts only ever grew (no acknowledged change was undone)."""
        values = self.acked[self.keys.index(key)]
        assert values == sorted(set(values)), f"{key}: acknowledged counts went back: {values}"
        assert values and count >= values[-1], f"{key}: acknowledged increments lost"

    @property
    def totals(self) -> tuple[int, int]:
        """(acknowledged, not acknowledged) calls."""
        return sum(map(len, self.acked)), sum(self.unacked)


async def test_engine_nodes_sigkilled_and_restarted_nothing_acknowledged_is_lost(
    shape: Shape,
) -> None:
    """``WORKERS`` counters (``durable_replies=True``) are incremented without pause while
    node B is SIGKILLed (clients of node A keep working; B's envoy moves to A), B restarts,
    then node A (the database lease holder) is SIGKILLed (clients of B work again once the
    lease expires; A's envoys move to B), and A restarts. Every increment a client saw
    acknowledged is in the final count, and the acknowledged counts only ever grow."""
    nodes = shape.cluster.engines
    endpoints = [node.endpoint for node in nodes]
    keys = [f"d{i}" for i in range(WORKERS)]
    workers = Incrementers(shape, keys)

    async def moved_to(home: int, target: int, before: dict[int, int]) -> None:
        for serve, where in zip(shape.envoys, HOMES, strict=True):
            if where == home and serve.process.poll() is None:
                tail = serve.output[-3000:]
                assert _connected_to(serve, endpoints[target]) > before[id(serve)], tail

    def connects(target: int) -> dict[int, int]:
        return {id(serve): _connected_to(serve, endpoints[target]) for serve in shape.envoys}

    workers.start()
    try:
        await workers.each_acked(60)

        before = connects(0)
        killed = time.monotonic()
        nodes[1].kill()
        a_alone, b_envoy_moved = await _together(
            [workers.each_acked(120), _timed(lambda: moved_to(1, 0, before), 60)]
        )
        await asyncio.to_thread(shape.cluster.restart, 1)
        b_back = time.monotonic() - killed

        before = connects(1)
        workers.via = 1
        await workers.each_acked(60)  # clients of the restarted B work
        killed = time.monotonic()
        nodes = shape.cluster.engines
        nodes[0].kill()
        b_alone, a_envoys_moved = await _together(
            [workers.each_acked(120), _timed(lambda: moved_to(0, 1, before), 60)]
        )
        await asyncio.to_thread(shape.cluster.restart, 0)
        a_back = time.monotonic() - killed
        workers.via = 0
        await workers.each_acked(60)
    finally:
        await workers.stop()

    acknowledged, not_acknowledged = workers.totals
    async with shape.client(0) as via_a, shape.client(1) as via_b:
        for key in keys:
            final = await via_a.counter.get([key]).stats()
            workers.check(key, final["count"])
            assert (await via_b.counter.get([key]).stats())["count"] == final["count"]
    print(
        f"\nnode B SIGKILLed: every counter answered through A within {a_alone:.1f} s, B's "
        f"envoy was on A after {b_envoy_moved:.1f} s, B back after {b_back:.1f} s; node A "
        f"(lease holder) SIGKILLed: every counter answered through B within {b_alone:.1f} s, "
        f"A's envoys were on B after {a_envoys_moved:.1f} s, A back after {a_back:.1f} s; "
        f"{acknowledged} increments acknowledged, {not_acknowledged} not, none lost"
    )

"""SIGKILL at random points of a write-heavy load on a real server (embedded driver).

A ``rivetkit serve tests/apps/faults_app.py`` child (``server()`` of
``tests/test_queue_crash.py``) takes concurrent increments from the Python client on three
kinds of counters: ``saver`` (saves before replying), ``durable`` (``durable_replies=True``)
and ``lazy`` (throttled saves only). After a seeded random delay the child is SIGKILLed; a new
server on the same data directory must then show, for every key:

* ``saver`` and ``durable``: every acknowledged increment (the value is at least the highest
  acknowledged one, at most what was sent);
* ``lazy``: a value it had at some point (between 0 and what was sent): nothing torn;
* every actor was created once (``on_create`` did not run again).

Several rounds run on the same directory, each killed at a new random point. The seed is
printed; ``RIVETKIT_FAULT_SEED`` replays a run and ``RIVETKIT_FAULT_ROUNDS`` (default 5) sets
the number of kills.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from test_queue_crash import kill, server

from rivetkit.client import Client

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
]

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "apps" / "faults_app.py"
SEED = int(os.environ.get("RIVETKIT_FAULT_SEED", random.SystemRandom().randrange(1 << 32)))
ROUNDS = int(os.environ.get("RIVETKIT_FAULT_ROUNDS", "5"))
KINDS = ("saver", "durable", "lazy")
KEYS = 3
CALLERS = 2  # per (kind, key)


async def load_and_kill(
    endpoint: str, process: object, rng: random.Random, sent: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    """Increment every counter concurrently; SIGKILL the server after a random delay or a
    random number of acknowledgements. Returns the highest acknowledged value per counter and
    adds what was sent to ``sent``."""
    acked: dict[tuple[str, str], int] = defaultdict(int)
    killed = asyncio.Event()
    target_acks = rng.randint(20, 400)
    delay = rng.uniform(0.05, 1.5)
    count = 0

    async with Client(endpoint) as client:

        async def caller(kind: str, key: str, seed: int) -> None:
            nonlocal count
            local = random.Random(seed)
            handle = getattr(client, kind).get_or_create([key])
            while not killed.is_set():
                by = local.randint(1, 3)
                sent[(kind, key)] += by
                try:
                    value = await handle.inc(by)
                except Exception:
                    if killed.is_set():
                        return  # the server died under this call: never acknowledged
                    raise
                acked[(kind, key)] = max(acked[(kind, key)], value)
                count += 1

        tasks = [
            asyncio.ensure_future(caller(kind, f"k{k}", rng.randrange(1 << 30)))
            for kind in KINDS
            for k in range(KEYS)
            for _ in range(CALLERS)
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        started = loop.time()
        while count < target_acks and loop.time() - started < delay:
            assert loop.time() < deadline
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            await asyncio.sleep(0.005)
        killed.set()
        kill(process)  # type: ignore[arg-type]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
    print(f"  killed after {count} acknowledgements ({delay:.2f} s budget, {target_acks} acks)")
    return dict(acked)


async def check_state(
    endpoint: str, acked: dict[tuple[str, str], int], sent: dict[tuple[str, str], int]
) -> None:
    async with Client(endpoint) as client:
        for kind in KINDS:
            for k in range(KEYS):
                key = f"k{k}"
                state = await getattr(client, kind).get_or_create([key]).state()
                assert state["creations"] == 1, (kind, key, state)
                value, top = state["n"], sent[(kind, key)]
                assert 0 <= value <= top, (kind, key, state, top)
                if kind != "lazy":
                    assert value >= acked.get((kind, key), 0), (kind, key, state, acked)


async def test_sigkill_at_random_points_loses_nothing_saved(tmp_path: Path) -> None:
    print(f"fault injection seed {SEED} (RIVETKIT_FAULT_SEED={SEED} replays it), {ROUNDS} kills")
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    sent: dict[tuple[str, str], int] = defaultdict(int)
    acked: dict[tuple[str, str], int] = {}
    for round_no in range(ROUNDS):
        with server(data_dir, APP) as (endpoint, process):
            if round_no:
                await check_state(endpoint, acked, sent)
            # What the restarted server reads is the new baseline of "sent": the values
            # found are at most what any earlier round sent.
            new = await load_and_kill(endpoint, process, rng, sent)
            for counter, value in new.items():
                acked[counter] = max(acked.get(counter, 0), value)
    with server(data_dir, APP) as (endpoint, _):
        await check_state(endpoint, acked, sent)

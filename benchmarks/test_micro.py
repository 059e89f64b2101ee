"""pytest-benchmark micro-benchmarks of the hot paths, over both twins side by side.

Every benchmark is parametrized over ``twin`` = ``compiled`` (``rivetkit._speedups.*``) and
``pure`` (the Python twins); both are imported in this one process, so the pairs are measured
seconds apart. ``compiled`` is skipped when the extension modules are not built (``make venv``).

Groups: ``codec`` (BARE encode+decode of an actor snapshot, a conn record, a client
``ActionRequest`` and an envoy tunnel ``RequestStart``), ``dispatch`` (``ActionTable.call`` of a
sync action), ``queue scan`` (1,000 stored queue messages, all and filtered by name) and
``timers`` (``TimerQueue`` re-arm of 10,000 keys, and arm + pop).

Not part of ``make test`` (``testpaths`` is ``tests``); run with ``make bench-micro`` or

    .venv/bin/pytest benchmarks/test_micro.py --benchmark-json benchmarks/results/micro.json

``render_table.py`` turns that JSON into compiled/pure ratios. ``make bench-micro`` also saves
each run in ``benchmarks/results/micro-history/``; ``make bench-compare``
(``bench_compare.py``) compares the rows whose ``twin`` parameter is ``compiled`` with the
newest run saved on this machine and fails when one is more than 20% slower: keep the
parameter's name and values. Nothing here asserts a time.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import cbor2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bare import handler_for, workloads

from rivetkit.protocol import _bare_py
from rivetkit.protocol.actor_persist import QueueMessage
from rivetkit.protocol.actor_persist import build as build_persist
from rivetkit.protocol.envoy_protocol import (
    MessageId,
    ToEnvoy,
    ToEnvoyRequestStart,
    ToEnvoyTunnelMessage,
)
from rivetkit.protocol.schema import plan_of

TWINS = ("compiled", "pure")
PURE = {
    "bare": "rivetkit.protocol._bare_py",
    "dispatch": "rivetkit.runtime._dispatch_py",
    "queuescan": "rivetkit.runtime._queuescan_py",
    "timers": "rivetkit.runtime._timers_py",
}


def twin_module(kind: str, twin: str) -> ModuleType:
    """The ``twin`` (compiled or pure) of hot-path module ``kind``; skips a missing build."""
    if twin == "pure":
        return importlib.import_module(PURE[kind])
    try:
        return importlib.import_module(f"rivetkit._speedups._{kind}")
    except ImportError:
        pytest.skip("the compiled twins are not built (make venv)")


@pytest.fixture(params=TWINS)
def twin(request: pytest.FixtureRequest) -> str:
    """``compiled`` or ``pure``."""
    return str(request.param)


# -- codec -------------------------------------------------------------------------------------

CODEC_WORKLOADS = workloads()


@pytest.mark.parametrize("workload", list(CODEC_WORKLOADS))
def test_codec_roundtrip(benchmark: Any, twin: str, workload: str) -> None:
    """Encode then decode one record through its versioned handler."""
    path, value, _ = CODEC_WORKLOADS[workload]
    handler = handler_for(twin_module("bare", twin), path)
    benchmark.group = f"codec: {workload}"
    encode, decode = handler.encode, handler.decode
    assert benchmark(lambda: decode(encode(value))) == value


def tunnel_request() -> ToEnvoyTunnelMessage:
    """What the engine sends the envoy for one gateway HTTP action request."""
    return ToEnvoyTunnelMessage(
        MessageId(b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", 0),
        ToEnvoyRequestStart(
            "lr285xk3m9q0a7v2bq5c1n8d4e6f",
            1,
            "POST",
            "/action/increment",
            {
                "content-type": "application/json",
                "x-rivet-encoding": "json",
                "x-rivet-ray-id": "01JABCDEF0123456789",
                "host": "127.0.0.1:6420",
            },
            b'{"args":[1]}',
            False,
            False,
        ),
    )


def test_codec_envoy_decode(benchmark: Any, twin: str) -> None:
    """Decode one envoy-protocol v8 ``ToEnvoy`` tunnel ``RequestStart`` frame."""
    codec = twin_module("bare", twin).compile_plan(plan_of(ToEnvoy), "invalid_envoy_message")
    message = tunnel_request()
    frame = codec.encode(message)
    benchmark.group = "codec: envoy tunnel RequestStart decode"
    assert benchmark(codec.decode, frame) == message


# -- dispatch ----------------------------------------------------------------------------------


def test_dispatch_call(benchmark: Any, twin: str) -> None:
    """``ActionTable.call`` of a sync action with one argument (lookup, call, result)."""

    def increment(c: Any, amount: int) -> int:
        c.state["count"] += amount
        return int(c.state["count"])

    def get_count(c: Any) -> int:
        return int(c.state["count"])

    spec = SimpleNamespace(fn=increment, is_async=False, validate=None)
    other = SimpleNamespace(fn=get_count, is_async=False, validate=None)
    table = twin_module("dispatch", twin).ActionTable({"increment": spec, "getCount": other})
    ctx = SimpleNamespace(state={"count": 0})
    args = [1]
    benchmark.group = "dispatch: ActionTable.call"
    benchmark(table.call, "increment", ctx, args)
    assert ctx.state["count"] > 0


# -- queue key scan ----------------------------------------------------------------------------

QUEUE_SIZE = 1000


def queue_entries() -> list[tuple[bytes, bytes]]:
    """1,000 stored queue messages (KV key, encoded ``QueueMessage`` v4), two names mixed."""
    encode = build_persist(_bare_py).queue_message.encode
    pure = importlib.import_module(PURE["queuescan"])
    entries = []
    for i in range(1, QUEUE_SIZE + 1):
        name = "jobs" if i % 4 else "audit"
        stored = QueueMessage(
            name, cbor2.dumps({"n": i, "payload": "x" * 40}), 1_700_000_000_000 + i,
            None, None, None, None,
        )  # fmt: skip
        entries.append((pure.message_key(i), encode(stored)))
    return entries


QUEUE_ENTRIES = queue_entries()


@pytest.mark.parametrize("names", [None, ("audit",)], ids=["all", "by name"])
def test_queue_scan(benchmark: Any, twin: str, names: tuple[str, ...] | None) -> None:
    """``scan`` of 1,000 entries: ids from the keys, names peeked when filtering."""
    scan = twin_module("queuescan", twin).scan
    wanted = None if names is None else frozenset(names)
    benchmark.group = f"queue scan: 1,000 messages, {'all' if names is None else 'by name'}"
    found = benchmark(scan, QUEUE_ENTRIES, wanted, QUEUE_SIZE, bytes)
    assert len(found) == (QUEUE_SIZE if names is None else QUEUE_SIZE // 4)


# -- timers ------------------------------------------------------------------------------------

TIMER_KEYS = [f"actor-{i:05d}" for i in range(10_000)]


def test_timers_rearm(benchmark: Any, twin: str) -> None:
    """Re-arm 10,000 armed keys to later deadlines (an idle timer reset per request)."""
    queue = twin_module("timers", twin).TimerQueue()
    arm = queue.arm
    for i, key in enumerate(TIMER_KEYS):
        arm(key, float(i))
    step = [0.0]

    def rearm_all() -> None:
        step[0] += 1.0
        base = step[0] * 100_000.0
        for i, key in enumerate(TIMER_KEYS):
            arm(key, base + i)

    benchmark.group = "timers: re-arm 10,000 keys"
    benchmark(rearm_all)
    assert len(queue) == len(TIMER_KEYS)


def test_timers_arm_pop(benchmark: Any, twin: str) -> None:
    """Arm 10,000 new keys, then pop them all as due."""
    module = twin_module("timers", twin)

    def arm_and_pop() -> int:
        queue = module.TimerQueue()
        arm = queue.arm
        for i, key in enumerate(TIMER_KEYS):
            arm(key, float(i))
        return len(queue.pop_due(1e9))

    benchmark.group = "timers: arm + pop 10,000 keys"
    assert benchmark(arm_and_pop) == len(TIMER_KEYS)

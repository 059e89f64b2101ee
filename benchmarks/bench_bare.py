"""Encode+decode speed of the BARE codec twins, with cbor2 on the same data as a baseline.

Workloads: an actor snapshot (``Actor`` v4 with a 4 KiB CBOR state and 100 scheduled
events), a hibernatable connection record (``Conn`` v4) and a client ``ActionRequest``
(``ToServer`` v4). Each is encoded and decoded through its versioned handler with the pure
twin, the compiled twin, and cbor2 (C extension) on an equivalent dict.

The last line is ``speedup: <compiled/pure>x``, the geometric mean over the workloads.
Times are the best of several repeats, measured in this run; nothing here asserts a time.

    python benchmarks/bench_bare.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import platform
import sys
import timeit
from collections.abc import Callable
from typing import Any

import cbor2

from rivetkit.protocol import _bare_py, actor_persist, client_protocol
from rivetkit.protocol.actor_persist import Actor, Conn, ScheduleEvent, Subscription


def workloads() -> dict[str, tuple[str, Any, dict[str, Any]]]:
    """name -> (handler attribute path, record, equivalent plain dict for cbor2)."""
    state = cbor2.dumps({f"key-{i:03d}": "v" * 26 for i in range(112)})
    assert 3900 <= len(state) <= 4200, len(state)
    events = [
        ScheduleEvent(
            f"0f8fad5b-d9cb-469f-a165-{i:012d}",
            1_700_000_000_000 + i * 1000,
            "tick",
            cbor2.dumps([i, "payload"]),
        )
        for i in range(100)
    ]
    actor = Actor(cbor2.dumps({"name": "counter"}), True, state, events)
    conn = Conn(
        "2f4b7b0e-1b3c-4e5a-9d9e-0a1b2c3d4e5f",
        cbor2.dumps({"user": "alice"}),
        cbor2.dumps({"joined": 1_700_000_000_000}),
        [Subscription("message"), Subscription("typing")],
        b"\x01\x02\x03\x04",
        b"\x05\x06\x07\x08",
        17,
        42,
        "/connect",
        {"user-agent": "RivetKit/2.3.19", "x-rivet-encoding": "bare", "origin": "http://x"},
    )
    request = client_protocol.ToServer(
        client_protocol.ActionRequest(7, "increment", cbor2.dumps([5]))
    )

    def as_dict(value: Any) -> Any:
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return {name: as_dict(v) for name, v in zip(value._fields, value)}
        if isinstance(value, list):
            return [as_dict(v) for v in value]
        return value

    return {
        "actor snapshot (4 KiB state, 100 events)": ("persist.actor", actor, as_dict(actor)),
        "conn record": ("persist.conn", conn, as_dict(conn)),
        "client ActionRequest": ("client.to_server", request, as_dict(request)),
    }


def best_time(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Best seconds per call over ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def handler_for(twin: Any, path: str) -> Any:
    group, name = path.split(".")
    handlers = actor_persist.build(twin) if group == "persist" else client_protocol.build(twin)
    return getattr(handlers, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    try:
        from rivetkit._speedups import _bare as compiled
    except ImportError:
        print("the compiled twin is not built: run `make venv` first", file=sys.stderr)
        return 2
    repeat = 3 if args.quick else 7
    budget = 0.05 if args.quick else 0.2  # seconds per repeat, per measurement

    cbor2_version = importlib.metadata.version("cbor2")
    print(f"python {platform.python_version()} on {platform.machine()}, cbor2 {cbor2_version}")
    print(f"{'workload':44} {'pure us':>9} {'compiled us':>12} {'cbor2 us':>9} "
          f"{'cy/py':>7} {'cbor2/cy':>9}")  # fmt: skip
    ratios = []
    results = []
    for name, (path, value, plain) in workloads().items():
        timings = {}
        for label, twin in (("pure", _bare_py), ("compiled", compiled)):
            handler = handler_for(twin, path)
            encoded = handler.encode(value)
            assert handler.decode(encoded) == value

            def run(handler: Any = handler, value: Any = value) -> Any:
                return handler.decode(handler.encode(value))

            per_call = best_time(run, 1, 1)
            number = max(1, int(budget / max(per_call, 1e-7)))
            timings[label] = best_time(run, number, repeat)

        def run_cbor(plain: Any = plain) -> Any:
            return cbor2.loads(cbor2.dumps(plain))

        number = max(1, int(budget / max(best_time(run_cbor, 1, 1), 1e-7)))
        timings["cbor2"] = best_time(run_cbor, number, repeat)
        ratio = timings["pure"] / timings["compiled"]
        ratios.append(ratio)
        versus_cbor = timings["cbor2"] / timings["compiled"]
        print(
            f"{name:44} {timings['pure'] * 1e6:9.2f} {timings['compiled'] * 1e6:12.2f} "
            f"{timings['cbor2'] * 1e6:9.2f} {ratio:6.1f}x {versus_cbor:8.1f}x"
        )
        results.append({"workload": name, **{k: v * 1e6 for k, v in timings.items()}})
    speedup = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"unit": "us per encode+decode", "results": results,
                       "speedup": speedup}, handle, indent=2)  # fmt: skip
    print(f"speedup: {speedup:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

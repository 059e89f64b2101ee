"""One process holding many actors: create N distinct actors over HTTP, let them sleep.

Starts ``rivetkit serve benchmarks/many_app.py`` (embedded driver, a temporary data dir) and:

1. creates ``--actors`` (default 100,000) distinct ``many`` actors, each with one json
   ``increment`` (``getOrCreate``, key ``a<i>``) over ``--conns`` (64) keep-alive
   connections of a raw HTTP/1.1 loader in this process; reports creation throughput;
2. waits until all of them slept (``many`` sleeps 1 s after its call; the
   ``rivetkit_actor_active`` gauge reaches 0) and reports the server's RSS at start, peak
   RSS (``VmHWM``), RSS after sleep, the SQLite page cache bound, and the RSS after a
   ``gc.collect()`` and glibc ``malloc_trim(0)`` in the server (live memory vs memory the
   allocators keep free);
3. starts ``tracemalloc`` in the server, creates ``--traced`` more actors (default a tenth of
   ``--actors``, at least 1,000) the same way, waits until they slept, and reports the traced
   Python heap still held divided by their number: the heap each sleeping actor costs,
   measured with the other actors already asleep. ``--top`` prints the largest sites.

The server's CPU time per created actor (all threads, from ``/proc``) is printed next to the
throughput: on a shared machine it moves less than the throughput does; so is the time the
server's cyclic garbage collector spent during the creation (``gc.callbacks``), per 10,000
actors.

Targets (issue 20): creation >= 5,000 actors/s; heap per sleeping actor <= 200 B; RSS after
sleep <= 2 x RSS at start + the page cache. The machine is shared: run the full size on a
quiet one, fewer actors first.

    python benchmarks/bench_many_actors.py [--actors N] [--conns C] [--traced M] [--top K]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from many_common import Server, mib, raise_nofile

BODY = b'{"args":[1]}'


def request(port: int, key: str) -> bytes:
    """A json ``increment(1)`` on the ``many`` actor of ``key`` (getOrCreate)."""
    return (
        f"POST /gateway/many/action/increment?rvt-namespace=default&rvt-method=getOrCreate"
        f"&rvt-runner=default&rvt-key={key}&rvt-crash-policy=sleep HTTP/1.1\r\n"
        f"host: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"x-rivet-encoding: json\r\ncontent-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


async def _connection(port: int, keys: Iterator[str], errors: list[str]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        for key in keys:
            writer.write(request(port, key))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append((head.split(b"\r\n", 1)[0] + b" " + body[:200]).decode())
            done += 1
    finally:
        writer.close()
    return done


async def create(port: int, prefix: str, count: int, conns: int) -> tuple[int, float, list[str]]:
    """Call ``increment`` once on ``count`` new actors; ``(calls, seconds, errors)``."""
    keys = (f"{prefix}{i}" for i in range(count))  # shared by every connection
    errors: list[str] = []
    start = time.perf_counter()
    done = await asyncio.gather(*(_connection(port, keys, errors) for _ in range(conns)))
    return sum(done), time.perf_counter() - start, errors


def run_loader(port: int, prefix: str, count: int, conns: int) -> tuple[int, float, list[str]]:
    """:func:`create` on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(create(port, prefix, count, conns))
    except ImportError:
        return asyncio.run(create(port, prefix, count, conns))


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=int, default=100_000, help="actors to create")
    parser.add_argument("--conns", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--traced", type=int, default=None, help="actors traced (phase 3)")
    parser.add_argument("--top", type=int, default=0, help="print the K largest heap sites")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    traced_count = args.traced if args.traced is not None else max(1_000, args.actors // 10)
    raise_nofile(args.conns + 256)

    server = Server()
    try:
        time.sleep(1.0)  # let the start settle
        at_start = server.memory()["VmRSS"]
        gc_before = server.gc_figures()
        cpu_before = server.cpu_seconds()
        made, seconds, errors = run_loader(server.port, "a", args.actors, args.conns)
        creation_cpu = server.cpu_seconds() - cpu_before
        gc_after = server.gc_figures()
        if errors:
            print(f"{len(errors)} errors, first: {errors[0]}", file=sys.stderr)
        waited = server.wait_asleep("many", timeout=600)
        time.sleep(1.0)  # final saves land
        memory = server.memory()
        after_sleep, peak = memory["VmRSS"], memory["VmHWM"]
        page_cache = server.page_cache_bound()
        trimmed = server.trim()

        server.start_tracing()
        traced_made, _, traced_errors = run_loader(server.port, "t", traced_count, args.conns)
        server.wait_asleep("many", timeout=600)
        time.sleep(1.0)
        trace = server.traced()
    finally:
        server.close()

    figures: dict[str, Any] = {
        "actors": made,
        "errors": len(errors) + len(traced_errors),
        "creation_per_s": made / seconds,
        "server_cpu_us_per_actor": 1e6 * creation_cpu / max(1, made),
        "gc_seconds_per_10k": 1e4 * (gc_after["seconds"] - gc_before["seconds"]) / max(1, made),
        "gc_collections": [
            a - b for a, b in zip(gc_after["collections"], gc_before["collections"])
        ],
        "gc_seconds_by_generation": [
            after - before
            for after, before in zip(
                gc_after["seconds_by_generation"], gc_before["seconds_by_generation"]
            )
        ],
        "gc_collected_per_actor": (gc_after["collected"] - gc_before["collected"]) / max(1, made),
        "rss_start": at_start,
        "rss_peak": peak,
        "rss_after_sleep": after_sleep,
        "rss_after_trim": trimmed,
        "sqlite_page_cache": page_cache,
        "rss_bound": 2 * at_start + page_cache,
        "sleep_wait_s": waited,
        "traced_actors": traced_made,
        "traced_heap": trace["traced"],
        "heap_per_sleeping_actor": trace["traced"] / max(1, traced_made),
        "top": trace["top"],
    }
    print(f"actors created: {made} in {seconds:.1f} s over {args.conns} connections, "
          f"{figures['errors']} errors")  # fmt: skip
    print(f"creation throughput: {figures['creation_per_s']:,.0f} actors/s  (target >= 5,000)")
    print(
        f"server CPU during creation: {figures['server_cpu_us_per_actor']:,.0f} us per actor "
        f"(every thread; 5,000/s on one core needs <= 200 us)"
    )
    print(
        f"cyclic GC during creation: {figures['gc_seconds_per_10k']:.3f} s per 10,000 actors, "
        f"collections per generation {figures['gc_collections']} "
        f"taking {', '.join(f'{s:.3f}' for s in figures['gc_seconds_by_generation'])} s, "
        f"{figures['gc_collected_per_actor']:.1f} objects freed by it per actor"
    )
    print(f"RSS at start: {mib(at_start)}; peak: {mib(peak)}; after sleep: {mib(after_sleep)}")
    print(f"RSS after gc.collect() + malloc_trim(0): {mib(trimmed)} (what the allocators kept "
          f"free: {mib(after_sleep - trimmed)})")  # fmt: skip
    print(f"SQLite page cache bound: {mib(page_cache)}; RSS after sleep target <= "
          f"{mib(figures['rss_bound'])} (2 x start + page cache): "
          f"{'met' if after_sleep <= figures['rss_bound'] else 'missed'}")  # fmt: skip
    print(
        f"traced heap per sleeping actor: {figures['heap_per_sleeping_actor']:.0f} B "
        f"({traced_made} actors traced, {trace['traced']:,} B held)  (target <= 200 B)"
    )
    for site in trace["top"][: args.top]:
        print(f"  {site['size']:>12,} B {site['count']:>8} blocks  {site['site']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

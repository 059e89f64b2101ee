"""One process holding many WebSocket connections: memory, one broadcast to all, latency.

Starts ``rivetkit serve benchmarks/many_app.py`` (embedded driver, a temporary data dir),
wakes the 100 ``room`` actors (``--actors``), then ``--loaders`` (2) loader processes open
``--sockets`` (10,000) client-protocol connections (``/gateway/room/connect``, json;
``--client raw``, the default: the handshake and frames written by hand, so that the loaders
spend little CPU per message; ``--client websockets``: the ``websockets`` library), socket
``i`` to room ``i % 100``; each sends ``SubscriptionRequest(tick)`` then a ``ping`` action
whose answer proves the subscription was taken. Reports:

* memory per idle connection: (server RSS with every socket open and idle - RSS before) /
  sockets;
* one broadcast to all: every room's ``tick`` action at once (over HTTP); the time from the
  first action sent to the last socket receiving its event (wall clocks of one machine), and
  the CPU time the server used meanwhile (``/proc``, 10 ms ticks: its own cost, whatever
  else runs on the machine), and that of its event loop's thread alone (``schedstat``,
  nanoseconds; per socket); with ``--broadcasts K``, K broadcasts one after the other and
  the median of each figure (one broadcast is at the mercy of whatever else runs); and the
  loop thread's user and system CPU per broadcast (``/proc``, 10 ms ticks, the mean over the
  K): most is the kernel's, one ``write`` per socket (on loopback the sender's syscall also
  runs the receiver's TCP input); the server shares a large flush's writes between its loop
  thread and one helper thread (the server's CPU counts both, the loop thread's its own);
* action latency p50/p99 (``ping`` over HTTP, ``--pings`` sequential calls spread over the
  rooms) with no socket connected and again with all connected, side by side;
* with ``--top K``: after that, ``tracemalloc`` in the server while ``--traced`` (1,000)
  more sockets connect: the traced Python heap per connection and the K largest sites.

The loaders share the machine with the server: the broadcast figure includes their receiving
(on 2 cores, the server's writes and their reads compete). The line also gives when the tick
actions were answered (the server's part: each frame is written to its socket by then).

Targets (issue 20): <= 16 KiB per idle connection; the broadcast within 200 ms. The machine is
shared: run the full size on a quiet one, fewer sockets first. Raises ``ulimit -n`` itself.

    python benchmarks/bench_many_sockets.py [--sockets N] [--actors A] [--loaders L]
        [--client raw|websockets] [--loader-nice NICE] [--broadcasts K] [--pings P]
        [--top K] [--traced M] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from many_common import Server, mib, raise_nofile

QUERY = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-crash-policy=sleep"
SUBSCRIBE = '{"body":{"tag":"SubscriptionRequest","val":{"eventName":"tick","subscribe":true}}}'
PING = '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","1"],"name":"ping","args":[]}}}'
OPEN_AT_ONCE = 100  # handshakes in flight per loader


# -- loader process --------------------------------------------------------------------------


class _Sockets:
    """What one loader's sockets report."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ok = 0
        self.failed = 0
        self.first_error = ""
        self.all_open = asyncio.Event()
        self.got: list[float] = []  # wall time each tick arrived

    def opened(self, error: BaseException | None) -> None:
        if error is None:
            self.ok += 1
        else:
            self.failed += 1
            self.first_error = self.first_error or repr(error)
        if self.ok + self.failed == self.count:
            self.all_open.set()


async def _socket(port: int, room: int, gate: asyncio.Semaphore, sockets: _Sockets) -> None:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    url = f"ws://127.0.0.1:{port}/gateway/room/connect?{QUERY}&rvt-key=r{room}"
    protocols = [Subprotocol("rivet"), Subprotocol("rivet_encoding.json")]
    await gate.acquire()
    pending = True  # holding the gate until the ping's answer proves the subscription
    try:
        async with connect(
            url, subprotocols=protocols, compression=None, open_timeout=60, max_queue=4
        ) as ws:
            await ws.send(SUBSCRIBE)
            await ws.send(PING)
            async for message in ws:
                if pending and '"ActionResponse"' in message:
                    pending = False
                    gate.release()
                    sockets.opened(None)
                elif '"tick"' in message:
                    sockets.got.append(time.time())
    except Exception as exc:
        if pending:
            pending = False
            gate.release()
            sockets.opened(exc)


class _RawClient(asyncio.Protocol):
    """A lean client socket (``--client raw``): the handshake and frames by hand, each tick
    timed as its bytes arrive, with none of a WebSocket library's per-message work (on a
    2-core machine the loaders' receiving competes with the server for the CPU). Frames are
    masked with a zero key (a valid mask: the payload is sent as is)."""

    def __init__(self, port: int, room: int, sockets: _Sockets, gate: asyncio.Semaphore) -> None:
        self.request = (
            f"GET /gateway/room/connect?{QUERY}&rvt-key=r{room} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: rivet, rivet_encoding.json\r\n"
            "User-Agent: Python/3.11 websockets/14.2\r\n\r\n"  # the headers websockets sends
        ).encode()
        self.sockets = sockets
        self.gate = gate
        self.pending = True  # holding the gate until the ping's answer
        self.upgraded = False
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        size = len(payload)
        if size < 126:
            head = bytes((0x80 | opcode, 0x80 | size))
        else:
            head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", size)
        return head + b"\0\0\0\0" + payload

    def _opened(self, error: BaseException | None) -> None:
        if self.pending:
            self.pending = False
            self.gate.release()
            self.sockets.opened(error)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self._opened(RuntimeError(buffer.split(b"\r\n", 1)[0].decode()))
                self.transport.close()
                return
            self.upgraded = True
            buffer = buffer[end + 4 :]
            self.transport.write(self._frame(1, SUBSCRIBE.encode()) + self._frame(1, PING.encode()))
        i, size = 0, len(buffer)
        while size - i >= 2:
            opcode, length, start = buffer[i] & 0x0F, buffer[i + 1] & 0x7F, i + 2
            if length == 126:
                if size - start < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            if size - start < length:
                break
            payload = buffer[start : start + length]
            i = start + length
            if opcode == 0x9:  # ping: pong
                self.transport.write(self._frame(0xA, payload))
            elif opcode == 0x8:
                self.transport.close()
            elif self.pending and b'"ActionResponse"' in payload:
                self._opened(None)
            elif b'"tick"' in payload:
                self.sockets.got.append(time.time())
        self.buffer = buffer[i:]

    def connection_lost(self, exc: BaseException | None) -> None:
        self._opened(exc or ConnectionError("closed before the subscription"))

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self._frame(0x8, struct.pack("!H", 1000)))
            self.transport.close()


async def _raw_socket(
    port: int, room: int, gate: asyncio.Semaphore, sockets: _Sockets, clients: list[_RawClient]
) -> None:
    await gate.acquire()
    client = _RawClient(port, room, sockets, gate)
    try:
        await asyncio.get_running_loop().create_connection(lambda: client, "127.0.0.1", port)
    except OSError as exc:
        client._opened(exc)
        return
    clients.append(client)


async def _load(port: int, count: int, offset: int, rooms: int, raw: bool) -> None:
    sockets = _Sockets(count)
    gate = asyncio.Semaphore(OPEN_AT_ONCE)
    clients: list[_RawClient] = []
    tasks = [
        asyncio.create_task(
            _raw_socket(port, (offset + i) % rooms, gate, sockets, clients)
            if raw
            else _socket(port, (offset + i) % rooms, gate, sockets)
        )
        for i in range(count)
    ]
    await sockets.all_open.wait()
    print(f"ready {sockets.ok} {sockets.failed} {sockets.first_error}", flush=True)
    loop = asyncio.get_running_loop()
    rounds = 0
    # "go" before each broadcast (one tick per socket), then "close" (or EOF).
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "go":
        start = sockets.ok * rounds  # ticks may arrive before this line is read
        rounds += 1
        deadline = time.monotonic() + 30
        while len(sockets.got) < sockets.ok * rounds and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        got = sockets.got[start:]
        print(f"done {max(got, default=0.0)!r} {len(got)}", flush=True)
    for client in clients:
        client.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def loader_main(port: int, count: int, offset: int, rooms: int, nice: int, raw: bool) -> int:
    """The loader process: open ``count`` sockets, report, wait for one tick each, at the
    nice value ``nice`` (``--loader-nice``: on a small machine, loaders that only take the
    CPU the server leaves show the server's share of a broadcast; their own receiving then
    lags, so the default is 0)."""
    raise_nofile(count + 256)
    os.nice(nice)
    try:
        import uvloop

        uvloop.run(_load(port, count, offset, rooms, raw))
    except ImportError:
        asyncio.run(_load(port, count, offset, rooms, raw))
    return 0


# -- driver ------------------------------------------------------------------------------------


async def _post(port: int, path: str, count: int, conns: int) -> list[tuple[float, float]]:
    """``count`` json POSTs of ``path`` (``{n}``: the call's index) over ``conns`` keep-alive
    connections; each call's (start, end) ``perf_counter`` times."""
    calls = iter(range(count))
    times: list[tuple[float, float]] = []

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in calls:
                body = b'{"args":[]}'
                head = (
                    f"POST {path.format(n=n)} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                    f"content-type: application/json\r\nx-rivet-encoding: json\r\n"
                    f"content-length: {len(body)}\r\n\r\n"
                ).encode()
                start = time.perf_counter()
                writer.write(head + body)
                response = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in response.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if not response.startswith(b"HTTP/1.1 200"):
                    status = response.split(b"\r\n", 1)[0]
                    raise SystemExit(f"{path}: {status!r}")
                times.append((start, time.perf_counter()))
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(conns)))
    return times


def post(port: int, path: str, count: int, conns: int) -> list[tuple[float, float]]:
    """:func:`_post` on a fresh event loop."""
    return asyncio.run(_post(port, path, count, conns))


def cpu_ms(pid: int) -> float:
    """CPU time (user + system, ms) the process ``pid`` used so far (``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def loop_cpu_ms(pid: int) -> float:
    """CPU time (ms, nanosecond resolution) the main thread of ``pid`` (the server's event
    loop) used so far (``/proc/PID/task/PID/schedstat``); NaN where the kernel has none."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return float("nan")


def loop_user_system_ms(pid: int) -> tuple[float, float]:
    """User and system CPU time (ms, 10 ms ticks) the main thread of ``pid`` used so far
    (``/proc/PID/task/PID/stat``): most of a broadcast's is the kernel's, one ``write`` per
    socket (on loopback the sender's syscall also runs the receiver's TCP input)."""
    with open(f"/proc/{pid}/task/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    tick = 1000 / os.sysconf("SC_CLK_TCK")
    return int(fields[11]) * tick, int(fields[12]) * tick


def room_path(action: str, room: int | str) -> str:
    """The gateway path of ``action`` on room ``room``."""
    return f"/gateway/room/action/{action}?{QUERY}&rvt-key=r{room}"


def latency(port: int, pings: int, rooms: int) -> dict[str, float]:
    """p50/p99 (ms) of ``pings`` sequential ``ping`` calls spread over the rooms (one
    keep-alive connection per room)."""
    samples: list[float] = []
    for room in range(rooms):
        count = pings // rooms + (room < pings % rooms)
        times = post(port, room_path("ping", room), count, 1)
        samples.extend((end - start) * 1000 for start, end in times)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }


def spawn_loaders(
    port: int, sockets: int, loaders: int, rooms: int, nice: int, client: str = "raw"
) -> list[Any]:
    """Start the loader processes; wait until each reported its sockets open."""
    processes = []
    share, extra = divmod(sockets, loaders)
    offset = 0
    for i in range(loaders):
        count = share + (i < extra)
        command = [sys.executable, __file__, "--loader", str(port), str(count), str(offset),
                   str(rooms), str(nice), client]  # fmt: skip
        processes.append(
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
        offset += count
    return processes


def expect(process: Any, word: str) -> list[str]:
    """The next line of a loader, which must start with ``word``."""
    line = process.stdout.readline().split()
    if not line or line[0] != word:
        raise SystemExit(f"loader said {line!r}, expected {word!r}")
    return list(line[1:])


def close_loaders(processes: list[Any]) -> None:
    """Tell the loaders to close their sockets and exit (killed after 60 s)."""
    for process in processes:
        if process.poll() is None:
            try:
                process.stdin.write("close\n")
                process.stdin.flush()
                process.stdin.close()
            except OSError:
                pass
    for process in processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connect_all(
    port: int, sockets: int, loaders: int, rooms: int, nice: int = 0, client: str = "raw"
) -> tuple[list[Any], int, float]:
    """Open ``sockets`` sockets from ``loaders`` processes: (processes, opened, seconds)."""
    start = time.perf_counter()
    processes = spawn_loaders(port, sockets, loaders, rooms, nice, client)
    opened = 0
    for process in processes:
        ok, failed, *error = expect(process, "ready")
        opened += int(ok)
        if int(failed):
            print(f"{failed} sockets failed to open: {' '.join(error)}", file=sys.stderr)
    return processes, opened, time.perf_counter() - start


def main() -> int:
    """Run the benchmark and print its figures."""
    if len(sys.argv) > 1 and sys.argv[1] == "--loader":
        port, count, offset, rooms, nice = (int(a) for a in sys.argv[2:7])
        return loader_main(port, count, offset, rooms, nice, sys.argv[7] == "raw")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000, help="connections")
    parser.add_argument("--actors", type=int, default=100, help="room actors")
    parser.add_argument("--loaders", type=int, default=2, help="loader processes")
    parser.add_argument("--loader-nice", type=int, default=0, help="loaders' nice value")
    parser.add_argument(
        "--client",
        choices=("raw", "websockets"),
        default="raw",
        help="loaders' client: frames by hand (default) or the websockets library",
    )
    parser.add_argument(
        "--broadcasts", type=int, default=1, help="broadcasts to all (the median is reported)"
    )
    parser.add_argument("--pings", type=int, default=2_000, help="latency samples")
    parser.add_argument("--top", type=int, default=0, help="trace; print the K largest sites")
    parser.add_argument("--traced", type=int, default=1_000, help="sockets traced (--top)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    raise_nofile(args.sockets + args.traced + 1024)  # the server inherits it

    server = Server()
    processes: list[Any] = []
    try:
        for room in range(args.actors):  # wake every room
            post(server.port, room_path("ping", room), 1, 1)
        quiet = latency(server.port, args.pings, args.actors)
        time.sleep(1.0)
        before = server.memory()["VmRSS"]
        processes, opened, connect_s = connect_all(
            server.port, args.sockets, args.loaders, args.actors, args.loader_nice, args.client
        )
        time.sleep(2.0)  # idle
        after = server.memory()["VmRSS"]
        loaded = latency(server.port, args.pings, args.actors)

        async def tick_all() -> tuple[float, float]:
            start = time.time()
            await _post(server.port, "/gateway/room/action/tick?" + QUERY + "&rvt-key=r{n}",
                        args.actors, min(args.actors, 32))  # fmt: skip
            return start, time.time()

        rounds: list[tuple[float, float, float, int]] = []  # ms, answered ms, CPU ms, received
        user_before, system_before = loop_user_system_ms(server.pid)
        for _ in range(args.broadcasts):
            for process in processes:
                process.stdin.write("go\n")
                process.stdin.flush()
            cpu_before, loop_before = cpu_ms(server.pid), loop_cpu_ms(server.pid)
            sent, answered = asyncio.run(tick_all())
            last, received = 0.0, 0
            for process in processes:
                when, count = expect(process, "done")
                last, received = max(last, float(when)), received + int(count)
            cpu = cpu_ms(server.pid) - cpu_before
            loop_cpu = loop_cpu_ms(server.pid) - loop_before
            rounds.append(((last - sent) * 1000, (answered - sent) * 1000, cpu, loop_cpu, received))
            time.sleep(0.2)
        user_after, system_after = loop_user_system_ms(server.pid)
        # The loop thread's user and system CPU per broadcast (mean: the ticks are coarse).
        loop_user_ms = (user_after - user_before) / max(1, args.broadcasts)
        loop_system_ms = (system_after - system_before) / max(1, args.broadcasts)
        # One broadcast: its figures; several: the median of each figure.
        broadcast_ms, answered_ms, broadcast_cpu_ms, loop_cpu_ms_ = (
            statistics.median(r[i] for r in rounds) for i in range(4)
        )
        received = min(r[4] for r in rounds)
        close_loaders(processes)
        processes = []

        trace: dict[str, Any] | None = None
        if args.top:
            time.sleep(1.0)
            server.start_tracing()
            processes, traced_open, _ = connect_all(
                server.port, args.traced, 1, args.actors, client=args.client
            )
            time.sleep(1.0)
            trace = server.traced()
            trace["sockets"] = traced_open
            close_loaders(processes)
            processes = []
    finally:
        close_loaders(processes)
        server.close()

    per_conn = (after - before) / max(1, opened)
    figures: dict[str, Any] = {
        "sockets": opened,
        "client": args.client,
        "connect_s": connect_s,
        "rss_before": before,
        "rss_connected": after,
        "bytes_per_idle_connection": per_conn,
        "broadcast_ms": broadcast_ms,
        "broadcast_received": received,
        "ticks_answered_ms": answered_ms,
        "broadcast_server_cpu_ms": broadcast_cpu_ms,
        "broadcast_loop_cpu_ms": loop_cpu_ms_,
        "broadcast_loop_user_ms": loop_user_ms,
        "broadcast_loop_system_ms": loop_system_ms,
        "broadcast_rounds": [
            {"ms": ms, "answered_ms": ans, "server_cpu_ms": cpu, "loop_cpu_ms": lc, "received": got}
            for ms, ans, cpu, lc, got in rounds
        ],
        "latency_quiet": quiet,
        "latency_connected": loaded,
    }
    print(f"sockets open: {opened} of {args.sockets} ({args.loaders} loaders, {args.client} "
          f"client, "
          f"{connect_s:.1f} s to open and subscribe)")  # fmt: skip
    print(f"server RSS: {mib(before)} before, {mib(after)} with the sockets idle: "
          f"{per_conn / 1024:.1f} KiB per idle connection  (target <= 16 KiB)")  # fmt: skip
    median = f" (median of {len(rounds)})" if len(rounds) > 1 else ""
    print(f"one broadcast to all{median}: {broadcast_ms:.0f} ms from the first tick action to "
          f"the last socket receiving ({received} events received)  (target <= 200 ms); "
          f"the {args.actors} tick actions were answered after {answered_ms:.0f} ms; the "
          f"server used {broadcast_cpu_ms:.0f} ms of CPU for it ({loop_cpu_ms_:.1f} ms in its "
          f"event loop's thread: {loop_cpu_ms_ * 1000 / max(1, received):.1f} us per "
          f"socket, the {args.actors} tick actions included)")  # fmt: skip
    print(f"  its event loop's thread per broadcast (mean of {len(rounds)}, with the 0.2 s "
          f"pause after each): {loop_user_ms:.0f} ms user, {loop_system_ms:.0f} ms system "
          f"(the kernel's: its share of the writes, one per socket)")  # fmt: skip
    if len(rounds) > 1:
        print("  each: " + ", ".join(f"{r[0]:.0f} ms ({r[3]:.0f} ms loop CPU)" for r in rounds))
    print(f"ping latency, {args.pings} calls: no sockets p50 {quiet['p50_ms']:.2f} ms "
          f"p99 {quiet['p99_ms']:.2f} ms; {opened} sockets connected p50 "
          f"{loaded['p50_ms']:.2f} ms p99 {loaded['p99_ms']:.2f} ms")  # fmt: skip
    if trace is not None:
        per = trace["traced"] / max(1, trace["sockets"])
        figures["traced_heap_per_connection"] = per
        figures["top"] = trace["top"]
        print(f"traced Python heap per connection: {per:,.0f} B ({trace['sockets']} traced)")
        for site in trace["top"][: args.top]:
            print(f"  {site['size']:>12,} B {site['count']:>8} blocks  {site['site']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU per HTTP action of our envoy's tunnel path, without the engine: ``python
benchmarks/bench_envoy_tunnel.py``.

Engine-mode throughput on a 2-core machine is bound by the CPU the engine and the envoy
share, and the engine's share is large and noisy; this measures only our side. A child
process plays the engine's part of the envoy socket (``ToEnvoyInit``, then
``ToEnvoyTunnelMessage{RequestStart}`` frames for ``counter.increment``, ``--window`` in
flight, each answer triggering the next request); this process runs the real
:class:`~rivetkit.drivers.engine.envoy.EnvoyClient` (``websockets``, uvloop when installed),
:class:`~rivetkit.drivers.engine.tunnel.Tunnel` and dispatcher over an in-process runtime
(``rivetkit.testing.setup_runtime``, the examples' counter). It prints this process's CPU
microseconds per request (``time.process_time``), per round, and their median. The
engine-floor probe's equivalent (``shared/bench``'s ``envoy_floor.py``: receive, answer a
fixed frame) is printed next to it with ``--floor``, measured the same way.

    python benchmarks/bench_envoy_tunnel.py [--rounds 5] [--requests 20000] [--window 16]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {
    "content-type": "application/json",
    "x-rivet-encoding": "json",
    "content-length": "12",
    "host": "127.0.0.1:6420",
    "user-agent": "wrk",
    "x-forwarded-for": "127.0.0.1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the fake engine (child process) -----------------------------------------------------------


async def fake_engine(port: int, actor_id: str, window: int) -> None:
    """Serve one envoy socket: Init, then RequestStart frames, ``window`` in flight."""
    from websockets.asyncio.server import ServerConnection, serve

    from rivetkit.protocol.envoy_protocol import (
        TO_ENVOY,
        MessageId,
        ProtocolMetadata,
        ToEnvoyInit,
        ToEnvoyRequestStart,
        ToEnvoyTunnelMessage,
    )

    def request(i: int) -> bytes:
        start = ToEnvoyRequestStart(
            actor_id, 1, "POST", "/action/increment", HEADERS, b'{"args":[1]}', False, False
        )
        message_id = MessageId(b"gw\x00\x01", (i & 0xFFFFFFFF).to_bytes(4, "little"), 0)
        return bytes(TO_ENVOY.encode(ToEnvoyTunnelMessage(message_id, start)))

    frames = [request(i) for i in range(window * 4)]

    async def session(ws: ServerConnection) -> None:
        await ws.recv()  # ToRivetMetadata
        await ws.send(TO_ENVOY.encode(ToEnvoyInit(ProtocolMetadata(60_000, 60_000, 20 << 20))))
        sent = 0
        async for frame in ws:
            assert isinstance(frame, bytes)
            if frame[:1] == b"\x09":  # ToRivetStopping... not sent here; anything else is fine
                continue
            if frame == b"go":
                for _ in range(window):
                    await ws.send(frames[sent % len(frames)])
                    sent += 1
            elif frame[:1] == b"\x06":  # a ToRivetTunnelMessage: the answer; ask again
                await ws.send(frames[sent % len(frames)])
                sent += 1

    async with serve(session, "127.0.0.1", port, max_size=None, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


# -- our side ----------------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> list[float]:
    sys.path.insert(0, str(ROOT / "examples"))
    from counter import counter

    from rivetkit import setup
    from rivetkit.drivers.engine.actor_calls import ChainDispatcher
    from rivetkit.drivers.engine.envoy import EnvoyClient
    from rivetkit.drivers.engine.tunnel import Tunnel
    from rivetkit.protocol.envoy_protocol import ToRivetMetadata
    from rivetkit.testing import setup_runtime

    async with setup_runtime(setup(use=[counter])) as client:
        handle = client.get_or_create("counter", "bench")
        actor_id = await handle.resolve()
        await handle.action("increment", 1)
        port = _free_port()
        child = subprocess.Popen(
            [sys.executable, __file__, "--engine-child", str(port), actor_id, str(args.window)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the fake engine did not start")
            tunnel = Tunnel(ChainDispatcher(client.runtime))
            done = 0
            target = 0
            finished: asyncio.Future[None] | None = None

            class Handler:
                def on_commands(self, commands: Any) -> None: ...
                def on_connection(self, connected: bool) -> None: ...
                def on_lost(self) -> None: ...
                def on_evicted(self, reason: str) -> None: ...

                def on_tunnel_message(self, message: Any) -> None:
                    tunnel.handle(message)

            envoy = EnvoyClient(
                f"http://127.0.0.1:{port}",
                namespace="default",
                pool="bench",
                envoy_key="bench-envoy",
                version=1,
                token=None,
                metadata=ToRivetMetadata(None, None),
                handler=Handler(),
            )
            send_frame = envoy.send_tunnel_frame

            def counted(frame: bytes) -> None:
                nonlocal done
                send_frame(frame)
                done += 1
                if done >= target and finished is not None and not finished.done():
                    finished.set_result(None)

            envoy.send_tunnel_frame = counted  # type: ignore[method-assign]
            await envoy.start()
            tunnel.attach(envoy)
            loop = asyncio.get_running_loop()
            per_request: list[float] = []
            ws = envoy._ws
            assert ws is not None
            await ws.send(b"go")
            for round_ in range(args.rounds + 1):  # the first round warms up
                finished = loop.create_future()
                target = done + args.requests
                cpu, wall = time.process_time(), time.perf_counter()
                await finished
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                if round_:
                    per_request.append(cpu * 1e6 / args.requests)
                    print(
                        f"round {round_}: {per_request[-1]:.1f} us CPU/request "
                        f"({args.requests / wall:,.0f} requests/s)",
                        flush=True,
                    )
            await envoy.close()
            return per_request
        finally:
            child.kill()
            child.wait()


async def measure_floor(args: argparse.Namespace) -> list[float]:
    """The same load on a minimal envoy loop (as ``envoy_floor.py``): receive a frame, send
    a fixed ``ResponseStart`` for it; no actor, no dispatch."""
    from websockets.asyncio.client import connect

    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--engine-child", str(port), "floor", str(args.window)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the fake engine did not start")
        body = b'{"output":1}'
        # headers {content-type, content-length}, body, stream false (as the probe answers)
        tail = (
            b"\x00\xc8\x00\x02\x0ccontent-type\x10application/json\x0econtent-length\x02"
            + str(len(body)).encode()
            + b"\x01"
            + bytes([len(body)])
            + body
            + b"\x00"
        )
        per_request: list[float] = []
        async with connect(
            f"ws://127.0.0.1:{port}", max_size=None, compression=None, ping_interval=None
        ) as ws:
            await ws.send(b"\x00")
            await ws.recv()
            await ws.send(b"go")
            for round_ in range(args.rounds + 1):
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(args.requests):
                    raw = await ws.recv()
                    assert isinstance(raw, bytes)
                    await ws.send(b"\x06" + raw[1:9] + b"\x00\x00" + tail)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                if round_:
                    per_request.append(cpu * 1e6 / args.requests)
                    print(
                        f"floor round {round_}: {per_request[-1]:.1f} us CPU/request "
                        f"({args.requests / wall:,.0f} requests/s)",
                        flush=True,
                    )
        return per_request
    finally:
        child.kill()
        child.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--floor", action="store_true", help="also measure a minimal envoy")
    parser.add_argument("--engine-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if args.engine_child:
        port, actor_id, window = args.engine_child
        if uvloop is not None:
            uvloop.install()
        asyncio.run(fake_engine(int(port), actor_id, int(window)))
        return 0
    if uvloop is not None:
        uvloop.install()
    rounds = asyncio.run(measure(args))
    import rivetkit

    twins = "compiled" if rivetkit.SPEEDUPS else "pure"
    ours = statistics.median(rounds)
    print(f"median {ours:.1f} us CPU/request ({twins} twins)")
    if args.floor:
        floor = statistics.median(asyncio.run(measure_floor(args)))
        print(f"floor median {floor:.1f} us CPU/request; ours - floor {ours - floor:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())

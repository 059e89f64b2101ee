"""Probe: how fast the Rivet Engine's gateway carries one WebSocket, with no RivetKit protocol.

Starts an engine on loopback ports, an envoy (``rivetkit serve --engine``) hosting a raw
``on_websocket`` echo actor (not hibernatable, no state), and runs the harness's
``ws_echo_load.mjs`` through the gateway: one socket, 32 messages in flight, several timed
runs on the SAME socket with no warm-up, then the same on a second socket. On engine 2.3.19
a socket's first run reaches several hundred messages/s and ends in the slow pace; every later
run stays at ~90/s (one message per ~11 ms): after ~2,300 client messages the gateway forwards
a socket's messages at that pace, whatever the envoy does (RivetKit TS's envoy and ours show
the same count and pace). The next socket starts fast again. ``bench_peers.py`` measures
WebSocket actions with that in mind.

    python benchmarks/gateway_ws_probe.py [--runs 4] [--seconds 4] [--window 32] [--sockets 2]

Needs the engine binary (``make interop-deps``) and the RivetKit TS peer's Node 22
(``make bench`` installs it). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_peers as bp  # noqa: E402

ECHO_APP = """
from typing import Any

from rivetkit import ActorOptions, actor, setup

echo = actor("echo", state={}, options=ActorOptions(can_hibernate_websocket=False))


@echo.on_websocket
async def handler(c: Any, ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


registry = setup(use=[echo])
"""
POOL = "probe"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="timed runs on one socket")
    parser.add_argument("--seconds", type=int, default=4, help="seconds per run")
    parser.add_argument("--window", type=int, default=32, help="messages in flight")
    parser.add_argument("--sockets", type=int, default=2, help="sockets, one after the other")
    args = parser.parse_args()

    from rivetkit.drivers.engine import LocalEngine

    binary = bp.engine_binary()
    node = Path(bp.node22())
    if binary is None or not node.is_file():
        print("needs the engine binary (make interop-deps) and Node 22 (make bench)")
        return 2
    logging.getLogger("rivetkit.engine").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="gateway-ws-probe-") as tmp:
        scratch = Path(tmp)
        (scratch / "echo_app.py").write_text(ECHO_APP)
        procs = bp.Processes()
        engine = LocalEngine(
            binary,
            scratch / "engine",
            port=bp.free_port(),
            api_peer_port=bp.free_port(),
            metrics_port=bp.free_port(),
        )
        try:
            engine.start(timeout=60)
            gw = engine.endpoint
            status, body = bp.request(
                f"{gw}/runner-configs/{POOL}?namespace=default",
                method="PUT",
                body=b'{"datacenters":{"default":{"normal":{}}}}',
            )
            if status != 200:
                raise RuntimeError(f"cannot create the runner config: {status} {body[:200]!r}")
            env = {k: v for k, v in os.environ.items() if k != "RIVET_POOL"}
            envoy = procs.start(
                [sys.executable, "-m", "rivetkit", "serve", str(scratch / "echo_app.py"),
                 "--engine", gw, "--pool", POOL, "--port", "0", "--data", str(scratch / "envoy"),
                 "--log-level", "warning"],
                log_file=scratch / "envoy.log", env=env, cwd=str(bp.ROOT),
            )  # fmt: skip
            bp.wait_until("the echo envoy", lambda: bp.envoy_connected(gw, POOL), 90, envoy)
            query = f"rvt-namespace=default&rvt-method=getOrCreate&rvt-runner={POOL}&rvt-key=e"
            url = gw.replace("http://", "ws://") + f"/gateway/echo/websocket?{query}"
            for socket in range(1, args.sockets + 1):
                result = subprocess.run(
                    [str(node), str(bp.HARNESS / "ws_echo_load.mjs"), "--url", url,
                     "--window", str(args.window), "--duration", str(args.seconds),
                     "--runs", str(args.runs), "--warmup", "0"],
                    capture_output=True, text=True, check=True,
                    timeout=args.runs * (args.seconds + 30) + 120,
                )  # fmt: skip
                total = 0
                for line in result.stdout.splitlines():
                    if line.startswith('{"run"'):
                        run = json.loads(line)
                        total += run["msgs"]
                        print(
                            f"socket {socket} run {run['run']}: {run['msgs']:,} messages in "
                            f"{run['duration_s']:.1f} s = {run['rate']:,.0f}/s "
                            f"(p50 {run['p50_ms']:.1f} ms), {total:,} on this socket so far",
                            flush=True,
                        )
        finally:
            procs.stop_all()
            engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Broadcast fan-out: one event to 1,000 subscribed connections of one actor, deliveries/s.

One actor on an embedded store in a temporary directory, ``--conns`` connections opened with
``ActorInstance.connect`` and subscribed to ``tick``; an action broadcasts ``tick`` with a
small payload (``c.broadcast("tick", n, {"at": n, "text": "..."})``). A delivery is one event
handed to one connection's transport; the figure is deliveries/s over ``--events`` broadcasts.

Transports:

* ``fake``: an in-process transport that only counts (the runtime's own cost: the broadcast
  loop and the subscription checks);
* ``session json|cbor|bare``: the server's real ``/connect`` transport (the dispatch session
  that encodes each event in the connection's encoding and queues the frame for its socket),
  over an in-memory socket that takes every frame; frames are drained between broadcasts;
* ``sockets`` (``--sockets``): real WebSockets on 127.0.0.1 through ``serve_in_background``
  (bare encoding): ``--conns`` raw ``websockets`` clients in a child process (so the client
  side does not share the server's event loop), each subscribed to ``tick``; the parent calls
  ``tick`` over HTTP ``--events`` times and the child counts the event frames; the figure is
  deliveries/s from the first event frame to the last. The child's own receiving costs are
  included, so this is a floor.

Nothing here asserts a figure.

    python benchmarks/bench_fanout.py [--quick] [--conns N] [--events E] [--sockets]
                                      [--repeat R] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rivetkit
from rivetkit import ActorOptions, actor, setup
from rivetkit.drivers.embedded import EmbeddedDriver
from rivetkit.runtime.live_actors import Runtime
from rivetkit.testing import RuntimeClient

PAYLOAD_TEXT = "hello, subscribers"


def build_registry() -> Any:
    hub = actor("hub", state={"n": 0}, options=ActorOptions(sleep_timeout=600.0))

    @hub.action
    def tick(c: Any) -> int:
        c.state["n"] += 1
        n = c.state["n"]
        c.broadcast("tick", n, {"at": n, "text": PAYLOAD_TEXT})
        return int(n)

    return setup(use=[hub])


class CountingTransport:
    """The ``fake`` transport: counts the events it is handed."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def send_event(self, name: str, args: list[Any]) -> None:
        self.count += 1

    def close(self, reason: str | None) -> None:
        pass


class MemorySocket:
    """An accepted in-memory WebSocket for the dispatch session: keeps nothing it is sent."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self._incoming: asyncio.Queue[str | bytes | None] = asyncio.Queue()

    async def accept(self, subprotocol: str | None = None) -> None:
        pass

    async def receive(self) -> str | bytes | None:
        return await self._incoming.get()

    async def send(self, data: str | bytes) -> None:
        self.frames += 1
        self.bytes += len(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._incoming.put_nowait(None)


async def in_process(mode: str, encoding: str, conns: int, events: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rivetkit-bench-fanout-") as data_dir:
        runtime = Runtime(build_registry(), EmbeddedDriver(data_dir))
        await runtime.start()
        try:
            client = RuntimeClient(runtime)
            actor_id = await client.hub.get_or_create(["bench"]).resolve()
            instance = await runtime.instance(actor_id)
            if mode == "fake":
                transports = [CountingTransport() for _ in range(conns)]
                for transport in transports:
                    conn = await instance.connect(None, transport=transport)
                    instance.subscribe(conn, "tick")
                counted = lambda: sum(t.count for t in transports)  # noqa: E731
                settle = None
            else:
                sockets, settle = await open_sessions(runtime, actor_id, encoding, conns)
                counted = lambda: sum(s.frames for s in sockets)  # noqa: E731
            await instance.invoke("tick", [])  # warm up
            if settle is not None:
                await settle()
            before = counted()
            started = time.perf_counter()
            for _ in range(events):
                await instance.invoke("tick", [])
                if settle is not None:
                    await settle()
            elapsed = time.perf_counter() - started
            delivered = counted() - before
            assert delivered == events * conns, (delivered, events * conns)
            return {"deliveries_per_s": delivered / elapsed, "events_per_s": events / elapsed}
        finally:
            await runtime.stop()


async def open_sessions(runtime: Runtime, actor_id: str, encoding: str, conns: int) -> Any:
    """``conns`` dispatch sessions (the server's /connect transport) over memory sockets."""
    from rivetkit.dispatch.http import Headers, Request
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.protocol.client_protocol import SubscriptionRequest, ToServer
    from rivetkit.protocol.messages import encode_to_server

    dispatcher = Dispatcher(runtime, hibernatable_connections=True)
    sockets = [MemorySocket() for _ in range(conns)]
    headers = Headers.from_raw(
        [(b"sec-websocket-protocol", f"rivet, rivet_encoding.{encoding}".encode())]
    )
    request = Request("GET", "/connect", headers=headers)
    tasks = [
        asyncio.ensure_future(dispatcher.handle_websocket(actor_id, request, socket))
        for socket in sockets
    ]
    subscribe = encode_to_server(ToServer(SubscriptionRequest("tick", True)), encoding)
    for socket in sockets:
        socket._incoming.put_nowait(subscribe)
    instance = runtime.instances[actor_id]
    deadline = time.monotonic() + 30
    while sum(1 for c in instance.conns.values() if "tick" in c.subscriptions) < conns:
        assert time.monotonic() < deadline, "sessions did not open"
        await asyncio.sleep(0.01)

    async def settle() -> None:
        # Let every session's writer drain its queue (one loop turn is not always enough).
        for _ in range(3):
            await asyncio.sleep(0)

    settle.tasks = tasks  # type: ignore[attr-defined]
    return sockets, settle


SOCKET_CHILD = r"""
import asyncio, sys, time
from websockets.asyncio.client import connect
from rivetkit.protocol.client_protocol import SubscriptionRequest, ToServer
from rivetkit.protocol.messages import encode_to_server

async def main(url, conns, expected):
    protocols = ["rivet", "rivet_encoding.bare"]
    subscribe = encode_to_server(ToServer(SubscriptionRequest("tick", True)), "bare")
    sockets = []
    for _ in range(conns):
        ws = await connect(url, subprotocols=protocols, max_queue=None)
        await ws.recv()  # Init
        await ws.send(subscribe)
        sockets.append(ws)
    await asyncio.sleep(0.5)  # the subscriptions have arrived
    counts = [0] * conns
    first = [0.0]
    last = [0.0]
    async def reader(i, ws):
        while counts[i] < expected:
            await ws.recv()
            now = time.perf_counter()
            if not first[0]:
                first[0] = now
            last[0] = now
            counts[i] += 1
    tasks = [asyncio.ensure_future(reader(i, ws)) for i, ws in enumerate(sockets)]
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    print("done", sum(counts), last[0] - first[0], flush=True)
    for ws in sockets:
        await ws.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def through_sockets(conns: int, events: int) -> dict[str, float]:
    import httpx

    from rivetkit.server import serve_in_background

    query = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=bench"
    async with serve_in_background(build_registry()) as endpoint:
        url = endpoint.replace("http://", "ws://") + f"/gateway/hub/connect?{query}"
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SOCKET_CHILD, url, str(conns), str(events),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        assert line.strip() == b"ready", line
        action = f"{endpoint}/gateway/hub/action/tick?{query}"
        async with httpx.AsyncClient() as http:
            for _ in range(events):
                response = await http.post(action, json={"args": []})
                response.raise_for_status()
        done = (await asyncio.wait_for(child.stdout.readline(), 300)).split()
        await child.wait()
        assert done[0] == b"done", done
        delivered, seconds = int(done[1]), float(done[2])
        assert delivered == conns * events
        return {"deliveries_per_s": delivered / seconds, "events_per_s": events / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (seconds)")
    parser.add_argument("--conns", type=int, default=1000, help="subscribed connections")
    parser.add_argument("--events", type=int, help="broadcasts per run")
    parser.add_argument("--repeat", type=int, help="runs per transport (best is kept)")
    parser.add_argument("--sockets", action="store_true", help="also through real sockets")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    events = args.events or (200 if args.quick else 1000)
    repeat = args.repeat or (2 if args.quick else 3)
    print(
        f"python {platform.python_version()} on {platform.machine()}, speedups="
        f"{rivetkit.SPEEDUPS}, {args.conns} connections, {events} events per run, "
        f"best of {repeat}"
    )
    rows = []
    cases = [("fake", "")] + [("session", e) for e in ("json", "cbor", "bare")]
    if args.sockets:
        cases.append(("sockets", "bare"))
    for mode, encoding in cases:
        best: dict[str, float] | None = None
        for _ in range(repeat):
            if mode == "sockets":
                result = asyncio.run(through_sockets(args.conns, events))
            else:
                result = asyncio.run(in_process(mode, encoding, args.conns, events))
            if best is None or result["deliveries_per_s"] > best["deliveries_per_s"]:
                best = result
        assert best is not None
        name = f"{mode} {encoding}".strip()
        print(
            f"{name}: {best['deliveries_per_s']:,.0f} deliveries/s "
            f"({best['events_per_s']:,.0f} events/s to {args.conns} connections)"
        )
        rows.append({"transport": name, **best})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"unit": "deliveries/s", "results": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

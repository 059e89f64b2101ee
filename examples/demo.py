"""The demo behind ``make demo``: serve the example apps, call them, stop.

Starts ``rivetkit serve examples/app.py`` on 127.0.0.1 (embedded mode: one process, state in a
SQLite file under a temporary data directory), then uses the Python client to call the counter
over HTTP, to move money with the bank (an actor calling actors), to pay an order (a durable
workflow) and to chat over two WebSocket connections, prints what happens, and stops the server
gracefully.

    python examples/demo.py [--port 6420] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rivetkit.client import ActorError, Client

HERE = Path(__file__).resolve().parent


def start_server(port: int, data: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rivetkit", "serve", str(HERE / "app.py"),
               "--host", "127.0.0.1", "--port", str(port), "--data", data]  # fmt: skip
    print("$", " ".join(["rivetkit", *command[3:]]))
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start") from None
            time.sleep(0.1)


async def call_actors(endpoint: str) -> None:
    async with Client(endpoint) as client:
        counter = client.counter.get_or_create(["demo"])
        print("counter.increment(5) ->", await counter.increment(5))
        print("counter.increment(2) ->", await counter.increment(2))
        print("counter.getCount()   ->", await counter.getCount())
        try:
            await counter.increment(-1)
        except ActorError as error:
            print(f"counter.increment(-1) -> error {error.group}/{error.code}: {error.message}")

        await client.account.get_or_create(["alice"]).deposit(100)
        bank = client.bank.get_or_create(["demo"])  # calls the accounts with c.client()
        print("bank.transfer('alice', 'bob', 30) ->", await bank.transfer("alice", "bob", 30))
        try:
            await bank.transfer("alice", "bob", 500)
        except ActorError as error:
            print(f"bank.transfer(..., 500) -> error {error.group}/{error.code}: {error.metadata}")

        order = client.order.get_or_create(["demo"])  # a durable workflow (examples/order.py)
        print("order.status()       ->", await order.status())
        await order.send("pay", {"amount": 30})
        print("order: sent the 'pay' queue message {'amount': 30}")
        for _ in range(200):  # the workflow charges, sleeps 2 s, then ships
            if (await order.status())["status"] == "shipped":
                break
            await asyncio.sleep(0.05)
        print("order.status()       ->", await order.status())

        room = client.chat.get_or_create(["lobby"])
        async with room.connect({"user": "alice"}) as alice, room.connect({"user": "bob"}) as bob:
            heard: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
            bob.on("message", lambda user, text: heard.done() or heard.set_result([user, text]))
            await bob.history()  # bob's subscription is in place
            print("alice: post('hello bob') ->", await alice.post("hello bob"))
            user, text = await asyncio.wait_for(heard, 10)
            print(f"bob heard event 'message' from {user}: {text!r}")
            print("chat.history() ->", await bob.history())
        try:
            async with room.connect() as nobody:
                await nobody.history()
        except ActorError as error:
            print(f"connect without a user -> refused {error.group}/{error.code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6420)
    parser.add_argument("--data", help="data directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rivetkit-demo-") as scratch:
        data = args.data or os.path.join(scratch, "data")
        server = start_server(args.port, data)
        try:
            asyncio.run(call_actors(f"http://127.0.0.1:{args.port}"))
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=30)
            print(f"server stopped (exit {code}); state is in {data}")
    print("demo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())

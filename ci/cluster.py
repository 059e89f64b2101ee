"""A Rivet Engine cluster on this machine, for people: ``make cluster``.

Starts a throwaway PostgreSQL, a ``nats-server``, two engine nodes on them
(``tests/cluster_fixtures.py``, the pieces the cluster tests use) and three
``rivetkit serve --engine`` processes serving ``examples/app.py``, spread over the nodes
(envoy i is given every node's URL, node i mod N first: it connects there and fails over to
the others). Everything listens on 127.0.0.1 on free ports and keeps its
files in temporary folders. It prints each node's endpoint, the dashboard's URL and a client
command to paste, then waits for Ctrl-C (or SIGTERM): the envoys drain (SIGTERM), then the
nodes, NATS and PostgreSQL stop and the temporary folders are removed.

    python ci/cluster.py [--nodes 2] [--envoys 3] [--app examples/app.py] [--pool default]
                         [--lost-threshold MS] [--check]

``--check`` starts everything, calls ``counter.increment`` through each node, runs the client
command it would print, stops and exits (0 when every call answered). It needs PostgreSQL
(Debian ``postgresql``), ``nats-server`` (Debian ``nats-server``) and the engine binary
(``make interop-deps``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

READY = re.compile(r"health and metrics on (http://[^\s;]+)")


class Envoy:
    """One ``rivetkit serve APP --engine URL`` child; its output goes to a log file."""

    def __init__(self, index: int, app: str, engine_url: str, pool: str, log: Path) -> None:
        self.index = index
        self.engine_url = engine_url
        self.log = log
        self.health: str | None = None
        self.reported = False  # its unexpected exit was printed
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rivetkit",
                    "serve",
                    app,
                    "--engine",
                    engine_url,
                    "--pool",
                    pool,
                    "--port",
                    "0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=ROOT,
                start_new_session=True,  # Ctrl-C in the terminal reaches us only
            )

    def wait_ready(self, timeout: float = 60.0) -> str:
        """Wait for the ``health and metrics on URL`` line; return that URL."""
        deadline = time.monotonic() + timeout
        while True:
            match = READY.search(self.log.read_text(errors="replace"))
            if match:
                self.health = match.group(1)
                return self.health
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"envoy {self.index} did not start:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 15) -> str:
        """The last lines of its output."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM (a drain: its actors move to the other envoys); SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _missing_tools(nodes: int) -> list[str]:
    from cluster_fixtures import nats_binary, postgres_bin
    from engine_fixtures import INTEROP

    from rivetkit.drivers.engine import find_engine_binary

    missing = []
    if find_engine_binary(INTEROP) is None:
        missing.append("the Rivet Engine binary (make interop-deps)")
    if postgres_bin() is None:
        missing.append("PostgreSQL (apt-get install postgresql)")
    if nodes > 1 and nats_binary() is None:
        missing.append("nats-server (apt-get install nats-server)")
    return missing


def client_command(endpoint: str, pool: str) -> str:
    """A shell command calling ``counter.increment`` through ``endpoint``."""
    code = (
        "from rivetkit.client import SyncClient; client = SyncClient(); "
        'print(client.counter.get_or_create(["demo"]).increment(1)); client.close()'
    )
    python = shlex.quote(str(ROOT / ".venv" / "bin" / "python"))
    return f"RIVET_ENDPOINT={endpoint} RIVET_POOL={pool} {python} -c {shlex.quote(code)}"


def check(endpoints: list[str], pool: str) -> None:
    """Call ``counter.increment`` on one actor through each node (the count goes up by one),
    then run the printed client command."""
    from rivetkit.client import RetryOptions, SyncClient

    retry = RetryOptions(get_attempts=40, get_or_create_attempts=40, interval=0.25)
    last = 0
    for endpoint in endpoints:
        with SyncClient(endpoint, pool=pool, retry=retry, timeout=30) as client:
            value = int(client.counter.get_or_create(["cluster-check"]).increment(1))
        if value != last + 1:
            raise RuntimeError(f"through {endpoint}: count {value}, expected {last + 1}")
        print(f"check: counter.increment through {endpoint} -> {value}", flush=True)
        last = value
    command = client_command(endpoints[-1], pool)
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise RuntimeError(f"the client command failed:\n{command}\n{done.stdout}{done.stderr}")
    print(f"check: the client command printed {done.stdout.strip()}", flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ci/cluster.py",
        description="PostgreSQL, NATS, Rivet Engine nodes and rivetkit envoys on 127.0.0.1",
    )
    parser.add_argument("--nodes", type=int, default=2, help="engine nodes (%(default)s)")
    parser.add_argument("--envoys", type=int, default=3, help="envoy processes (%(default)s)")
    parser.add_argument(
        "--app", default="examples/app.py", help="the app every envoy serves (%(default)s)"
    )
    parser.add_argument("--pool", default="default", help="the pool (%(default)s)")
    parser.add_argument(
        "--lost-threshold",
        type=int,
        default=None,
        metavar="MS",
        help="pegboard.envoy_lost_threshold of the nodes (engine default: 15000)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="start, call one action through each node, stop (exit 0 when all answered)",
    )
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.envoys < 1:
        parser.error("--nodes and --envoys must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the cluster until Ctrl-C (or, with ``--check``, call it once); the exit status."""
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    missing = _missing_tools(args.nodes)
    if missing:
        print("cannot start the cluster: missing " + "; ".join(missing), file=sys.stderr)
        return 1

    from cluster_fixtures import Cluster

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (`cmd &` in a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    extra: dict[str, Any] | None = None
    if args.lost_threshold is not None:
        extra = {"pegboard": {"envoy_lost_threshold": args.lost_threshold}}
    cluster = Cluster(args.nodes, extra_config=extra)
    envoys: list[Envoy] = []
    status = 0
    try:
        print(f"starting PostgreSQL, NATS and {args.nodes} engine nodes ...", flush=True)
        cluster.start()
        endpoints = [engine.endpoint for engine in cluster.engines]
        for i in range(args.envoys):
            first = i % len(endpoints)  # every node's URL, this envoy's own node first
            urls = ",".join(endpoints[first:] + endpoints[:first])
            envoys.append(Envoy(i, args.app, urls, args.pool, cluster.root / f"envoy{i}.log"))
        for envoy in envoys:
            envoy.wait_ready()
        print(f"\nPostgreSQL   {cluster.postgres.url}")
        if cluster.nats is not None:
            print(f"NATS         nats://{cluster.nats.address}")
        for i, engine in enumerate(cluster.engines):
            print(f"engine node {i}  {engine.endpoint}  (dashboard {engine.endpoint}/ui/)")
        for envoy in envoys:
            print(f"envoy {envoy.index}      --engine {envoy.engine_url}, /health {envoy.health}")
        print(f"logs         {cluster.root} (removed at exit)")
        if args.check:
            check(endpoints, args.pool)
            return 0
        print(f"\nclient:\n{client_command(endpoints[-1], args.pool)}\n")
        print("Ctrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            for envoy in envoys:
                if envoy.process.poll() is not None and not envoy.reported:
                    envoy.reported = True
                    print(f"envoy {envoy.index} exited:\n{envoy.tail()}", flush=True)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        print(f"cluster failed: {exc}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        print("stopping ...", flush=True)
        # the nodes' complaints about each other going away are expected now
        logging.getLogger("rivetkit.engine.process").setLevel(logging.CRITICAL)
        stoppers = [threading.Thread(target=envoy.stop) for envoy in envoys]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        cluster.stop()
        print("stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""A Rivet Engine cluster on this machine, for tests: PostgreSQL, NATS and engine nodes.

Groundwork for issue 21 (engine mode at production shape). Everything listens on 127.0.0.1
on free ports, keeps its files in a temporary directory, and is stopped (and the directory
removed) by ``stop()`` or the context managers.

* :class:`PostgresServer`: a throwaway PostgreSQL cluster (``initdb`` in a temp dir, its own
  port, its unix socket in the temp dir). ``initdb`` and ``postgres`` refuse to run as root,
  so under root both run as the ``postgres`` user (``nobody`` if there is none) through
  ``subprocess``'s ``user=``/``group=`` (no ``runuser`` needed); the temp dir is chowned to
  that user. Binaries: ``RIVET_PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin`` (Debian
  package ``postgresql-15``, pulled in by ``postgresql``), else ``initdb`` on ``PATH``.
* :class:`NatsServer`: a ``nats-server`` (Debian package ``nats-server``) on a free port.
  The engine 2.3.19 needs NATS for more than one node: without it its PostgreSQL driver runs
  "single-node" and a second engine on the same database refuses to start after ~26 s
  (``udb postgres single-node failed to acquire leader lease after 26 attempts; refusing to
  start. ... if you intend to run a multi-node setup you must configure NATS.``). 2.3.19 has
  no ``postgres_notify`` pub/sub any more (``unknown field `postgres_notify```): pub/sub is
  ``nats`` or ``memory``.
* :class:`ClusterEngine`: a :class:`~rivetkit.drivers.engine.LocalEngine` whose config uses
  PostgreSQL (``"postgres": {"url": ..., "nats": {"addresses": [...]}}``, the ``nats`` part
  only with NATS) instead of the embedded file-system store, and NATS pub/sub
  (``"nats": {"addresses": [...]}``) when given.
* :class:`Cluster`: PostgreSQL, NATS (when ``nodes > 1`` or asked for) and N engine nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine_fixtures import engine_binary, free_port

from rivetkit.drivers.engine import LocalEngine

#: The database user the engines connect as (trust authentication on loopback).
PG_USER = "rivet"
#: The pool :meth:`ClusterEngine.wait_configured` registers (and deletes) to probe readiness.
READY_PROBE_POOL = "cluster-ready-probe"


def postgres_bin() -> Path | None:
    """The folder holding ``initdb``, ``postgres`` and ``pg_isready``, or None."""
    override = os.environ.get("RIVET_PG_BIN")
    if override:
        return Path(override) if (Path(override) / "initdb").is_file() else None
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def nats_binary() -> Path | None:
    """The ``nats-server`` binary, or None."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").is_file() else None
    )
    return Path(found) if found else None


def require_cluster_tools(nodes: int) -> None:
    """Skip the calling test when PostgreSQL (or, for several nodes, nats-server) is missing.

    Under CI (``CI`` set) a missing tool fails the test instead: ``.ci/run`` installs both
    (Debian ``postgresql`` and ``nats-server``), so a skip there would hide a broken setup.
    """
    import pytest

    missing = []
    if postgres_bin() is None:
        missing.append("PostgreSQL (initdb not found; Debian: postgresql)")
    if nodes > 1 and nats_binary() is None:
        missing.append("nats-server (Debian: nats-server)")
    if not missing:
        return
    reason = "the engine cluster tests need " + " and ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI must install them (.ci/run)", pytrace=False)
    pytest.skip(reason)


def _service_user() -> tuple[int, int] | None:
    """The (uid, gid) to run PostgreSQL as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _stop_process(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


class PostgresServer:
    """A throwaway PostgreSQL on 127.0.0.1 (see the module docstring)."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or postgres_bin()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (initdb not found)")
        self.bin_dir = found
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="rivetkit-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._user = _service_user()

    @property
    def url(self) -> str:
        """The connection URL of the ``postgres`` database."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user[0], "group": self._user[1], "extra_groups": []}

    def start(self, timeout: float = 30.0) -> None:
        """``initdb``, then start the server and wait until it accepts connections."""
        if self._user is not None:
            os.chown(self.root, *self._user)
        data = self.root / "data"
        subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            **self._run_as(),
        )
        log = open(self.root / "postgres.log", "wb")  # noqa: SIM115 (the child owns it)
        self.process = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
            **self._run_as(),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited during start-up:\n{self.log_tail()}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"postgres did not get ready in {timeout:g} s")
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        path = self.root / "postgres.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 10 s; then remove the temp dir. Idempotent."""
        _stop_process(self.process, signal.SIGINT, 10)
        shutil.rmtree(self.root, ignore_errors=True)


class NatsServer:
    """A ``nats-server`` on 127.0.0.1 on a free port."""

    def __init__(self, binary: Path | None = None) -> None:
        found = binary or nats_binary()
        if found is None:
            raise RuntimeError("nats-server is not installed")
        self.binary = found
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` as the engine's ``nats.addresses`` takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it greets a client."""
        self.process = subprocess.Popen(
            [str(self.binary), "-a", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                if sock.recv(4) == b"INFO":
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not answer in {timeout:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s. Idempotent."""
        _stop_process(self.process, signal.SIGTERM, 5)


class ClusterEngine(LocalEngine):
    """An engine node storing in PostgreSQL (and talking over NATS when given).

    :param postgres_url: the database URL (``postgres.url``)
    :param nats_address: ``host:port`` of NATS, used both by the PostgreSQL driver
        (``postgres.nats``: multi-node commit forwarding and leader election) and as the
        pub/sub (``nats``); None runs the driver single-node with in-memory pub/sub
    """

    def __init__(
        self, *args: Any, postgres_url: str, nats_address: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.postgres_url = postgres_url
        self.nats_address = nats_address

    def config(self) -> dict[str, object]:
        """The single-node config with PostgreSQL (and NATS) instead of the file store."""
        config = super().config()
        config.pop("file_system", None)
        database: dict[str, object] = {"url": self.postgres_url}
        if self.nats_address is not None:
            database["nats"] = {"addresses": [self.nats_address]}
            config["nats"] = {"addresses": [self.nats_address]}
        config["postgres"] = database
        return config

    def wait_configured(self, timeout: float = 60.0) -> None:
        """Wait until the node can write replicated config (a runner config upsert succeeds).

        ``/health`` answers before the node's epoxy replica is configured on a fresh
        database; a pool registered in that window fails with 500 ``core.internal_error``
        (``epoxy_propose failed ... replica 1 has not been configured yet, verify that the
        coordinator has reconfigured the cluster for this replica successfully``).
        """
        url = f"{self.endpoint}/runner-configs/{READY_PROBE_POOL}?namespace=default"
        body = json.dumps({"datacenters": {"default": {"normal": {}}}}).encode()
        deadline = time.monotonic() + timeout
        while True:
            request = urllib.request.Request(
                url, data=body, method="PUT", headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the engine could not store a runner config in {timeout:g} s")
            time.sleep(0.2)
        with contextlib.suppress(OSError, urllib.error.URLError):
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5).close()

    def kill(self) -> None:
        """SIGKILL the engine (a crash), and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._pump is not None:
            self._pump.join(2)


class Cluster:
    """PostgreSQL, NATS (for several nodes) and ``nodes`` engine nodes, each on its own ports.

    ``engines[i]`` is node i (its ``endpoint`` is its guard); a node can be killed with
    :meth:`ClusterEngine.kill` and brought back with :meth:`restart` (same ports, same
    database).
    """

    def __init__(
        self,
        nodes: int = 2,
        *,
        nats: bool | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.postgres = PostgresServer()
        self.nats = NatsServer() if (nats if nats is not None else nodes > 1) else None
        self.extra_config = extra_config
        self.root = Path(tempfile.mkdtemp(prefix="rivetkit-cluster-"))
        self.ports = [(free_port(), free_port(), free_port()) for _ in range(nodes)]
        self.engines: list[ClusterEngine] = [self._node(i) for i in range(nodes)]

    def _node(self, index: int) -> ClusterEngine:
        guard, peer, metrics = self.ports[index]
        return ClusterEngine(
            engine_binary(),
            self.root / f"node{index}",
            port=guard,
            api_peer_port=peer,
            metrics_port=metrics,
            postgres_url=self.postgres.url,
            nats_address=self.nats.address if self.nats is not None else None,
            extra_config=self.extra_config,
        )

    def start(self) -> None:
        """Start PostgreSQL, NATS, then every node (one after another)."""
        try:
            self.postgres.start()
            if self.nats is not None:
                self.nats.start()
            for engine in self.engines:
                engine.start(timeout=60)
                engine.wait_configured()
        except BaseException:
            self.stop()
            raise

    def restart(self, index: int) -> ClusterEngine:
        """Stop node ``index`` if it runs, and start a new one on its ports."""
        self.engines[index].stop()
        self.engines[index] = self._node(index)
        self.engines[index].start(timeout=60)
        self.engines[index].wait_configured()
        return self.engines[index]

    def stop(self) -> None:
        """Stop every node, NATS and PostgreSQL; remove the temp dirs. Idempotent."""
        for engine in self.engines:
            with contextlib.suppress(Exception):
                engine.stop()
        if self.nats is not None:
            self.nats.stop()
        self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def cluster(nodes: int = 2, **options: Any) -> Iterator[Cluster]:
    """A started :class:`Cluster`, stopped on exit."""
    with Cluster(nodes, **options) as running:
        yield running

"""A local Rivet Engine for development and tests (``rivetkit serve --engine-spawn``).

The engine is one static binary shipped in the npm package ``@rivetkit/engine-cli@2.3.19``
(``node_modules/@rivetkit/engine-cli-<platform>/rivet-engine``). :func:`find_engine_binary`
looks for it as that package's ``getEnginePath()`` does: ``RIVET_ENGINE_BINARY``, then a
``node_modules`` folder in the current directory or one of its parents, then ``rivet-engine``
on ``PATH``.

:class:`LocalEngine` runs it the way ``spec/engine.md`` measured to be right:

* every listener on loopback (guard, api-peer and metrics; the defaults bind ``[::]``);
* telemetry off; embedded storage (RocksDB) under the given data directory;
* the workflow worker's CPU load shedding neutralised (``runtime.worker_cpu_max``, see
  :data:`WORKER_CPU_MAX`) and its poll interval shortened: the engine measures the CPU of
  the whole host, and on a development machine that is mostly our own processes (the
  envoy, the clients, the tests). Above 70 % it leaves most pending workflows (actor
  creation and wake-up among them) for a later poll, which stalled actor creation for
  5 to 30 s on a busy 2-core machine (``pegboard_actor_create timed out``,
  ``route_resolve_query_timeout``);
* ``RUST_BACKTRACE`` removed from its environment (a captured backtrace per gateway request
  costs ~20 ms), ``RUST_LOG=warn`` unless set, ``TOKIO_WORKER_THREADS`` = half the CPUs;
* readiness checked on ``GET /health`` (its start-up lines are hidden at ``warn``), its
  output forwarded line by line to the ``rivetkit.engine.process`` logger (seed lesson 25);
* stopped with SIGTERM (then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

__all__ = ["ENGINE_VERSION", "LocalEngine", "find_engine_binary", "platform_package"]

logger = logging.getLogger("rivetkit.engine")
process_logger = logging.getLogger("rivetkit.engine.process")

#: The engine version this package is tested with (npm ``@rivetkit/engine-cli``).
ENGINE_VERSION: Final = "2.3.19"
#: ``runtime.worker_cpu_max`` (millicores) of a spawned engine: far above any real machine,
#: so that the host's CPU usage stays under the load-shedding curve's knee (70 %).
WORKER_CPU_MAX: Final = 1_000_000
#: ``runtime.worker_poll_interval_ms`` of a spawned engine: how late a workflow whose wake-up
#: notification was missed can start at worst.
WORKER_POLL_INTERVAL_MS: Final = 1_000


def platform_package() -> str | None:
    """The npm package holding the engine binary for this machine, or None."""
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        return None
    if sys.platform.startswith("linux"):
        return f"@rivetkit/engine-cli-linux-{arch}-musl"
    if sys.platform == "darwin":
        return f"@rivetkit/engine-cli-darwin-{arch}"
    if sys.platform == "win32" and arch == "x64":
        return "@rivetkit/engine-cli-win32-x64"
    return None


def find_engine_binary(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``rivet-engine`` binary to run, or None when none is installed."""
    name = "rivet-engine.exe" if sys.platform == "win32" else "rivet-engine"
    override = os.environ.get("RIVET_ENGINE_BINARY")
    if override:
        path = Path(override)
        return path if path.is_file() else None
    package = platform_package()
    folder = Path(start) if start is not None else Path.cwd()
    for directory in (folder, *folder.resolve().parents):
        modules = directory / "node_modules" / "@rivetkit"
        candidates = [modules / "engine-cli" / name]
        if package is not None:
            candidates.append(directory / "node_modules" / package / name)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        if sys.platform != "win32":  # as servers do: TIME_WAIT leftovers do not count
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class LocalEngine:
    """A ``rivet-engine start`` child process on loopback.

    :param binary: the ``rivet-engine`` binary
    :param data_dir: where the engine keeps its database and config (created)
    :param port: the guard port (public API, gateway, envoy socket); 6420 by default
    :param api_peer_port: the internal API port (6421)
    :param metrics_port: the Prometheus port (6430)
    :param host: the address of every listener; loopback only
    :param token: an admin token (``auth.admin_token``), or None for an open engine
    :param worker_threads: ``TOKIO_WORKER_THREADS`` (default: half the CPUs, at least 1)
    :param log_level: ``RUST_LOG`` (default ``RIVET_ENGINE_LOG``, else ``warn``)
    :param extra_config: more config merged over ours, section by section (e.g.
        ``{"pegboard": {"envoy_lost_threshold": 3000}}``)
    """

    def __init__(
        self,
        binary: str | os.PathLike[str],
        data_dir: str | os.PathLike[str],
        *,
        port: int = 6420,
        api_peer_port: int = 6421,
        metrics_port: int = 6430,
        host: str = "127.0.0.1",
        token: str | None = None,
        worker_threads: int | None = None,
        log_level: str | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("a spawned engine listens on loopback only")
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.api_peer_port = api_peer_port
        self.metrics_port = metrics_port
        self.token = token
        self.worker_threads = worker_threads or max(1, (os.cpu_count() or 2) // 2)
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._tail: list[str] = []

    @property
    def endpoint(self) -> str:
        """The engine's URL (guard)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def config(self) -> dict[str, object]:
        """The engine's config file content."""
        config: dict[str, object] = {
            "guard": {"host": self.host, "port": self.port},
            "api_peer": {"host": self.host, "port": self.api_peer_port},
            "metrics": {"host": self.host, "port": self.metrics_port},
            "file_system": {"path": str((self.data_dir / "db").resolve())},
            "telemetry": {"enabled": False},
            "runtime": {
                "worker_cpu_max": WORKER_CPU_MAX,
                "worker_poll_interval_ms": WORKER_POLL_INTERVAL_MS,
            },
        }
        if self.token:
            config["auth"] = {"admin_token": self.token}
        for section, value in self.extra_config.items():
            current = config.get(section)
            if isinstance(current, dict) and isinstance(value, Mapping):
                config[section] = {**current, **value}
            else:
                config[section] = value
        for section in ("guard", "api_peer", "metrics"):
            listener = config.get(section)
            if isinstance(listener, dict) and listener.get("host") not in ("127.0.0.1", "::1"):
                raise ValueError("a spawned engine listens on loopback only")
        return config

    def environment(self) -> dict[str, str]:
        """The child's environment (see the module docstring)."""
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")
            and not name.startswith("RIVET__")
        }
        env["RUST_LIB_BACKTRACE"] = "0"
        env["RUST_LOG"] = self.log_level or os.environ.get("RIVET_ENGINE_LOG", "warn")
        env["TOKIO_WORKER_THREADS"] = str(self.worker_threads)
        return env

    def start(self, timeout: float = 30.0) -> None:
        """Start the engine and wait until ``/health`` answers.

        :raises RuntimeError: a port is taken, the binary fails, or it does not get healthy
        """
        if self.process is not None:
            raise RuntimeError("the engine was already started")
        for port in (self.port, self.api_peer_port, self.metrics_port):
            if not port_free(self.host, port):
                raise RuntimeError(
                    f"cannot start the engine: {self.host}:{port} is already in use "
                    "(another engine running?)"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.data_dir / "config.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        args = [str(self.binary), "start", "--config", str(config_path.resolve())]
        logger.info("starting the Rivet Engine: %s", " ".join(args))
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            cwd=str(self.data_dir),
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self._pump = threading.Thread(
            target=self._forward, args=(self.process.stdout,), name="rivet-engine-log", daemon=True
        )
        self._pump.start()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self._pump.join(1)
                tail = "\n".join(self._tail[-20:])
                raise RuntimeError(
                    f"the engine exited with status {self.process.returncode} during start-up"
                    + (f":\n{tail}" if tail else "")
                )
            if self.healthy():
                logger.info(
                    "the Rivet Engine is up on %s (data in %s)", self.endpoint, self.data_dir
                )
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the engine did not answer /health within {timeout:g} s")
            time.sleep(0.02)

    def healthy(self) -> bool:
        """Whether ``GET /health`` answers 200 now."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def output_lines(self) -> list[str]:
        """The engine's latest output lines (at most 200), oldest first."""
        return list(self._tail)

    def _forward(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._tail.append(line)
            if len(self._tail) > 400:
                del self._tail[:200]
            if "level=error" in line:
                process_logger.error("%s", line)
            elif "level=warn" in line:
                process_logger.warning("%s", line)
            else:
                process_logger.info("%s", line)
        stream.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait ``timeout`` seconds, then SIGKILL. Idempotent."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the engine did not stop within %g s; killing it", timeout)
            process.kill()
            process.wait(5)
        if self._pump is not None:
            self._pump.join(2)
        logger.info("the Rivet Engine stopped")

    def __enter__(self) -> LocalEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

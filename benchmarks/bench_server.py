"""HTTP and WebSocket action throughput of ``rivetkit serve``, next to raw baselines.

Uses the neutral harness in ``../shared/bench`` and measures, in the same run:

* HTTP: ``http_actions.sh`` (wrk, keep-alive, json ``increment(1)``) against our counter and
  against the raw ASGI baseline (``baselines/asgi_app.py`` under uvicorn + uvloop + httptools);
* WebSocket: ``ws_actions.mjs`` (the official client, one connection, 32 actions in flight)
  against our counter, and ``ws_echo_load.mjs`` against the raw ``websockets`` echo baseline.
* next to each HTTP figure, the server process's CPU time per request (user + system, from
  ``/proc``): a loaded machine disturbs it far less than the throughput;
* latency at a fixed moderate rate: ``fixed_rate.lua`` (wrk, ``--rate-conns`` keep-alive
  connections, each pausing ``rate-conns / rate`` seconds before each request, so together
  they offer a little under ``--rate`` requests/s, far below either server's limit; the
  achieved rate is printed): p50 and p99 of ours next to the raw ASGI baseline's.

The measurements run in interleaved rounds (``--rounds``, default 3), each pair (baseline,
ours) back to back, the baseline first in even rounds and ours first in odd ones (as
``bench_peers.py`` rotates), so neither side always meets the machine warmer. Each ratio is
the median of per-round ratios, figures measured seconds apart. Prints a table with the
medians and ratios and writes JSON (every round's figures too) with ``--json``. Needs
``wrk`` (apt) and, for the WebSocket pair, the npm client in ``tests/interop`` (``make
interop-deps``). Everything runs on 127.0.0.1. The machine is shared and noisy: compare only
figures measured side by side, as here.

    python benchmarks/bench_server.py [--quick] [--rounds N] [--json FILE] [--encoding json]
        [--only http,latency,ws] [--rate 2000] [--rate-conns 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"
INTEROP = ROOT / "tests" / "interop"
QUERY = (
    "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=bench"
    "&rvt-crash-policy=sleep"
)


#: The measured pairs, (baseline, ours), by the ``--only`` name that selects them.
PAIRS = {
    "http": ("http_baseline", "http_rivetkit"),
    "latency": ("latency_baseline", "latency_rivetkit"),
    "ws": ("ws_baseline", "ws_rivetkit"),
}
FIXED_RATE = Path(__file__).resolve().parent / "fixed_rate.lua"
WS_LOAD = ("--conns", "1", "--window", "32")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early: {process.args}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error answer means it is up
                return
            time.sleep(0.1)
    raise SystemExit(f"no answer from {url}")


def start(command: list[str], url: str, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_http(url, process)
    return process


def median_line(output: str) -> dict[str, object]:
    for line in output.splitlines():
        if line.startswith("median "):
            return dict(json.loads(line[len("median ") :]))
    raise SystemExit(f"no median line in:\n{output}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_http(url: str, conns: int, seconds: int, runs: int, server: int, cpu: list[float]) -> float:
    """Median actions/s of ``runs`` wrk runs; appends the CPU microseconds per request of the
    process ``server`` over them to ``cpu``."""
    before = cpu_seconds(server)
    result = subprocess.run(
        ["bash", str(BENCH / "http_actions.sh"), "-c", str(conns), "-d", str(seconds),
         "-r", str(runs), url],
        capture_output=True, text=True, timeout=runs * (seconds + 60), check=True,
    )  # fmt: skip
    used = cpu_seconds(server) - before
    requests = sum(
        int(json.loads(line)["requests"])
        for line in result.stdout.splitlines()
        if line.startswith('{"run"')
    )
    cpu.append(1e6 * used / max(requests, 1))
    rps = median_line(result.stdout)["rps"]
    assert isinstance(rps, dict)
    return float(rps["median"])


def run_fixed_rate(url: str, conns: int, rate: float, seconds: int) -> dict[str, float]:
    """p50/p99 (ms) and the achieved rate of ``conns`` connections offering ``rate`` req/s."""
    delay_ms = max(1, round(conns * 1000 / rate))
    result = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(FIXED_RATE),
         url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
        env={**os.environ, "DELAY_MS": str(delay_ms)},
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.startswith('{"requests"'):
            row = json.loads(line)
            if row["errors"]:
                raise SystemExit(f"fixed-rate run had errors: {row}")
            return {k: float(row[k]) for k in ("rps", "p50_ms", "p99_ms")}
    raise SystemExit(f"no result line in:\n{result.stdout}")


def run_node(script: str, args: list[str], seconds: int, runs: int) -> float:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is required")
    env = {**os.environ, "RIVETKIT_DIR": str(INTEROP)}
    result = subprocess.run(
        [node, "--experimental-websocket", str(BENCH / script), *args,
         "--duration", str(seconds), "--runs", str(runs)],
        capture_output=True, text=True, timeout=runs * (seconds + 60), env=env, check=True,
    )  # fmt: skip
    line = median_line(result.stdout)
    for field in ("rate", "ops", "rps"):
        value = line.get(field)
        if isinstance(value, dict) and "median" in value:
            return float(value["median"])
        if isinstance(value, (int, float)):
            return float(value)
    raise SystemExit(f"cannot read the median from {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--encoding", default="json", choices=["json", "cbor", "bare"])
    parser.add_argument("--conns", type=int, default=64, help="HTTP connections")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument(
        "--only", default="http,latency,ws", help="pairs to measure: http, latency, ws"
    )
    parser.add_argument("--rate", type=float, default=2000, help="fixed rate, requests/s")
    parser.add_argument("--rate-conns", type=int, default=16, help="fixed-rate connections")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := set(only) - set(PAIRS):
        raise SystemExit(f"unknown --only names: {sorted(unknown)}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install -y wrk")
    if "ws" in only and not (INTEROP / "node_modules" / "rivetkit").is_dir():
        raise SystemExit("run `make interop-deps` first (npm rivetkit for the WebSocket load)")
    seconds = 3 if args.quick else 8
    rounds = args.rounds or (1 if args.quick else 3)
    python = sys.executable

    def fixed_rate(name: str, url: str) -> float:
        row = run_fixed_rate(url, args.rate_conns, args.rate, seconds)
        latency[name].append(row)
        return row["p99_ms"]

    processes: list[subprocess.Popen[bytes]] = []
    samples: dict[str, list[float]] = {name: [] for pair in only for name in PAIRS[pair]}
    latency: dict[str, list[dict[str, float]]] = {name: [] for name in PAIRS["latency"]}
    cpu: dict[str, list[float]] = {name: [] for name in PAIRS["http"]}
    with tempfile.TemporaryDirectory(prefix="rivetkit-bench-") as scratch:
        try:
            asgi_port, echo_port, ours_port = free_port(), free_port(), free_port()
            baseline = start(
                [python, "-m", "uvicorn", "asgi_app:app", "--app-dir", str(BENCH / "baselines"),
                 "--host", "127.0.0.1", "--port", str(asgi_port), "--loop", "uvloop",
                 "--http", "httptools", "--no-access-log", "--log-level", "warning"],
                f"http://127.0.0.1:{asgi_port}/health",
            )  # fmt: skip
            processes.append(baseline)
            echo = subprocess.Popen(
                [python, str(BENCH / "baselines" / "ws_echo_server.py"), "--port", str(echo_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(echo)
            ours_url = f"http://127.0.0.1:{ours_port}"
            ours = start(
                [python, "-m", "rivetkit", "serve", str(ROOT / "examples" / "app.py"),
                 "--port", str(ours_port), "--data", os.path.join(scratch, "data")],
                f"{ours_url}/health",
            )  # fmt: skip
            processes.append(ours)
            time.sleep(0.5)
            action_url = f"{ours_url}/gateway/counter/action/increment?{QUERY}"
            measure: dict[str, Callable[[], float]] = {
                "http_baseline": lambda: run_http(
                    f"http://127.0.0.1:{asgi_port}/any",
                    args.conns,
                    seconds,
                    1,
                    baseline.pid,
                    cpu["http_baseline"],
                ),
                "http_rivetkit": lambda: run_http(
                    action_url, args.conns, seconds, 1, ours.pid, cpu["http_rivetkit"]
                ),
                "latency_baseline": lambda: fixed_rate(
                    "latency_baseline", f"http://127.0.0.1:{asgi_port}/any"
                ),
                "latency_rivetkit": lambda: fixed_rate("latency_rivetkit", action_url),
                "ws_baseline": lambda: run_node(
                    "ws_echo_load.mjs",
                    ["--url", f"ws://127.0.0.1:{echo_port}/", *WS_LOAD],
                    seconds,
                    1,
                ),
                "ws_rivetkit": lambda: run_node(
                    "ws_actions.mjs",
                    ["--endpoint", ours_url, "--encoding", args.encoding, *WS_LOAD],
                    seconds,
                    1,
                ),
            }
            # Baseline and server side by side, round after round: the machine's load drifts
            # over minutes, so each ratio compares figures measured seconds apart; which side
            # goes first alternates.
            for round_ in range(rounds):
                for pair in only:
                    first, second = PAIRS[pair]
                    for name in (first, second) if round_ % 2 == 0 else (second, first):
                        samples[name].append(measure[name]())
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
    results = {name: statistics.median(values) for name, values in samples.items()}

    def round_ratios(pair: str) -> list[float]:
        base, ours = PAIRS[pair]
        return [a / b for a, b in zip(samples[ours], samples[base])]

    def spread(name: str) -> str:
        values = samples[name]
        return f"({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else ""

    def ratios(values: list[float]) -> str:
        return "" if len(values) < 2 else "  rounds " + " ".join(f"{v:.2f}" for v in values)

    report: dict[str, Any] = dict(results)
    print(f"{rounds} interleaved round(s) of {seconds} s; medians (min-max)")
    if "http" in only:
        http_ratios = round_ratios("http")
        report["http_ratio"] = http_ratio = statistics.median(http_ratios)
        print(f"HTTP actions/s, keep-alive, {args.conns} connections (wrk, json):")
        print(f"  raw ASGI baseline   {results['http_baseline']:>10,.0f} {spread('http_baseline')}")
        print(
            f"  rivetkit serve      {results['http_rivetkit']:>10,.0f} {spread('http_rivetkit')}"
            f"   ratio {http_ratio:.2f}{ratios(http_ratios)}"
        )
        base_cpu, ours_cpu = cpu["http_baseline"], cpu["http_rivetkit"]
        cpu_ratios = [b / o for b, o in zip(base_cpu, ours_cpu)]
        report["http_cpu_us"] = cpu
        report["http_cpu_ratio"] = cpu_ratio = statistics.median(cpu_ratios)
        print(
            f"  server CPU per request: baseline {statistics.median(base_cpu):.1f} us, "
            f"rivetkit {statistics.median(ours_cpu):.1f} us, ratio {cpu_ratio:.2f}"
            f"{ratios(cpu_ratios)}"
        )
    if "latency" in only:
        print(
            f"Latency at a fixed rate ({args.rate:,.0f} req/s offered, {args.rate_conns} "
            "connections, wrk, json), medians over rounds:"
        )
        for name, label in zip(PAIRS["latency"], ("raw ASGI baseline", "rivetkit serve")):
            rows = latency[name]
            p50 = statistics.median(r["p50_ms"] for r in rows)
            p99 = statistics.median(r["p99_ms"] for r in rows)
            rps = statistics.median(r["rps"] for r in rows)
            report[f"{name}_p50_ms"], report[f"{name}_p99_ms"] = p50, p99
            rounds_text = " ".join(f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f}" for r in rows)
            print(
                f"  {label:<19} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({rps:,.0f} req/s)"
                f"  rounds p50/p99 {rounds_text}"
            )
    if "ws" in only:
        ws_ratios = round_ratios("ws")
        report["ws_ratio"] = ws_ratio = statistics.median(ws_ratios)
        print(f"WebSocket, one connection, 32 in flight (official client, {args.encoding}):")
        print(
            f"  raw echo baseline   {results['ws_baseline']:>10,.0f} msgs/s {spread('ws_baseline')}"
        )
        print(
            f"  rivetkit serve      {results['ws_rivetkit']:>10,.0f} actions/s "
            f"{spread('ws_rivetkit')}   ratio {ws_ratio:.2f}{ratios(ws_ratios)}"
        )
    if args.json:
        report.update(rounds=samples, latency=latency, seconds=seconds, encoding=args.encoding)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

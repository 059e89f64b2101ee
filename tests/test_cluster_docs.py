"""docs/guides/cluster.md stays true to the cluster the tests run, and ``make cluster`` works.

* The engine node configuration shown on the page (the ``json`` block after the marker
  comment) equals what :meth:`cluster_fixtures.ClusterEngine.config` builds for the same
  addresses, ports, database URL, NATS address, token and pegboard options: same sections,
  same nesting, same values once the page's private addresses replace loopback.
* ``ci/cluster.py --check`` (``make cluster CLUSTER_ARGS=--check``) starts PostgreSQL, NATS,
  two engine nodes and three envoys, calls an action through each node and stops everything
  (needs PostgreSQL and nats-server: skipped without them, failed under CI).
* The page's "Draining": an envoy stopped with SIGTERM hands its actors, with their saved
  state, to the other envoy of the pool.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cluster_fixtures import ClusterEngine, require_cluster_tools
from engine_fixtures import ROOT

PAGE = ROOT / "docs" / "guides" / "cluster.md"
MARKER = "<!-- checked by tests/test_cluster_docs.py: an engine node's config -->"
LISTENERS = ("guard", "api_peer", "metrics")


def page_configs() -> list[dict[str, Any]]:
    """Every ``json`` block that follows the marker comment on the page."""
    text = PAGE.read_text()
    pattern = re.escape(MARKER) + r"\s*```json\n(.*?)```"
    return [json.loads(block) for block in re.findall(pattern, text, flags=re.DOTALL)]


def fixture_config(shown: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """What ClusterEngine.config() builds with the values shown on the page."""
    postgres = shown["postgres"]
    nats = postgres.get("nats", {}).get("addresses", [None])[0]
    extra = {
        section: value
        for section, value in shown.items()
        if section not in (*LISTENERS, "postgres", "nats", "auth", "telemetry", "runtime")
    }
    engine = ClusterEngine(
        tmp_path / "engine",
        tmp_path / "data",
        port=shown["guard"]["port"],
        api_peer_port=shown["api_peer"]["port"],
        metrics_port=shown["metrics"]["port"],
        token=shown.get("auth", {}).get("admin_token"),
        postgres_url=postgres["url"],
        nats_address=nats,
        extra_config=extra,
    )
    built = engine.config()
    for listener in LISTENERS:  # the fixture binds loopback; the page, a machine's address
        section = built[listener]
        assert isinstance(section, dict) and section["host"] == "127.0.0.1"
        built[listener] = {**section, "host": shown[listener]["host"]}
    return built


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def test_the_page_shows_a_node_config() -> None:
    configs = page_configs()
    assert len(configs) == 1, "the marker must precede exactly one json block"
    shown = configs[0]
    assert urlsplit(shown["postgres"]["url"]).scheme == "postgresql"
    assert shown["nats"] == shown["postgres"]["nats"]


def test_the_node_config_on_the_page_is_the_one_the_tests_run(tmp_path: Path) -> None:
    for shown in page_configs():
        assert shown == fixture_config(shown, tmp_path)


def test_a_drifted_page_is_caught(tmp_path: Path) -> None:
    shown = page_configs()[0]
    moved = {**shown, "database": {"postgres": shown["postgres"]}}
    del moved["postgres"]
    with pytest.raises(KeyError):
        fixture_config(moved, tmp_path)
    renamed = json.loads(json.dumps(shown))
    renamed["postgres"]["nats"] = {"servers": renamed["postgres"]["nats"]["addresses"]}
    assert renamed != fixture_config(renamed, tmp_path)


def test_make_cluster_check() -> None:
    """``ci/cluster.py --check``: the whole cluster up, an action through each node, down."""
    require_cluster_tools(2)
    done = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "cluster.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    calls = re.findall(r"check: counter\.increment through (http://\S+) -> (\d+)", output)
    assert [int(value) for _, value in calls] == [1, 2], output
    assert len({url for url, _ in calls}) == 2, output
    assert "dashboard http://127.0.0.1:" in output
    assert "check: the client command printed 1" in output, output
    logs = re.search(r"logs\s+(\S+) \(removed at exit\)", output)
    assert logs is not None and not Path(logs.group(1)).exists(), output
    assert not _processes_mentioning(logs.group(1)), "left running"
    assert done.stdout.rstrip().endswith("stopped"), output


def test_a_drained_envoy_hands_its_actors_over(tmp_path: Path) -> None:
    """The page's "Draining": SIGTERM of an envoy moves its actors, with their saved state, to
    the other envoy of the pool (two nodes, one envoy on each, both given both URLs)."""
    require_cluster_tools(2)
    sys.path.insert(0, str(ROOT / "ci"))
    from cluster import Envoy
    from cluster_fixtures import Cluster

    from rivetkit.client import RetryOptions, SyncClient

    app = str(ROOT / "tests" / "apps" / "engine_app.py")
    running = Cluster(2)
    envoys: list[Envoy] = []
    try:
        running.start()
        a, b = (engine.endpoint for engine in running.engines)
        envoys = [
            Envoy(0, app, f"{a},{b}", "drain", tmp_path / "e0.log"),
            Envoy(1, app, f"{b},{a}", "drain", tmp_path / "e1.log"),
        ]
        for envoy in envoys:
            envoy.wait_ready()
        retry = RetryOptions(get_attempts=80, get_or_create_attempts=80, interval=0.25)
        with SyncClient(b, pool="drain", retry=retry, timeout=30) as client:
            first = [client.tally.get_or_create([f"d{i}"]).add(i + 1) for i in range(12)]
            pids = {r["pid"] for r in first}
            victim = max(envoys, key=lambda e: sum(r["pid"] == e.process.pid for r in first))
            survivor = next(e for e in envoys if e is not victim)
            assert victim.process.pid in pids
            started = time.monotonic()
            victim.stop()
            assert victim.process.returncode == 0, victim.tail()
            after = [client.tally.get([f"d{i}"]).total() for i in range(12)]
            moved_in = time.monotonic() - started
        assert [r["total"] for r in after] == [i + 1 for i in range(12)]
        assert {r["pid"] for r in after} == {survivor.process.pid}
        print(
            f"\ndrained envoy: its actors answered from the other one {moved_in:.1f} s after SIGTERM"
        )
    finally:
        for envoy in envoys:
            envoy.stop(10)
        running.stop()

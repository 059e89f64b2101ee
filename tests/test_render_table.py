"""``benchmarks/render_table.py``: the published table says what each row compares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "render_table.py"


def row(ident: str, title: str, ours: float, peer: float) -> dict[str, Any]:
    """One comparison as ``bench_peers.py`` writes it."""
    return {
        "id": ident,
        "title": title,
        "unit": "actions/s",
        "ours": {"label": "ours", "median": ours},
        "peer": {"label": "RivetKit TS", "median": peer},
        "ratio": ours / peer,
        "ratio_rounds": [ours / peer],
        "notes": "",
    }


REPORT: dict[str, Any] = {
    "date": "2026-12-05T21:00:00+00:00",
    "machine": {"cpus": 2, "cpu": "test cpu", "system": "Linux"},
    "versions": {"python": "3.11", "rivetkit_twins": "compiled"},
    "settings": {"rounds": 1, "seconds": 1, "http_conns": 16, "ws_load": "--conns 1"},
    "comparisons": [
        row("embedded_http", "HTTP actions: ours embedded vs RivetKit TS", 16000, 1000),
        row(
            "embedded_ws",
            "WebSocket actions (32 connections x 1 in flight): ours embedded vs RivetKit TS",
            32000,
            1800,
        ),
        row(
            "embedded_ws_1conn",
            "WebSocket actions (1 connection x 32 in flight, sustained, after a 4 s warm-up): "
            "ours embedded vs RivetKit TS",
            49000,
            90,
        ),
        row(
            "engine_ws_1conn",
            "WebSocket actions through the engine gateway (1 connection x 32 in flight, "
            "sustained, after a 4 s warm-up): ours vs RivetKit TS",
            90,
            90,
        ),
    ],
}


def render(tmp_path: Path, report: dict[str, Any]) -> str:
    """Render ``report`` into a page with the table markers; return the page."""
    results = tmp_path / "latest.json"
    results.write_text(json.dumps(report))
    page = tmp_path / "page.md"
    page.write_text("# t\n\n<!-- bench-table:start -->\nold\n<!-- bench-table:end -->\n")
    subprocess.run(
        [sys.executable, str(SCRIPT), "--results", str(results),
         "--micro", str(tmp_path / "none.json"), "--page", str(page)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return page.read_text()


def table_titles(page: str) -> list[str]:
    """The first cell of each data row of the table."""
    rows = [line for line in page.splitlines() if line.startswith("| ")][1:]
    return [line.split(" | ")[0].removeprefix("| ") for line in rows]


def test_embedded_rows_say_no_engine_against_ts_behind_its_engine(tmp_path: Path) -> None:
    """The embedded rows' titles name both set-ups; the engine row is untouched."""
    titles = table_titles(render(tmp_path, REPORT))
    assert titles == [
        "HTTP actions: ours embedded (no engine) vs RivetKit TS (behind its engine)",
        "WebSocket actions (32 connections x 1 in flight): ours embedded (no engine) vs "
        "RivetKit TS (behind its engine)",
        "WebSocket actions through the engine gateway (1 connection x 32 in flight, "
        "sustained, after a 4 s warm-up): ours vs RivetKit TS",
    ]


def test_the_sustained_one_socket_embedded_row_is_dropped_and_said(tmp_path: Path) -> None:
    """No 544x row: the page says which row is left out and why."""
    page = render(tmp_path, REPORT)
    assert "544" not in page
    assert "Not shown: ours embedded vs RivetKit TS on one WebSocket under sustained load" in page
    assert "old" not in page


def test_a_re_render_is_stable(tmp_path: Path) -> None:
    """Titles already explicit (a re-render, or a newer bench_peers) are not doubled."""
    report = json.loads(json.dumps(REPORT))
    once = table_titles(render(tmp_path, report))
    for entry, title in zip(report["comparisons"][:2], once[:2], strict=True):
        entry["title"] = title
    assert table_titles(render(tmp_path, report)) == once


def test_without_the_dropped_row_nothing_is_said(tmp_path: Path) -> None:
    """A report with no sustained one-socket embedded row prints no "Not shown" line."""
    report = {**REPORT, "comparisons": REPORT["comparisons"][:2]}
    assert "Not shown" not in render(tmp_path, report)


def test_a_page_is_not_rendered_from_micro_results_alone(tmp_path: Path) -> None:
    """Without the peer results, ``--page`` leaves the page (and its peer rows) as it is."""
    micro = tmp_path / "micro.json"
    micro.write_text(json.dumps({"benchmarks": []}))
    page = tmp_path / "page.md"
    page.write_text("<!-- bench-table:start -->\npeer rows\n<!-- bench-table:end -->\n")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--results", str(tmp_path / "none.json"),
         "--micro", str(micro), "--page", str(page)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "peer rows" in page.read_text()

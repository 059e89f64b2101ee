"""Render the results of ``make bench`` as the Markdown performance tables of the docs.

Reads ``benchmarks/results/latest.json`` (``bench_peers.py``: the peer comparisons) and, when
present, ``benchmarks/results/micro.json`` (pytest-benchmark's JSON of ``test_micro.py``:
compiled vs pure twin). Prints the Markdown; ``--out FILE`` also writes it, and ``--page
docs/performance.md`` (``make bench-readme``; ``--readme`` is the old spelling) replaces the
text between the ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` markers of
that file with it (only with the peer results: micro results alone would drop the peer rows).
The published rows differ from ``latest.json`` as ``UNPUBLISHED`` and ``published`` say.

    python benchmarks/render_table.py [--results FILE] [--micro FILE] [--out FILE]
                                      [--page docs/performance.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
VERSION_NAMES = (
    ("python", "Python"),
    ("rivetkit", "rivetkit"),
    ("rivetkit_ts", "RivetKit TS"),
    ("rivet_engine", "Rivet Engine"),
    ("node_peer_and_load", "Node (peer and load generators)"),
    ("ray", "Ray"),
    ("pykka", "Pykka"),
    ("wrk", "wrk"),
)


def number(value: float) -> str:
    return f"{value:,.0f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def seconds(value: float) -> str:
    """A duration with a readable unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def header(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    versions = report["versions"]
    settings = report["settings"]
    load = machine.get("load_average_start")
    load_text = f", load average {load[0]:.1f} at the start" if load else ""
    listed = ", ".join(
        f"{label} {versions[key]}" for key, label in VERSION_NAMES if versions.get(key)
    )
    return [
        f"Measured by `make bench` on {report['date'][:10]}: {machine['cpus']} CPU cores "
        f"({machine['cpu']}, {machine['system']}), shared with other jobs, so noisy"
        f"{load_text}. Versions: {listed}; our hot paths: the {versions['rivetkit_twins']} "
        "twins.",
        "",
        f"{settings['rounds']} interleaved rounds of {settings['seconds']:g} s per measurement "
        "(the order rotates each round; our engine envoy and RivetKit TS take turns going "
        "first). A ratio is ours / peer (above 1: ours is faster), the median of the "
        "per-round ratios (the figures of a round are measured seconds apart). HTTP: wrk, "
        f"{settings['http_conns']} keep-alive connections, json. WebSocket: the official "
        f"RivetKit client, {ws_loads(settings)}.",
    ]


def ws_loads(settings: dict[str, Any]) -> str:
    """The ``ws_actions.mjs`` arguments of each WebSocket load (older results: one load)."""
    if "ws_loads" not in settings:
        return f"`ws_actions.mjs {settings['ws_load']}`"
    return "; ".join(f"{kind}: `{args}`" for kind, args in settings["ws_loads"].items())


def cpu_note(ours: dict[str, Any], peer: dict[str, Any]) -> str:
    """CPU ms per action of the servers (and of the engine), ours vs the peer's, if measured."""
    parts = []
    for field, what in (("server_cpu_ms", "server"), ("engine_cpu_ms", "engine")):
        if field in ours and field in peer:
            parts.append(f"{what} {ours[field]:.2f} vs {peer[field]:.2f}")
    return f"CPU ms/action: {', '.join(parts)}" if parts else ""


# Rows of ``bench_peers.py`` that are not published, by id, with the reason printed instead.
# One socket under sustained load runs at Rivet Engine 2.3.19's gateway pace (~90 messages/s
# once a socket is past its first ~2,300), whatever the envoy: against our embedded server
# that row measures the gateway, not RivetKit TS. The row through the engine (both envoys
# behind the same engine build) stays.
UNPUBLISHED = {
    "embedded_ws_1conn": (
        "Not shown: ours embedded vs RivetKit TS on one WebSocket under sustained load. That "
        "row measures the engine gateway's pace on one socket (about 90 messages/s after its "
        "first ~2,300), not RivetKit; the same load through the engine, each envoy behind "
        "the same engine build, is in the table."
    ),
}
# The rows ``embedded_*`` compare ours with no engine against RivetKit TS, which serves only
# through an engine: their titles say so, whatever ``bench_peers.py`` called them.
EMBEDDED_PREFIX = "embedded_"
EMBEDDED_SIDES = "ours embedded (no engine) vs RivetKit TS (behind its engine)"


def published(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows to publish: unpublished ids left out, embedded rows' titles made explicit."""
    kept = []
    for row in rows:
        ident = str(row.get("id", ""))
        if ident in UNPUBLISHED:
            continue
        if ident.startswith(EMBEDDED_PREFIX):
            what = str(row["title"]).split(": ")[0]
            row = {**row, "title": f"{what}: {EMBEDDED_SIDES}"}
        kept.append(row)
    return kept


def left_out(rows: list[dict[str, Any]]) -> list[str]:
    """The reasons printed under the table for the rows ``published`` left out."""
    return [UNPUBLISHED[row["id"]] for row in rows if row.get("id") in UNPUBLISHED]


def peer_table(report: dict[str, Any]) -> list[str]:
    """The comparisons as a Markdown table, followed by what was left out and why."""
    lines = [
        "| comparison | unit | ours | peer | ours / peer | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in published(report["comparisons"]):
        if "skipped" in row:
            lines.append(f"| {row['title']} | - | - | - | not run | {row['skipped']} |")
            continue
        ours, peer = row["ours"], row["peer"]
        rounds = " ".join(f"{r:.2f}" for r in row["ratio_rounds"])
        note = "; ".join(filter(None, [row.get("notes", ""), cpu_note(ours, peer)]))
        note = f"{note}; rounds {rounds}" if note else f"rounds {rounds}"
        lines.append(
            f"| {row['title']} | {row['unit']} | {number(ours['median'])} ({ours['label']}) | "
            f"{number(peer['median'])} ({peer['label']}) | **{ratio(row['ratio'])}** | {note} |"
        )
    for reason in left_out(report["comparisons"]):
        lines += ["", reason]
    return lines


def micro_table(micro: dict[str, Any]) -> list[str]:
    groups: dict[str, dict[str, float]] = {}
    for bench in micro.get("benchmarks", []):
        twin = bench.get("params", {}).get("twin")
        if twin in ("compiled", "pure"):
            groups.setdefault(bench["group"], {})[twin] = float(bench["stats"]["median"])
    lines = [
        "Micro-benchmarks (`make bench-micro`, pytest-benchmark, median time per call, both "
        "twins in one process):",
        "",
        "| benchmark | compiled | pure | pure / compiled |",
        "|---|---:|---:|---:|",
    ]
    for group, times in groups.items():
        compiled, pure = times.get("compiled"), times.get("pure")
        if compiled is None or pure is None:
            shown = seconds(pure) if pure else "-"
            lines.append(f"| {group} | not built | {shown} | - |")
            continue
        lines.append(
            f"| {group} | {seconds(compiled)} | {seconds(pure)} | {ratio(pure / compiled)} |"
        )
    return lines


def render(report: dict[str, Any] | None, micro: dict[str, Any] | None) -> str:
    parts: list[str] = []
    if report is not None:
        parts += [*header(report), "", *peer_table(report)]
    if micro is not None:
        parts += ["", *micro_table(micro)] if parts else micro_table(micro)
    return "\n".join(parts) + "\n"


def replace_section(path: Path, text: str) -> None:
    content = path.read_text()
    begin, end = content.find(START), content.find(END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    path.write_text(content[: begin + len(START)] + "\n" + text + content[end:])


def load(path: Path) -> dict[str, Any] | None:
    return dict(json.loads(path.read_text())) if path.is_file() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--micro", type=Path, default=HERE / "results" / "micro.json")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    parser.add_argument(
        "--page",
        "--readme",
        dest="page",
        type=Path,
        help="replace the marked section of this file (docs/performance.md)",
    )
    args = parser.parse_args()
    report, micro = load(args.results), load(args.micro)
    if report is None and micro is None:
        print(f"no results: run `make bench` first ({args.results})", file=sys.stderr)
        return 2
    if args.page and report is None:
        # The page's section holds both tables: micro results alone would drop the peer rows.
        print(f"no peer results ({args.results}): the page is left as it is", file=sys.stderr)
        return 2
    text = render(report, micro)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    if args.page:
        replace_section(args.page, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

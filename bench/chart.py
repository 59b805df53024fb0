#!/usr/bin/env python3
"""Chart of one bench/run.sh run: throughput per scenario and server, and RSS
over time during each scenario.

Usage: bench/.venv/bin/python bench/chart.py OUT_DIR [IMAGE]
  OUT_DIR: bench/out/<stamp>/ of a run (summary.csv, rss.csv, meta.txt,
           command.txt, restart.csv if restarts were timed)
  IMAGE:   where to write it (default OUT_DIR/results.png; .svg for SVG)

run.sh calls it after every run; matplotlib comes from bench/requirements.txt.
"""
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCENARIO_ORDER = ["health_live", "client_credentials", "refresh_token", "introspection"]
SERVER_ORDER = ["tessera", "oidc-provider", "tessera-pg", "tessera-pg-2nodes"]
COLORS = {
    "tessera": "#1f77b4",
    "oidc-provider": "#ff7f0e",
    "tessera-pg": "#2ca02c",
    "tessera-pg-2nodes": "#9467bd",
}


def order(items, preferred):
    return sorted(items, key=lambda x: (preferred.index(x) if x in preferred else len(preferred), x))


def read_kv(path: Path) -> dict:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(sys.argv[1])
    image = Path(sys.argv[2]) if len(sys.argv) > 2 else out_dir / "results.png"

    with open(out_dir / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        print("summary.csv has no rows", file=sys.stderr)
        return 1
    # RSS samples: (scenario, server) -> [(t, phase, MiB)]
    samples = defaultdict(list)
    rss_path = out_dir / "rss.csv"
    if rss_path.exists():
        with open(rss_path, newline="") as f:
            for r in csv.DictReader(f):
                scenario, _, phase = r["phase"].partition(":")
                if phase:
                    samples[(scenario, r["server"])].append((float(r["t_s"]), phase, int(r["rss_kib"]) / 1024))

    meta = read_kv(out_dir / "meta.txt")
    command = (out_dir / "command.txt").read_text().strip() if (out_dir / "command.txt").exists() else ""
    restart = ""
    if (out_dir / "restart.csv").exists():
        parts = (out_dir / "restart.csv").read_text().strip().split(",")
        if len(parts) >= 2:
            restart = f"; Tessera restart to ready: median {parts[1]} ms"

    scenarios = order({r["scenario"] for r in rows}, SCENARIO_ORDER)
    servers = order({r["server"] for r in rows}, SERVER_ORDER)
    rss_scenarios = [s for s in scenarios if any(k[0] == s for k in samples)]

    ncols = 2
    nrss = math.ceil(len(rss_scenarios) / ncols)
    fig = plt.figure(figsize=(13, 4.6 + 3.4 * nrss), layout="constrained")
    grid = fig.add_gridspec(1 + nrss, ncols, height_ratios=[1.35] + [1] * nrss)

    # Throughput, grouped by scenario.
    ax = fig.add_subplot(grid[0, :])
    by = {(r["scenario"], r["server"]): r for r in rows}
    present = {sc: [sv for sv in servers if (sc, sv) in by] for sc in scenarios}
    width = 0.8 / max(len(v) for v in present.values())
    labelled = set()
    for i, scenario in enumerate(scenarios):
        here = present[scenario]
        for j, server in enumerate(here):
            r = by[(scenario, server)]
            x = i + width * (j - (len(here) - 1) / 2)
            bad = int(r["non2xx"] or 0)
            label = f"{float(r['rps']):,.0f}" + (f"\n{bad} non-2xx!" if bad else "")
            bars = ax.bar([x], [float(r["rps"])], width * 0.95, color=COLORS.get(server),
                          label=None if server in labelled else server)
            labelled.add(server)
            ax.bar_label(bars, labels=[label], fontsize=8, padding=2)
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_ylabel("requests/s (higher is better)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
    ax.legend(loc="upper right", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Throughput (wrk, every response checked)", fontsize=11)

    # RSS over time, one panel per scenario, time from the scenario's start.
    for k, scenario in enumerate(rss_scenarios):
        ax = fig.add_subplot(grid[1 + k // ncols, k % ncols])
        shaded = False
        top = 0.0
        for server in servers:
            pts = samples.get((scenario, server))
            if not pts:
                continue
            t0 = pts[0][0]
            top = max(top, max(p[2] for p in pts))
            ax.plot([p[0] - t0 for p in pts], [p[2] for p in pts], label=server,
                    color=COLORS.get(server), linewidth=1.4)
            if not shaded:
                # Warm-up and measured load of the first server; the others
                # follow the same schedule (IDLE, WARMUP, DURATION, SETTLE).
                for phase, color in (("warmup", "#dddddd"), ("load", "#f3e3c3")):
                    ts = [p[0] - t0 for p in pts if p[1] == phase]
                    if ts:
                        ax.axvspan(min(ts), max(ts), color=color, alpha=0.6, linewidth=0,
                                   label=phase if k == 0 else None)
                shaded = True
        ax.set_title(f"RSS during {scenario}", fontsize=10)
        ax.set_xlabel("s from the scenario's start (idle, warm-up, load, after)")
        ax.set_ylabel("VmRSS MiB")
        ax.set_ylim(0, top * 1.2 or 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right", ncols=2)

    title = f"Tessera vs oidc-provider, {meta.get('alg', '?')} — {meta.get('date', '')}, commit {meta.get('commit', '?')}"
    sub = f"{meta.get('machine', '')}; {meta.get('load', '')}{restart}\n{command}"
    fig.suptitle(f"{title}\n{sub}", fontsize=9)
    fig.savefig(image, dpi=110)
    print(f"wrote {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Chart of one bench/soak.mjs run: the server's RSS over time (with the
reference sample's ±10% band and the linear fit from it), and the achieved
token requests/s per sample window against the target rate.

Usage: bench/.venv/bin/python bench/soak_chart.py OUT_DIR [IMAGE]
  OUT_DIR: bench/out/soak-<stamp>/ (samples.csv, report.md)
  IMAGE:   where to write it (default OUT_DIR/soak.png)
"""
import csv
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def num(v):
    return float(v) if v not in ("", None) else float("nan")


def main():
    out = Path(sys.argv[1])
    image = Path(sys.argv[2]) if len(sys.argv) > 2 else out / "soak.png"
    rows = list(csv.DictReader((out / "samples.csv").open()))
    t = [num(r["t_s"]) for r in rows]
    rss = [num(r["rss_mib"]) for r in rows]
    rate = [num(r["rate_per_s"]) for r in rows]
    p99 = [num(r["p99_ms"]) for r in rows]
    title = (out / "title.txt").read_text().strip() if (out / "title.txt").exists() else out.name
    target = re.search(r"\+ (\d+) token requests/s", title)
    target = float(target.group(1)) if target else None
    duration = t[-1]
    ref_t = min(60, int(duration / 2 / (t[1] - t[0])) * (t[1] - t[0])) if len(t) > 1 else 0

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ax1.plot(t, rss, marker="o", markersize=3, color="#1f77b4", label="server VmRSS")
    if ref_t in t:
        ref = rss[t.index(ref_t)]
        ax1.axhspan(ref * 0.9, ref * 1.1, color="#2ca02c", alpha=0.12, label=f"±10% of the sample at {ref_t:.0f} s")
        fit = [(x, y) for x, y in zip(t, rss) if x >= ref_t]
        if len(fit) > 1:
            mx = sum(x for x, _ in fit) / len(fit)
            my = sum(y for _, y in fit) / len(fit)
            b = sum((x - mx) * (y - my) for x, y in fit) / sum((x - mx) ** 2 for x, _ in fit)
            xs = [fit[0][0], fit[-1][0]]
            ax1.plot(xs, [my + b * (x - mx) for x in xs], "--", color="#d62728",
                     label=f"linear fit from {ref_t:.0f} s: {b * 60:+.3f} MiB/min")
    lo = min(rss) * 0.85
    ax1.set_ylim(bottom=max(0, lo), top=max(rss) * 1.15)
    ax1.set_ylabel("RSS (MiB)")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.grid(alpha=0.3)
    ax1.set_title(title, fontsize=10)

    step = t[1] - t[0] if len(t) > 1 else 1
    # Each sample's rate is over the window that ends at its time.
    ax2.bar([x - step * 0.95 for x in t[1:]], rate[1:], width=step * 0.9, align="edge", color="#ff7f0e",
            alpha=0.8, label="achieved token requests/s (per window)")
    if target:
        ax2.axhline(target, color="black", linewidth=1, label=f"target {target:.0f}/s")
        ax2.axhline(target * 0.95, color="grey", linewidth=1, linestyle=":", label="95% of target")
    ax2.set_ylabel("requests/s")
    ax2.set_xlabel("seconds since the load started")
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    ax3.plot(t[1:], p99[1:], color="#9467bd", marker=".", linewidth=1, label="p99 latency (ms)")
    ax3.set_ylabel("p99 (ms)")
    ax3.set_ylim(bottom=0, top=max([v for v in p99[1:] if v == v] + [1]) * 2.5)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)
    ax2.set_ylim(bottom=0, top=max([v for v in rate[1:] if v == v] + [target or 1]) * 1.25)
    fig.tight_layout()
    fig.savefig(image, dpi=100)
    print(f"chart: {image}", file=sys.stderr)


if __name__ == "__main__":
    main()

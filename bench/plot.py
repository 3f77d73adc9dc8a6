"""bench/results/scaling.png: time, peak memory and comparisons per record against N; F1 per method.

    .venv/bin/python bench/plot.py [--results bench/results/run_all.json] [--out bench/results/scaling.png]

Reads the runs ``bench/run_all.py`` recorded; draws only measured points
(a method that timed out or was skipped at a size has no time, memory or F1
point there; its candidate pairs, when they were counted, are drawn hollow).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, read_json, size_label  # noqa: E402

LABELS = {
    "voterolls": "voterolls (DuckDB)",
    "spark": "voterolls (Spark local)",
    "crosscheck": "Crosscheck rule (DuckDB join)",
    "splink_docs": "Splink docs example",
    "recordlinkage": "recordlinkage guide",
    "recordlinkage_ecm": "recordlinkage + ECM",
}


def color(method: str) -> str:
    """One colour per method in every panel."""
    return f"C{list(LABELS).index(method)}"


def plot(runs: list[dict[str, Any]], out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in runs if r.get("status") == "ok" and r.get("registrations")]
    methods = [m for m in LABELS if any(r["method"] == m for r in ok)]
    fig, axes = plt.subplots(1, 4, figsize=(21, 5))
    for m in methods:
        pts = sorted((r for r in ok if r["method"] == m), key=lambda r: r["registrations"])
        xs = [r["registrations"] for r in pts]
        c = color(m)
        axes[0].plot(xs, [r["seconds"] for r in pts], marker="o", label=LABELS[m], color=c)
        axes[1].plot(xs, [r["peak_rss_mib"] for r in pts], marker="o", label=LABELS[m], color=c)
        if m in ("voterolls", "splink_docs", "recordlinkage"):
            for r in pts:  # comparisons per record beside each point
                axes[0].annotate(
                    f"{r['comparisons_per_record']:.2g} cmp/rec",
                    (r["registrations"], r["seconds"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    for ax, ylab in (
        (axes[0], "wall seconds (linkage)"),
        (axes[1], "peak RSS (MiB, process tree)"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("registrations (N)")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
    # comparisons per record: measured pair counts, including the Splink docs example's
    # exact count at sizes where it was too big to run (hollow markers)
    ax = axes[3]
    for m in ("voterolls", "splink_docs", "recordlinkage", "crosscheck"):
        pts = sorted(
            (
                r
                for r in runs
                if r.get("method") == m and r.get("candidate_pairs") and r.get("registrations")
            ),
            key=lambda r: r["registrations"],
        )
        if not pts:
            continue
        xs = [r["registrations"] for r in pts]
        ys = [r["candidate_pairs"] / r["registrations"] for r in pts]
        (line,) = ax.plot(xs, ys, marker="o", label=LABELS[m], color=color(m))
        for r, x, y in zip(pts, xs, ys, strict=True):
            if r.get("status") != "ok":
                ax.plot([x], [y], marker="o", mfc="white", color=line.get_color())
                ax.annotate(
                    "counted, not run",
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize=7,
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("registrations (N)")
    ax.set_ylabel("candidate pairs per registration")
    ax.set_title("comparisons per record vs N")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    axes[0].set_title("time vs N")
    axes[1].set_title("memory vs N")
    axes[0].legend(fontsize=8)

    # F1 only where peers ran beside voterolls (the comparison sizes)
    sizes = sorted({r["size"] for r in ok if r["method"] not in ("voterolls", "spark")}) or sorted(
        {r["size"] for r in ok}
    )
    width = 0.8 / max(1, len(sizes))
    ax = axes[2]
    for i, s in enumerate(sizes):
        xs, vals = [], []
        for j, m in enumerate(methods):
            r = next((r for r in ok if r["method"] == m and r["size"] == s), None)
            if r is not None and r.get("f1") is not None:  # not run at this size: no bar
                xs.append(j + i * width)
                vals.append(r["f1"])
        bars = ax.bar(xs, vals, width=width, label=f"N≈{size_label(s)}")
        for b, v in zip(bars, vals, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks([j + width * (len(sizes) - 1) / 2 for j in range(len(methods))])
    ax.set_xticklabels([LABELS[m] for m in methods], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("F1, cross-state duplicate pairs")
    ax.set_title("accuracy vs synthetic truth")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS / "run_all.json")
    ap.add_argument("--out", type=Path, default=RESULTS / "scaling.png")
    args = ap.parse_args(argv)
    res = read_json(args.results, {})
    print(plot(res.get("runs", []), args.out, res.get("title", "")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

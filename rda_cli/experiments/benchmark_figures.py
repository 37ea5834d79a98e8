"""Figures of ``rda benchmark``: RDA's AUROC against each baseline, and the detectors' ranks.

Both are drawn from the summary dict of :func:`rda_cli.experiments.benchmark_summary.build_summary`, so
``rda plot`` redraws them from the saved cells without training.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..safeio import write_file  # noqa: E402

__all__ = ["benchmark_figures", "auroc_scatter", "rank_boxplot"]

DPI = 120


def _save(fig, path):
    try:
        write_file(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return Path(path)


def _iv(rec, det):
    iv = rec["detectors"].get(det, {}).get("auroc")
    if not iv or iv["mean"] is None:
        return None, 0.0
    return iv["mean"], iv["half_width"] or 0.0


def auroc_scatter(summary, path, reference="rda"):
    """One panel per baseline: its AUROC (x) against RDA's (y) on each data set, with the diagonal.

    Points above the diagonal are sets where RDA ranks the test rows better; error bars are the
    95% intervals over seeds (none with one seed). Returns the path, or None without RDA.
    """
    names = {d: summary["overall"][d]["name"] for d in summary["detectors"]}
    others = [d for d in summary["detectors"] if d != reference]
    if reference not in summary["detectors"] or not others:
        return None
    cols = min(4, len(others))
    rows = math.ceil(len(others) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 3.1 * rows), squeeze=False)
    for ax, other in zip(axes.flat, others):
        xs, ys, xe, ye, labels = [], [], [], [], []
        for s, rec in summary["sets"].items():
            (y, yh), (x, xh) = _iv(rec, reference), _iv(rec, other)
            if x is None or y is None:
                continue
            xs.append(x), ys.append(y), xe.append(xh), ye.append(yh), labels.append(s)
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, zorder=0)
        if xs:
            above = np.array(ys) > np.array(xs)
            ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt="none", ecolor="0.75", lw=0.8, zorder=1)
            ax.scatter(np.array(xs)[above], np.array(ys)[above], s=16, color="tab:blue", zorder=2)
            ax.scatter(np.array(xs)[~above], np.array(ys)[~above], s=16, color="tab:red", zorder=2)
            ax.set_title(f"vs {names[other]}: RDA higher on {int(above.sum())}/{len(xs)}", fontsize=9)
        lo = min([0.5] + [v for v in xs + ys]) - 0.02
        ax.set_xlim(lo, 1.01)
        ax.set_ylim(lo, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{names[other]} AUROC", fontsize=8)
        ax.set_ylabel(f"{names[reference]} AUROC", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(others):]:
        ax.axis("off")
    fig.suptitle("Test AUROC per data set: RDA (y) against each detector (x); above the line, RDA is better",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def rank_boxplot(summary, path):
    """Box plot of each detector's AUROC rank over the data sets (1 = best), sorted by average rank."""
    ov = summary["overall"]
    dets = [d for d in summary["detectors"] if ov[d]["ranks"]]
    if not dets:
        return None
    dets.sort(key=lambda d: ov[d]["average_rank"])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * len(dets) + 1.5), 3.8))
    data = [ov[d]["ranks"] for d in dets]
    ax.boxplot(data, showfliers=True, widths=0.6)
    ax.set_xticks(range(1, len(dets) + 1), [ov[d]["name"] for d in dets], rotation=30, ha="right", fontsize=8)
    means = [ov[d]["average_rank"] for d in dets]
    ax.plot(range(1, len(dets) + 1), means, "D", color="tab:orange", ms=5, label="average rank")
    for i, d in enumerate(dets):
        if d in ("rda", "rda-ens"):
            ax.get_xticklabels()[i].set_fontweight("bold")
    ax.set_ylabel("rank by AUROC (1 = best)")
    ax.set_ylim(len(dets) + 0.5, 0.5)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"Ranks over {len(summary['complete_sets'])} data sets (box: quartiles; whiskers: 1.5 IQR)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def benchmark_figures(run_dir, summary):
    """Write ``benchmark_scatter.png`` and ``benchmark_ranks.png`` into ``run_dir``; return their paths."""
    run_dir = Path(run_dir)
    reference = "rda-ens" if "rda-ens" in summary["detectors"] else "rda"  # the default detector, else one RDA
    out = [auroc_scatter(summary, run_dir / "benchmark_scatter.png", reference),
           rank_boxplot(summary, run_dir / "benchmark_ranks.png")]
    return [p for p in out if p is not None]

"""The benchmark's summary: per-set intervals, mean AUROC, average ranks, wins/ties/losses of RDA
against the others, written as ``metrics.csv``, ``summary.json``, ``summary.md`` and the figures
(the report part of :mod:`rda_cli.experiments.benchmark`)."""

from __future__ import annotations

import math

import numpy as np

from .benchmark_plan import DETECTOR_NAMES, QUADRATIC, data_sets, runnable_detectors
from .common import cell_seed, read_summary, tag_seeds, untag_seeds, write_summary
from .stats import fmt_pm, interval_dict

ONE_SEED_TIE = 0.01  # with one seed, |ΔAUROC| below this counts as a tie

COLUMNS = ["id", "set", "detector", "seed", "protocol", "n_train", "n_test", "n_features", "anomaly_rate",
           "n_fit_rows", "auroc", "ap", "fit_seconds", "score_seconds", "threshold", "n_flagged", "batch_size",
           "inner_epochs", "layers"]


def _rank_rows(values):
    """Ranks (1 = highest) of one data set's values, ties sharing their average rank; NaN stays NaN."""
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=float)
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v)
    out[ok] = rankdata(-v[ok], method="average")
    return out


def compare(a, b, n_seeds):
    """``"win"``, ``"tie"`` or ``"loss"`` of interval dict ``a`` against ``b`` (AUROC).

    With two or more seeds a tie is two 95% intervals that overlap; with one seed, a difference
    below :data:`ONE_SEED_TIE`.
    """
    if a["mean"] is None or b["mean"] is None:
        return None
    diff = a["mean"] - b["mean"]
    if n_seeds >= 2 and a["half_width"] is not None and b["half_width"] is not None:
        tie = abs(diff) <= a["half_width"] + b["half_width"]
    else:
        tie = abs(diff) < ONE_SEED_TIE
    return "tie" if tie else ("win" if diff > 0 else "loss")


def _versus(lead, others, detectors, per_set, complete):
    """``{other: wins/ties/losses of lead, higher_mean, per_set}`` over the complete sets."""
    versus = {}
    for other in others:
        if lead not in detectors or other not in detectors:
            continue
        tally = {"win": 0, "tie": 0, "loss": 0}
        per, higher = {}, 0
        for s in complete:
            a, b = per_set[s]["detectors"][lead]["auroc"], per_set[s]["detectors"][other]["auroc"]
            outcome = compare(a, b, min(a["n"], b["n"]))
            if outcome:
                tally[outcome] += 1
                per[s] = outcome
                higher += int(a["mean"] > b["mean"])
        versus[other] = dict(tally, higher_mean=higher, per_set=per)
    return versus


def build_summary(config, cells):
    """The summary dict: per-set intervals, mean AUROC, average ranks, RDA's wins/ties/losses."""
    seeds = tag_seeds(config, cells)
    detectors = [d for d in config["detectors"] if any(c["detector"] == d for c in cells)]
    _, skipped = runnable_detectors(config)
    sets = []
    for c in cells:
        if c["set"] not in sets:
            sets.append(c["set"])
    try:
        order = list(data_sets(config))
        sets.sort(key=lambda s: order.index(s) if s in order else len(order))
    except Exception:  # the data folder may be gone when re-plotting elsewhere
        pass
    per_set = {}
    for s in sets:
        of_set = [c for c in cells if c["set"] == s]
        first = of_set[0]
        rec = {"n_rows": first["n_train"] + (0 if first["protocol"] == "transductive" else first["n_test"]),
               "n_features": first["n_features"], "anomaly_rate": first["anomaly_rate"], "detectors": {}}
        for d in detectors:
            cs = [c for c in of_set if c["detector"] == d]
            if not cs:
                continue
            rec["detectors"][d] = {
                "auroc": interval_dict([c["auroc"] for c in cs]), "ap": interval_dict([c["ap"] for c in cs]),
                "fit_seconds": interval_dict([c["fit_seconds"] for c in cs]),
                "score_seconds": interval_dict([c["score_seconds"] for c in cs]),
                "n_fit_rows": max(c["n_fit_rows"] for c in cs), "seeds": sorted(c["_seed"] for c in cs)}
        per_set[s] = rec
    # sets where every detector has a result: ranks and means over those
    complete = [s for s in sets if all(d in per_set[s]["detectors"] for d in detectors)]
    ranks = {d: [] for d in detectors}
    for s in complete:
        r = _rank_rows([per_set[s]["detectors"][d]["auroc"]["mean"] for d in detectors])
        for d, v in zip(detectors, r):
            ranks[d].append(float(v))
    overall = {}
    for d in detectors:
        au = [per_set[s]["detectors"][d]["auroc"]["mean"] for s in complete]
        ap = [per_set[s]["detectors"][d]["ap"]["mean"] for s in complete]
        secs = [per_set[s]["detectors"][d]["fit_seconds"]["mean"] for s in complete]
        overall[d] = {"name": DETECTOR_NAMES[d], "mean_auroc": float(np.mean(au)) if au else None,
                      "mean_ap": float(np.mean(ap)) if ap else None,
                      "average_rank": float(np.mean(ranks[d])) if ranks[d] else None, "ranks": ranks[d],
                      "total_fit_seconds": float(np.sum(secs)) if secs else None}
    versus = _versus("rda", ("ae", "iforest"), detectors, per_set, complete)
    versus_ensemble = _versus("rda-ens", ("iforest", "ae-ens", "rda"), detectors, per_set, complete)
    untag_seeds(cells)
    quadratic_subsampled = sorted({c["set"] for c in cells if c["detector"] in QUADRATIC
                                   and c["n_fit_rows"] < c["n_train"]})
    return {"protocol": config["protocol"], "test_size": config["data"]["test_size"], "seeds": seeds,
            "detectors": detectors, "skipped": skipped, "sets": per_set, "complete_sets": complete,
            "overall": overall, "versus": versus, "versus_ensemble": versus_ensemble,
            "quadratic_max_rows": config["quadratic_max_rows"],
            "quadratic_subsampled": quadratic_subsampled, "cells_done": len(cells),
            "one_seed_tie": ONE_SEED_TIE, "model": config["model"],
            "baseline_scaling": config["data"].get("scaling", "standard")}


def summarize(run, cells):
    """Write ``metrics.csv``, ``summary.json``, ``summary.md`` and the figures; return the figure paths."""
    from .benchmark_figures import benchmark_figures

    summary = build_summary(run.config, cells)
    run.write_metrics_csv(sorted(cells, key=lambda c: (c["set"], c["detector"], cell_seed(run.config, c))), COLUMNS)
    write_summary(run, summary, summary_md(summary))
    return benchmark_figures(run.path, summary)


def _cell(iv, digits=3):
    return fmt_pm(iv["mean"], iv["half_width"], digits) if iv else "—"


def summary_md(summary):
    """The summary as Markdown: protocol, overall table, wins/ties/losses, per-set AUROC, AP and times."""
    dets = summary["detectors"]
    seeds = summary["seeds"]
    several = len(seeds) > 1
    if summary["protocol"] == "transductive":
        proto = "transductive: every detector is fitted on all rows of a set, without labels, and scores them all"
    else:
        proto = (f"ADBench's unsupervised setting: per seed a stratified {1 - summary['test_size']:.0%}/"
                 f"{summary['test_size']:.0%} split; each detector is fitted on the {1 - summary['test_size']:.0%} "
                 f"without labels and scores the {summary['test_size']:.0%}; AUROC and AP on those")
    lines = [f"Protocol: {proto}. Seeds {seeds}; " + (
        "per set mean ± 95% t-interval half-width over seeds." if several else "one seed, no intervals.")]
    lines.append(f"Scaling fitted on the training rows: {summary['baseline_scaling']} for the baselines, "
                 "robust (1st..99th percentile -> [0, 1]; the table rule, rda_cli/table_rule.py) "
                 "for the autoencoders. Library defaults for every baseline; OCSVM, LOF and KNN are fitted on a "
                 f"random subsample of at most {summary['quadratic_max_rows']:,} training rows"
                 + (f" (subsampled here: {', '.join(summary['quadratic_subsampled'])})."
                    if summary["quadratic_subsampled"] else " (no set needed it here)."))
    for d, why in summary["skipped"].items():
        lines.append(f"Skipped {DETECTOR_NAMES[d]}: {why}.")
    n_complete = len(summary["complete_sets"])
    lines += ["", f"## Over {n_complete} data sets", "",
              "Average rank by mean AUROC (1 = best; ties share their rank), mean AUROC and AP over the sets, "
              "total fit seconds (seed mean, summed over sets).", "",
              "| detector | average rank | mean AUROC | mean AP | fit s |", "|---|---|---|---|---|"]
    for d in sorted(dets, key=lambda d: summary["overall"][d]["average_rank"] or math.inf):
        o = summary["overall"][d]
        lines.append(f"| {o['name']} | {fmt_pm(o['average_rank'], None, 2)} | {fmt_pm(o['mean_auroc'])} | "
                     f"{fmt_pm(o['mean_ap'])} | {fmt_pm(o['total_fit_seconds'], None, 1)} |")
    rule = ("tie = the two 95% intervals overlap" if several
            else f"one seed: tie = |ΔAUROC| < {summary['one_seed_tie']}")
    for lead, versus in (("rda", summary["versus"]), ("rda-ens", summary.get("versus_ensemble", {}))):
        if not versus:
            continue
        name = DETECTOR_NAMES[lead]
        lines += ["", f"{name} against … on AUROC per data set (wins / ties / losses; {rule}):", ""]
        for other, v in versus.items():
            n = v["win"] + v["tie"] + v["loss"]
            lines.append(f"- {DETECTOR_NAMES[other]}: {v['win']} / {v['tie']} / {v['loss']} ({name}'s mean AUROC is "
                         f"higher on {v.get('higher_mean', '?')} of {n} sets)")
    for key, title in (("auroc", "AUROC"), ("ap", "Average precision")):
        lines += ["", f"## {title} per data set", "",
                  "| data set | rows | d | anomalies | " + " | ".join(DETECTOR_NAMES[d] for d in dets) + " |",
                  "|---|---|---|---|" + "---|" * len(dets)]
        for s, rec in summary["sets"].items():
            vals = []
            means = {d: rec["detectors"][d][key]["mean"] for d in dets if d in rec["detectors"]}
            best = max((v for v in means.values() if v is not None), default=None)
            for d in dets:
                iv = rec["detectors"].get(d, {}).get(key)
                text = _cell(iv)
                if iv and best is not None and iv["mean"] == best:
                    text = f"**{text}**"
                vals.append(text)
            rate = rec["anomaly_rate"]
            lines.append(f"| {s} | {rec['n_rows']:,} | {rec['n_features']} | {rate:.{1 if rate >= 0.01 else 2}%} | "
                         + " | ".join(vals) + " |")
    lines += ["", "## Fit seconds per data set (seed mean)", "",
              "| data set | " + " | ".join(DETECTOR_NAMES[d] for d in dets) + " |", "|---|" + "---|" * len(dets)]
    for s, rec in summary["sets"].items():
        lines.append(f"| {s} | " + " | ".join(
            fmt_pm(rec["detectors"][d]["fit_seconds"]["mean"], None, 1) if d in rec["detectors"] else "—"
            for d in dets) + " |")
    return "\n".join(lines) + "\n"


def one_line_summary(run, cells):
    """The line the CLI prints at the end of a run."""
    s = read_summary(run)
    parts = [f"{len(cells)} cells over {len(s['sets'])} data sets"]
    ov = s["overall"]
    shown = [d for d in ("rda-ens", "rda", "ae", "iforest") if d in ov and ov[d]["mean_auroc"] is not None]
    if shown:
        parts.append("mean AUROC " + ", ".join(f"{ov[d]['name']} {ov[d]['mean_auroc']:.3f}" for d in shown))
    ranked = [d for d in ov if ov[d]["average_rank"] is not None]
    if ranked:
        best = min(ranked, key=lambda d: ov[d]["average_rank"])
        parts.append(f"best average rank {ov[best]['name']} ({ov[best]['average_rank']:.2f})")
    if "rda" in ov and ov["rda"]["average_rank"] is not None:
        parts.append(f"RDA's {ov['rda']['average_rank']:.2f}")
    for d, why in s.get("skipped", {}).items():
        parts.append(f"{ov.get(d, {}).get('name', d)} skipped (PyOD missing)")
        break
    return "; ".join(parts)

"""Does a forest inside the default detector earn its place? The table rule's ``forest`` field ON against OFF.

* ``--bench ON_RUN OFF_RUN``: two benchmark runs on the same seeds and splits (``rda benchmark``; ON
  run with ``--set model.forest=true --detectors rda-ens,iforest``, OFF run the full 12-detector one):
  mean AUROC of ``rda-ens``, its average rank among the 12 detectors (ON replacing OFF, the other 11
  from the OFF run), its worst set against Isolation Forest and the sets more than 0.10 below it
  (per-set seed means); and a leave-sets-out check: the sets in 5 seeded folds, on each fold ON or
  OFF chosen by the mean AUROC on the other 4, the chosen one's mean on the held-out fold.
* ``--planted``: each of 11 sets' training inliers (at most 1,000, seed 0) with 5% planted anomalies
  of ADBench's four types (:mod:`rda_cli.data.planted`), the default detector fitted with the forest
  and scored whole (as ``rda detect`` does); OFF is the same fit without the forest's row (the members
  and the tail score do not depend on it), against scikit-learn's ``IsolationForest`` on min-max rows.

Usage::

    rda benchmark --config configs/benchmark.yaml --executor processes --workers 2 \\
        --detectors rda-ens,iforest --set model.forest=true --out RUNS/bench-forest --quiet
    python scripts/forest_check.py --bench RUNS/bench-forest RUNS/bench-full --planted
    # -> results/bench/forest.json, a table printed
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

FOLDS = 5
FOLD_SEED = 0


def set_means(run):
    """``{detector: {set: mean AUROC over seeds}}`` of a benchmark run folder's ``metrics.csv``."""
    per = {}
    with open(Path(run) / "metrics.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["auroc"]:
                per.setdefault(row["detector"], {}).setdefault(row["set"], []).append(float(row["auroc"]))
    return {d: {s: float(np.mean(v)) for s, v in sets.items()} for d, sets in per.items()}


def average_rank(table, lead, sets):
    """``lead``'s average rank (1 = best, ties averaged) among the detectors of ``table`` over ``sets``."""
    from scipy.stats import rankdata

    names = list(table)
    ranks = [rankdata([-table[d][s] for d in names], method="average")[names.index(lead)] for s in sets]
    return float(np.mean(ranks))


def facts(scores, iforest, sets):
    gap = {s: scores[s] - iforest[s] for s in sets}
    worst = min(gap, key=gap.get)
    return {"mean_auroc": float(np.mean([scores[s] for s in sets])), "worst_set": worst,
            "worst_vs_iforest": float(gap[worst]), "sets_below_0.10": int(sum(g < -0.10 for g in gap.values()))}


def held_out(on, off, sets, folds=FOLDS, seed=FOLD_SEED):
    """Leave-sets-out: per fold the candidate with the higher mean on the other folds, scored on the fold."""
    order = np.random.default_rng(seed).permutation(sorted(sets))
    parts = np.array_split(order, folds)
    cands = {"on": on, "off": off}
    out = []
    for k, part in enumerate(parts):
        rest = [s for j, p in enumerate(parts) if j != k for s in p]
        choice = max(cands, key=lambda c: (np.mean([cands[c][s] for s in rest]), c == "off"))
        out.append({"fold": k, "sets": list(map(str, part)), "chosen": choice,
                    "held_out_mean": float(np.mean([cands[choice][s] for s in part])),
                    "on_mean": float(np.mean([on[s] for s in part])),
                    "off_mean": float(np.mean([off[s] for s in part]))})
    chosen = {s: cands[f["chosen"]][s] for f in out for s in f["sets"]}
    return {"folds": out, "chosen_mean": float(np.mean(list(chosen.values()))),
            "picks_on": sum(f["chosen"] == "on" for f in out)}


def bench(on_run, off_run):
    on_all, off_all = set_means(on_run), set_means(off_run)
    on, off = on_all["rda-ens"], off_all["rda-ens"]
    sets = sorted(set(on) & set(off) & set(off_all["iforest"]))
    iforest = off_all["iforest"]
    same_forest = max(abs(on_all["iforest"][s] - iforest[s]) for s in sets)
    result = {"n_sets": len(sets), "iforest_runs_differ_by": float(same_forest)}
    for name, scores in (("on", on), ("off", off)):
        table = {d: v for d, v in off_all.items() if d != "rda-ens"}
        table["rda-ens"] = scores
        result[name] = dict(facts(scores, iforest, sets), average_rank=average_rank(table, "rda-ens", sets),
                            n_detectors=len(table))
    result["iforest"] = {"mean_auroc": float(np.mean([iforest[s] for s in sets]))}
    result["per_set"] = {s: {"on": on[s], "off": off[s], "iforest": iforest[s]} for s in sets}
    result["held_out"] = held_out(on, off, sets)
    return result


def planted(data, seed=0, max_inliers=1000):
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from flag_rules import PLANTED_SETS
    from rda_cli.data.adbench import find_sets, set_name
    from rda_cli.data.planted import ANOMALY_TYPES, planted_table
    from rda_cli.ensemble import RobustAutoencoderEnsemble
    from rda_cli.experiments.benchmark import autoencoder_scaler
    from sensitivity import training_inliers

    out = {}
    for path in find_sets([data]):
        name = set_name(path)
        if name not in PLANTED_SETS:
            continue
        inliers = training_inliers(path, seed, max_inliers)
        out[name] = {}
        for kind in ANOMALY_TYPES:
            X, y = planted_table(inliers, kind, 0.05, seed)
            model = RobustAutoencoderEnsemble(forest=True, random_state=seed).fit(X)
            Z = model.member_scores(X)  # the members', the tail score's, the forest's (last) robust z
            f = autoencoder_scaler("minmax", X)
            iso = -IsolationForest(random_state=seed).fit(f(X)).score_samples(f(X))
            out[name][kind] = {"on": float(roc_auc_score(y, model.decision_scores_)),
                               "off": float(roc_auc_score(y, model._combine(Z[:-1]))),
                               "iforest": float(roc_auc_score(y, iso))}
            print(name, kind, out[name][kind], flush=True)
    means = {k: float(np.mean([r[k] for t in out.values() for r in t.values()])) for k in ("on", "off", "iforest")}
    return {"seed": seed, "max_inliers": max_inliers, "fraction": 0.05, "tables": out, "mean": means}


def table(result):
    b, p = result.get("bench"), result.get("planted")
    lines = ["| forest | mean AUROC | average rank (of 12) | worst set vs IForest | sets > 0.10 below IForest "
             "| held-out choice | planted mean AUROC |", "|---|---|---|---|---|---|---|"]
    for c in ("off", "on"):
        r = b[c] if b else {}
        picks = b["held_out"]["picks_on"] if b else 0
        held = f"{picks if c == 'on' else FOLDS - picks} of {FOLDS} folds" if b else ""
        lines.append(f"| {c.upper()} | {r.get('mean_auroc', float('nan')):.3f} | "
                     f"{r.get('average_rank', float('nan')):.2f} "
                     f"| {r.get('worst_vs_iforest', float('nan')):+.3f} ({r.get('worst_set', '')}) | "
                     f"{r.get('sets_below_0.10', '')} | {held} | {p['mean'][c] if p else float('nan'):.3f} |")
    if b:
        lines.append(f"| IForest | {b['iforest']['mean_auroc']:.3f} | | | | | "
                     f"{p['mean']['iforest'] if p else float('nan'):.3f} |")
        lines.append(f"\nheld-out (ON/OFF chosen per fold on the other 4): {b['held_out']['chosen_mean']:.3f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", nargs=2, metavar=("ON_RUN", "OFF_RUN"))
    ap.add_argument("--planted", action="store_true")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "adbench"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "forest.json"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    if args.bench:
        result["bench"] = bench(*args.bench)
        out.write_text(json.dumps(result, indent=1))
    if args.planted:
        result["planted"] = planted(args.data)
        out.write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()

"""How should the default detector combine its members? Label-free rules judged on held-out sets.

The default :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` has four members: two networks (pilot
learning rate x1 and x0.1), the per-feature tail score and the forest, each normalised as a robust z
against its own training scores (``member_scores``). This script fits the default once per table, keeps
the members' z of the training and the scored rows (``--cache``, resumable), and combines the same z
with each rule in :data:`RULES`, so rules are compared on equal terms without training again:

* **ADBench, the benchmark's protocol**: each of the 29 sets' split for seeds 0, 1, 2 (fit on the 70%
  without labels, score the unseen 30%), against Isolation Forest (scikit-learn's defaults, seeded,
  min-max rows, as the benchmark's ``iforest``);
* **planted tables, whole**: each set's training inliers (at most 1,000, seed 0) with 5% planted anomalies
  of ADBench's four types (:mod:`rda_cli.data.planted`), fitted and scored whole as ``rda detect`` does.

Judged three ways: the mean AUROC and the worst set against Isolation Forest (seed means per set); a
leave-sets-out choice (the 29 sets in 5 seeded folds; per fold the rule with the best mean on the other
four, scored on the fold; the held-out mean over the 29); and the planted tables, over all 29 sets.

Usage::

    python scripts/combine_check.py --workers 2      # results/bench/combine.json, a table printed
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SEEDS = (0, 1, 2)
FOLDS = 5
FOLD_SEED = 0
N_NETS = 2  # the default's networks come first in member_scores, then the tail score, then the forest


def _ecdf(train, scores):
    from rda_cli.ensemble import ecdf_scores

    return ecdf_scores(train, scores)


def _tail_p(train, scores):
    """``-log`` of the smoothed upper tail probability of ``scores`` among the training scores."""
    ref = np.sort(train)
    above = len(ref) - np.searchsorted(ref, scores, side="left")
    return -np.log((above + 1.0) / (len(ref) + 1.0))


def _each(f, tr, te):
    return np.array([f(a, b) for a, b in zip(tr, te)])


def _agreement(tr):
    """Each member's mean Spearman correlation with the other members on the training rows (at least 0.01)."""
    from scipy.stats import spearmanr

    c = np.atleast_2d(spearmanr(tr.T).correlation)
    return np.clip((c.sum(0) - 1) / (len(tr) - 1), 0.01, None)


# rule: (train z (k, n_fit), test z (k, n_eval)) -> test scores; every rule sees only training scores
RULES = {
    "mean (the rule)": lambda tr, te: te.mean(0),
    "median": lambda tr, te: np.median(te, 0),
    "max": lambda tr, te: te.max(0),
    "top2": lambda tr, te: np.sort(te, 0)[-2:].mean(0),
    "mean of z above 0": lambda tr, te: np.maximum(te, 0).mean(0),
    "mean of z clipped to [-3, 10]": lambda tr, te: np.clip(te, -3, 10).mean(0),
    "networks as one member": lambda tr, te: np.vstack([te[:N_NETS].mean(0, keepdims=True), te[N_NETS:]]).mean(0),
    "forest weighted 2": lambda tr, te: np.average(te, axis=0, weights=[1] * N_NETS + [1, 2]),
    "weighted by tail mass (share of training z > 3)":
        lambda tr, te: np.average(te, axis=0, weights=np.mean(tr > 3, axis=1) + 1e-12),
    "weighted by rank agreement with the others": lambda tr, te: np.average(te, axis=0, weights=_agreement(tr)),
    "ECDF mean": lambda tr, te: _each(_ecdf, tr, te).mean(0),
    "tail probability (Fisher)": lambda tr, te: _each(_tail_p, tr, te).sum(0),
    "ECDF of the mean with the forest (rda+iforest)":
        lambda tr, te: (_ecdf(tr.mean(0), te.mean(0)) + _ecdf(tr[-1], te[-1])) / 2,
    "without the forest, mean": lambda tr, te: te[:-1].mean(0),
    "networks only, mean": lambda tr, te: te[:N_NETS].mean(0),
    "tail and forest only, mean": lambda tr, te: te[N_NETS:].mean(0),
}

# each member alone: references, not candidates (the held-out choice is among RULES only)
MEMBERS = {"member: network, pilot lr x1": 0, "member: network, pilot lr x0.1": 1, "member: tail score": 2,
           "member: forest": 3}
REFERENCES = {name: (lambda i: lambda tr, te: te[i])(i) for name, i in MEMBERS.items()}
ORACLE = "best member per set (chosen with the labels: a bound, not a detector)"


def fit_adbench(path, seed):
    """The default's members' z on one benchmark split, and Isolation Forest's test scores."""
    from sklearn.ensemble import IsolationForest

    from rda_cli.ensemble import RobustAutoencoderEnsemble
    from rda_cli.experiments.benchmark import autoencoder_scaler
    from sensitivity import split_rows

    X_fit, _, X_eval, y_eval = split_rows(str(path), seed, 10**9, 10**9)
    model = RobustAutoencoderEnsemble(random_state=seed).fit(X_fit)
    f = autoencoder_scaler("minmax", X_fit)
    iso = -IsolationForest(random_state=seed).fit(f(X_fit)).score_samples(f(X_eval))
    return {"train": model.member_scores(X_fit), "test": model.member_scores(X_eval), "y": y_eval, "iforest": iso}


def fit_planted(path, seed=0, max_inliers=1000):
    """The default's members' z on each planted table (fitted and scored whole), and the forest's."""
    from sklearn.ensemble import IsolationForest

    from rda_cli.data.planted import ANOMALY_TYPES, planted_table
    from rda_cli.ensemble import RobustAutoencoderEnsemble
    from rda_cli.experiments.benchmark import autoencoder_scaler
    from sensitivity import training_inliers

    inliers = training_inliers(path, seed, max_inliers)
    out = {}
    for kind in ANOMALY_TYPES:
        X, y = planted_table(inliers, kind, 0.05, seed)
        z = RobustAutoencoderEnsemble(random_state=seed).fit(X).member_scores(X)
        f = autoencoder_scaler("minmax", X)
        out.update({f"{kind}_z": z, f"{kind}_y": y,
                    f"{kind}_iforest": -IsolationForest(random_state=seed).fit(f(X)).score_samples(f(X))})
    return out


def _task(kind, path, seed, cache):
    from rda_cli.safeio import write_npz

    start = time.perf_counter()
    write_npz(cache, compressed=True, **(fit_adbench(path, seed) if kind == "adbench" else fit_planted(path, seed)))
    return f"{cache.name}: {time.perf_counter() - start:.0f} s"


def collect(data, cache_dir, workers):
    from rda_cli.data.adbench import find_sets, set_name

    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for path in find_sets([data]):
        name = set_name(path)
        jobs += [("adbench", path, s, cache_dir / f"{name}-seed{s}.npz") for s in SEEDS]
        jobs.append(("planted", path, 0, cache_dir / f"{name}-planted.npz"))
    todo = [j for j in jobs if not j[3].exists()]
    if todo:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for line in pool.map(_task, *zip(*todo)):
                print(line, flush=True)
    return sorted({set_name(p) for _, p, _, _ in jobs})


def _auroc(y, s):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def evaluate(names, cache_dir):
    from rda_cli.data.planted import ANOMALY_TYPES

    scored = {**RULES, **REFERENCES}
    bench = {r: {} for r in [*scored, "iforest"]}
    planted = {r: {} for r in [*scored, "iforest"]}
    for name in names:
        per = {r: [] for r in bench}
        for s in SEEDS:
            with np.load(cache_dir / f"{name}-seed{s}.npz") as z:
                tr, te, y, iso = z["train"], z["test"], z["y"], z["iforest"]
            for rule, f in scored.items():
                per[rule].append(_auroc(y, f(tr, te)))
            per["iforest"].append(_auroc(y, iso))
        for r, v in per.items():
            bench[r][name] = float(np.mean(v))
        with np.load(cache_dir / f"{name}-planted.npz") as z:
            for kind in ANOMALY_TYPES:
                zz, y = z[f"{kind}_z"], z[f"{kind}_y"]
                for rule, f in scored.items():
                    planted[rule][f"{name} {kind}"] = _auroc(y, f(zz, zz))
                planted["iforest"][f"{name} {kind}"] = _auroc(y, z[f"{kind}_iforest"])
    for table in (bench, planted):
        table[ORACLE] = {k: max(table[m][k] for m in MEMBERS) for k in table["iforest"]}
    return bench, planted


def held_out(bench, names, candidates=RULES):
    """Leave-sets-out over ``candidates`` (the rules; not Isolation Forest): per fold the best mean on the
    other folds."""
    order = np.random.default_rng(FOLD_SEED).permutation(sorted(names))
    parts = np.array_split(order, FOLDS)
    folds, chosen = [], {}
    for k, part in enumerate(parts):
        rest = [s for j, p in enumerate(parts) if j != k for s in p]
        pick = max(candidates, key=lambda r: np.mean([bench[r][s] for s in rest]))
        chosen.update({s: bench[pick][s] for s in part})
        folds.append({"fold": k, "sets": list(map(str, part)), "chosen": pick,
                      "held_out_mean": float(np.mean([bench[pick][s] for s in part])),
                      "iforest_mean": float(np.mean([bench["iforest"][s] for s in part]))})
    gap = {s: chosen[s] - bench["iforest"][s] for s in names}
    worst = min(gap, key=gap.get)
    return {"folds": folds, "chosen_mean": float(np.mean(list(chosen.values()))),
            "iforest_mean": float(np.mean([bench["iforest"][s] for s in names])),
            "worst_set": worst, "worst_vs_iforest": float(gap[worst])}


def summarise(bench, planted, names):
    rows = {}
    for rule in bench:
        gap = {s: bench[rule][s] - bench["iforest"][s] for s in names}
        worst = min(gap, key=gap.get)
        rows[rule] = {"mean_auroc": float(np.mean([bench[rule][s] for s in names])),
                      "worst_set": worst, "worst_vs_iforest": float(gap[worst]),
                      "sets_below_0.10": int(sum(g < -0.10 for g in gap.values())),
                      "planted_mean_auroc": float(np.mean(list(planted[rule].values()))),
                      "planted_worst": float(min(planted[rule].values())),
                      "planted_by_type": {kind: float(np.mean([v for k, v in planted[rule].items()
                                                               if k.endswith(" " + kind)]))
                                          for kind in ("local", "global", "dependency", "clustered")}}
    return rows


def table(result):
    lines = ["| rule | mean AUROC (29 sets, 3 seeds) | worst set vs IForest | sets > 0.10 below "
             "| planted mean (29 sets x 4 types) | planted worst |", "|---|---|---|---|---|---|"]
    for rule, r in result["rules"].items():
        lines.append(f"| {rule} | {r['mean_auroc']:.3f} | {r['worst_set']} "
                     f"{r['worst_vs_iforest']:+.3f} | {r['sets_below_0.10']} | {r['planted_mean_auroc']:.3f} "
                     f"| {r['planted_worst']:.3f} |")
    h = result["held_out"]
    lines.append(f"\nheld-out (5 folds): chosen {[f['chosen'] for f in h['folds']]}; mean {h['chosen_mean']:.3f} "
                 f"against Isolation Forest {h['iforest_mean']:.3f}; worst {h['worst_set']} {h['worst_vs_iforest']:+.3f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "adbench"))
    ap.add_argument("--cache", default=str(ROOT / "results" / "combine-cache"),
                    help="members' z per table (resumable; not committed)")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "combine.json"))
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    names = collect(args.data, cache, args.workers)
    bench, planted = evaluate(names, cache)
    result = {"seeds": list(SEEDS), "n_sets": len(names), "rules": summarise(bench, planted, names),
              "held_out": held_out(bench, names), "per_set": bench}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()

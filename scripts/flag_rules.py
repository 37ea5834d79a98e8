"""Label-free flag rules for the default detector, judged on the 29 ADBench sets and on planted tables.

The detector's flags are a cut-off on its combined training scores (``table_rule.flag_threshold``).
This script fits the default :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` once per table and
tries several cut-offs on the same scores, so that they are compared on equal terms:

* ``median + k MAD``: ``median + k * 1.4826 MAD`` of the training scores (k = 2.5 is the rule);
* ``mixture``: a two-component Gaussian mixture (scikit-learn) of the training scores; a row is flagged
  where the upper component is the more likely, above the median; when one component fits the scores
  better (BIC), ``median + 3 MAD``;
* ``k of members above z``: a row is flagged when at least 2 of the members (the networks, the tail score
  and the forest, each a robust z against its own training scores) exceed z;

against Isolation Forest's own ``predict`` (scikit-learn's defaults, min-max scaled rows).

* **ADBench** (labels only to score): the benchmark's split of each set (seed 0), both parts subsampled
  to at most 5,000 rows; fitted on the 70%, the test rows flagged: flagged-row F1 and the flagged
  fraction over the true anomaly rate.
* **Planted tables**: each of 11 sets' training inliers (at most 1,000) with 2% and 5% planted anomalies
  of ADBench's four types (:mod:`rda_cli.data.planted`), fitted and flagged whole, as ``rda detect`` does:
  the flagged fraction over the planted rate.

Usage::

    python scripts/flag_rules.py          # results/bench/flag_rules.json, a table printed
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

MADS = (2.5, 3.0, 3.5, 4.0, 5.0)
PLANTED_SETS = ("annthyroid", "breastw", "cardio", "glass", "Hepatitis", "Ionosphere", "letter", "Lymphography",
                "magic.gamma", "mnist", "optdigits")
FRACTIONS = (0.02, 0.05)


def mixture_cut(train):
    """The lowest training score the upper component of a 2-component Gaussian mixture claims (above the
    median); ``median + 3 MAD`` when one component fits better by BIC."""
    from sklearn.mixture import GaussianMixture

    from rda_cli.table_rule import robust_location_scale

    s = np.asarray(train, np.float64)[:, None]
    med, scale = robust_location_scale(s[:, 0])
    one = GaussianMixture(1, random_state=0).fit(s)
    two = GaussianMixture(2, random_state=0, n_init=3).fit(s)
    if two.bic(s) >= one.bic(s):
        return med + 3.0 * scale
    upper = int(np.argmax(two.means_[:, 0]))
    grid = np.sort(s[s[:, 0] > med, 0])
    claimed = grid[two.predict_proba(grid[:, None])[:, upper] > 0.5]
    return float(claimed.min()) if claimed.size else float(grid.max())


def cuts(train):
    """``{rule: cut-off}`` on the combined training scores ``train``."""
    from rda_cli.table_rule import robust_location_scale

    med, scale = robust_location_scale(train)
    out = {f"median + {k:g} MAD": med + k * scale for k in MADS}
    out["mixture"] = mixture_cut(train)
    return out


AGREE = ((2, 2.5), (2, 3.0), (2, 4.0))


def agreement_flags(model, X):
    """``{rule: flags}`` of the members-agree rules on the rows ``X``."""
    z = model.member_scores(X)
    return {f"{k} of members above {t:g}": np.sum(z > t, axis=0) >= k for k, t in AGREE}


def f1(flags, y):
    tp = int(np.sum(flags & (y == 1)))
    return 0.0 if tp == 0 else 2 * tp / (int(flags.sum()) + int((y == 1).sum()))


def adbench_set(path, seed):
    from sklearn.ensemble import IsolationForest

    from rda_cli.ensemble import RobustAutoencoderEnsemble
    from rda_cli.experiments.benchmark import autoencoder_scaler
    from sensitivity import split_rows

    X_fit, _, X_eval, y_eval = split_rows(str(path), seed, 5000, 5000)
    model = RobustAutoencoderEnsemble(random_state=seed).fit(X_fit)
    test = model.decision_function(X_eval)
    row = {}
    rules = {rule: test > cut for rule, cut in cuts(model.decision_scores_).items()}
    rules.update(agreement_flags(model, X_eval))
    for rule, flags in rules.items():
        row[rule] = {"f1": f1(flags, y_eval), "ratio": float(flags.mean() / y_eval.mean())}
    f = autoencoder_scaler("minmax", X_fit)
    flags = IsolationForest(random_state=seed).fit(f(X_fit)).predict(f(X_eval)) == -1
    row["iforest predict"] = {"f1": f1(flags, y_eval), "ratio": float(flags.mean() / y_eval.mean())}
    return row


def planted_set(path, seed):
    from sklearn.ensemble import IsolationForest

    from rda_cli.data.planted import ANOMALY_TYPES, planted_table
    from rda_cli.ensemble import RobustAutoencoderEnsemble
    from rda_cli.experiments.benchmark import autoencoder_scaler
    from sensitivity import training_inliers

    inliers = training_inliers(path, seed, 1000)
    out = {}
    for fraction in FRACTIONS:
        for kind in ANOMALY_TYPES:
            X, y = planted_table(inliers, kind, fraction, seed)
            model = RobustAutoencoderEnsemble(random_state=seed).fit(X)
            row = {rule: float(np.mean(model.decision_scores_ > cut) / y.mean())
                   for rule, cut in cuts(model.decision_scores_).items()}
            row.update({rule: float(flags.mean() / y.mean()) for rule, flags in agreement_flags(model, X).items()})
            f = autoencoder_scaler("minmax", X)
            row["iforest predict"] = float(np.mean(IsolationForest(random_state=seed).fit(f(X)).predict(f(X)) == -1)
                                           / y.mean())
            out[f"{kind} {fraction:g}"] = row
    return out


def table(result):
    rules = list(next(iter(result["adbench"].values())))
    lines = ["| rule | mean F1 (29 sets) | median flagged / true | sets within 2x | median flagged / planted "
             "| planted tables within 2x |", "|---|---|---|---|---|---|"]
    for rule in rules:
        ad = [v[rule] for v in result["adbench"].values()]
        ratios = np.array([v["ratio"] for v in ad])
        pl = np.array([r[rule] for tables in result["planted"].values() for r in tables.values()])
        lines.append(f"| {rule} | {np.mean([v['f1'] for v in ad]):.3f} | {np.median(ratios):.2f} | "
                     f"{int(np.sum((ratios >= 0.5) & (ratios <= 2)))} of {len(ratios)} | {np.median(pl):.2f} | "
                     f"{np.mean((pl >= 0.5) & (pl <= 2)):.0%} of {len(pl)} |")
    return "\n".join(lines)


def main(argv=None):
    from rda_cli.data.adbench import find_sets, set_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "adbench"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "flag_rules.json"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {"seed": args.seed, "adbench": {}, "planted": {}}
    start = time.perf_counter()
    for path in find_sets([args.data]):
        name = set_name(path)
        if name not in result["adbench"]:
            result["adbench"][name] = adbench_set(path, args.seed)
        if name in PLANTED_SETS and name not in result["planted"]:
            result["planted"][name] = planted_set(path, args.seed)
        out.write_text(json.dumps(result, indent=1))
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    print(table(result))


if __name__ == "__main__":
    main()

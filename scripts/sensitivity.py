"""How much each setting of the table rule moves one member's AUROC, over ADBench's classical sets.

One member (:func:`rda_cli.table_rule.fit_member`: pilot autoencoder -> lambda -> warm ℓ2,1 RDA) per
setting, seed 0, the benchmark's split (70% fitted without labels, the 30% scored; stratified,
``random_state=0``), both parts subsampled without labels to at most ``--max-train`` /
``--max-test`` rows (seeded) so that the 29 sets fit a small machine. Around the rule, one setting at a
time:

* ``scaling``: min-max instead of robust (the benchmark's ``autoencoder_scaler``);
* ``extent``: the pilot's learning rate {0.001, 0.003, 0.01} x outer iterations {5, 10, 20} (about
  200 steps each), the rule being 0.01 x 10;
* ``width`` x0.5, x2 and ``depth`` 3 (the ensemble's grid);
* ``lambda``: the quantile 0.90 / 0.99 instead of 0.95 (same pilot);
* ``warm``: no continuation (the pilot's residual is the score), or 5x longer (10 x 100 steps);
* ``scaling x extent``: the extent grid again on min-max scaled rows (the pair the issue points at).

Each member's scores are kept as robust z against its own training scores, for the training and the
test rows, in ``<out>.d/<set>.npz`` (not committed), so that combinations of members can be studied
without training again (``scripts/sensitivity.py --summarize``). Isolation Forest (scikit-learn's
defaults, ``random_state=0``, min-max scaled rows as the benchmark gives it) and an ECOD-like tail
score (per-feature empirical-CDF tails, :func:`tail_scores`) are scored on the same rows.

Usage::

    python scripts/sensitivity.py                      # all sets, results/bench/sensitivity.json
    python scripts/sensitivity.py --sets glass wine    # some of them
    python scripts/sensitivity.py --summarize          # table + figure from the saved results

Each set's result is written as soon as it is done; a rerun skips the sets already in the file.
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

LEARNING_RATES = (0.001, 0.003, 0.01)
OUTERS = (5, 10, 20)
RULE_KEY = "robust lr0.01 x10"


def extent_key(scaling, lr, outer):
    return f"{scaling} lr{lr:g} x{outer}"


# the study's groups: name -> the settings (keys) it varies around the rule
GROUPS = {
    "scaling (min-max)": [extent_key("minmax", 0.01, 10)],
    "learning rate (0.001, 0.003)": [extent_key("robust", lr, 10) for lr in (0.001, 0.003)],
    "steps (x0.5, x2)": [extent_key("robust", 0.01, o) for o in (5, 20)],
    "extent (lr x steps)": [extent_key("robust", lr, o) for lr in LEARNING_RATES for o in OUTERS
                            if (lr, o) != (0.01, 10)],
    "width (x0.5, x2)": ["width x0.5", "width x2"],
    "depth (3 layers)": ["depth 3"],
    "lambda quantile (0.90, 0.99)": ["lambda q0.9", "lambda q0.99"],
    "warm continuation (none, x5)": ["no warm (pilot)", "warm x5"],
    "seed (two other seeds)": ["seed 1000", "seed 2000"],
    "scaling x extent": [extent_key(s, lr, o) for s in ("robust", "minmax") for lr in LEARNING_RATES
                         for o in OUTERS if (s, lr, o) != ("robust", 0.01, 10)],
}


def subsample(n, cap, seed):
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def tail_scores(train, rows):
    """The ECOD-like tail score (:class:`rda_cli.tails.TailScore`) with as many quantiles as it keeps.
    (``results/bench/sensitivity.json`` was computed when it kept every training value up to 1,024 rows.)"""
    from rda_cli.tails import TailScore

    return TailScore(max_quantiles=len(train)).fit(train).score(rows)


def z_against(train_scores, scores):
    from rda_cli.table_rule import robust_location_scale

    loc, scale = robust_location_scale(train_scores)
    return (np.asarray(scores, np.float64) - loc) / scale


def members_for_set(Ztr, Zte_by_scaling, Ztr_by_scaling, seed, log, learning_rates=LEARNING_RATES, full=True):
    """``{key: (train z, test z, seconds)}`` for every setting of the study on one set (``full=False``:
    the scaling x extent grid only)."""
    from rda_cli.estimator import RobustAutoencoder
    from rda_cli.table_rule import DEFAULT_RULE, continue_from_pilot, member_settings

    out = {}

    def keep(key, model, Z, Zte, seconds):
        tr = model.decision_function(Z)
        out[key] = (z_against(tr, tr), z_against(tr, model.decision_function(Zte)), seconds)

    def pilot_fit(Z, rule, width=1.0, depth=2):
        t0 = time.perf_counter()
        settings = member_settings(len(Z), Z.shape[1], rule, width, depth)
        pilot = RobustAutoencoder(penalty=None, lam=0.0, random_state=seed, **settings).fit(Z)
        return pilot, time.perf_counter() - t0

    def warm_fit(Z, pilot, rule):
        t0 = time.perf_counter()
        model, _ = continue_from_pilot(Z, pilot, seed, "l21_rows", rule)
        return model, time.perf_counter() - t0

    for scaling in ("robust", "minmax"):
        Z, Zte = Ztr_by_scaling[scaling], Zte_by_scaling[scaling]
        for lr in learning_rates:
            for outer in OUTERS:
                rule = DEFAULT_RULE.replace(pilot_learning_rate=lr, pilot_outer=outer)
                pilot, t_pilot = pilot_fit(Z, rule)
                model, t_warm = warm_fit(Z, pilot, rule)
                key = extent_key(scaling, lr, outer)
                keep(key, model, Z, Zte, t_pilot + t_warm)
                if scaling == "robust" and full:
                    keep(f"pilot {key}", pilot, Z, Zte, t_pilot)
                if key == RULE_KEY and full:
                    keep("no warm (pilot)", pilot, Z, Zte, t_pilot)
                    for q in (0.9, 0.99):
                        m, t = warm_fit(Z, pilot, DEFAULT_RULE.replace(lambda_quantile=q))
                        keep(f"lambda q{q:g}", m, Z, Zte, t_pilot + t)
                    m, t = warm_fit(Z, pilot, DEFAULT_RULE.replace(warm_steps=5 * DEFAULT_RULE.warm_steps))
                    keep("warm x5", m, Z, Zte, t_pilot + t)
                log(f"{key}: {t_pilot + t_warm:.1f} s")
    Z, Zte = Ztr_by_scaling["robust"], Zte_by_scaling["robust"]
    for key, width, depth in (("width x0.5", 0.5, 2), ("width x2", 2.0, 2), ("depth 3", 1.0, 3)) if full else ():
        pilot, t_pilot = pilot_fit(Z, DEFAULT_RULE, width, depth)
        model, t_warm = warm_fit(Z, pilot, DEFAULT_RULE)
        keep(key, model, Z, Zte, t_pilot + t_warm)
        log(f"{key}: {t_pilot + t_warm:.1f} s")
    return out


def split_rows(path, seed, max_train, max_test):
    """The benchmark's split of one set, both parts subsampled (seeded, no labels):
    ``(X_fit, y_fit, X_eval, y_eval)``."""
    from sklearn.model_selection import train_test_split

    with np.load(path, allow_pickle=False) as z:
        X, y = np.asarray(z["X"], np.float64), np.asarray(z["y"]).astype(int)
    X_fit, X_eval, y_fit, y_eval = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    tr, te = subsample(len(X_fit), max_train, seed), subsample(len(X_eval), max_test, seed + 1)
    return X_fit[tr], y_fit[tr], X_eval[te], y_eval[te]


def training_inliers(path, seed, max_inliers):
    """The inliers of the benchmark's training part of one set (seed ``seed``), at most ``max_inliers`` of
    them (seeded): what the planted validation tables are made from."""
    X_fit, y_fit, _, _ = split_rows(str(path), seed, 10**9, 1)
    inliers = X_fit[y_fit == 0]
    return inliers[subsample(len(inliers), max_inliers, seed)]


def anomaly_rate(path):
    with np.load(path, allow_pickle=False) as z:
        return float(np.mean(z["y"]))


def noise_set(path, seed, max_train, max_test):
    """The rule's member refitted with the ensemble's next two member seeds: the spread seeds alone cause."""
    from sklearn.metrics import roc_auc_score

    from rda_cli.data.adbench import set_name
    from rda_cli.experiments.benchmark import autoencoder_scaler
    from rda_cli.table_rule import fit_member, member_seed

    X_fit, y_fit, X_eval, y_eval = split_rows(path, seed, max_train, max_test)
    f = autoencoder_scaler("robust", X_fit)
    Z, Zte = f(X_fit), f(X_eval)
    out = {}
    for j in (1, 2):
        model, _ = fit_member(Z, member_seed(seed, j))
        out[f"seed {member_seed(seed, j)}"] = float(roc_auc_score(y_eval, model.decision_function(Zte)))
    return {"set": set_name(path), "auroc_test": out}


def planted_set(path, seed, max_inliers, cache):
    """Validation tables from one set's training inliers (at most ``max_inliers``, seeded) with 5%
    planted anomalies of each of ADBench's four types (:mod:`rda_cli.data.planted`); the scaling x
    extent grid (learning rates 0.001 and 0.01), Isolation Forest and the tail score fitted and scored
    on each whole table (as ``rda detect`` does); labels only to score."""
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from rda_cli.data.adbench import set_name
    from rda_cli.data.planted import ANOMALY_TYPES, planted_table
    from rda_cli.experiments.benchmark import autoencoder_scaler

    name = set_name(path)
    inliers = training_inliers(path, seed, max_inliers)
    row = {"set": name, "n_rows": {}, "auroc": {}}
    for kind in ANOMALY_TYPES:
        X, y = planted_table(inliers, kind, 0.05, seed)
        Z = {s: autoencoder_scaler(s, X)(X) for s in ("robust", "minmax")}
        members = members_for_set(Z["robust"], Z, Z, seed, lambda msg: None, (0.001, 0.01), full=False)
        f = -IsolationForest(random_state=seed).fit(Z["minmax"]).score_samples(Z["minmax"])
        members["iforest"] = (z_against(f, f), None, 0.0)
        t = tail_scores(X, X)
        members["tail (ECOD-like)"] = (z_against(t, t), None, 0.0)
        keys = sorted(members)
        np.savez_compressed(cache / f"{name}-{kind}.npz", keys=np.array(keys), y_train=y.astype(np.int8),
                            train=np.stack([members[k][0] for k in keys]).astype(np.float32))
        row["n_rows"][kind] = int(len(X))
        row["auroc"][kind] = {k: float(roc_auc_score(y, members[k][0])) for k in keys}
        print(f"  {name} {kind}: rule {row['auroc'][kind][RULE_KEY]:.3f} iforest {row['auroc'][kind]['iforest']:.3f}",
              flush=True)
    return row


def one_set(path, seed, max_train, max_test, cache):
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from rda_cli.data.adbench import set_name
    from rda_cli.experiments.benchmark import autoencoder_scaler

    name = set_name(path)
    X_fit, y_fit, X_eval, y_eval = split_rows(path, seed, max_train, max_test)
    Ztr, Zte = {}, {}
    for scaling in ("robust", "minmax"):
        f = autoencoder_scaler(scaling, X_fit)
        Ztr[scaling], Zte[scaling] = f(X_fit), f(X_eval)

    def log(msg):
        print(f"  {name}: {msg}", flush=True)

    t0 = time.perf_counter()
    members = members_for_set(Ztr["robust"], Zte, Ztr, seed, log)
    forest = IsolationForest(random_state=seed).fit(Ztr["minmax"])
    f_tr, f_te = -forest.score_samples(Ztr["minmax"]), -forest.score_samples(Zte["minmax"])
    members["iforest"] = (z_against(f_tr, f_tr), z_against(f_tr, f_te), 0.0)
    t_tr, t_te = tail_scores(X_fit, X_fit), tail_scores(X_fit, X_eval)
    members["tail (ECOD-like)"] = (z_against(t_tr, t_tr), z_against(t_tr, t_te), 0.0)
    keys = sorted(members)
    np.savez_compressed(cache / f"{name}.npz", keys=np.array(keys), y_train=y_fit.astype(np.int8),
                        y_test=y_eval.astype(np.int8),
                        train=np.stack([members[k][0] for k in keys]).astype(np.float32),
                        test=np.stack([members[k][1] for k in keys]).astype(np.float32))
    return {"set": name, "n_train": int(len(X_fit)), "n_test": int(len(X_eval)), "n_features": int(X_fit.shape[1]),
            "anomaly_rate": anomaly_rate(path), "seconds": time.perf_counter() - t0,
            "auroc_test": {k: float(roc_auc_score(y_eval, members[k][1])) for k in keys},
            "auroc_train": {k: float(roc_auc_score(y_fit, members[k][0])) for k in keys},
            "fit_seconds": {k: float(members[k][2]) for k in keys}}


# ------------------------------------------------------------------------------------ summary
def spread(rows, keys, which="auroc_test"):
    """Per set, the largest |AUROC(key) - AUROC(rule)| over ``keys``; and each key's mean delta."""
    per_set = {r["set"]: max(abs(r[which][k] - r[which][RULE_KEY]) for k in keys) for r in rows}
    deltas = {k: float(np.mean([r[which][k] - r[which][RULE_KEY] for r in rows])) for k in keys}
    return per_set, deltas


def summarize(result, figure=None):
    rows = result["sets"]
    lines = ["| setting varied around the rule | mean max \\|ΔAUROC\\| | median | worst set (\\|Δ\\|) | "
             "mean Δ of each value |", "|---|---|---|---|---|"]
    table = {}
    for group, keys in GROUPS.items():
        per_set, deltas = spread(rows, keys)
        vals = np.array(list(per_set.values()))
        worst = max(per_set, key=per_set.get)
        table[group] = {"mean_abs": float(vals.mean()), "median_abs": float(np.median(vals)),
                        "worst_set": worst, "worst_abs": float(per_set[worst]), "per_set": per_set,
                        "mean_delta": deltas}
        shown = ", ".join(f"{k.replace('robust ', '')} {d:+.3f}" for k, d in deltas.items()) if len(keys) <= 4 \
            else f"best {max(deltas, key=deltas.get)} {max(deltas.values()):+.3f}, worst " \
                 f"{min(deltas, key=deltas.get)} {min(deltas.values()):+.3f}"
        lines.append(f"| {group} | {vals.mean():.3f} | {np.median(vals):.3f} | {worst} ({per_set[worst]:.3f}) | "
                     f"{shown} |")
    means = {k: float(np.mean([r["auroc_test"][k] for r in rows])) for k in rows[0]["auroc_test"]}
    if figure:
        plot(rows, figure)
    return {"n_sets": len(rows), "groups": table, "mean_auroc_test": means}, "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in GROUPS if g != "extent (lr x steps)"]
    data = [[max(r["auroc_test"][k] - r["auroc_test"][RULE_KEY] for k in GROUPS[g]) for r in rows] for g in groups]
    low = [[min(r["auroc_test"][k] - r["auroc_test"][RULE_KEY] for k in GROUPS[g]) for r in rows] for g in groups]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, (hi, lo) in enumerate(zip(data, low)):
        for a, b in zip(lo, hi):
            ax.plot([a, b], [i, i], color="0.75", lw=6, alpha=0.25, solid_capstyle="butt")
        ax.scatter(hi, np.full(len(hi), i) + 0.12, s=10, color="tab:green", label="best value" if i == 0 else None)
        ax.scatter(lo, np.full(len(lo), i) - 0.12, s=10, color="tab:red", label="worst value" if i == 0 else None)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(groups)), groups)
    ax.invert_yaxis()
    ax.set_xlabel("test AUROC minus the rule's, per data set (one member, seed 0)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(out, result, others):
    """Fold shards (their sets and cached scores) and ``--noise`` runs (more keys per set) into ``out``."""
    rows = {r["set"]: r for r in result["sets"]}
    for other in others:
        rows.update({r["set"]: r for r in json.loads(other.read_text())["sets"] if len(r) > 2})
        cache = Path(str(other) + ".d")
        if cache.is_dir():
            target = Path(str(out) + ".d")
            target.mkdir(parents=True, exist_ok=True)
            for f in cache.glob("*.npz"):
                f.replace(target / f.name)
    noise = {r["set"]: r for o in others for r in json.loads(o.read_text())["sets"] if len(r) == 2}  # --noise rows
    for name, r in noise.items():
        if name in rows:
            rows[name]["auroc_test"].update(r["auroc_test"])
    result["sets"] = sorted(rows.values(), key=lambda r: r["set"].lower())
    out.write_text(json.dumps(result, indent=1))


def main(argv=None):
    from rda_cli.data.adbench import find_sets, set_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "adbench"))
    ap.add_argument("--sets", nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-train", type=int, default=5000)
    ap.add_argument("--max-test", type=int, default=5000)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "sensitivity.json"))
    ap.add_argument("--summarize", action="store_true")
    ap.add_argument("--noise", action="store_true", help="only the rule member with two other seeds")
    ap.add_argument("--merge", nargs="*", default=None, metavar="JSON",
                    help="fold these runs' sets (e.g. shards run with --sets, and a --noise run) into --out")
    ap.add_argument("--planted", type=int, default=0, metavar="N",
                    help="planted validation tables from at most N training inliers per set")
    ap.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "sensitivity.png"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {
        "seed": args.seed, "max_train": args.max_train, "max_test": args.max_test, "sets": []}
    if args.summarize:
        summary, md = summarize(result, args.figure)
        result["summary"] = summary
        out.write_text(json.dumps(result, indent=1))
        print(md)
        return
    if args.merge:
        merge(out, result, [Path(m) for m in args.merge])
        return
    if args.planted:
        cache = Path(str(out) + ".d")
        cache.mkdir(parents=True, exist_ok=True)
        for path in find_sets([args.data], args.sets):
            if set_name(path) in {r["set"] for r in result["sets"]}:
                continue
            result["sets"].append(planted_set(str(path), args.seed, args.planted, cache))
            out.write_text(json.dumps(result, indent=1))
        return
    if args.noise:
        paths = find_sets([args.data], args.sets)
        for path in paths:
            if set_name(path) in {r["set"] for r in result["sets"]}:
                continue
            result["sets"].append(noise_set(str(path), args.seed, args.max_train, args.max_test))
            out.write_text(json.dumps(result, indent=1))
            print(result["sets"][-1], flush=True)
        return
    cache = Path(str(out) + ".d")
    cache.mkdir(parents=True, exist_ok=True)
    done = {r["set"] for r in result["sets"]}
    paths = find_sets([args.data], args.sets)
    sizes = {}
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            sizes[p] = min(z["X"].shape[0], args.max_train) * z["X"].shape[1] ** 0.5
    for path in sorted(paths, key=sizes.get):
        if set_name(path) in done:
            continue
        row = one_set(str(path), args.seed, args.max_train, args.max_test, cache)
        result["sets"].append(row)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out)
        print(f"{row['set']}: rule {row['auroc_test'][RULE_KEY]:.3f} minmax "
              f"{row['auroc_test'][extent_key('minmax', 0.01, 10)]:.3f} iforest {row['auroc_test']['iforest']:.3f} "
              f"({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

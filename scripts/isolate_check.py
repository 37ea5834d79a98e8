"""Should the networks learn the rows the feature-wise members already isolate? Judged on held-out sets.

ℓ2,1 RDA's point is that rows put into ``S`` are not learned. The default detector's tail score and forest
see each feature on its own; the rows they score highest (the top ``1 - q`` of the training rows by
the mean of their two robust z) are left out of the two networks' training here, the networks are then
normalised against their scores of all training rows, and the four members averaged as in the default.
The default's own members come from ``scripts/combine_check.py``'s cache (run it first); this script
fits only the networks again, per table and per ``q`` in :data:`QUANTILES`, on:

* the benchmark's split of the 29 sets for seeds 0-2 (fit on the 70% without labels, score the 30%);
* the planted tables of ``combine_check.py`` (29 sets' inliers with 5% planted anomalies of each of
  ADBench's four types, fitted and scored whole).

Judged by the mean AUROC and the worst set against Isolation Forest, a leave-sets-out choice among
the default and the variants (5 seeded folds, as ``combine_check.py``), and the planted tables.

Usage::

    python scripts/combine_check.py --workers 2        # the default's members (cached)
    python scripts/isolate_check.py --workers 2        # results/bench/isolate.json, a table printed
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

from combine_check import N_NETS, SEEDS, _auroc, held_out  # noqa: E402

QUANTILES = (0.95, 0.9, 0.8, 0.7)


def networks_without(X_fit, X_scored, feature_z, q, seed):
    """The default's two networks fitted without the training rows whose feature-wise z (``feature_z``) is
    above its ``q`` quantile; their robust z of ``X_scored`` against their scores of all of ``X_fit``."""
    from rda_cli.ensemble import RobustAutoencoderEnsemble
    from rda_cli.table_rule import robust_location_scale

    keep = feature_z <= np.quantile(feature_z, q)
    nets = RobustAutoencoderEnsemble(random_state=seed, tail=False, forest=False).fit(X_fit[keep])
    train, scored = nets.member_scores(X_fit), nets.member_scores(X_scored)
    out = []
    for t, s in zip(train, scored):
        loc, scale = robust_location_scale(t)
        out.append((s - loc) / scale)
    return np.array(out)


def _task(kind, path, seed, members, cache):
    from rda_cli.safeio import write_npz
    from sensitivity import split_rows, training_inliers

    start = time.perf_counter()
    arrays = {}
    if cache.exists():  # computed for fewer quantiles: only the missing ones are fitted
        with np.load(cache) as z:
            arrays = dict(z)
    with np.load(members) as z:
        base = dict(z)
    if kind == "adbench":
        X_fit, _, X_eval, _ = split_rows(str(path), seed, 10**9, 10**9)
        feature_z = base["train"][N_NETS:].mean(0)
        for q in QUANTILES:
            if f"q{q:g}" not in arrays:
                arrays[f"q{q:g}"] = networks_without(X_fit, X_eval, feature_z, q, seed)
    else:
        from rda_cli.data.planted import ANOMALY_TYPES, planted_table

        inliers = training_inliers(path, seed, 1000)
        for kind_ in ANOMALY_TYPES:
            X, _ = planted_table(inliers, kind_, 0.05, seed)
            feature_z = base[f"{kind_}_z"][N_NETS:].mean(0)
            for q in QUANTILES:
                if f"{kind_}_q{q:g}" not in arrays:
                    arrays[f"{kind_}_q{q:g}"] = networks_without(X, X, feature_z, q, seed)
    write_npz(cache, compressed=True, **arrays)
    return f"{cache.name}: {time.perf_counter() - start:.0f} s"


def _complete(cache):
    """Whether ``cache`` holds the networks of every quantile."""
    if not cache.exists():
        return False
    with np.load(cache) as z:
        return all(any(k.endswith(f"q{q:g}") for k in z.files) for q in QUANTILES)


def collect(data, members_dir, cache_dir, workers):
    from rda_cli.data.adbench import find_sets, set_name

    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for path in find_sets([data]):
        name = set_name(path)
        jobs += [("adbench", path, s, members_dir / f"{name}-seed{s}.npz", cache_dir / f"{name}-seed{s}.npz")
                 for s in SEEDS]
        jobs.append(("planted", path, 0, members_dir / f"{name}-planted.npz", cache_dir / f"{name}-planted.npz"))
    missing = [str(j[3]) for j in jobs if not j[3].exists()]
    if missing:
        raise SystemExit(f"run scripts/combine_check.py first: {missing[0]} does not exist")
    todo = [j for j in jobs if not _complete(j[4])]
    if todo:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for line in pool.map(_task, *zip(*todo)):
                print(line, flush=True)
    return sorted({set_name(p) for _, p, _, _, _ in jobs})


def variants(base, nets):
    """``{name: (k, n) z}``: the default, and the default with each ``q``'s networks."""
    out = {"default (networks learn every row)": base}
    for q in QUANTILES:
        out[f"networks without the top {1 - q:.0%} by tail + forest"] = np.vstack([nets[f"q{q:g}"], base[N_NETS:]])
    return out


def evaluate(names, members_dir, cache_dir):
    from rda_cli.data.planted import ANOMALY_TYPES

    bench, planted = {}, {}
    for name in names:
        per = {}
        for s in SEEDS:
            with np.load(members_dir / f"{name}-seed{s}.npz") as z, np.load(cache_dir / f"{name}-seed{s}.npz") as n:
                y, iso = z["y"], z["iforest"]
                for v, Z in variants(z["test"], n).items():
                    per.setdefault(v, []).append(_auroc(y, Z.mean(0)))
                per.setdefault("iforest", []).append(_auroc(y, iso))
        for v, a in per.items():
            bench.setdefault(v, {})[name] = float(np.mean(a))
        with np.load(members_dir / f"{name}-planted.npz") as z, np.load(cache_dir / f"{name}-planted.npz") as n:
            for kind in ANOMALY_TYPES:
                y = z[f"{kind}_y"]
                nets = {k[len(kind) + 1:]: n[k] for k in n.files if k.startswith(kind + "_")}
                for v, Z in variants(z[f"{kind}_z"], nets).items():
                    planted.setdefault(v, {})[f"{name} {kind}"] = _auroc(y, Z.mean(0))
                planted.setdefault("iforest", {})[f"{name} {kind}"] = _auroc(y, z[f"{kind}_iforest"])
    return bench, planted


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "adbench"))
    ap.add_argument("--members", default=str(ROOT / "results" / "combine-cache"),
                    help="combine_check.py's cache of the default's members")
    ap.add_argument("--cache", default=str(ROOT / "results" / "isolate-cache"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "isolate.json"))
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    members, cache = Path(args.members), Path(args.cache)
    names = collect(args.data, members, cache, args.workers)
    bench, planted = evaluate(names, members, cache)
    rows = {}
    for v in bench:
        gap = {s: bench[v][s] - bench["iforest"][s] for s in names}
        worst = min(gap, key=gap.get)
        rows[v] = {"mean_auroc": float(np.mean(list(bench[v].values()))), "worst_set": worst,
                   "worst_vs_iforest": float(gap[worst]), "sets_below_0.10": int(sum(g < -0.10 for g in gap.values())),
                   "planted_mean_auroc": float(np.mean(list(planted[v].values())))}
    result = {"seeds": list(SEEDS), "quantiles": list(QUANTILES), "rows": rows, "held_out": held_out(bench, names, [v for v in bench if v != "iforest"]),
              "per_set": bench}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("| variant | mean AUROC (29 sets, 3 seeds) | worst set vs IForest | sets > 0.10 below | planted mean |")
    print("|---|---|---|---|---|")
    for v, r in rows.items():
        print(f"| {v} | {r['mean_auroc']:.3f} | {r['worst_set']} {r['worst_vs_iforest']:+.3f} | "
              f"{r['sets_below_0.10']} | {r['planted_mean_auroc']:.3f} |")
    h = result["held_out"]
    print(f"\nheld-out: chosen {[f['chosen'] for f in h['folds']]}; mean {h['chosen_mean']:.3f} against "
          f"Isolation Forest {h['iforest_mean']:.3f}")


if __name__ == "__main__":
    main()

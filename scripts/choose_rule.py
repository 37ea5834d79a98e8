"""Candidate ensembles from the sensitivity study's members, judged on sets they were not chosen on.

Reads the members' scores that ``scripts/sensitivity.py`` kept (``<study>.d/<set>.npz``: each
member's robust z on the training and the test rows), so no network is trained here. A candidate is
a set of members and a label-free way to combine their z-scores per row:

* ``mean``: the members' mean z (today's ensemble);
* ``max``: each row's largest member z (a row that one member finds abnormal stays abnormal);
* ``top2``: the mean of each row's two largest member z.

Each candidate's test AUROC per set, its mean over the sets, its worst set against Isolation Forest
(scikit-learn's defaults on the same rows, from the study), and **leave-sets-out**: the 29 sets in 5
folds (seeded); on each fold the candidate with the best mean on the other four folds is chosen and
its AUROC on the fold kept; the held-out mean is over every set, each scored by a rule chosen without
it. The flag rules (``median + k * 1.4826 MAD`` of the combined training scores) are scored on the
test rows against Isolation Forest's own ``predict`` (refitted on the same rows).

Usage::

    python scripts/choose_rule.py                 # results/bench/choose_rule.json, tables printed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from sensitivity import RULE_KEY, extent_key  # noqa: E402


def _chain(scaling, lr, outers=(5, 10, 20)):
    return [extent_key(scaling, lr, o) for o in outers]


MEMBER_SETS = {
    "rule member": [RULE_KEY],
    "widths/depths (4)": [RULE_KEY, "width x0.5", "width x2", "depth 3"],
    "lr {0.001, 0.01}": [extent_key("robust", lr, 10) for lr in (0.001, 0.01)],
    "lr {0.001, 0.003, 0.01}": [extent_key("robust", lr, 10) for lr in (0.001, 0.003, 0.01)],
    "snapshots lr0.01 x{5,10,20}": _chain("robust", 0.01),
    "snapshots lr0.003 x{5,10,20}": _chain("robust", 0.003),
    "scaling x lr {0.001, 0.01} (4)": [extent_key(s, lr, 10) for s in ("robust", "minmax") for lr in (0.001, 0.01)],
    "scaling x snapshots lr0.01 (6)": _chain("robust", 0.01) + _chain("minmax", 0.01),
    "scaling x snapshots lr0.003 (6)": _chain("robust", 0.003) + _chain("minmax", 0.003),
    "lr {0.001, 0.01} x snapshots (6)": _chain("robust", 0.001) + _chain("robust", 0.01),
    "scaling x lr {0.001,0.01} x snapshots (12)": [k for s in ("robust", "minmax") for lr in (0.001, 0.01)
                                                    for k in _chain(s, lr)],
    "whole grid (18)": [k for s in ("robust", "minmax") for lr in (0.001, 0.003, 0.01) for k in _chain(s, lr)],
}
TAIL = "tail (ECOD-like)"


def cost(keys):
    """Training steps relative to one rule member (pilot 10 x 200 + warm 10 x 20 steps): snapshots of
    one chain (same scaling and learning rate) cost its longest pilot once, plus a warm continuation each."""
    chains = {}
    for k in keys:
        parts = k.split()
        if len(parts) == 3 and parts[1].startswith("lr"):
            chains[(parts[0], parts[1])] = max(chains.get((parts[0], parts[1]), 0), int(parts[2][1:]))
        else:
            chains[(k, "")] = 10
    return (sum(chains.values()) * 200 + len(keys) * 200) / 2200


def candidates(keys_available):
    out = {}
    for name, keys in MEMBER_SETS.items():
        if not all(k in keys_available for k in keys):
            continue
        for how in (("mean", "max", "top2") if len(keys) > 1 else ("mean",)):
            out[f"{name}, {how}"] = (keys, how, False)
            out[f"{name} + tail, {how}"] = (keys, how, True)
    return out


def load_cache(cache):
    sets = {}
    for f in sorted(Path(cache).glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            keys = [str(k) for k in z["keys"]]
            sets[f.stem] = {"keys": {k: i for i, k in enumerate(keys)}, "train": z["train"].astype(np.float64),
                            "y_train": z["y_train"]}
            if "test" in z.files:  # the planted tables are scored where they are fitted: no test part
                sets[f.stem].update(test=z["test"].astype(np.float64), y_test=z["y_test"])
    return sets


def scores_of(s, keys, how, tail, part):
    """A candidate's combined scores: its members' z (and the tail score's as one more member)."""
    from rda_cli.table_rule import combine_scores

    keys = list(keys) + ([TAIL] if tail else [])
    return combine_scores(s[part][[s["keys"][k] for k in keys]], how)


def leave_sets_out(auroc, names, n_folds=5, seed=0):
    """``{set: held-out AUROC}`` and the candidate chosen per fold."""
    order = np.random.default_rng(seed).permutation(len(names))
    folds = [set(names[i] for i in order[f::n_folds]) for f in range(n_folds)]
    held, chosen = {}, []
    for fold in folds:
        rest = [n for n in names if n not in fold]
        best = max(auroc, key=lambda c: np.mean([auroc[c][n] for n in rest]))
        chosen.append({"held_out": sorted(fold), "chosen": best,
                       "in_sample": float(np.mean([auroc[best][n] for n in rest])),
                       "held_out_mean": float(np.mean([auroc[best][n] for n in fold]))})
        held.update({n: auroc[best][n] for n in fold})
    return held, chosen


FLAG_MADS = (2.5, 3.0, 4.0, 5.0, 6.0)


def f1_score(flags, y):
    tp = int(np.sum(flags & (y == 1)))
    return 0.0 if tp == 0 else 2 * tp / (int(flags.sum()) + int((y == 1).sum()))


def flag_rules(sets, names, chosen, cands, data, study):
    """Flagged-row F1 and flagged fraction / true rate on the test rows, cut at ``median + k 1.4826 MAD``
    of the combined training scores, for the candidates in ``chosen``; Isolation Forest's ``predict``
    (refitted on the study's rows) beside them."""
    from sklearn.ensemble import IsolationForest

    from rda_cli.data.adbench import find_sets, set_name
    from rda_cli.experiments.benchmark import autoencoder_scaler
    from rda_cli.table_rule import robust_location_scale
    from sensitivity import split_rows

    meta = json.loads(Path(study).read_text())
    paths = {set_name(p): p for p in find_sets([data])}
    out = {"iforest_predict": {}}
    for n in names:
        X_fit, _, X_eval, y_eval = split_rows(str(paths[n]), meta["seed"], meta["max_train"], meta["max_test"])
        f = autoencoder_scaler("minmax", X_fit)
        flags = IsolationForest(random_state=meta["seed"]).fit(f(X_fit)).predict(f(X_eval)) == -1
        assert len(y_eval) == len(sets[n]["y_test"]) and np.array_equal(y_eval, sets[n]["y_test"])
        out["iforest_predict"][n] = {"f1": f1_score(flags, y_eval), "ratio": float(flags.mean() / y_eval.mean())}
    for c in dict.fromkeys(chosen):
        keys, how, tail = cands[c]
        out[c] = {}
        for k in FLAG_MADS:
            per = {}
            for n in names:
                s = sets[n]
                train = scores_of(s, keys, how, tail, "train")
                med, scale = robust_location_scale(train)
                flags = scores_of(s, keys, how, tail, "test") > med + k * scale
                per[n] = {"f1": f1_score(flags, s["y_test"]), "ratio": float(flags.mean() / s["y_test"].mean())}
            out[c][f"median + {k:g} MAD"] = per
    return out


def flag_table(flags):
    rows = []
    for c, rules in flags.items():
        for rule, per in ([("predict", rules)] if c == "iforest_predict" else rules.items()):
            ratios = np.array([v["ratio"] for v in per.values()])
            rows.append((c, rule, float(np.mean([v["f1"] for v in per.values()])), float(np.median(ratios)),
                         int(np.sum((ratios >= 0.5) & (ratios <= 2.0)))))
    return rows


def planted(cands, cache, flag_mads=FLAG_MADS):
    """Each candidate's mean AUROC on the planted validation tables (``sensitivity.py --planted``), per
    anomaly type and over all; the flagged fraction of each flag rule against the planted 5%."""
    from sklearn.metrics import roc_auc_score

    from rda_cli.table_rule import robust_location_scale

    tables = load_cache(cache)
    if not tables:
        return {}
    kinds = sorted({name.rsplit("-", 1)[1] for name in tables})
    available = set.intersection(*(set(t["keys"]) for t in tables.values()))
    out = {"n_sets": len({name.rsplit("-", 1)[0] for name in tables}), "candidates": {}}
    for c, (keys, how, tail) in cands.items():
        if not all(k in available for k in keys):
            continue
        per = {}
        ratios = {k: [] for k in flag_mads}
        for name, t in tables.items():
            combined = scores_of(t, keys, how, tail, "train")
            per[name] = float(roc_auc_score(t["y_train"], combined))
            med, scale = robust_location_scale(combined)
            for k in flag_mads:
                ratios[k].append(float(np.mean(combined > med + k * scale) / t["y_train"].mean()))
        out["candidates"][c] = {
            "mean": float(np.mean(list(per.values()))),
            "by_kind": {kind: float(np.mean([v for n, v in per.items() if n.endswith("-" + kind)])) for kind in kinds},
            "flagged_over_true": {f"median + {k:g} MAD": [float(np.median(r)), float(np.mean([0.5 <= x <= 2 for x in r]))]
                                  for k, r in ratios.items()}}
    forest = {name: float(roc_auc_score(t["y_train"], t["train"][t["keys"]["iforest"]])) for name, t in tables.items()}
    out["iforest"] = {"mean": float(np.mean(list(forest.values()))),
                      "by_kind": {kind: float(np.mean([v for n, v in forest.items() if n.endswith("-" + kind)]))
                                  for kind in kinds}}
    return out


def main(argv=None):
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default=str(ROOT / "results" / "bench" / "sensitivity.json"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "choose_rule.json"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "adbench"))
    ap.add_argument("--planted", default=str(ROOT / "results" / "bench" / "sens_planted.json"),
                    help="the planted tables' study (sensitivity.py --planted)")
    args = ap.parse_args(argv)
    sets = load_cache(args.study + ".d")
    names = sorted(sets)
    available = set.intersection(*(set(s["keys"]) for s in sets.values()))
    cands = candidates(available)
    auroc = {c: {} for c in cands}
    for n in names:
        s = sets[n]
        for c, (keys, how, tail) in cands.items():
            auroc[c][n] = float(roc_auc_score(s["y_test"], scores_of(s, keys, how, tail, "test")))
    forest = {n: float(roc_auc_score(sets[n]["y_test"], sets[n]["test"][sets[n]["keys"]["iforest"]])) for n in names}
    table = {}
    for c in cands:
        gaps = {n: auroc[c][n] - forest[n] for n in names}
        worst = min(gaps, key=gaps.get)
        table[c] = {"mean": float(np.mean(list(auroc[c].values()))), "worst_vs_iforest": [worst, round(gaps[worst], 3)],
                    "below_iforest_by_0.10": int(sum(g < -0.10 for g in gaps.values())),
                    "cost": cost(cands[c][0]) if True else None, "per_set": auroc[c]}
    held, chosen = leave_sets_out({c: auroc[c] for c in cands}, names)
    held_gaps = {n: held[n] - forest[n] for n in names}
    worst = min(held_gaps, key=held_gaps.get)
    result = {"n_sets": len(names), "iforest_mean": float(np.mean(list(forest.values()))), "iforest": forest,
              "candidates": table,
              "leave_sets_out": {"held_out_mean": float(np.mean(list(held.values()))), "folds": chosen,
                                 "worst_vs_iforest": [worst, round(held_gaps[worst], 3)],
                                 "iforest_mean": float(np.mean(list(forest.values())))}}
    result["flags"] = flag_rules(sets, names, ["rule member, mean", "widths/depths (4), mean"] + [f["chosen"] for f in chosen], cands,
                                 args.data, args.study)
    result["planted"] = planted(cands, args.planted + ".d")
    Path(args.out).write_text(json.dumps(result))
    print(f"{len(names)} sets; Isolation Forest mean {result['iforest_mean']:.3f}")
    print("| candidate | mean AUROC | worst set vs IForest | sets > 0.10 below | cost |")
    for c in sorted(table, key=lambda c: -table[c]["mean"]):
        t = table[c]
        print(f"| {c} | {t['mean']:.3f} | {t['worst_vs_iforest'][0]} {t['worst_vs_iforest'][1]:+.3f} | "
              f"{t['below_iforest_by_0.10']} | {t['cost']:.1f} |")
    print("leave-sets-out:", json.dumps(result["leave_sets_out"], indent=1))
    if result["planted"]:
        p = result["planted"]
        print(f"planted tables ({p['n_sets']} sets x 4 types): Isolation Forest {p['iforest']['mean']:.3f}",
              json.dumps({k: round(v, 3) for k, v in p["iforest"]["by_kind"].items()}))
        for c in sorted(p["candidates"], key=lambda c: -p["candidates"][c]["mean"]):
            v = p["candidates"][c]
            print(f"| {c} | {v['mean']:.3f} | " + " / ".join(f"{x:.3f}" for x in v["by_kind"].values()) + " | "
                  + " ".join(f"{r}: {m:.2f} ({w:.0%})" for r, (m, w) in v["flagged_over_true"].items()))
    print("| candidate | flag rule | mean F1 | median flagged / true | sets within 2x |")
    for row in flag_table(result["flags"]):
        print("| {} | {} | {:.3f} | {:.2f} | {} |".format(*row))


if __name__ == "__main__":
    main()

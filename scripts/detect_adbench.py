"""``rda detect`` itself on ADBench's classical sets, against Isolation Forest on the same rows.

Transductive, as a user runs it: each whole table goes to :func:`rda_cli.detect.detect` with its
default options (the function ``rda detect --data SET.npz --array X`` calls), the labels are used
only afterwards, to score what it wrote. Isolation Forest (scikit-learn's defaults, seeded) is fitted
and scored on the same rows; its flags are its own ``predict``. PyOD's default cut (the top 10% of
scores, ``contamination=0.1``) is reported for both as a second flag rule.

Usage::

    python scripts/detect_adbench.py                      # all sets found, seed 0
    python scripts/detect_adbench.py --sets glass wine    # some of them
    python scripts/detect_adbench.py --out results/bench/detect_adbench.json

Each set's result is cached in ``<out>.d/`` so that an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def read_scores(path):
    """``score`` and ``flagged`` columns of an ``rda detect`` scores file (comment lines skipped)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return (np.array([float(r["score"]) for r in rows]),
            np.array([r["flagged"].strip().lower() in ("1", "true") for r in rows]))


def f1(flags, y):
    tp = int(np.sum(flags & (y == 1)))
    if tp == 0:
        return 0.0
    precision, recall = tp / int(flags.sum()), tp / int((y == 1).sum())
    return 2 * precision * recall / (precision + recall)


def top_fraction(scores, fraction=0.1):
    k = max(1, int(round(fraction * len(scores))))
    flags = np.zeros(len(scores), bool)
    flags[np.argsort(-scores, kind="stable")[:k]] = True
    return flags


def one_set(path, seed):
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from rda_cli.detect import detect

    with np.load(path, allow_pickle=False) as z:
        X, y = np.asarray(z["X"], dtype=np.float64), np.asarray(z["y"]).astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        info = detect(path, out_dir=Path(tmp) / "out", array="X", overrides=(f"random_state={seed}",))
        seconds = time.perf_counter() - t0
        scores, flagged = read_scores(Path(tmp) / "out" / "scores.csv")
    t0 = time.perf_counter()
    forest = IsolationForest(random_state=seed).fit(X)
    if_scores = -forest.score_samples(X)
    if_seconds = time.perf_counter() - t0
    if_flags = forest.predict(X) == -1
    return {
        "set": Path(path).stem.split("_", 1)[-1], "n_rows": len(X), "n_features": X.shape[1],
        "anomaly_rate": float(y.mean()),
        "rda_auroc": float(roc_auc_score(y, scores)), "rda_f1": f1(flagged, y),
        "rda_n_flagged": int(flagged.sum()), "rda_f1_top10": f1(top_fraction(scores), y),
        "rda_seconds": seconds, "rda_detector": info.get("detector", "rda"),
        "iforest_auroc": float(roc_auc_score(y, if_scores)), "iforest_f1": f1(if_flags, y),
        "iforest_n_flagged": int(if_flags.sum()), "iforest_f1_top10": f1(top_fraction(if_scores), y),
        "iforest_seconds": if_seconds,
    }


def summary(rows):
    keys = ("rda_auroc", "iforest_auroc", "rda_f1", "iforest_f1", "rda_f1_top10", "iforest_f1_top10")
    out = {f"mean_{k}": float(np.mean([r[k] for r in rows])) for k in keys}
    gaps = sorted(((r["rda_auroc"] - r["iforest_auroc"], r["set"]) for r in rows))
    out["rda_minus_iforest_worst3"] = [(s, round(g, 3)) for g, s in gaps[:3]]
    out["rda_minus_iforest_best3"] = [(s, round(g, 3)) for g, s in gaps[::-1][:3]]
    out["wins_ties_losses"] = [sum(g > 0.01 for g, _ in gaps), sum(abs(g) <= 0.01 for g, _ in gaps),
                               sum(g < -0.01 for g, _ in gaps)]
    out["rda_seconds_total"] = float(sum(r["rda_seconds"] for r in rows))
    return out


def main(argv=None):
    from rda_cli.data.adbench import find_sets, set_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="ADBench folder (default: as rda benchmark finds it)")
    ap.add_argument("--sets", nargs="*", default=None, help="set names (default: all found)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "detect_adbench.json"))
    args = ap.parse_args(argv)
    paths = find_sets([args.data] if args.data else None, args.sets)
    cache = Path(args.out + ".d")
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in paths:
        f = cache / f"{set_name(path)}-{args.seed}.json"
        if f.exists():
            row = json.loads(f.read_text())
        else:
            row = one_set(str(path), args.seed)
            f.write_text(json.dumps(row))
        rows.append(row)
        print(f"{row['set']:>14}: rda {row['rda_auroc']:.3f} (F1 {row['rda_f1']:.3f}, {row['rda_n_flagged']} flagged, "
              f"{row['rda_seconds']:.0f} s)  iforest {row['iforest_auroc']:.3f} (F1 {row['iforest_f1']:.3f})", flush=True)
    result = {"seed": args.seed, "sets": rows, "summary": summary(rows)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()

"""The paper's outlier experiment (its Figures 4-6).

The nominal digit (all 4859 "4"s of the first 50,000 MNIST training images) is mixed with 265
other digits. An l2,1-rows Robust Deep Autoencoder flags the rows of ``S`` that stay non-zero;
sweeping lambda traces precision, recall and F1. Isolation Forest, swept over the fraction of rows
it flags, is the paper's baseline. One cell = one lambda (or the whole Isolation Forest sweep).
"""

from __future__ import annotations

import json
import time

import numpy as np

from .common import cell_key, check_data_path, data_path_field, json_safe, load_data_cached, make_estimator, model_schema
from .config import ConfigError, Field
from .rundir import atomic_write_text

NAME = "outliers"

PAPER_LAMBDAS = [0.00005, 0.0001, 0.0002, 0.0003, 0.00035, 0.00045, 0.00055, 0.00065, 0.00075, 0.00085,
                 0.00095, 0.00105, 0.00115, 0.00125, 0.0015]

SCHEMA = {
    "run_name": Field("str", None, nullable=True, doc="folder name under results/outliers/; null: timestamp"),
    "seed": Field("int", 0, minimum=0, doc="seeds the data mix, the networks and the forest"),
    "data": {
        "path": data_path_field(),
        "nominal": Field("int", 4, minimum=0, maximum=9, doc="the nominal digit"),
        "n_outliers": Field("int", 265, minimum=1, doc="other digits mixed in"),
        "n_source": Field("int", 50000, minimum=100, maximum=60000, doc="draw from the first N training images"),
    },
    "model": dict(
        model_schema(layers=[784, 400, 200], outer_iterations=20, inner_epochs=50, batch_size=133,
                     learning_rate=0.001, reinitialize=True),
        lam=Field("float", 0.00065, minimum=0, doc="lambda of a single run (without --sweep-lambda)"),
        lambdas=Field("float_list", PAPER_LAMBDAS, minimum=0, min_length=1, doc="lambda grid of --sweep-lambda"),
    ),
    "iforest": {
        "n_estimators": Field("int", 100, minimum=1, doc="Isolation Forest trees"),
        "fraction_min": Field("float", 0.01, minimum=0, maximum=1, exclusive_minimum=True,
                              doc="smallest fraction of rows flagged"),
        "fraction_max": Field("float", 0.69, minimum=0, maximum=1, exclusive_minimum=True,
                              doc="largest fraction of rows flagged"),
        "fraction_step": Field("float", 0.01, minimum=0, maximum=1, exclusive_minimum=True, doc="step"),
    },
    "tiles": Field("int", 40, minimum=0, maximum=200, doc="example rows kept per cell for s_tiles.png"),
}

COLUMNS = ["id", "kind", "lam", "threshold", "precision", "recall", "f1", "auroc", "ap", "n_flagged", "n_iter",
           "seconds"]


def post_check(config):
    check_data_path(config)
    it = config["iforest"]
    if it["fraction_min"] > it["fraction_max"]:
        raise ConfigError(
            f"config key 'iforest.fraction_min': got {it['fraction_min']!r}, expected <= iforest.fraction_max "
            f"({it['fraction_max']!r})"
        )


def list_cells(config, sweep=True):
    lams = config["model"]["lambdas"] if sweep else [config["model"]["lam"]]
    cells = [{"id": f"rda_lam{cell_key(lam)}", "kind": "rda", "lam": lam} for lam in lams]
    cells.append({"id": "iforest", "kind": "iforest"})
    return cells


def mixed_data(config):
    from ..data import outlier_mix

    X, y = load_data_cached(config["data"]["path"])
    d = config["data"]
    return outlier_mix(X, y, nominal=d["nominal"], n_outliers=d["n_outliers"], n_source=d["n_source"],
                       seed=config["seed"])


def flag_metrics(truth, flagged):
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(truth, flagged, average="binary", zero_division=0)
    return float(p), float(r), float(f)


def ranking_metrics(truth, scores):
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(truth, scores)), float(average_precision_score(truth, scores))


def fractions(config):
    it = config["iforest"]
    n = int(np.floor((it["fraction_max"] - it["fraction_min"]) / it["fraction_step"] + 1e-9)) + 1
    return [round(it["fraction_min"] + i * it["fraction_step"], 10) for i in range(n)]


def top_fraction_sweep(truth, scores, fracs):
    """Flag the top ``f`` of rows by score for each fraction (scikit-learn caps contamination at 0.5)."""
    order = np.argsort(-scores, kind="stable")
    out = {"fractions": [], "precision": [], "recall": [], "f1": []}
    for f in fracs:
        flagged = np.zeros(len(scores), bool)
        flagged[order[: int(round(f * len(scores)))]] = True
        p, r, f1 = flag_metrics(truth, flagged)
        for key, v in zip(("fractions", "precision", "recall", "f1"), (f, p, r, f1)):
            out[key].append(v)
    return out


def _tile_rows(is_outlier, m):
    out_idx = np.flatnonzero(is_outlier)[: m // 2]
    in_idx = np.flatnonzero(~is_outlier)[: m - len(out_idx)]
    return np.sort(np.concatenate([out_idx, in_idx]))


def compute_cell(config, cell):
    t0 = time.perf_counter()
    X, _, truth = mixed_data(config)
    result = dict(cell)
    arrays = None
    if cell["kind"] == "iforest":
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=config["iforest"]["n_estimators"], random_state=config["seed"])
        scores = -forest.fit(X).score_samples(X)
        result.update(top_fraction_sweep(truth, scores, fractions(config)))
        result["auroc"], result["ap"] = ranking_metrics(truth, scores)
    else:
        model = make_estimator(config["model"], "l21_rows", cell["lam"], config["seed"]).fit(X)
        p, r, f1 = flag_metrics(truth, model.outlier_mask_)
        auroc, ap = ranking_metrics(truth, model.residual_scores_)
        result.update(threshold=model.threshold_, precision=p, recall=r, f1=f1, auroc=auroc, ap=ap,
                      n_flagged=int(model.outlier_mask_.sum()), n_iter=model.n_iter_, history=model.history_)
        if config["tiles"]:
            rows = _tile_rows(truth, config["tiles"])
            arrays = {"X": X[rows].astype(np.float16), "S": model.S_[rows].astype(np.float16),
                      "is_outlier": truth[rows]}
    result["seconds"] = time.perf_counter() - t0
    return json_safe(result), arrays


def summarize(run, cells):
    from .plots import outlier_figures

    rda = sorted((c for c in cells if c["kind"] == "rda"), key=lambda c: c["lam"])
    run.write_metrics_csv(rda, COLUMNS)
    summary = {"cells_done": len(cells)}
    if rda:
        best = max(rda, key=lambda c: c["f1"])
        summary["rda"] = {k: best[k] for k in ("lam", "threshold", "precision", "recall", "f1", "auroc", "ap")}
    forest = next((c for c in cells if c["kind"] == "iforest"), None)
    if forest:
        i = int(np.argmax(forest["f1"]))
        summary["iforest"] = {"fraction": forest["fractions"][i], "precision": forest["precision"][i],
                              "recall": forest["recall"][i], "f1": forest["f1"][i], "auroc": forest["auroc"],
                              "ap": forest["ap"]}
    if rda and forest and summary["iforest"]["f1"] > 0:
        summary["relative_improvement"] = summary["rda"]["f1"] / summary["iforest"]["f1"] - 1
    atomic_write_text(run.path / "summary.json", json.dumps(json_safe(summary), indent=1))
    lines = ["| method | best F1 | at | precision | recall | AUROC | AP |", "|---|---|---|---|---|---|---|"]
    if "rda" in summary:
        r = summary["rda"]
        lines.append(f"| ℓ2,1 RDA | {r['f1']:.3f} | λ = {r['lam']:g} (threshold {r['threshold']:.3g}) | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {r['auroc']:.3f} | {r['ap']:.3f} |")
    if "iforest" in summary:
        r = summary["iforest"]
        lines.append(f"| Isolation Forest | {r['f1']:.3f} | fraction = {r['fraction']:g} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['auroc']:.3f} | {r['ap']:.3f} |")
    if "relative_improvement" in summary:
        lines.append(f"\nRDA's best F1 is {summary['relative_improvement']:+.1%} relative to Isolation Forest's.")
    atomic_write_text(run.path / "summary.md", "\n".join(lines) + "\n")
    return outlier_figures(run.path, cells)


def one_line_summary(run, cells):
    s = json.loads((run.path / "summary.json").read_text())
    parts = [f"{len(cells)} cells"]
    if "rda" in s:
        parts.append(f"RDA best F1 {s['rda']['f1']:.3f} at λ={s['rda']['lam']:g}")
    if "iforest" in s:
        parts.append(f"Isolation Forest best F1 {s['iforest']['f1']:.3f}")
    return "; ".join(parts)

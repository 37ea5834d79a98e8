"""The paper's denoising experiment (its Figure 2).

MNIST images get ``k`` random pixels flipped (> 0.5 -> 0, else -> 1). A plain autoencoder and an
l1 Robust Deep Autoencoder are trained on the corrupted images only; their innermost hidden layer
(for the RDA: the features of ``X - S``) feeds a random forest, whose test error measures how much
of the digits' structure the features kept. One cell = one (model, k[, lambda]) training.
"""

from __future__ import annotations

import time

import numpy as np

from .common import (
    cell_key,
    check_data_path,
    data_path_field,
    json_safe,
    load_data_cached,
    make_estimator,
    model_schema,
)
from .config import ConfigError, Field

NAME = "denoise"

SCHEMA = {
    "run_name": Field("str", None, nullable=True, doc="folder name under results/denoise/; null: timestamp"),
    "seed": Field("int", 0, minimum=0, doc="seeds corruption, network, batches and forest"),
    "data": {
        "path": data_path_field(),
        "n_images": Field("int", 50000, minimum=30, maximum=60000, doc="first N training images"),
    },
    "corruption": {
        "k": Field("int_list", [10, 30, 50, 80, 100, 150, 200, 250, 300, 350], minimum=0, maximum=784,
                   min_length=1, doc="corrupted pixels per image"),
    },
    "model": dict(
        model_schema(layers=[784, 196, 49], outer_iterations=10, inner_epochs=5, batch_size=30),
        lambdas=Field("float_list", [0.1, 0.5, 1, 2, 5, 10, 15, 20, 30, 50, 100], minimum=0, min_length=1,
                      doc="l1 lambda grid"),
        baseline=Field("bool", True, doc="also train the plain autoencoder (same network, same epochs)"),
    ),
    "forest": {
        "n_estimators": Field("int", 50, minimum=1, doc="random forest trees"),
        "test_size": Field("float", 1 / 3, minimum=0.05, maximum=0.95, doc="held-out fraction"),
    },
    "examples": Field("int", 8, minimum=0, maximum=32, doc="example images kept per cell for examples.png"),
}

COLUMNS = ["id", "kind", "k", "lam", "threshold", "error", "s_nonzero", "s_nonzero_fraction", "n_iter",
           "seconds"]


def post_check(config):
    check_data_path(config)
    if config["model"]["layers"][0] != 784:
        raise ConfigError("config key 'model.layers': the first size must be 784")


def list_cells(config):
    cells = []
    for k in config["corruption"]["k"]:
        if config["model"]["baseline"]:
            cells.append({"id": f"ae_k{k}", "kind": "ae", "k": k, "lam": None})
        for lam in config["model"]["lambdas"]:
            cells.append({"id": f"rda_k{k}_lam{cell_key(lam)}", "kind": "rda", "k": k, "lam": lam})
    return cells


def corrupted_data(config, k):
    from ..data import corrupt_pixels

    X, y = load_data_cached(config["data"]["path"])
    n = config["data"]["n_images"]
    X, y = X[:n], y[:n]
    Xc, mask = corrupt_pixels(X, k, seed=config["seed"] * 100003 + k)
    return X, Xc, y


def forest_error(features, y, config):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    F_tr, F_te, y_tr, y_te = train_test_split(
        features, y, test_size=config["forest"]["test_size"], random_state=config["seed"]
    )
    forest = RandomForestClassifier(
        n_estimators=config["forest"]["n_estimators"], random_state=config["seed"], n_jobs=-1
    ).fit(F_tr, y_tr)
    return float(1.0 - forest.score(F_te, y_te))


def compute_cell(config, cell):
    t0 = time.perf_counter()
    X, Xc, y = corrupted_data(config, cell["k"])
    penalty = None if cell["kind"] == "ae" else "l1"
    model = make_estimator(config["model"], penalty, cell["lam"], config["seed"]).fit(Xc)
    error = forest_error(model.transform(Xc), y, config)
    nz = int(np.count_nonzero(model.S_))
    result = dict(cell)
    result.update(
        threshold=model.threshold_,
        error=error,
        s_nonzero=nz,
        s_nonzero_fraction=nz / model.S_.size,
        n_iter=model.n_iter_,
        seconds=time.perf_counter() - t0,
        history=model.history_,
    )
    m = config["examples"]
    arrays = None
    if m:
        arrays = {
            "corrupted": Xc[:m].astype(np.float16),
            "L": model.L_[:m].astype(np.float16),
            "S": model.S_[:m].astype(np.float16),
            "clean": X[:m].astype(np.float16),
        }
    return json_safe(result), arrays


def summarize(run, cells):
    """metrics.csv, summary.json / summary.md and the figures, from the finished cells."""
    from .plots import denoise_figures

    run.write_metrics_csv(sorted(cells, key=lambda c: (c["k"], c["kind"], c["lam"] or 0)), COLUMNS)
    ae = {c["k"]: c for c in cells if c["kind"] == "ae"}
    rows = []
    for k in sorted({c["k"] for c in cells}):
        rda = [c for c in cells if c["kind"] == "rda" and c["k"] == k]
        best = min(rda, key=lambda c: c["error"]) if rda else None
        row = {"k": k, "ae_error": ae[k]["error"] if k in ae else None}
        if best:
            row.update(best_rda_error=best["error"], best_lam=best["lam"], best_threshold=best["threshold"])
            if row["ae_error"]:
                row["ratio"] = best["error"] / row["ae_error"]
        rows.append(row)
    lams = sorted({c["lam"] for c in cells if c["kind"] == "rda"})
    largest = [c for c in cells if c["kind"] == "rda" and lams and c["lam"] == lams[-1]]
    summary = {
        "per_k": rows,
        "largest_lambda": lams[-1] if lams else None,
        "largest_lambda_s_nonzero": sum(c["s_nonzero"] for c in largest) if largest else None,
        "cells_done": len(cells),
    }
    import json

    from .rundir import atomic_write_text

    atomic_write_text(run.path / "summary.json", json.dumps(json_safe(summary), indent=1))
    lines = ["| k | AE error | best RDA error | at λ | RDA / AE |", "|---|---|---|---|---|"]
    for r in rows:
        f = lambda v, p=4: "—" if v is None else f"{v:.{p}f}"  # noqa: E731
        lines.append(f"| {r['k']} | {f(r['ae_error'])} | {f(r.get('best_rda_error'))} | "
                     f"{'—' if r.get('best_lam') is None else format(r['best_lam'], 'g')} | {f(r.get('ratio'), 3)} |")
    atomic_write_text(run.path / "summary.md", "\n".join(lines) + "\n")
    return denoise_figures(run.path, cells)


def one_line_summary(run, cells):
    import json

    s = json.loads((run.path / "summary.json").read_text())
    best = [r for r in s["per_k"] if r.get("ratio") is not None]
    if not best:
        return f"{len(cells)} cells"
    top = min(best, key=lambda r: r["ratio"])
    return (f"{len(cells)} cells; best RDA/AE error ratio {top['ratio']:.3f} at k={top['k']} "
            f"(λ={top['best_lam']:g})")

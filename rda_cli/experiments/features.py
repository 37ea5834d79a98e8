"""Corrupted features: an l2,1-over-columns RDA finds stuck pixels in MNIST images.

``corruption.n_pixels`` mostly-dark pixels (columns chosen by :func:`rda_cli.data.stuck_pixels`)
are stuck at ``corruption.value`` in a ``corruption.fraction`` of the images. With
``corruption.rows: shared`` the stuck rows are those of ``stuck_pixels`` itself: every stuck pixel
is on in the *same* images, a rank-one pattern that a well-trained autoencoder simply learns (it is
low-dimensional structure, not noise), so S misses it. With ``independent`` (default) each stuck
pixel is on in its own random ``fraction`` of the images, like independently faulty sensor
elements; that is not low-dimensional, and the l2,1-columns penalty puts exactly those columns
in S.

One cell = one lambda. Flagged columns are the non-zero columns of ``S_`` (``column_scores_ > 0``);
precision, recall and F1 are measured against the stuck columns. With ``lambda_scaling: paper`` the
column threshold is ``lambda * n_images``; a stuck column's residual norm is about
``sqrt(n_images * fraction)``, so lambda near ``0.4 / sqrt(n_images)`` (a per-entry RMS of ~0.4)
separates it from clean pixels that the network reconstructs well.
"""

from __future__ import annotations

import time

import numpy as np

from .common import (
    cell_problem,
    preflight_data,
    cell_key,
    check_data_path,
    header_schema,
    json_safe,
    load_data_cached,
    make_estimator,
    mnist_data_schema,
    model_schema,
    read_summary,
    write_summary,
)
from .config import Field

NAME = "features"

SCHEMA = {
    **header_schema("features", "seeds the stuck pixels, the network weights and the batch order", seeds=False),
    "data": mnist_data_schema(5000, "the first N training images"),
    "corruption": {
        "n_pixels": Field("int", 10, minimum=1, maximum=784, doc="stuck pixels (columns)"),
        "fraction": Field("float", 0.2, minimum=0, maximum=1, exclusive_minimum=True,
                          doc="fraction of the images in which a stuck pixel is on"),
        "value": Field("float", 1.0, doc="the stuck value"),
        "rows": Field("choice", "independent", choices=("independent", "shared"),
                      doc="independent: each stuck pixel on in its own random rows; shared: the same rows for all "
                          "(stuck_pixels as it is)"),
    },
    "model": dict(
        model_schema(layers=[784, 196, 49], outer_iterations=4, inner_epochs=30, batch_size=64,
                     learning_rate=0.005, reinitialize=True),
        lambdas=Field("float_list", [0.0025, 0.003, 0.0035, 0.004, 0.0045, 0.005, 0.0055, 0.006], minimum=0,
                      min_length=1, doc="lambda grid (paper scaling: column threshold = lambda * n_images)"),
    ),
    "examples": Field("int", 8, minimum=0, maximum=32, doc="corrupted images kept per cell for cleaned.png"),
}

COLUMNS = ["id", "kind", "lam", "threshold", "precision", "recall", "f1", "auroc", "n_flagged", "n_stuck", "n_iter",
           "seconds"]


def post_check(config):
    check_data_path(config)


def preflight(config):
    """Build the corrupted data before any folder is made (a bad ``data``/``corruption`` section fails here)."""
    preflight_data(lambda: corrupted_data(config), "data/corruption")


def check_cell(cell):
    """The keys a finished cell must hold (see :func:`compute_cell`)."""
    return cell_problem(cell, {"kind": "str", "lam": "num", "threshold": "num", "precision": "frac", "recall": "frac",
                               "f1": "frac", "auroc": "frac", "n_flagged": "int", "n_stuck": "int",
                               "flagged_columns": "ints", "stuck_columns": "ints", "history": "list"})


def list_cells(config):
    return [{"id": f"rda_lam{cell_key(lam)}", "kind": "rda", "lam": lam} for lam in config["model"]["lambdas"]]


def corrupted_data(config):
    """``(X_clean, X_corrupted, stuck_columns, on)``: ``on[i, k]`` says stuck column ``k`` is on in row ``i``."""
    from ..data import stuck_pixels

    X, _ = load_data_cached(config["data"]["path"])
    X = X[: config["data"]["n_images"]]
    c = config["corruption"]
    Xc, columns = stuck_pixels(X, c["n_pixels"], c["fraction"], seed=config["seed"], value=c["value"])
    if c["rows"] == "independent":
        rng = np.random.default_rng([config["seed"], 7])
        n = X.shape[0]
        n_on = min(n, max(1, int(round(c["fraction"] * n))))
        Xc = X.copy()
        for j in columns:
            Xc[rng.choice(n, size=n_on, replace=False), j] = c["value"]
    on = Xc[:, columns] != X[:, columns]
    return X, Xc, columns, on


def _example_rows(on, m):
    """The ``m`` rows with the most stuck pixels on (first ones on ties)."""
    return np.sort(np.argsort(-on.sum(axis=1), kind="stable")[:m])


def compute_cell(config, cell, finished=None):
    from sklearn.metrics import roc_auc_score

    from .outliers import flag_metrics

    t0 = time.perf_counter()
    X, Xc, columns, on = corrupted_data(config)
    truth = np.zeros(Xc.shape[1], bool)
    truth[columns] = True
    model = make_estimator(config["model"], "l21_cols", cell["lam"], config["seed"]).fit(Xc)
    flagged = model.column_scores_ > 0
    p, r, f1 = flag_metrics(truth, flagged)
    residual_norms = np.linalg.norm(Xc - model.L_, axis=0)
    result = dict(cell)
    result.update(threshold=model.prox_threshold_, precision=p, recall=r, f1=f1,
                  auroc=float(roc_auc_score(truth, residual_norms)), n_flagged=int(flagged.sum()),
                  n_stuck=int(truth.sum()), flagged_columns=np.flatnonzero(flagged).tolist(),
                  stuck_columns=[int(j) for j in columns], n_iter=model.n_iter_, history=model.history_,
                  seconds=time.perf_counter() - t0)
    arrays = {"column_norms": model.column_scores_.astype(np.float32),
              "residual_norms": residual_norms.astype(np.float32), "stuck": truth}
    if config["examples"]:
        rows = _example_rows(on, config["examples"])
        arrays.update(clean=X[rows].astype(np.float16), corrupted=Xc[rows].astype(np.float16),
                      L=model.L_[rows].astype(np.float16), S=model.S_[rows].astype(np.float16))
    return json_safe(result), arrays


def best_cell(cells):
    """The cell with the highest F1 (ties: the smaller lambda)."""
    rda = [c for c in cells if c.get("kind") == "rda" and c.get("f1") is not None]
    return max(sorted(rda, key=lambda c: c["lam"]), key=lambda c: c["f1"]) if rda else None


def summarize(run, cells):
    from .figures.features import features_figures

    rda = sorted((c for c in cells if c.get("kind") == "rda"), key=lambda c: c["lam"])
    run.write_metrics_csv(rda, COLUMNS)
    summary = {"cells_done": len(cells)}
    best = best_cell(rda)
    if best:
        summary["best"] = {k: best[k] for k in ("lam", "threshold", "precision", "recall", "f1", "auroc",
                                                "n_flagged", "n_stuck")}
        summary["lambdas_with_f1_1"] = [c["lam"] for c in rda if c["f1"] == 1.0]
    lines = ["| λ | threshold | columns flagged | precision | recall | F1 | AUROC (residual norms) |",
             "|---|---|---|---|---|---|---|"]
    for c in rda:
        mark = " **best**" if best and c["id"] == best["id"] else ""
        lines.append(f"| {c['lam']:g}{mark} | {c['threshold']:.3g} | {c['n_flagged']} of 784 ({c['n_stuck']} stuck) "
                     f"| {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['auroc']:.3f} |")
    if best:
        lines.append(f"\nBest F1 {best['f1']:.3f} at λ = {best['lam']:g} (column threshold {best['threshold']:.3g}).")
    write_summary(run, summary, "\n".join(lines) + "\n")
    return features_figures(run.path, cells)


def one_line_summary(run, cells):
    s = read_summary(run)
    parts = [f"{len(cells)} cells"]
    if "best" in s:
        b = s["best"]
        parts.append(f"best column F1 {b['f1']:.3f} at λ={b['lam']:g} ({b['n_flagged']} flagged, {b['n_stuck']} stuck)")
    return "; ".join(parts)

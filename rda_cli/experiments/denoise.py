"""The paper's denoising experiment (its Figure 2).

MNIST images get ``k`` random pixels flipped (> 0.5 -> 0, else -> 1). A plain autoencoder and an
l1 Robust Deep Autoencoder are trained on the corrupted images only; their innermost hidden layer
(for the RDA: the features of ``X - S``) feeds a random forest, whose test error measures how much
of the digits' structure the features kept. One cell = one (model, k[, lambda]) training for one seed.

Cell ids: ``ae_k<k>`` and ``rda_k<k>_lam<lambda>`` for the config's ``seed``; the same followed by
``_s<seed>`` for every other seed of ``seeds`` (each seed redraws the corruption, the network, the
batches and the forest's split). With several seeds the summary reports mean ± 95% t-interval
half-widths and the heatmap the mean paired difference AE − RDA.
"""

from __future__ import annotations

import time

import numpy as np

from .common import (
    cell_problem,
    preflight_data,
    base_seed,
    cell_key,
    cell_seed,
    check_data_path,
    header_schema,
    json_safe,
    knee_cell,
    load_data_cached,
    make_estimator,
    mnist_data_schema,
    model_schema,
    seed_list,
    seed_suffix,
    tag_seeds,
    read_summary,
    untag_seeds,
    write_summary,
)
from .config import MAX_TREES, Field
from .stats import excludes_zero, fmt_pm, interval_dict

NAME = "denoise"

SCHEMA = {
    **header_schema("denoise", "seeds corruption, network, batches and forest"),
    "data": mnist_data_schema(50000, "first N training images"),
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
        "n_estimators": Field("int", 50, minimum=1, maximum=MAX_TREES, doc="random forest trees"),
        "test_size": Field("float", 0.3333333333, minimum=0.05, maximum=0.95, doc="held-out fraction"),
    },
    "selection": {
        "knee_scale": Field("choice", "log", choices=("linear", "log"),
                            doc="lambda axis of the knee rule (||S||_0 against lambda); log needs lambdas > 0"),
    },
    "examples": Field("int", 8, minimum=0, maximum=32, doc="example images kept per cell for examples.png"),
}

COLUMNS = ["id", "kind", "seed", "k", "lam", "threshold", "error", "s_nonzero", "s_nonzero_fraction", "n_iter",
           "seconds"]


def post_check(config):
    check_data_path(config)  # also checks that the network's input width is MNIST's 784


def preflight(config):
    """Check that the MNIST source holds ``data.n_images`` images before any folder is made."""
    def build():
        X, _ = load_data_cached(config["data"]["path"])
        if config["data"]["n_images"] > len(X):
            raise ValueError(f"n_images is {config['data']['n_images']} but the MNIST source has {len(X)} "
                             "training images")

    preflight_data(build, "data")


def check_cell(cell):
    """The keys a finished cell must hold (see :func:`compute_cell`)."""
    knob = "num" if cell.get("kind") == "rda" else "num?"  # the plain autoencoder has no lambda or threshold
    return cell_problem(cell, {"kind": "str", "seed": "int?", "k": "int", "lam": knob, "threshold": knob,
                               "error": "frac", "s_nonzero": "int", "history": "list"})


def list_cells(config):
    cells = []
    for seed in seed_list(config):
        sfx = seed_suffix(config, seed)
        for k in config["corruption"]["k"]:
            if config["model"]["baseline"]:
                cells.append({"id": f"ae_k{k}{sfx}", "kind": "ae", "k": k, "lam": None, "seed": seed})
            for lam in config["model"]["lambdas"]:
                cells.append({"id": f"rda_k{k}_lam{cell_key(lam)}{sfx}", "kind": "rda", "k": k, "lam": lam,
                              "seed": seed})
    return cells


def corrupted_data(config, k, seed=None):
    from ..data import corrupt_pixels

    seed = config["seed"] if seed is None else seed
    X, y = load_data_cached(config["data"]["path"])
    n = config["data"]["n_images"]
    X, y = X[:n], y[:n]
    Xc, mask = corrupt_pixels(X, k, seed=seed * 100003 + k)
    return X, Xc, y


def forest_error(features, y, config, seed=None):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    seed = config["seed"] if seed is None else seed
    F_tr, F_te, y_tr, y_te = train_test_split(
        features, y, test_size=config["forest"]["test_size"], random_state=seed
    )
    forest = RandomForestClassifier(
        n_estimators=config["forest"]["n_estimators"], random_state=seed, n_jobs=-1
    ).fit(F_tr, y_tr)
    return float(1.0 - forest.score(F_te, y_te))


def compute_cell(config, cell, finished=None):
    t0 = time.perf_counter()
    seed = cell_seed(config, cell)
    X, Xc, y = corrupted_data(config, cell["k"], seed)
    penalty = None if cell["kind"] == "ae" else "l1"
    t_fit = time.perf_counter()
    model = make_estimator(config["model"], penalty, cell["lam"], seed).fit(Xc)
    fit_seconds = time.perf_counter() - t_fit
    error = forest_error(model.transform(Xc), y, config, seed)
    nz = int(np.count_nonzero(model.S_))
    result = dict(cell, seed=seed)
    result.update(
        fit_seconds=fit_seconds,
        threshold=model.prox_threshold_,
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


def _lambda_selection(cells, config):
    """Per (k, seed): the knee of ||S||_0 against lambda next to the oracle-best error (labels)."""
    scale = (config.get("selection") or {}).get("knee_scale", "log")
    ae = {(c["k"], c["_seed"]): c["error"] for c in cells if c["kind"] == "ae"}
    per = []
    for k, seed in sorted({(c["k"], c["_seed"]) for c in cells if c["kind"] == "rda"}):
        cs = sorted((c for c in cells if c["kind"] == "rda" and c["k"] == k and c["_seed"] == seed),
                    key=lambda c: c["lam"])
        at = knee_cell(cs, "s_nonzero", scale)
        best = min(cs, key=lambda c: c["error"])
        per.append({"k": k, "seed": seed, "oracle_lam": best["lam"], "oracle_error": best["error"],
                    "knee_lam": at["lam"], "knee_error": at["error"], "knee_s_nonzero": at["s_nonzero"],
                    "ae_error": ae.get((k, seed))})
    out = {"rule": f"knee of log(1 + ||S||_0) against lambda ({scale} lambda axis)", "per_k_seed": per, "per_k": []}
    for k in sorted({r["k"] for r in per}):
        rs = [r for r in per if r["k"] == k]
        out["per_k"].append({"k": k, "oracle_error": interval_dict([r["oracle_error"] for r in rs]),
                             "knee_error": interval_dict([r["knee_error"] for r in rs])})
    return out


def summarize(run, cells):
    """metrics.csv, summary.json / summary.md and the figures, from the finished cells."""
    from .figures.denoise import denoise_figures

    config = run.config
    seeds = tag_seeds(config, cells)
    run.write_metrics_csv(sorted(cells, key=lambda c: (c["_seed"], c["k"], c["kind"], c["lam"] or 0)), COLUMNS)
    ae = {(c["k"], c["_seed"]): c for c in cells if c["kind"] == "ae"}
    rows = []
    for k in sorted({c["k"] for c in cells}):
        row = {"k": k}
        ae_errs = [ae[(k, s)]["error"] for s in seeds if (k, s) in ae]
        row["ae_error"] = interval_dict(ae_errs)["mean"] if ae_errs else None
        row["ae_error_ci"] = interval_dict(ae_errs)
        rda = [c for c in cells if c["kind"] == "rda" and c["k"] == k]
        by_lam = {}
        for c in rda:
            by_lam.setdefault(c["lam"], []).append(c)
        if by_lam:
            # the lambda with the lowest seed-mean error; its error, and the paired AE - RDA difference
            lam = min(by_lam, key=lambda lam: np.mean([c["error"] for c in by_lam[lam]]))
            chosen = by_lam[lam]
            err = interval_dict([c["error"] for c in chosen])
            row.update(best_rda_error=err["mean"], best_rda_error_ci=err, best_lam=lam,
                       best_threshold=float(np.mean([c["threshold"] for c in chosen])))
            if row["ae_error"]:
                row["ratio"] = err["mean"] / row["ae_error"]
            diffs = [ae[(k, c["_seed"])]["error"] - c["error"] for c in chosen if (k, c["_seed"]) in ae]
            if diffs:
                d = interval_dict(diffs)
                row["ae_minus_rda"] = d
                row["rda_better_significant"] = excludes_zero(d["mean"], d["half_width"]) and d["mean"] > 0
        rows.append(row)
    lams = sorted({c["lam"] for c in cells if c["kind"] == "rda"})
    largest = [c for c in cells if c["kind"] == "rda" and lams and c["lam"] == lams[-1]]
    summary = {
        "seeds": seeds,
        "per_k": rows,
        "largest_lambda": lams[-1] if lams else None,
        "largest_lambda_s_nonzero": sum(c["s_nonzero"] for c in largest) if largest else None,
        "cells_done": len(cells),
    }
    if any(c["kind"] == "rda" for c in cells):
        summary["lambda_selection"] = _lambda_selection(cells, config)
    base = base_seed(config, cells)
    untag_seeds(cells)
    write_summary(run, summary, _summary_md(summary))
    return denoise_figures(run.path, cells, base_seed=base)


def _summary_md(summary):
    several = len(summary["seeds"]) > 1

    def ci(d, digits=4):
        return "—" if not d else fmt_pm(d["mean"], d["half_width"], digits)

    lines = []
    if several:
        lines += [f"Mean ± 95% t-interval half-width over seeds {summary['seeds']}; RDA at the λ with the lowest "
                  "seed-mean error; AE − RDA is the paired (same-seed) difference.", ""]
    lines += ["| k | AE error | best RDA error | at λ | RDA / AE | AE − RDA |", "|---|---|---|---|---|---|"]
    for r in summary["per_k"]:
        ratio = "—" if r.get("ratio") is None else f"{r['ratio']:.3f}"
        lam = "—" if r.get("best_lam") is None else format(r["best_lam"], "g")
        diff = ci(r.get("ae_minus_rda"))
        if r.get("rda_better_significant"):
            diff = f"**{diff}**"
        lines.append(f"| {r['k']} | {ci(r.get('ae_error_ci'))} | {ci(r.get('best_rda_error_ci'))} | {lam} | "
                     f"{ratio} | {diff} |")
    sel = summary.get("lambda_selection")
    if sel:
        lines += ["", f"λ without labels: {sel['rule']}; oracle: lowest error over the λ grid (uses labels).", "",
                  "| k | seed | oracle error (λ) | knee error (λ, non-zero S entries) | AE error |",
                  "|---|---|---|---|---|"]
        for r in sel["per_k_seed"]:
            ae = "—" if r["ae_error"] is None else f"{r['ae_error']:.4f}"
            lines.append(f"| {r['k']} | {r['seed']} | {r['oracle_error']:.4f} ({r['oracle_lam']:g}) | "
                         f"{r['knee_error']:.4f} ({r['knee_lam']:g}, {r['knee_s_nonzero']}) | {ae} |")
        if several:
            for r in sel["per_k"]:
                lines.append(f"| {r['k']} | mean | {ci(r['oracle_error'])} | {ci(r['knee_error'])} | |")
    return "\n".join(lines) + "\n"


def one_line_summary(run, cells):
    s = read_summary(run)
    best = [r for r in s["per_k"] if r.get("ratio") is not None]
    if not best:
        return f"{len(cells)} cells"
    top = min(best, key=lambda r: r["ratio"])
    return (f"{len(cells)} cells; best RDA/AE error ratio {top['ratio']:.3f} at k={top['k']} "
            f"(λ={top['best_lam']:g})")

"""The paper's outlier experiment (its Figures 4-6), with more baselines, seeds and label-free lambda.

The nominal digit (all 4859 "4"s of the first 50,000 MNIST training images) is mixed with 265
other digits. An l2,1-rows Robust Deep Autoencoder flags the rows of ``S`` that stay non-zero;
sweeping lambda traces precision, recall and F1. Isolation Forest, swept over the fraction of rows
it flags, is the paper's baseline; the ``baselines`` section adds the plain autoencoder (same
network and schedule, scored by its residual row norm), Robust PCA and Outlier Pursuit (scored by
the row norm of their sparse part), Local Outlier Factor and One-Class SVM. Every baseline is
swept over the same fraction grid as Isolation Forest (the top fraction of rows by score is
flagged); RDA's knob is lambda. One cell = one lambda, or one baseline's whole sweep, for one seed.

Cell ids: ``rda_lam<lambda>``, ``iforest``, ``ae``, ``rpca``, ``outlier_pursuit``, ``lof``,
``ocsvm`` for the config's ``seed``; the same followed by ``_s<seed>`` for every other seed of
``seeds``.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .common import (
    cell_problem,
    preflight_data,
    base_seed,
    cell_key,
    cell_seed,
    check_data_path,
    data_path_field,
    header_schema,
    json_safe,
    knee_cell,
    load_data_cached,
    make_estimator,
    model_schema,
    seed_list,
    seed_suffix,
    tag_seeds,
    read_summary,
    untag_seeds,
    write_summary,
)
from .config import MAX_ITERATIONS, MAX_ROWS, MAX_TREES, ConfigError, Field, quote
from .stats import fmt_pm, interval_dict

NAME = "outliers"

PAPER_LAMBDAS = [0.00005, 0.0001, 0.0002, 0.0003, 0.00035, 0.00045, 0.00055, 0.00065, 0.00075, 0.00085,
                 0.00095, 0.00105, 0.00115, 0.00125, 0.0015]

BASELINES = ("ae", "rpca", "outlier_pursuit", "lof", "ocsvm")
SWEPT = ("iforest",) + BASELINES  # methods whose knob is the fraction of rows flagged
METHOD_NAMES = {
    "rda": "ℓ2,1 RDA",
    "ae": "plain autoencoder",
    "iforest": "Isolation Forest",
    "rpca": "Robust PCA",
    "outlier_pursuit": "Outlier Pursuit",
    "lof": "Local Outlier Factor",
    "ocsvm": "One-Class SVM",
}


def _paper_lam():
    from ..estimator import RobustAutoencoder

    return RobustAutoencoder().lam


def _enabled(doc):
    return Field("bool", False, doc=doc)  # the packaged outliers.yaml runs Isolation Forest only


SCHEMA = {
    **header_schema("outliers", "seeds the data mix, the networks and the forest"),
    "data": {
        "path": data_path_field(),
        "nominal": Field("int", 4, minimum=0, maximum=9, doc="the nominal digit"),
        "n_outliers": Field("int", 265, minimum=1, maximum=60000, doc="other digits mixed in"),
        "n_source": Field("int", 50000, minimum=100, maximum=60000, doc="draw from the first N training images"),
    },
    "model": dict(
        model_schema(layers=[784, 400, 200], outer_iterations=10, inner_epochs=10, batch_size=133,
                     learning_rate=0.001, reinitialize=False),
        lam=Field("float", _paper_lam(), minimum=0, doc="lambda of a single run (no lambda sweep): the estimator's "
                                                        "default, the paper's optimum"),
        lambdas=Field("float_list", PAPER_LAMBDAS, minimum=0, min_length=1, doc="lambda grid of a sweep"),
        warm_start=Field("bool", False, doc="fit the grid in ascending lambda, each lambda starting from the "
                                            "previous one's network and S (local executor only)"),
        warm_outer_iterations=Field("int", None, minimum=1, maximum=MAX_ITERATIONS, nullable=True,
                                    doc="outer iterations of each warm-started lambda; null: outer_iterations"),
        warm_start_from_pilot=Field("bool", False,
                                    doc="start each lambda's l2,1 loop from a pilot plain autoencoder (same network "
                                        "and schedule, S = 0, fitted once per seed): its weights, S0 = prox(X - L_pilot), "
                                        "continued training (no re-initialisation), as the table rule does "
                                        "(rda_cli/table_rule.py); false: the paper's cold start"),
    ),
    "iforest": {
        "n_estimators": Field("int", 100, minimum=1, maximum=MAX_TREES, doc="Isolation Forest trees"),
        "fraction_min": Field("float", 0.01, minimum=0, maximum=1, exclusive_minimum=True,
                              doc="smallest fraction of rows flagged (also the baselines' grid)"),
        "fraction_max": Field("float", 0.69, minimum=0, maximum=1, exclusive_minimum=True,
                              doc="largest fraction of rows flagged"),
        "fraction_step": Field("float", 0.01, minimum=1e-4, maximum=1,
                               doc="step (at least 1e-4: at most 10,000 fractions)"),
    },
    "baselines": {
        "ae": {"enabled": _enabled("plain autoencoder (model settings, penalty none), residual row norm")},
        "rpca": {
            "enabled": _enabled("Robust PCA (l1 sparse part), row norm of S"),
            "lam": Field("float", None, nullable=True, minimum=0, exclusive_minimum=True,
                         doc="weight of ||S||_1; null: 1/sqrt(max(n, d))"),
            "max_iter": Field("int", 50, minimum=1, maximum=MAX_ITERATIONS, doc="ALM iterations at most"),
            "tol": Field("float", 1e-5, minimum=0, exclusive_minimum=True, doc="relative residual to stop at"),
        },
        "outlier_pursuit": {
            "enabled": _enabled("Outlier Pursuit (l2,1 row-sparse part), row norm of C"),
            "lam": Field("float", None, nullable=True, minimum=0, exclusive_minimum=True,
                         doc="weight of ||C||_2,1; null: 3/(7 sqrt(gamma n))"),
            "gamma": Field("float", 0.05, minimum=0, maximum=1, exclusive_minimum=True,
                           doc="expected outlier fraction of the default lam"),
            "max_iter": Field("int", 50, minimum=1, maximum=MAX_ITERATIONS, doc="ALM iterations at most"),
            "tol": Field("float", 1e-5, minimum=0, exclusive_minimum=True, doc="relative residual to stop at"),
        },
        "lof": {
            "enabled": _enabled("Local Outlier Factor"),
            "n_neighbors": Field("int", 20, minimum=1, maximum=MAX_ROWS, doc="neighbours"),
        },
        "ocsvm": {
            "enabled": _enabled("One-Class SVM, RBF kernel"),
            "nu": Field("float", 0.1, minimum=0, maximum=1, exclusive_minimum=True, doc="nu"),
            "gamma": Field("float", None, nullable=True, minimum=0, exclusive_minimum=True,
                           doc="RBF gamma; null: scikit-learn's 'scale'"),
        },
    },
    "selection": {
        "knee_scale": Field("choice", "linear", choices=("linear", "log"),
                            doc="lambda axis of the knee rule (flagged rows against lambda)"),
        "contamination": Field("float", 0.05, nullable=True, minimum=0, maximum=1, exclusive_minimum=True,
                               doc="expected outlier fraction of the contamination rule; null: knee only"),
    },
    "tiles": Field("int", 40, minimum=0, maximum=200, doc="example rows kept per cell for s_tiles.png"),
}

COLUMNS = ["id", "kind", "seed", "lam", "threshold", "precision", "recall", "f1", "auroc", "ap", "n_flagged",
           "n_iter", "fit_seconds", "seconds"]


def post_check(config):
    check_data_path(config)
    it = config["iforest"]
    if it["fraction_min"] > it["fraction_max"]:
        raise ConfigError(
            f"config key 'iforest.fraction_min': got {it['fraction_min']!r}, expected <= iforest.fraction_max "
            f"({it['fraction_max']!r})"
        )


def preflight(config):
    """Build the first seed's data mix before any folder is made (a bad ``data`` section fails here)."""
    preflight_data(lambda: mixed_data(config, seed_list(config)[0]), "data")


def check_cell(cell):
    """The keys a finished cell must hold, by kind (see :func:`compute_cell`)."""
    if cell.get("kind") == "rda":
        spec = {"kind": "str", "seed": "int?", "lam": "num", "threshold": "num", "precision": "frac", "recall": "frac",
                "f1": "frac", "auroc": "frac", "ap": "frac", "n_flagged": "int", "n_rows": "int", "history": "list"}
        return cell_problem(cell, spec)
    if cell.get("kind") in SWEPT:
        spec = {"kind": "str", "seed": "int?", "fractions": "fracs", "precision": "fracs", "recall": "fracs",
                "f1": "fracs", "auroc": "frac", "ap": "frac"}
        return cell_problem(cell, spec, same_length=("fractions", "precision", "recall", "f1"))
    return f"unknown kind {quote(cell.get('kind'))}"


def list_cells(config, sweep=True):
    lams = config["model"]["lambdas"] if sweep else [config["model"]["lam"]]
    enabled = [b for b in BASELINES if config.get("baselines", {}).get(b, {}).get("enabled", False)]
    cells = []
    for seed in seed_list(config):
        sfx = seed_suffix(config, seed)
        rda = [{"id": f"rda_lam{cell_key(lam)}{sfx}", "kind": "rda", "lam": lam, "seed": seed} for lam in lams]
        if config["model"]["warm_start"] and len(rda) > 1:
            # a lambda path: ascending, each cell continues from the one before (see compute_cell)
            rda.sort(key=lambda c: c["lam"])
            for prev, cell in zip(rda[:-1], rda[1:]):
                cell["warm_from"] = prev["id"]
        cells += rda
        cells += [{"id": f"{kind}{sfx}", "kind": kind, "seed": seed} for kind in ("iforest",) + tuple(enabled)]
    return cells


def mixed_data(config, seed=None):
    from ..data import outlier_mix

    X, y = load_data_cached(config["data"]["path"])
    d = config["data"]
    return outlier_mix(X, y, nominal=d["nominal"], n_outliers=d["n_outliers"], n_source=d["n_source"],
                       seed=config["seed"] if seed is None else seed)


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
    from ..baselines import top_fraction_mask

    out = {"fractions": [], "precision": [], "recall": [], "f1": []}
    for f in fracs:
        p, r, f1 = flag_metrics(truth, top_fraction_mask(scores, f))
        for key, v in zip(("fractions", "precision", "recall", "f1"), (f, p, r, f1)):
            out[key].append(v)
    return out


def _tile_rows(is_outlier, m):
    out_idx = np.flatnonzero(is_outlier)[: m // 2]
    in_idx = np.flatnonzero(~is_outlier)[: m - len(out_idx)]
    return np.sort(np.concatenate([out_idx, in_idx]))


def _baseline_scores(config, kind, X, seed):
    """Scores (higher = more abnormal) of one baseline and a few facts about its fit."""
    from .. import baselines as bl

    b = config.get("baselines", {}).get(kind, {})
    if kind == "iforest":
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=config["iforest"]["n_estimators"], random_state=seed)
        return -forest.fit(X).score_samples(X), {}
    if kind == "ae":
        model = make_estimator(config["model"], None, None, seed).fit(X)
        return model.residual_scores_, {"n_iter": model.n_iter_}
    if kind in ("rpca", "outlier_pursuit"):
        if kind == "rpca":
            model = bl.RobustPCA(lam=b["lam"], max_iter=b["max_iter"], tol=b["tol"])
        else:
            model = bl.OutlierPursuit(lam=b["lam"], gamma=b["gamma"], max_iter=b["max_iter"], tol=b["tol"])
        model.fit(X)
        return model.decision_scores_, {"lam": model.lam_, "rank": model.rank_, "n_iter": model.n_iter_,
                                        "residual": model.history_[-1]["residual"]}
    if kind == "lof":
        return bl.lof_scores(X, b["n_neighbors"]), {}
    if kind == "ocsvm":
        return bl.ocsvm_scores(X, nu=b["nu"], gamma="scale" if b["gamma"] is None else b["gamma"]), {}
    raise ValueError(f"unknown cell kind {kind!r}")


def compute_cell(config, cell, finished=None):
    t0 = time.perf_counter()
    seed = cell_seed(config, cell)
    X, _, truth = mixed_data(config, seed)
    result = dict(cell, seed=seed, n_rows=int(len(X)))
    arrays = None
    if cell["kind"] in SWEPT:
        t_fit = time.perf_counter()
        scores, facts = _baseline_scores(config, cell["kind"], X, seed)
        result["fit_seconds"] = time.perf_counter() - t_fit
        result.update(facts)
        result.update(top_fraction_sweep(truth, scores, fractions(config)))
        result["auroc"], result["ap"] = ranking_metrics(truth, scores)
    else:
        t_fit = time.perf_counter()
        model = make_estimator(config["model"], "l21_rows", cell["lam"], seed)
        if cell.get("warm_from"):
            _warm_start_from(model, config, cell, finished)
        elif config["model"].get("warm_start_from_pilot"):
            result["pilot_seconds"] = _start_from_pilot(model, config, X, seed)
        model.fit(X)
        result["fit_seconds"] = time.perf_counter() - t_fit
        p, r, f1 = flag_metrics(truth, model.outlier_mask_)
        auroc, ap = ranking_metrics(truth, model.residual_scores_)
        result.update(threshold=model.prox_threshold_, precision=p, recall=r, f1=f1, auroc=auroc, ap=ap,
                      n_flagged=int(model.outlier_mask_.sum()), n_iter=model.n_iter_, history=model.history_)
        arrays = {}
        if config["tiles"]:
            rows = _tile_rows(truth, config["tiles"])
            arrays = {"X": X[rows].astype(np.float16), "S": model.S_[rows].astype(np.float16),
                      "is_outlier": truth[rows]}
        if config["model"]["warm_start"]:
            # the state the next lambda of the path starts from (S is row-sparse: compresses well)
            arrays.update({"state_S": model.S_, "state_L": model.L_})
            arrays.update({f"state_w{i}": w for i, w in enumerate(model.get_weights())})
    result["seconds"] = time.perf_counter() - t0
    return json_safe(result), arrays or None


_PILOT = {}  # the last pilot fitted in this process: (key, model), reused by the lambdas of one seed


def _start_from_pilot(model, config, X, seed):
    """Give ``model`` the state of a pilot plain autoencoder on ``X`` (fitted once per seed and setting
    in this process): its weights, ``S0 = prox(X - L_pilot)`` and continued training. Returns the
    pilot's fit seconds (0 when reused)."""
    from ..estimator import effective_threshold
    from ..solver import SparsePart, sparse_step

    key = (int(seed), json.dumps(config["model"], sort_keys=True, default=str),
           json.dumps(config["data"], sort_keys=True, default=str))
    t0 = time.perf_counter()
    if _PILOT.get("key") != key:
        _PILOT.clear()
        _PILOT.update(key=key, model=make_estimator(config["model"], None, 0.0, seed).fit(X))
    pilot = _PILOT["model"]
    threshold = effective_threshold(X, "l21_rows", model.lam, model.lambda_scaling)
    S0 = sparse_step(X, pilot.L_, SparsePart("l21_rows", threshold))
    model.set_params(reinitialize=False)  # re-drawing the network would throw the pilot away
    model.set_warm_state(S0, pilot.L_, pilot.get_weights())
    return time.perf_counter() - t0


def _warm_start_from(model, config, cell, finished):
    """Load the fitted state of the previous lambda of the path (a cell finished earlier in this run)."""
    z = finished.arrays(cell["warm_from"]) if finished is not None else None
    if not z or "state_S" not in z:
        raise ValueError(f"warm start: the state of {cell['warm_from']} is missing; run the lambda path in order "
                         "with `executor`='local'")
    weights = [z[f"state_w{i}"] for i in range(sum(k.startswith("state_w") for k in z))]
    model.set_warm_state(z["state_S"], z["state_L"], weights)
    model.set_params(outer_iterations=config["model"]["warm_outer_iterations"] or config["model"]["outer_iterations"])


# ---------------------------------------------------------------------------------------- summary
def _num(v):
    return np.nan if v is None else float(v)


def _method_summary(kind, cells, seeds):
    """Best F1 over the method's knob of the seed-mean curve, with t-intervals over seeds."""
    by_seed = {}
    for c in cells:
        by_seed.setdefault(c["_seed"], []).append(c)
    seeds = [s for s in seeds if s in by_seed]
    if not seeds:
        return None
    if kind == "rda":
        knobs = sorted({c["lam"] for c in cells})
        pick = {s: {c["lam"]: c for c in by_seed[s]} for s in seeds}

        def value(s, j, key):
            c = pick[s].get(knobs[j])
            if c is None:
                return np.nan
            if key == "fraction":
                return c["n_flagged"] / c["n_rows"] if c.get("n_rows") else np.nan
            return _num(c.get(key))
    else:
        cell = {s: by_seed[s][0] for s in seeds}
        knobs = list(cell[seeds[0]]["fractions"])

        def value(s, j, key):
            c = cell[s]
            if key == "fraction":
                return knobs[j]
            if key in ("auroc", "ap"):
                return _num(c.get(key))
            vals = c.get(key)
            return _num(vals[j]) if j < len(vals) else np.nan
    f1 = np.array([[value(s, j, "f1") for j in range(len(knobs))] for s in seeds])
    with np.errstate(all="ignore"):
        mean_f1 = np.nanmean(np.where(np.isfinite(f1), f1, np.nan), axis=0)
    if not np.isfinite(mean_f1).any():
        return None
    j = int(np.nanargmax(mean_f1))
    out = {"method": METHOD_NAMES.get(kind, kind), "knob": "lambda" if kind == "rda" else "fraction",
           "at": knobs[j], "seeds": seeds}
    for key in ("f1", "precision", "recall", "auroc", "ap", "fraction"):
        out[key] = interval_dict([value(s, j, key) for s in seeds])
    out["fit_seconds"] = interval_dict([np.mean([_num(c.get("fit_seconds", c.get("seconds"))) for c in by_seed[s]])
                                        for s in seeds])
    out["per_seed_best_f1"] = {str(s): float(np.nanmax(f1[i])) for i, s in enumerate(seeds)
                               if np.isfinite(f1[i]).any()}
    return out


def _lambda_selection(rda, seeds, selection):
    """Per seed: the oracle-best lambda (labels) next to the label-free choices."""
    from ..selection import contamination_lambda

    per_seed = []
    for s in seeds:
        cs = sorted((c for c in rda if c["_seed"] == s), key=lambda c: c["lam"])
        if not cs:
            continue
        by_lam = {c["lam"]: c for c in cs}
        lams = [c["lam"] for c in cs]
        counts = [c["n_flagged"] for c in cs]
        best = max(cs, key=lambda c: c["f1"])
        rec = {"seed": s, "oracle_lam": best["lam"], "oracle_f1": best["f1"]}
        knee = knee_cell(cs, "n_flagged", selection.get("knee_scale", "linear"))
        rec.update(knee_lam=knee["lam"], knee_f1=knee["f1"], knee_n_flagged=knee["n_flagged"])
        contamination = selection.get("contamination")
        if contamination and cs[0].get("n_rows"):
            lam_c = contamination_lambda(lams, counts, cs[0]["n_rows"], contamination)
            rec.update(contamination_lam=lam_c, contamination_f1=by_lam[lam_c]["f1"])
        per_seed.append(rec)
    if not per_seed:
        return None
    scale = selection.get("knee_scale", "linear")
    out = {"rule": f"knee of log(1 + flagged rows) against lambda ({scale} lambda axis)",
           "contamination": selection.get("contamination"), "per_seed": per_seed}
    for key in ("oracle_f1", "knee_f1", "contamination_f1"):
        vals = [r[key] for r in per_seed if key in r]
        if vals:
            out[key] = interval_dict(vals)
    return out


def summarize(run, cells):
    from .figures.outliers import outlier_figures

    config = run.config
    seeds = tag_seeds(config, cells)
    base = base_seed(config, cells)
    rda_all = [c for c in cells if c["kind"] == "rda"]
    run.write_metrics_csv(sorted(rda_all, key=lambda c: (c["_seed"], c["lam"])), COLUMNS)
    summary = {"cells_done": len(cells), "seeds": seeds, "base_seed": base}
    # The base seed's best RDA and Isolation Forest, as before seeds existed.
    rda = sorted((c for c in rda_all if c["_seed"] == base), key=lambda c: c["lam"])
    if rda:
        best = max(rda, key=lambda c: c["f1"])
        summary["rda"] = {k: best[k] for k in ("lam", "threshold", "precision", "recall", "f1", "auroc", "ap")}
    forest = next((c for c in cells if c["kind"] == "iforest" and c["_seed"] == base), None)
    if forest:
        i = int(np.argmax(forest["f1"]))
        summary["iforest"] = {"fraction": forest["fractions"][i], "precision": forest["precision"][i],
                              "recall": forest["recall"][i], "f1": forest["f1"][i], "auroc": forest["auroc"],
                              "ap": forest["ap"]}
    if rda and forest and summary["iforest"]["f1"] > 0:
        summary["relative_improvement"] = summary["rda"]["f1"] / summary["iforest"]["f1"] - 1
    # Every method, over all seeds.
    methods = {}
    for kind in ("rda",) + SWEPT:
        of_kind = [c for c in cells if c["kind"] == kind]
        if of_kind:
            m = _method_summary(kind, of_kind, seeds)
            if m:
                methods[kind] = m
    summary["methods"] = methods
    selection = _lambda_selection(rda_all, seeds, config.get("selection") or {"knee_scale": "linear"})
    if selection:
        summary["lambda_selection"] = selection
    untag_seeds(cells)
    write_summary(run, summary, _summary_md(summary))
    return outlier_figures(run.path, cells, base_seed=base)


def _summary_md(summary):
    seeds = summary["seeds"]
    several = len(seeds) > 1
    lines = []
    if summary.get("methods"):
        note = (f"mean ± 95% t-interval half-width over seeds {seeds}; each method at the knob value that "
                "maximises its seed-mean F1" if several else f"seed {seeds[0]}; each method at its best F1")
        lines += [f"Outlier detection, every method on the same data ({note}). Knob: λ for RDA, else the fraction "
                  "of rows flagged (top by score). Fit time in seconds per fit.", "",
                  "| method | best F1 | at | rows flagged | precision | recall | AUROC | AP | fit s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for kind, m in summary["methods"].items():
            at = f"λ = {m['at']:g}" if m["knob"] == "lambda" else f"fraction = {m['at']:g}"
            cell = lambda key, d=3: fmt_pm(m[key]["mean"], m[key]["half_width"], d)  # noqa: E731
            lines.append(f"| {m['method']} | {cell('f1')} | {at} | {cell('fraction')} | {cell('precision')} | "
                         f"{cell('recall')} | {cell('auroc')} | {cell('ap')} | {cell('fit_seconds', 1)} |")
    if "relative_improvement" in summary:
        lines.append(f"\nSeed {summary['base_seed']}: RDA's best F1 is {summary['relative_improvement']:+.1%} "
                     "relative to Isolation Forest's.")
    sel = summary.get("lambda_selection")
    if sel:
        has_c = any("contamination_lam" in r for r in sel["per_seed"])
        lines += ["", f"λ without labels: {sel['rule']}"
                  + (f"; contamination rule: smallest λ flagging ≤ {sel['contamination']:g} of the rows" if has_c else "")
                  + ". Oracle: best F1 over the λ grid (uses labels).", ""]
        head = "| seed | oracle F1 (λ) | knee F1 (λ, rows flagged) |" + (" contamination F1 (λ) |" if has_c else "")
        lines += [head, "|---|---|---|" + ("---|" if has_c else "")]
        for r in sel["per_seed"]:
            row = (f"| {r['seed']} | {r['oracle_f1']:.3f} ({r['oracle_lam']:g}) | {r['knee_f1']:.3f} "
                   f"({r['knee_lam']:g}, {r['knee_n_flagged']}) |")
            if has_c:
                row += (f" {r['contamination_f1']:.3f} ({r['contamination_lam']:g}) |" if "contamination_f1" in r
                        else " — |")
            lines.append(row)
        if several:
            row = (f"| mean | {fmt_pm(sel['oracle_f1']['mean'], sel['oracle_f1']['half_width'])} | "
                   f"{fmt_pm(sel['knee_f1']['mean'], sel['knee_f1']['half_width'])} |")
            if has_c and "contamination_f1" in sel:
                row += f" {fmt_pm(sel['contamination_f1']['mean'], sel['contamination_f1']['half_width'])} |"
            lines.append(row)
    return "\n".join(lines) + "\n"


def one_line_summary(run, cells):
    s = read_summary(run)
    parts = [f"{len(cells)} cells"]
    if "rda" in s:
        parts.append(f"RDA best F1 {s['rda']['f1']:.3f} at λ={s['rda']['lam']:g}")
    if "iforest" in s:
        parts.append(f"Isolation Forest best F1 {s['iforest']['f1']:.3f}")
    others = {k: m for k, m in s.get("methods", {}).items()
              if k not in ("rda", "iforest") and m["f1"]["mean"] is not None}
    if others:
        k, m = max(others.items(), key=lambda kv: kv[1]["f1"]["mean"])
        parts.append(f"best other baseline {m['method']} F1 {m['f1']['mean']:.3f}")
    return "; ".join(parts)

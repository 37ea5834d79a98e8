"""How ``rda detect`` and ``rda score`` results read: the text and figures of their files.

The service (:mod:`rda_cli.detect`) chooses lambda, fits and scores; this module renders its results
-- ``scores.csv`` and ``columns.csv`` text, ``report.md``, ``score_hist.png``, ``top_rows.png`` -- and
writes nothing else. Where files may be written, and the writing of a result folder, are
:mod:`rda_cli.outputs`.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from .safeio import write_file

__all__ = ["TOP_ROWS", "TOP_FEATURES", "top_columns", "scores_csv", "explain_csv", "columns_csv", "histogram",
           "top_rows_chart", "report_markdown"]

TOP_ROWS = 20
TOP_FEATURES = 3  # features named per flagged row in scores.csv and explain.csv
MIN_SHARE = 0.005  # smaller shares are not named
CHART_ROWS = 6  # flagged rows drawn in top_rows.png
CHART_FEATURES = 8  # bars per row


def fmt(v):
    return f"{v:.6g}"


def scores_csv(ids, id_name, scores, flagged, top=None, start=0, header=True):
    """Scores as CSV text: ``<id>,score,flagged,top_features`` (the header first, with ``header``); rows
    without ids are numbered from ``start``. ``top``: the top-features text per row (empty if None)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow([id_name or "row", "score", "flagged", "top_features"])
    for i, (s, f) in enumerate(zip(scores, flagged)):
        w.writerow([ids[i] if ids is not None else start + i, fmt(s), int(f), top[i] if top is not None else ""])
    return buf.getvalue()


def top_columns(shares, flagged, k=TOP_FEATURES):
    """``{row: [column, ...]}`` for each flagged row: its ``k`` largest feature shares, largest first,
    shares below :data:`MIN_SHARE` left out."""
    rows = np.flatnonzero(flagged)
    if not rows.size:
        return {}
    order = np.argsort(-shares[rows], axis=1, kind="stable")[:, :k]
    return {int(i): [int(j) for j in cols if shares[i, j] >= MIN_SHARE] for i, cols in zip(rows, order)}


def explain_csv(ids, X, expected, shares, flagged, names, start=0, header=True):
    """``row,feature,value,expected,share`` for each flagged row and each of its top features
    (:func:`top_columns`), in the table's own units: ``value`` is the cell as read (empty when missing),
    ``expected`` what the model reconstructs there (for a missing cell: its imputed value). ``row`` is
    the id when ``ids`` is given, else the row number counted from ``start`` (as ``scores.csv``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(["row", "feature", "value", "expected", "share"])
    for i, cols in top_columns(shares, flagged).items():
        for j in cols:
            value = X[i, j]
            w.writerow([ids[i] if ids is not None else start + i, names[j], "" if np.isnan(value) else fmt(value),
                        fmt(expected[i, j]), f"{shares[i, j]:.2f}"])
    return buf.getvalue()


def _save_png(fig, target, **savefig):
    """``fig`` as a PNG into ``target``: a file object (written as it is) or a path (atomically, through
    :func:`rda_cli.safeio.write_file`)."""
    if not hasattr(target, "write"):
        write_file(target, lambda fh: _save_png(fig, fh, **savefig))
        return
    fh = target
    fig.savefig(fh, format="png", **savefig)


def top_rows_chart(path, labels, scores, flagged, pairs):
    """Bar charts of the ``CHART_ROWS`` highest-scoring flagged rows: each row's named features and their
    shares (``pairs``: ``{row index: [(feature, share), ...]}``, as ``explain.csv`` holds them) and the rest
    of its anomaly as "other"; no file if no row is flagged. ``labels``: each row's name (id or number)."""
    rows = [i for i in np.argsort(-np.asarray(scores), kind="stable")[:CHART_ROWS] if flagged[i]]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 1.3 * len(rows) + 0.6), squeeze=False)
    try:
        for ax, i in zip(axes[:, 0], rows):
            named = pairs.get(int(i), [])
            other = max(0.0, 1.0 - sum(share for _, share in named))
            bars = [(str(name), share) for name, share in named] + [("(other features)", other)]
            ax.barh([b[0] for b in bars][::-1], [b[1] for b in bars][::-1],
                    color=["tab:gray"] + ["tab:red"] * len(named))
            ax.set_xlim(0, 1)
            ax.set_title(f"{labels[i]}: score {fmt(scores[i])}", fontsize=9, loc="left")
            ax.tick_params(labelsize=8)
        axes[-1, 0].set_xlabel("share of the row's anomaly (its squared residual, scaled units)")
        fig.tight_layout()
        _save_png(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return True


def chart_pairs(shares, flagged, names):
    """``{row: [(feature, share), ...]}`` of the flagged rows' top features (what :func:`top_rows_chart` draws)."""
    return {i: [(names[j], round(float(shares[i, j]), 2)) for j in cols]
            for i, cols in top_columns(shares, flagged).items()}


def columns_csv(col_rows):
    """``column,s_norm,flagged`` per column (``col_rows``: ``(name, S column norm, flagged)``), as CSV text."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["column", "s_norm", "flagged"])
    for name, norm, flagged in col_rows:
        w.writerow([name, fmt(norm), int(flagged)])
    return buf.getvalue()


XLABELS = {
    "ensemble": "score: the members' robust z-scores averaged, minus the cut-off (> 0: flagged)",
    "rows": "score (> 0: flagged, the norm of the row of S; <= 0: how far the row is below the threshold)",
    "columns": "score: the residual row norm ||x - l|| (a column penalty flags columns, not rows)",
}


def score_kind(info):
    """Which score a result's rows carry: ``"ensemble"``, ``"rows"`` (one model, a row penalty) or
    ``"columns"`` (``l21_cols``: no row is flagged)."""
    if info.get("penalty") == "l21_cols":
        return "columns"
    return "ensemble" if info.get("detector") == "ensemble" else "rows"


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def histogram_title(info, command="rda detect"):
    """The title of ``score_hist.png``: the data, and the detector (the ensemble's cut-off, or lambda)."""
    from pathlib import Path

    name = Path(info["data"]).name
    if score_kind(info) == "ensemble":
        return f"{command}: {name}, RDA ensemble of {plural(info['n_members'], 'member')}, cut-off {info['threshold']:.4g}"
    return f"{command}: {name}, lambda = {info['lam']:.4g}"


def histogram(path, scores, flagged, title, kind="rows"):
    """The score histogram (log counts), flagged rows in red, into ``path`` (a file name, written atomically,
    or a binary file object); returns the Figure's drawn data as
    ``{label: counts}`` (for tests). ``kind`` (:func:`score_kind`) names the score on the x axis;
    ``"columns"`` (a column penalty): one histogram of the residual row norms, no flagging boundary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        s, f = np.asarray(scores, dtype=float), np.asarray(flagged, dtype=bool)
        groups = [(s[~f], "tab:blue", f"not flagged ({int((~f).sum())})")]
        if f.any():
            groups.append((s[f], "tab:red", f"flagged ({int(f.sum())})"))
        drawn = {}
        for values, color, label in groups:
            drawn[label] = ax.hist(values, bins=40, color=color, alpha=0.8, label=label)[0]
        if kind != "columns":
            ax.axvline(0, color="k", ls="--", lw=1, label="flagging boundary (score 0)")
        ax.set_xlabel(XLABELS[kind])
        ax.set_yscale("log")
        ax.set_ylabel("rows (log scale)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        _save_png(fig, path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return drawn


def detect_figures(folder, info, labels, scores, flagged, pairs):
    """``score_hist.png`` and ``top_rows.png`` of a detect result into ``folder`` (the second only when a
    row is flagged); returns whether ``top_rows.png`` was drawn."""
    histogram(folder / "score_hist.png", scores, flagged, histogram_title(info), score_kind(info))
    return top_rows_chart(folder / "top_rows.png", labels, scores, flagged, pairs)


def _single_lines(info, id_name, col_rows):
    """The facts of a single-model run (``lam``, or the l1 / l21_cols penalties)."""
    return [
        f"- rows: {info['n_rows']}, feature columns: {info['n_features']}"
        + (f" (id column `{id_name}` excluded)" if id_name else ""),
        f"- penalty: `{info['penalty']}`, network layers: {info['layers']}",
        f"- schedule: {info['outer_iterations']} outer iterations x {info['inner_epochs']} epochs, "
        f"batch {info['batch_size']}"
        + (f" (at most {info['max_steps_per_epoch']} batches per epoch)" if info.get("max_steps_per_epoch") else "")
        + f", learning rate {info['learning_rate']}, "
        f"reinitialize={info['reinitialize']}, random_state={info['random_state']}",
        f"- **lambda = {info['lam']:.6g}** ({info['lambda_scaling']} scaling) -> prox threshold "
        f"{info['threshold']:.6g} in [0, 1]-scaled units",
        f"- lambda chosen by: {info['how']}",
        (f"- flagged: **{len(info['flagged_columns'])} of {info['n_features']} columns** (a column penalty flags "
         "columns, not rows)" if col_rows is not None else
         f"- flagged: **{info['n_flagged']} of {info['n_rows']} rows** ({info['n_flagged'] / info['n_rows']:.1%})"),
        f"- fits: {info['fits']}, {info['seconds']:.1f} s",
    ]


def _scored_by(n_members, rule):
    """``"the 2 networks, the per-feature tail score and an Isolation Forest"``: what the ensemble averages."""
    parts = [f"the {plural(n_members, 'network')}"]
    parts += [name for key, name in (("tail", "the per-feature tail score"), ("forest", "an Isolation Forest"))
              if rule.get(key)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _ensemble_lines(info, id_name):
    """The facts of an ensemble run (the default detector)."""
    rule = info["rule"]
    return [
        f"- rows: {info['n_rows']}, feature columns: {info['n_features']}"
        + (f" (id column `{id_name}` excluded)" if id_name else ""),
        f"- detector: the RDA ensemble of the table rule (`rda_cli/table_rule.py`), **{plural(info['n_members'], 'member')}**, "
        f"layers {', '.join(info['layers'])}; columns scaled robustly (1st..99th percentile -> [0, 1])"
        + (f" on the {info['n_learned']} rows the networks learn: the {info['n_rows'] - info['n_learned']} rows the "
           "tail score and the forest score highest are left out of their training (`isolate`)"
           if info.get("n_learned", info["n_rows"]) < info["n_rows"] else ""),
        f"- each member: a pilot autoencoder ({rule['pilot_outer']} x about {rule['pilot_steps']} steps at learning "
        f"rate {rule['pilot_learning_rate']}), lambda = its {rule['lambda_quantile']} quantile of the residual row "
        f"norms, then a warm l2,1 RDA ({rule['warm_outer']} x about {rule['warm_steps']} steps at "
        f"{rule['warm_learning_rate']}); random_state={info['random_state']}",
        f"- score: the robust z-scores of {_scored_by(info['n_members'], rule)} averaged, minus the cut-off "
        f"**{info['threshold']:.4g}** (> 0: flagged)",
        f"- flagged by: {info['how']}",
        f"- flagged: **{info['n_flagged']} of {info['n_rows']} rows** ({info['n_flagged'] / info['n_rows']:.1%})",
        f"- fits: {info['fits']} (pilot and RDA per member), {info['seconds']:.1f} s",
    ]


def none_flagged_line(info):
    """Why a single-model run flagged no row, and what to try."""
    nf = info["none_flagged"]
    return (f"every row's residual stays below the prox threshold {info['threshold']:.4g} that lambda "
            f"{info['lam']:.4g} sets (the largest is {nf['largest_residual']:.4g}); try --lam below about "
            f"{nf['lam_to_flag_one']:.3g} (where the largest would be flagged), --lam-for-fraction F, or no --lam "
            "(the ensemble and its robust cut-off)")


def report_markdown(info, ids, id_name, scores, flagged, col_rows, top=None, chart=False):
    source = info['data'] + (f" (array `{info['array']}`)" if info.get("array") else "")
    lines = [f"# rda detect: {source}", ""]
    if info.get("detector") == "ensemble":
        lines += _ensemble_lines(info, id_name)
    else:
        lines += _single_lines(info, id_name, col_rows)
    if info.get("n_missing"):
        lines.append(f"- missing values: {info['n_missing']} cells ({info['n_missing'] / (info['n_rows'] * info['n_features']):.2%}); "
                     "left out of the loss and the scores, filled in by the model in `imputed.npy`")
    if info.get("none_flagged"):
        lines.append(f"- **no row flagged**: {none_flagged_line(info)}")
    lines.append("")
    steps = info.get("search", {}).get("steps")
    if steps:
        knee = info["search"].get("knee")
        lines += ["## lambda search", "", "| # | lambda | threshold | groups flagged |", "|---|---|---|---|"]
        for i, s in enumerate(steps):
            mark = " (knee)" if knee == i else ""
            lines.append(f"| {i + 1} | {s['lam']:.6g}{mark} | {s['threshold']:.4g} | {s['flagged']} |")
        lines.append("")
    lines += ["## scores", "",
              ("Score of a row: its residual norm ||x - l|| (scaled units); the column penalty flags no row."
               if col_rows is not None else
               "Score of a row: the average over the members of its robust z-score (each member's score against "
               "its own training scores: (s - median) / (1.4826 MAD)), minus the cut-off, so > 0 is flagged."
               if info.get("detector") == "ensemble" else
               "Score of a row: the norm of its row of S (scaled units) when flagged, else its residual "
               "norm minus the threshold (<= 0), so every row is ranked."), "",
              "![score histogram](score_hist.png)", "",
              f"## top {min(TOP_ROWS, len(scores))} rows by score", "",
              f"| {id_name or 'row'} | score | flagged | top features (share) |", "|---|---|---|---|"]
    for i in np.argsort(-np.asarray(scores), kind="stable")[:TOP_ROWS]:
        why = top[i].replace(";", ", ") if top is not None else ""
        lines.append(f"| {ids[i] if ids is not None else i} | {fmt(scores[i])} | {int(flagged[i])} | {why} |")
    if chart:
        lines += ["", f"Why the top {CHART_ROWS} flagged rows are flagged: each feature's share of the row's "
                  "squared S norm.", "", "![top rows](top_rows.png)"]
    if col_rows is not None:
        ratios = info.get("column_ratios", {})
        lines += ["", "## flagged columns (l2,1 over columns)", "",
                  "| column | S column norm (original units) | residual norm / threshold |", "|---|---|---|"]
        lines += [f"| {name} | {fmt(v)} | {ratios.get(name, float('nan')):.3g} |"
                  for name, v, flagged_col in col_rows if flagged_col] or ["| (none) | | |"]
        unflagged = [ratios[name] for name, _, flagged_col in col_rows if not flagged_col and name in ratios]
        if ratios:
            lines += ["", "How sure each call is: a column is flagged when its residual norm (scaled units) exceeds the "
                      "prox threshold, so a ratio near 1 is a close call"
                      + (f"; the closest column left unflagged is at {max(unflagged):.3g}" if unflagged else "")
                      + f". With these residuals no column would be flagged at lambda above about "
                      f"{info['lam_flags_no_column']:.3g} (this run: {info['lam']:.3g})."]
        lines += ["", "Every column's S norm and flag: `columns.csv`."]
    lines += ["", "Files: `scores.csv` (row, score, flagged, top_features), "
              + ("" if col_rows is not None else "`explain.csv` (each flagged row's top features: its value, what "
                 "the model expected there and the feature's share, in the table's units), ")
              + "`L.npy` and `S.npy` (original units: X ~ L + S), `model/` (the network plus `scaler.json`; score "
              "new rows with `rda score --model <this folder>/model --data FILE`)."]
    if info.get("detector") == "ensemble":
        lines += ["", f"`L.npy` and `S.npy` of the ensemble are its members' `L` and `S` averaged. A row of `S` is "
                  f"non-zero where any member's l2,1 prox kept it ({info.get('s_nonzero_rows', '?')} rows here), so "
                  f"`S` does not say which rows are flagged: the flags ({info['n_flagged']} rows) come from the "
                  "averaged robust z-scores against the cut-off (`scores.csv`)."]
    return "\n".join(lines) + "\n"


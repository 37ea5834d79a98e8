"""What ``rda detect`` and ``rda score`` write, and where they may write it.

The service (:mod:`rda_cli.detect`) chooses lambda, fits and scores; this module turns its results
into files -- ``scores.csv``, ``report.md``, ``score_hist.png``, ``detect.json`` -- and holds the
output-folder rules: a result folder is built under a temporary name and renamed at the end; an
existing folder is replaced only if an earlier ``rda detect`` wrote it and the caller asked for it
(see ``docs/reliability.md``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .safeio import replace_dir

__all__ = ["MARKER", "OUTPUT_NAMES", "TOP_ROWS", "scores_csv", "histogram", "report_markdown", "write_result",
           "check_out_dir", "start_output", "is_scores_file", "check_score_out", "write_scores_file"]

MARKER = "detect.json"  # the file that says a folder holds an rda detect result
OUTPUT_NAMES = frozenset({"scores.csv", "L.npy", "S.npy", "imputed.npy", "model", "score_hist.png", "top_rows.png",
                          "report.md", MARKER})
TOP_ROWS = 20
CHART_ROWS = 6  # flagged rows drawn in top_rows.png
CHART_FEATURES = 8  # bars per row


def _error(message):
    from .detect import DetectError

    return DetectError(message)


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


def top_rows_chart(path, ids, scores, flagged, shares, names):
    """Bar charts of the feature shares of the ``CHART_ROWS`` highest-scoring flagged rows (no file if none)."""
    rows = [i for i in np.argsort(-np.asarray(scores), kind="stable")[:CHART_ROWS] if flagged[i]]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 1.6 * len(rows) + 0.6), squeeze=False)
    try:
        for ax, i in zip(axes[:, 0], rows):
            order = np.argsort(-shares[i], kind="stable")[:CHART_FEATURES]
            ax.barh([str(names[j]) for j in order][::-1], shares[i, order][::-1], color="tab:red")
            ax.set_xlim(0, 1)
            ax.set_title(f"{ids[i] if ids is not None else i}: score {fmt(scores[i])}", fontsize=9, loc="left")
            ax.tick_params(labelsize=8)
        axes[-1, 0].set_xlabel("share of the row's anomaly (S_ij^2 / ||S_i||^2)")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return True


def histogram(path, scores, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        s = np.asarray(scores, dtype=float)
        ax.hist(s[s <= 0], bins=40, color="tab:blue", alpha=0.8, label=f"not flagged ({int((s <= 0).sum())})")
        if (s > 0).any():
            ax.hist(s[s > 0], bins=40, color="tab:red", alpha=0.8, label=f"flagged ({int((s > 0).sum())})")
        ax.axvline(0, color="k", ls="--", lw=1, label="flagging boundary (score 0)")
        ax.set_yscale("log")
        ax.set_xlabel("score (> 0: flagged, the norm of the row of S; <= 0: how far the row is below the threshold)")
        ax.set_ylabel("rows (log scale)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)


def report_markdown(info, ids, id_name, scores, flagged, col_rows, top=None, chart=False):
    source = info['data'] + (f" (array `{info['array']}`)" if info.get("array") else "")
    lines = [f"# rda detect: {source}", ""]
    lines += [
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
        f"- flagged: **{info['n_flagged']} of {info['n_rows']} rows** ({info['n_flagged'] / info['n_rows']:.1%})",
        f"- fits: {info['fits']}, {info['seconds']:.1f} s",
    ]
    if info.get("n_missing"):
        lines.append(f"- missing values: {info['n_missing']} cells ({info['n_missing'] / (info['n_rows'] * info['n_features']):.2%}); "
                     "left out of the loss and the scores, filled in by the model in `imputed.npy`")
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
              "Score of a row: the norm of its row of S (scaled units) when flagged, else its residual "
              "norm minus the threshold (<= 0), so every row is ranked.", "",
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
        lines += ["", "## flagged columns (l2,1 over columns)", "", "| column | S column norm (original units) |",
                  "|---|---|"]
        lines += [f"| {name} | {fmt(v)} |" for name, v in col_rows] or ["| (none) | |"]
    lines += ["", "Files: `scores.csv` (row, score, flagged, top_features), `L.npy` and `S.npy` (original units: "
              "X ~ L + S), `model/` (the network plus `scaler.json`; score new rows with "
              "`rda score --model <this folder>/model --data FILE`)."]
    return "\n".join(lines) + "\n"


def check_out_dir(out_dir, data_path, force=False):
    """Refuse (DetectError, before any work) an output folder whose replacement could lose the user's files.

    A new or empty folder is fine. An existing folder is replaced only with ``force`` and only if it
    holds an earlier ``rda detect`` result (its ``detect.json``) and nothing else; never the current
    folder or one above it, never a folder holding the input file, never a path under a regular file.
    """
    from .safeio import check_parent_is_folder, is_within

    out = Path(out_dir)
    if is_within(Path.cwd(), out):
        raise _error(f"`out_dir` {out} is the current folder or a folder above it; it is never replaced: "
                          "name a new folder")
    if is_within(data_path, out):
        raise _error(f"`out_dir` {out} holds the input file {data_path}; it is never replaced: name a new folder")
    try:
        check_parent_is_folder(out)
    except NotADirectoryError as exc:
        raise _error(f"`out_dir` {out}: {exc.filename} is a file, not a folder") from None
    if not out.exists():
        return
    if not out.is_dir():
        raise _error(f"`out_dir` {out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if MARKER not in entries:
        raise _error(f"`out_dir` {out} is a folder that rda detect did not write (no {MARKER} in it); nothing was "
                          "changed: name a new or empty folder")
    if not force:
        raise _error(f"`out_dir` {out} holds an earlier rda detect result; pass `force` to replace it, or name "
                          "a new folder")
    foreign = [n for n in entries if n not in OUTPUT_NAMES]
    if foreign:
        raise _error(f"`out_dir` {out} also holds files rda detect did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}); it is not replaced, even with `force`")


def start_output(out_dir):
    """Create the temporary folder the results are built in, next to ``out_dir`` (this proves the location
    writable before any training); returns ``(tmp, created_parents)``."""
    from .safeio import make_dirs, remove_dirs_if_empty

    created = make_dirs(out_dir.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    except BaseException:
        remove_dirs_if_empty(created)
        raise
    return tmp, created


def is_scores_file(path):
    """Whether ``path`` starts with the header of a scores file rda wrote (``<id>,score,flagged``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline(4096).rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return len(header) >= 3 and header[1:3] == ["score", "flagged"]


def check_score_out(out, data_path, model_dir, force=False):
    """Refuse (DetectError) an ``rda score`` output that would replace the user's files: the input file, a
    folder, anything in the model folder; another existing file only if it is a scores file rda wrote, or
    with ``force``."""
    from .safeio import check_parent_is_folder, is_within

    out = Path(out)
    if out.is_dir():
        raise _error(f"`out_dir` {out} is a folder; give a file name such as {out / 'scores.csv'}")
    if Path(data_path).exists() and is_within(out, data_path):
        raise _error(f"`out_dir` {out} is the input file; it is never overwritten: name another file")
    if (Path(model_dir) / "params.json").is_file() and is_within(out, model_dir):
        raise _error(f"`out_dir` {out} is inside the model folder {model_dir}; name a file elsewhere")
    try:
        check_parent_is_folder(out)
    except NotADirectoryError as exc:
        raise _error(f"`out_dir` {out}: {exc.filename} is a file, not a folder") from None
    if out.exists() and not force and not is_scores_file(out):
        raise _error(f"`out_dir` {out} exists and is not a scores file rda wrote; pass `force` to replace it, "
                          "or name another file")


def write_result(tmp, out_dir, info, table, scores, flagged, L, S, model, scaler, col_rows, top=None, shares=None,
                 imputed=None):
    """Write every file of a detect result into ``tmp`` (the model included), then rename it to ``out_dir``.
    ``top``/``shares``: the flagged rows' top features and every row's feature shares; ``imputed``: the
    table with its missing cells filled in (None when none are missing)."""
    (tmp / "scores.csv").write_text(scores_csv(table.ids, info["id_column"], scores, flagged, top))
    np.save(tmp / "L.npy", L)
    np.save(tmp / "S.npy", S)
    if imputed is not None:
        np.save(tmp / "imputed.npy", imputed)
    chart = shares is not None and top_rows_chart(tmp / "top_rows.png", table.ids, scores, flagged, shares,
                                                  table.feature_names)
    model.save(tmp / "model")
    scaler.save(tmp / "model" / "scaler.json")
    histogram(tmp / "score_hist.png", scores,
              f"rda detect: {Path(info['data']).name}, lambda = {info['lam']:.4g}")
    (tmp / "report.md").write_text(report_markdown(info, table.ids, info["id_column"], scores, flagged, col_rows,
                                                   top, chart))
    (tmp / MARKER).write_text(json.dumps(info, indent=1, default=float))
    replace_dir(tmp, out_dir)


def write_scores_file(out, chunks):
    """Write a scores CSV atomically (temporary file, rename); folders it had to create are removed on failure.

    ``chunks`` yields ``(ids, id_name, first_row, scores, flagged, top)`` per chunk of rows, written as
    they come (the header from the first); returns the id column's name (None: rows numbered)."""
    from .safeio import make_dirs, remove_dirs_if_empty

    out = Path(out)
    created = make_dirs(out.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        id_name = None
        with os.fdopen(fd, "w") as fh:
            for k, (ids, id_name_k, start, scores, flagged, top) in enumerate(chunks):
                id_name = id_name_k if k == 0 else id_name
                fh.write(scores_csv(ids, id_name, scores, flagged, top, start, header=k == 0))
        os.replace(tmp, out)
        return id_name
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        remove_dirs_if_empty(created)
        raise

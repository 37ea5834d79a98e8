"""Where ``rda detect`` and ``rda score`` may write, and the writing of their results.

The rules (see ``docs/reliability.md``): a result folder is built under a temporary name next to its
destination and renamed at the end; an existing folder is replaced only if an earlier ``rda detect``
wrote it (its :data:`MARKER` file, nothing but :data:`OUTPUT_NAMES` in it) and the caller asked for it;
a scores file replaces only a scores file ``rda`` wrote, unless forced, and never the input or the
model folder. Refusals are :class:`~rda_cli.errors.DetectError` lines naming the function's
parameters (``out_dir``, ``out``, ``force``). The generic file operations are :mod:`rda_cli.safeio`;
the content of the files is rendered by :mod:`rda_cli.detect_report`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .detect_report import columns_csv, histogram, report_markdown, scores_csv, top_rows_chart
from .errors import DetectError
from .safeio import check_parent_is_folder, is_within, make_dirs, remove_dirs_if_empty, replace_dir

__all__ = ["MARKER", "OUTPUT_NAMES", "check_out_dir", "start_output", "is_scores_file", "check_score_out",
           "write_result", "write_scores_file"]

MARKER = "detect.json"  # the file that says a folder holds an rda detect result
OUTPUT_NAMES = frozenset({"scores.csv", "columns.csv", "L.npy", "S.npy", "imputed.npy", "model", "score_hist.png",
                          "top_rows.png", "report.md", MARKER})


def check_out_dir(out_dir, data_path, force=False):
    """Refuse (DetectError, before any work) an output folder whose replacement could lose the user's files.

    A new or empty folder is fine. An existing folder is replaced only with ``force`` and only if it
    holds an earlier ``rda detect`` result (its ``detect.json``) and nothing else; never the current
    folder or one above it, never a folder holding the input file, never a path under a regular file.
    """
    out = Path(out_dir)
    if is_within(Path.cwd(), out):
        raise DetectError(f"`out_dir` {out} is the current folder or a folder above it; it is never replaced: "
                             "name a new folder")
    if is_within(data_path, out):
        raise DetectError(f"`out_dir` {out} holds the input file {data_path}; it is never replaced: name a new folder")
    try:
        check_parent_is_folder(out)
    except NotADirectoryError as exc:
        raise DetectError(f"`out_dir` {out}: {exc.filename} is a file, not a folder") from None
    if not out.exists():
        return
    if not out.is_dir():
        raise DetectError(f"`out_dir` {out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if MARKER not in entries:
        raise DetectError(f"`out_dir` {out} is a folder that rda detect did not write (no {MARKER} in it); nothing was "
                             "changed: name a new or empty folder")
    if not force:
        raise DetectError(f"`out_dir` {out} holds an earlier rda detect result; pass `force` to replace it, or name "
                             "a new folder")
    foreign = [n for n in entries if n not in OUTPUT_NAMES]
    if foreign:
        raise DetectError(f"`out_dir` {out} also holds files rda detect did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}); it is not replaced, even with `force`")


def start_output(out_dir):
    """Create the temporary folder the results are built in, next to ``out_dir`` (this proves the location
    writable before any training); returns ``(tmp, created_parents)``."""
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
    out = Path(out)
    if out.is_dir():
        raise DetectError(f"`out` {out} is a folder; give a file name such as {out / 'scores.csv'}")
    if Path(data_path).exists() and is_within(out, data_path):
        raise DetectError(f"`out` {out} is the input file; it is never overwritten: name another file")
    if (Path(model_dir) / "params.json").is_file() and is_within(out, model_dir):
        raise DetectError(f"`out` {out} is inside the model folder {model_dir}; name a file elsewhere")
    try:
        check_parent_is_folder(out)
    except NotADirectoryError as exc:
        raise DetectError(f"`out` {out}: {exc.filename} is a file, not a folder") from None
    if out.exists() and not force and not is_scores_file(out):
        raise DetectError(f"`out` {out} exists and is not a scores file rda wrote; pass `force` to replace it, "
                             "or name another file")


def write_result(tmp, out_dir, info, table, scores, flagged, L, S, model, scaler, col_rows, top=None, shares=None,
                 imputed=None):
    """Write every file of a detect result into ``tmp`` (the model included), then rename it to ``out_dir``.
    ``col_rows``: ``(column, S column norm, flagged)`` per column for an ``l21_cols`` model (``columns.csv``),
    else None; ``top``/``shares``: the flagged rows' top features and every row's feature shares;
    ``imputed``: the table with its missing cells filled in (None when none are missing)."""
    (tmp / "scores.csv").write_text(scores_csv(table.ids, info["id_column"], scores, flagged, top))
    if col_rows is not None:
        (tmp / "columns.csv").write_text(columns_csv(col_rows))
    np.save(tmp / "L.npy", L)
    np.save(tmp / "S.npy", S)
    if imputed is not None:
        np.save(tmp / "imputed.npy", imputed)
    chart = shares is not None and top_rows_chart(tmp / "top_rows.png", table.ids, scores, flagged, shares,
                                                  table.feature_names)
    model.save(tmp / "model")
    scaler.save(tmp / "model" / "scaler.json")
    histogram(tmp / "score_hist.png", scores, flagged,
              f"rda detect: {Path(info['data']).name}, lambda = {info['lam']:.4g}", rows_flagged=col_rows is None)
    (tmp / "report.md").write_text(report_markdown(info, table.ids, info["id_column"], scores, flagged, col_rows,
                                                   top, chart))
    (tmp / MARKER).write_text(json.dumps(info, indent=1, default=float))
    replace_dir(tmp, out_dir)


def write_scores_file(out, chunks):
    """Write a scores CSV atomically (temporary file, rename); folders it had to create are removed on failure.

    ``chunks`` yields ``(ids, id_name, first_row, scores, flagged, top)`` per chunk of rows, written as
    they come (the header from the first); returns the id column's name (None: rows numbered)."""
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

"""Where ``rda detect`` and ``rda score`` may write, and the writing of their results.

The rules (see ``docs/reliability.md``): a result folder is built under a temporary name next to its
destination and renamed at the end; an existing folder is replaced only if an earlier ``rda detect``
wrote it (its :data:`MARKER` file) and its whole tree is still what that run wrote (the manifest of
:mod:`rda_cli.owned`; checked again just before the swap), and the caller asked for it; a scores file
replaces only a scores file ``rda`` wrote (its sidecar :func:`scores_sidecar` holds the file's size and
SHA-256), unless forced, and never the input or the model folder. Temporary names carry the writer's
PID, so that what a killed run left is recognised and removed by the next run. Refusals are :class:`~rda_cli.errors.DetectError` lines naming the function's
parameters (``out_dir``, ``out``, ``force``). The generic file operations are :mod:`rda_cli.safeio`;
the content of the files is rendered by :mod:`rda_cli.detect_report`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .detect_report import chart_pairs, columns_csv, detect_figures, explain_csv, report_markdown, scores_csv
from .errors import DetectError
from .owned import MANIFEST, sha256_file, stale_temps, temp_prefix, tree_problem, write_manifest
from .safeio import check_parent_is_folder, is_within, make_dirs, read_json, remove_dirs_if_empty, replace_dir

__all__ = ["MARKER", "OUTPUT_NAMES", "LAYOUT", "OutputChangedError", "check_out_dir", "start_output",
           "is_scores_file", "scores_sidecar", "check_score_out", "write_result", "write_scores_file"]

MARKER = "detect.json"  # the file that says a folder holds an rda detect result
OUTPUT_NAMES = frozenset({"scores.csv", "explain.csv", "columns.csv", "L.npy", "S.npy", "imputed.npy", "model", "score_hist.png",
                          "top_rows.png", "report.md", MARKER, MANIFEST})
MODEL_NAMES = ("params.json", "network.keras", "arrays.npz", "scaler.json", MANIFEST)
# what a result folder written before manifests existed may hold (see owned.tree_problem)
LAYOUT = {**{n: None for n in OUTPUT_NAMES}, "model": {n: None for n in MODEL_NAMES}}
SIDECAR_MAX_BYTES = 4096


class OutputChangedError(DetectError):
    """The ``--force`` folder changed while the result was computed: nothing replaced, exit status 1."""

    exit_code = 1


def _not_own(out, problem):
    return DetectError(f"`out_dir` {out} holds files rda detect did not write ({problem}); it is not replaced, "
                       "even with `force`: name a new folder")


def check_out_dir(out_dir, data_path, force=False):
    """Refuse (DetectError, before any work) an output folder whose replacement could lose the user's files.

    A new or empty folder is fine. An existing folder is replaced only with ``force`` and only if it
    holds an earlier ``rda detect`` result (its ``detect.json``) and its whole tree is what that run wrote
    (:func:`rda_cli.owned.tree_problem`: no file or folder added at any depth, none changed); never the current
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
    if out.is_symlink():
        raise DetectError(f"`out_dir` {out} is a symbolic link; it is never replaced: name a new folder")
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
    problem = tree_problem(out, LAYOUT)
    if problem:
        raise _not_own(out, problem)


def _remove_stale(parent, name):
    """Remove what killed runs (SIGKILL, power loss) left for ``name`` in ``parent`` (see owned.stale_temps)."""
    for p in stale_temps(parent, name):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def start_output(out_dir):
    """Create the temporary folder the results are built in, next to ``out_dir`` (this proves the location
    writable before any training), after removing those killed runs left; returns ``(tmp, created_parents)``."""
    created = make_dirs(out_dir.parent)
    try:
        _remove_stale(out_dir.parent, out_dir.name)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out_dir.name), suffix=".tmp", dir=out_dir.parent))
    except BaseException:
        remove_dirs_if_empty(created)
        raise
    return tmp, created


def scores_sidecar(path):
    """The sidecar that marks ``path`` as a scores file rda wrote: ``.NAME.rda-scores.json`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.rda-scores.json")


def is_scores_file(path):
    """Whether ``path`` is a scores file rda wrote and nobody changed since: its sidecar
    (:func:`scores_sidecar`) records its size and SHA-256. A column header is no evidence."""
    path = Path(path)
    try:
        mark = read_json(scores_sidecar(path), SIDECAR_MAX_BYTES, "sidecar")
        return (isinstance(mark, dict) and mark.get("rda_scores") == 1 and path.is_file()
                and mark.get("size") == path.stat().st_size and mark.get("sha256") == sha256_file(path))
    except (DetectError, ValueError, OSError):
        return False


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
    elif shares is not None:  # the flagged rows' top features in the table's units
        (tmp / "explain.csv").write_text(explain_csv(table.ids, table.X, L, shares, flagged, table.feature_names))
    np.save(tmp / "L.npy", L)
    np.save(tmp / "S.npy", S)
    if imputed is not None:
        np.save(tmp / "imputed.npy", imputed)
    model.save(tmp / "model")
    scaler.save(tmp / "model" / "scaler.json")
    labels = [str(v) for v in table.ids] if table.ids is not None else [str(i) for i in range(len(scores))]
    pairs = chart_pairs(shares, flagged, table.feature_names) if shares is not None else {}
    chart = detect_figures(tmp, info, labels, scores, flagged, pairs)
    (tmp / "report.md").write_text(report_markdown(info, table.ids, info["id_column"], scores, flagged, col_rows,
                                                   top, chart))
    (tmp / MARKER).write_text(json.dumps(info, indent=1, default=float))
    write_manifest(tmp / "model")  # now with scaler.json
    write_manifest(tmp)

    def still_own(moved):  # the folder to replace, moved aside: still only what rda wrote?
        problem = tree_problem(moved, LAYOUT)
        if problem:
            raise OutputChangedError(f"`out_dir` {out_dir} changed while rda detect ran ({problem}); it was not "
                                     "replaced and the new result was discarded: run again, with a new folder")

    replace_dir(tmp, out_dir, check=still_own)


def write_scores_file(out, chunks):
    """Write a scores CSV atomically (temporary file, rename) and its sidecar; folders it had to create are
    removed on failure or interruption.

    ``chunks`` yields ``(ids, id_name, first_row, scores, flagged, top)`` per chunk of rows, written as
    they come (the header from the first); returns the id column's name (None: rows numbered)."""
    out = Path(out)
    created = make_dirs(out.parent)
    tmp = None
    side = scores_sidecar(out)
    try:
        _remove_stale(out.parent, out.name)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(out.name), suffix=".tmp", dir=out.parent)
        id_name = None
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            for k, (ids, id_name_k, start, scores, flagged, top) in enumerate(chunks):
                id_name = id_name_k if k == 0 else id_name
                text = scores_csv(ids, id_name, scores, flagged, top, start, header=k == 0)
                fh.write(text)
                data = text.encode("utf-8")
                digest.update(data)
                size += len(data)
        mark = json.dumps({"rda_scores": 1, "size": size, "sha256": digest.hexdigest()})
        side_tmp = Path(tmp).with_name(Path(tmp).name[:-4] + ".side.tmp")
        os.replace(tmp, out)
        side_tmp.write_text(mark)  # the sidecar last: it marks only a complete file
        os.replace(side_tmp, side)
        return id_name
    except BaseException:
        for t in (tmp, tmp and Path(tmp).with_name(Path(tmp).name[:-4] + ".side.tmp")):
            if t is not None and os.path.exists(t):
                os.unlink(t)
        remove_dirs_if_empty(created)
        raise

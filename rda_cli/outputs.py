"""Where ``rda detect`` and ``rda score`` may write, and the writing of their results.

The rules (see ``docs/reliability.md``), all :mod:`rda_cli.owned`'s one ownership rule: a result folder
is claimed before any work (:func:`check_out_dir`: new, empty, or -- with ``force`` -- an earlier
``rda detect`` result whose manifest still lists its whole tree), built under a temporary name next
to its destination and put in place at the end (:func:`rda_cli.owned.write_folder`), replacing only the folder
claimed; a folder that appeared meanwhile stays, and the run says so. A scores file replaces only a
scores file ``rda`` wrote (its sidecar :func:`scores_sidecar` holds the file's size and SHA-256),
unless forced, and never the input or a file inside a folder rda owns (a model, a detect result); a
scores file absent at the start is never replaced by one that appeared meanwhile. Temporary names carry
the writer's PID, so that what a killed run left is recognised and removed by the next run. Refusals are
:class:`~rda_cli.errors.DetectError` lines naming the function's parameters (``out_dir``, ``out``,
``force``). :func:`replot` redraws a result folder's figures (``rda plot DETECT_DIR``). The generic file
operations are :mod:`rda_cli.safeio`; the content of the files is rendered by :mod:`rda_cli.detect_report`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .detect_report import chart_pairs, columns_csv, detect_figures, explain_csv, report_markdown, scores_csv
from .errors import DetectError
from .owned import MANIFEST, claim, ownership_problem, relist, sha256_file, write_manifest
from .safeio import (check_parent_is_folder, is_within, make_dirs, oserror_line, read_capped, read_json,
                     remove_dirs_if_empty,
                     short_name, show_path, write_file, write_json, write_npy, atomic_write_text as write_text)

__all__ = ["MARKER", "OUTPUT_NAMES", "OutputChangedError", "check_out_dir",
           "is_scores_file", "scores_sidecar", "write_marked", "check_score_out", "DetectResult", "write_result",
           "write_scores_file",
           "owning_folder", "replot"]

MARKER = "detect.json"  # the file that says a folder holds an rda detect result
OUTPUT_NAMES = frozenset({"scores.csv", "explain.csv", "columns.csv", "L.npy", "S.npy", "imputed.npy", "model", "score_hist.png",
                          "top_rows.png", "report.md", MARKER, MANIFEST})
# a folder holding one of these (or params.json beside network.keras) is a model or result folder of rda's:
# rda score writes no file inside it
OWNED_NAMES = (MANIFEST, MARKER, "ensemble.json")
SIDECAR_MAX_BYTES = 4096


class OutputChangedError(DetectError):
    """The ``--force`` folder changed while the result was computed: nothing replaced, exit status 1."""

    exit_code = 1


def check_out_dir(out_dir, data_path, force=False):
    """Claim (see :func:`rda_cli.owned.claim`) the output folder before any work, or refuse it (DetectError).

    A new or empty folder is fine. An existing folder is replaced only with ``force`` and only if it
    holds an earlier ``rda detect`` result (its ``detect.json``) whose manifest lists its whole tree
    (no manifest, no claim; no file or folder added at any depth, none changed); never the current
    folder or one above it, never a folder holding the input file, never a path under a regular file.
    Returns the :class:`~rda_cli.owned.Claim` that :func:`rda_cli.owned.write_folder` holds to.
    """
    out = Path(out_dir)
    shown = show_path(out)
    if is_within(Path.cwd(), out):
        raise DetectError(f"`out_dir` {shown} is the current folder or a folder above it; it is never replaced: "
                          "name a new folder")
    if is_within(data_path, out):
        raise DetectError(f"`out_dir` {shown} holds the input file {show_path(data_path)}; it is never replaced: "
                          "name a new folder")
    try:
        check_parent_is_folder(out)
    except NotADirectoryError as exc:
        raise DetectError(f"`out_dir` {shown}: {show_path(exc.filename)} is a file, not a folder") from None
    if out.is_dir() and not out.is_symlink() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise DetectError(f"`out_dir` {shown} is a folder that rda detect did not write (no {MARKER} in it); "
                              "nothing was changed: name a new or empty folder")
        if not force:
            raise DetectError(f"`out_dir` {shown} holds an earlier rda detect result; pass `force` to replace it, "
                              "or name a new folder")
    return claim(out, MARKER, "`out_dir`", error=DetectError)


def scores_sidecar(path):
    """The sidecar that marks ``path`` as a scores file rda wrote: ``.NAME.rda-scores.json`` beside it (a
    name too long for that: its first characters and a hash, see :mod:`rda_cli.owned`)."""
    path = Path(path)
    return path.with_name(f".{short_name(path.name)}.rda-scores.json")


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


def owning_folder(path):
    """The nearest folder above ``path`` that rda owns as a model or a result (one holding its manifest,
    ``detect.json``, ``params.json`` or ``ensemble.json``), or None."""
    for folder in Path(os.path.abspath(path)).parents:
        if any(os.path.lexists(folder / name) for name in OWNED_NAMES) or (
                os.path.lexists(folder / "params.json") and os.path.lexists(folder / "network.keras")):
            return folder
    return None


def check_score_out(out, data_path, model_dir, force=False):
    """Refuse (DetectError) an ``rda score`` output that would replace the user's files or write into rda's:
    the input file, a folder, a file inside a folder rda owns (the model folder, a detect result, a
    member folder); another existing file only if it is a scores file rda wrote, or with ``force``. Its
    sidecar's name must be free or a file. Returns whether ``out`` exists now (only then may it be
    replaced: :func:`write_scores_file`)."""
    out = Path(out)
    shown = show_path(out)
    if out.is_dir():
        raise DetectError(f"`out` {shown} is a folder; give a file name such as {show_path(out / 'scores.csv')}")
    if Path(data_path).exists() and is_within(out, data_path):
        raise DetectError(f"`out` {shown} is the input file; it is never overwritten: name another file")
    owner = owning_folder(out)  # the model folder too (``model_dir``: kept for the callers; the folder says it)
    if owner is not None:
        raise DetectError(f"`out` {shown} is inside {show_path(owner)}, a model folder or result folder that rda wrote "
                          "as a whole; name a file elsewhere")
    try:
        check_parent_is_folder(out)
    except NotADirectoryError as exc:
        raise DetectError(f"`out` {shown}: {show_path(exc.filename)} is a file, not a folder") from None
    side = scores_sidecar(out)
    if os.path.lexists(side) and (side.is_symlink() or not side.is_file()):
        raise DetectError(f"`out` {shown}: its sidecar {show_path(side)} exists and is not a file; move it away "
                          "or name another file")
    exists = os.path.lexists(out)
    if exists and not force and not is_scores_file(out):
        raise DetectError(f"`out` {shown} exists and is not a scores file rda wrote; pass `force` to replace it, "
                          "or name another file")
    return exists


@dataclass
class DetectResult:
    """What a detect run hands to :func:`write_result`: ``info`` (``detect.json``), the ``table``, each
    row's ``scores`` and ``flagged``, ``L`` and ``S`` in the table's units, the fitted ``model`` and its
    ``scaler``; ``col_rows``: ``(column, S column norm, flagged)`` per column for an ``l21_cols`` model
    (``columns.csv``), else None; ``top``/``shares``: the flagged rows' top features and every row's
    feature shares; ``imputed``: the table with its missing cells filled in (None when none are missing)."""

    info: dict
    table: object
    scores: np.ndarray
    flagged: np.ndarray
    L: np.ndarray
    S: np.ndarray
    model: object
    scaler: object
    col_rows: list | None = None
    top: list | None = None
    shares: np.ndarray | None = None
    imputed: np.ndarray | None = None


def write_result(tmp, result):
    """Write every file of a detect :class:`DetectResult` into ``tmp`` (the model included) and its
    model's manifest; :func:`rda_cli.owned.write_folder` adds the folder's and puts it in place."""
    r = result
    info, table, scores, flagged, L, S = r.info, r.table, r.scores, r.flagged, r.L, r.S
    model, scaler, col_rows, top, shares, imputed = r.model, r.scaler, r.col_rows, r.top, r.shares, r.imputed
    write_text(tmp / "scores.csv", scores_csv(table.ids, info["id_column"], scores, flagged, top))
    if col_rows is not None:
        write_text(tmp / "columns.csv", columns_csv(col_rows))
    elif shares is not None:  # the flagged rows' top features in the table's units
        write_text(tmp / "explain.csv", explain_csv(table.ids, table.X, L, shares, flagged, table.feature_names))
    write_npy(tmp / "L.npy", L)
    write_npy(tmp / "S.npy", S)
    if imputed is not None:
        write_npy(tmp / "imputed.npy", imputed)
    model.save(tmp / "model")
    scaler.save(tmp / "model" / "scaler.json")
    labels = [str(v) for v in table.ids] if table.ids is not None else [str(i) for i in range(len(scores))]
    pairs = chart_pairs(shares, flagged, table.feature_names) if shares is not None else {}
    chart = detect_figures(tmp, info, labels, scores, flagged, pairs)
    write_text(tmp / "report.md", report_markdown(info, table.ids, info["id_column"], scores, flagged, col_rows,
                                                   top, chart))
    write_json(tmp / MARKER, info, default=float)
    write_manifest(tmp / "model")  # now with scaler.json; the folder's own manifest: rda_cli.owned.write_folder


def write_scores_file(out, chunks, replace=True):
    """Write a scores CSV atomically (temporary file, rename) and its sidecar (:func:`write_marked`).

    ``chunks`` yields ``(ids, id_name, first_row, scores, flagged, top)`` per chunk of rows, written as
    they come (the header from the first); returns the id column's name (None: rows numbered)."""
    id_name = None

    def pieces():
        nonlocal id_name
        for k, (ids, id_name_k, start, scores, flagged, top) in enumerate(chunks):
            id_name = id_name_k if k == 0 else id_name
            yield scores_csv(ids, id_name, scores, flagged, top, start, header=k == 0).encode("utf-8")

    write_marked(out, pieces(), replace)
    return id_name


def write_marked(out, pieces, replace=True):
    """Write the bytes ``pieces`` yields to ``out`` atomically (:func:`rda_cli.safeio.write_file`), then its
    sidecar (:func:`scores_sidecar`: size and SHA-256, so that a later run may replace it); folders it had
    to create are removed on failure or interruption. With ``replace=False`` (``out`` was absent when
    checked) a file that appeared at ``out`` meanwhile is kept (:class:`OutputChangedError`). The temporary
    file is created before the first piece is made (proving the place writable: a DetectError, exit 2, if
    it is not)."""
    out = Path(out)
    digest, size = hashlib.sha256(), 0

    def fill(fh):
        nonlocal size
        for data in pieces:
            fh.write(data)
            digest.update(data)
            size += len(data)

    try:
        created = make_dirs(out.parent)
    except OSError as exc:
        raise DetectError(f"`out` {show_path(out)}: {oserror_line(exc, 'create a folder in')}") from None
    try:
        try:
            write_file(out, fill, replace, refused=_NotWritable)
        except _NotWritable as exc:
            raise DetectError(f"`out` {exc}") from None
        except FileExistsError:
            raise OutputChangedError(f"`out` {show_path(out)} appeared while rda score ran; it was not replaced "
                                     "and the new scores were discarded: run again, or name another file") from None
        write_json(scores_sidecar(out), {"rda_scores": 1, "size": size, "sha256": digest.hexdigest()})
    except OSError as exc:
        remove_dirs_if_empty(created)
        if not exc.filename:  # a write through a file object: say where
            raise OSError(exc.errno, exc.strerror, str(out)) from None
        raise
    except BaseException:
        remove_dirs_if_empty(created)
        raise


class _NotWritable(DetectError):
    """No file can be created where ``out`` goes."""


# ---------------------------------------------------------------------------- redrawing a result
DETECT_JSON_MAX_BYTES = 16 * 2**20
RESULT_CSV_MAX_BYTES = 1 << 30  # scores.csv / explain.csv / a figure of a detect result read back by replot


def replot(folder):
    """Redraw ``score_hist.png`` and ``top_rows.png`` of a detect result folder from its ``detect.json``,
    ``scores.csv`` and ``explain.csv`` (no model is loaded); returns ``(n_rows, figure names)``.

    Each figure is written under a temporary name and renamed. When the folder is still wholly rda's
    (:func:`rda_cli.owned.ownership_problem`), the figures' entries of its manifest are updated, so that
    ``--force`` may still replace it; else the manifest is left as it is (and the folder stays someone
    else's). Bad or missing files: one DetectError line."""
    import csv
    import io

    folder = Path(folder)
    shown = show_path(folder)
    info = read_json(folder / MARKER, DETECT_JSON_MAX_BYTES, "detect result", error=DetectError)
    if not isinstance(info, dict) or "data" not in info:
        raise DetectError(f"{show_path(folder / MARKER)} is not a detect.json rda wrote")
    owned = ownership_problem(folder, MARKER) is None

    def csv_rows(name):
        text = read_capped(folder / name, RESULT_CSV_MAX_BYTES, name, error=DetectError)
        return csv.reader(io.StringIO(text.decode("utf-8"), newline=""))

    try:
        rows = list(csv_rows("scores.csv"))[1:]
        labels = [r[0] for r in rows]
        scores = np.array([float(r[1]) for r in rows])
        flagged = np.array([r[2] == "1" for r in rows])
        where = {label: i for i, label in enumerate(labels)}
        pairs = {}
        if (folder / "explain.csv").is_file():
            explain = csv_rows("explain.csv")
            head = next(explain)
            for e in (dict(zip(head, r)) for r in explain):
                pairs.setdefault(where[e["row"]], []).append((e["feature"], float(e["share"])))
        else:  # a folder written before explain.csv: the shares scores.csv names
            for i, r in enumerate(rows):
                if len(r) > 3 and r[3]:
                    pairs[i] = [(p.rsplit(":", 1)[0], float(p.rsplit(":", 1)[1])) for p in r[3].split(";")]
    except FileNotFoundError as exc:
        raise DetectError(f"{shown}: {Path(exc.filename).name} is missing; nothing to redraw") from None
    except (ValueError, IndexError, KeyError, StopIteration) as exc:
        raise DetectError(f"{shown}: scores.csv or explain.csv is not as rda detect wrote it ({exc})") from None
    chart = detect_figures(folder, info, labels, scores, flagged, pairs)  # each figure written atomically
    names = ["score_hist.png"] + (["top_rows.png"] if chart else [])
    if owned:
        relist(folder, names, error=DetectError)
    return len(rows), names



"""What the figures of every experiment share: reading cells and their arrays, image helpers,
seed choice, the convergence figure (the paper's Figure 7) and writing a figure.

Every function only *reads* what it is given: the parsed cell dicts (the contents of
``run_dir/cells/<id>.json``) and, where needed, the arrays in ``run_dir/cells/<id>.npz``. Nothing
is trained. A partly finished run is fine: whatever is present is drawn, a figure whose data is
entirely absent is skipped, and each function returns the paths it actually wrote.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from ...arrayfile import ArrayFileError, NpzArrays
from ..common import pick_seed
from ...safeio import atomic_write_bytes

DPI = 120

IMG_SIDE = 28

MAX_EXAMPLES = 8
FIGURE_ARRAY_MAX_BYTES = 256 << 20  # one array a figure reads from a cell's .npz (those rda writes: a few MB)

MAX_CONVERGENCE = 6


def _finite(x: Any) -> float | None:
    """``x`` as a finite float, else None (missing, None, NaN, not a number)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(x: Any) -> int | None:
    v = _finite(x)
    return None if v is None else int(round(v))


def _fmt_lam(lam: float) -> str:
    return f"{lam:g}"


def _of_kind(cells: Iterable[dict], kind: str) -> list[dict]:
    return [c for c in cells if isinstance(c, dict) and c.get("kind") == kind]


def _npz_path(run_dir: Path, cell: dict) -> Path | None:
    cid = cell.get("id")
    if cid is None:
        return None
    p = run_dir / "cells" / f"{cid}.npz"
    return p if p.is_file() else None


def _load_npz(run_dir: Path, cell: dict, required: Sequence[str], optional: Sequence[str] = ()) -> dict | None:
    """The ``required`` arrays of a cell's npz, and those of ``optional`` it holds, as a dict; None if the file
    is absent, unreadable or incomplete. Only these members are inflated, each after its declared size is
    checked (against its compression and :data:`FIGURE_ARRAY_MAX_BYTES`), by :class:`~rda_cli.arrayfile.NpzArrays`."""
    p = _npz_path(run_dir, cell)
    if p is None:
        return None
    try:
        with NpzArrays(p, cap=FIGURE_ARRAY_MAX_BYTES) as z:
            if not all(k in z.names for k in required):
                return None
            return {k: np.asarray(z.load(k)) for k in [*required, *optional] if k in z.names}
    except (ArrayFileError, OSError):  # a truncated / half-written file from an interrupted run, or a crafted one
        return None


def _save(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG, atomically (a reader never sees half a file), and close it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _spread(items: Sequence, n: int) -> list:
    """Up to ``n`` items spread evenly over the (already sorted) sequence, ends included."""
    if len(items) <= n:
        return list(items)
    idx = sorted({int(round(i)) for i in np.linspace(0, len(items) - 1, n)})
    return [items[i] for i in idx]


def _as_images(a: np.ndarray, n: int) -> np.ndarray | None:
    """First ``n`` rows of an (m, 784) array as (n, 28, 28); None if the shape is wrong."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != IMG_SIDE * IMG_SIDE:
        return None
    return a[:n].reshape(-1, IMG_SIDE, IMG_SIDE)


def _gray_range(*arrays: np.ndarray) -> tuple[float, float]:
    """A common grayscale range covering [0, 1] (or [0, 255]) and the data."""
    vals = np.concatenate([np.ravel(a) for a in arrays if a is not None and np.size(a)])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    return min(0.0, lo), max(1.0, hi)


def _sym_range(*arrays: np.ndarray) -> float:
    vals = np.concatenate([np.ravel(a) for a in arrays if a is not None and np.size(a)])
    vals = np.abs(vals[np.isfinite(vals)])
    m = float(vals.max()) if vals.size else 0.0
    return m if m > 0 else 1.0


def _seed(c: dict):
    """A cell's seed (None for cells written before seeds existed)."""
    return _int(c.get("seed"))


def _base_cells(cells: list[dict], base_seed: int | None) -> list[dict]:
    """The cells of one seed (``base_seed``, else the smallest present) plus seedless cells."""
    base = pick_seed({s for c in cells if (s := _seed(c)) is not None}, base_seed)
    return [c for c in cells if _seed(c) in (None, base)]


def _band(ax, x, mean, hw, color, alpha=0.18) -> bool:
    """Shade ``mean ± hw`` where both are finite; True if anything was drawn."""
    x, mean, hw = (np.asarray(v, dtype=float) for v in (x, mean, hw))
    ok = np.isfinite(x) & np.isfinite(mean) & np.isfinite(hw)
    if ok.sum() < 1:
        return False
    ax.fill_between(x[ok], (mean - hw)[ok], (mean + hw)[ok], color=color, alpha=alpha, lw=0)
    return True


def _n_seeds(cells: list[dict]) -> int:
    return max(1, len({_seed(c) for c in cells}))


def _history_arrays(cell: dict) -> dict[str, np.ndarray] | None:
    hist = cell.get("history")
    if not isinstance(hist, list):
        return None
    rows = [h for h in hist if isinstance(h, dict)]
    if not rows:
        return None
    it = np.array([_finite(h.get("iteration")) for h in rows], dtype=float)
    idx = np.arange(1, len(rows) + 1, dtype=float)
    it = np.where(np.isfinite(it), it, idx) if np.isfinite(it).any() else idx
    out = {"iteration": it}
    for key in ("objective", "c1", "c2"):
        out[key] = np.array([_finite(h.get(key)) for h in rows], dtype=float)
    if not any(np.isfinite(out[k]).any() for k in ("objective", "c1", "c2")):
        return None
    return out


def _plain_log_labels(ax) -> None:
    """Plain-text log tick labels (mathtext labels are slow to lay out and no clearer)."""
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _convergence(run_dir: Path, chosen: list[dict], title: str) -> Path | None:
    series = [(c, h) for c in chosen if (h := _history_arrays(c)) is not None]
    if not series:
        return None
    fig, (ax_o, ax_c) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(len(series), 1)))
    all_obj = []
    any_c = False
    for color, (c, h) in zip(colors, series):
        lam = _finite(c.get("lam"))
        label = f"λ={_fmt_lam(lam)}" if lam is not None else str(c.get("id", "?"))
        it, obj = h["iteration"], h["objective"]
        ok = np.isfinite(obj)
        if ok.any():
            ax_o.plot(it[ok], obj[ok], "-o", ms=3, color=color, label=label)
            all_obj.append(obj[ok])
        for key, ls, mk in (("c1", "-", "o"), ("c2", "--", "s")):
            v = h[key]
            v = np.where(np.isfinite(v) & (v > 0), v, np.nan)
            okv = np.isfinite(v)
            if okv.any():
                any_c = True
                ax_c.plot(it[okv], v[okv], linestyle=ls, marker=mk, ms=3, color=color,
                          label=label if key == "c1" else None)
    if all_obj and np.all(np.concatenate(all_obj) > 0):
        ax_o.set_yscale("log")
        _plain_log_labels(ax_o)
    ax_o.set_xlabel("outer iteration (ADMM)")
    ax_o.set_ylabel("objective (reconstruction error + threshold·penalty(S))")
    ax_o.set_title("Objective per outer iteration")
    ax_o.grid(True, alpha=0.3, which="both")
    if all_obj:
        ax_o.legend(fontsize=8, title="cell", title_fontsize=8)
    ax_c.set_xlabel("outer iteration (ADMM)")
    ax_c.set_ylabel("relative change (log scale)")
    ax_c.set_title("Convergence criteria  c1 = ‖X−L_D−S‖/‖X‖,  c2 = ‖LS_prev−L_D−S‖/‖X‖",
                   fontsize=9)
    ax_c.grid(True, alpha=0.3, which="both")
    if any_c:
        ax_c.set_yscale("log")
        _plain_log_labels(ax_c)
        h1, l1 = ax_c.get_legend_handles_labels()
        style = [Line2D([], [], color="k", ls="-", marker="o", ms=3, label="c1"),
                 Line2D([], [], color="k", ls="--", marker="s", ms=3, label="c2")]
        ax_c.legend(h1 + style, l1 + ["c1 (solid)", "c2 (dashed)"], fontsize=8)
    else:
        ax_c.text(0.5, 0.5, "no c1/c2 recorded", ha="center", va="center",
                  transform=ax_c.transAxes, color="grey")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, run_dir / "convergence.png")


def _rda_sorted_by_lam(cells: list[dict], pred=None) -> list[dict]:
    out = [c for c in _of_kind(cells, "rda") if _finite(c.get("lam")) is not None
           and (pred is None or pred(c))]
    return sorted(out, key=lambda c: _finite(c.get("lam")))

"""Figures for the denoising and outlier-detection experiments.

Every function here only *reads* what it is given: the parsed cell dicts
(the contents of ``run_dir/cells/<id>.json``) and, where needed, the arrays in
``run_dir/cells/<id>.npz``.  Nothing is trained.  A partly finished run is
fine: whatever is present is drawn, a figure whose data is entirely absent is
skipped, and each function returns the paths it actually wrote.

Figure numbers refer to Zhou & Paffenroth, "Anomaly Detection with Robust
Deep Autoencoders", KDD 2017.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

__all__ = ["denoise_figures", "outlier_figures"]

DPI = 120
TARGET_K = 150  # the k the paper uses for its example images / convergence plot
IMG_SIDE = 28
MAX_EXAMPLES = 8
MAX_CONVERGENCE = 6
MAX_S_TILES = 4
OUTLIER_FRAME = "#00c000"


# --------------------------------------------------------------------------- helpers
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


def _load_npz(run_dir: Path, cell: dict, required: Sequence[str]) -> dict | None:
    """The arrays of a cell's npz as a dict, or None if absent/unreadable/incomplete."""
    p = _npz_path(run_dir, cell)
    if p is None:
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            if not all(k in z.files for k in required):
                return None
            return {k: np.asarray(z[k]) for k in z.files}
    except Exception:  # a truncated / half-written file from an interrupted run
        return None


def _save(fig, path: Path) -> Path:
    try:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _spread(items: Sequence, n: int) -> list:
    """Up to ``n`` items spread evenly over the (already sorted) sequence, ends included."""
    if len(items) <= n:
        return list(items)
    idx = sorted({int(round(i)) for i in np.linspace(0, len(items) - 1, n)})
    return [items[i] for i in idx]


def _closest_k(ks: Iterable[int], target: int = TARGET_K) -> int | None:
    ks = sorted(set(ks))
    if not ks:
        return None
    return min(ks, key=lambda k: (abs(k - target), k))


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


# --------------------------------------------------------------------------- Figure 2
def _heatmap(run_dir: Path, cells: list[dict]) -> Path | None:
    ae_err: dict[int, float] = {}
    for c in _of_kind(cells, "ae"):
        k, e = _int(c.get("k")), _finite(c.get("error"))
        if k is not None and e is not None:
            ae_err[k] = e
    diffs: dict[tuple[float, int], float] = {}
    for c in _of_kind(cells, "rda"):
        k, lam, e = _int(c.get("k")), _finite(c.get("lam")), _finite(c.get("error"))
        if k is None or lam is None or e is None or k not in ae_err:
            continue
        diffs[(lam, k)] = ae_err[k] - e
    if not diffs:
        return None

    lams = sorted({lam for lam, _ in diffs})
    ks = sorted({k for _, k in diffs})
    grid = np.full((len(lams), len(ks)), np.nan)
    for (lam, k), v in diffs.items():
        grid[lams.index(lam), ks.index(k)] = v

    vmax = float(np.nanmax(np.abs(grid)))
    vmax = vmax if vmax > 0 else 1e-3
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#bdbdbd")

    w = max(6.0, 2.8 + 0.8 * len(ks))
    h = max(4.0, 1.8 + 0.42 * len(lams))
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto",
                   origin="lower", interpolation="nearest")
    fs = 8 if len(ks) <= 10 else 6
    for i in range(len(lams)):
        for j in range(len(ks)):
            v = grid[i, j]
            if np.isfinite(v):
                color = "white" if abs(v) > 0.6 * vmax else "black"
                ax.text(j, i, f"{v:+.3f}", ha="center", va="center", fontsize=fs, color=color)
            else:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=fs - 1, color="#555555")
    ax.set_xticks(range(len(ks)))
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_yticks(range(len(lams)))
    ax.set_yticklabels([_fmt_lam(lam) for lam in lams])
    ax.set_xlabel("k (number of corrupted pixels per image)")
    ax.set_ylabel("λ (RDA ℓ1 penalty)")
    ax.set_title("Denoising: random-forest test error, AE minus RDA\n"
                 "(red: RDA better, blue: plain AE better, grey: missing)")
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03)
    cb.set_label("AE error − RDA error (positive: RDA better)")
    return _save(fig, run_dir / "heatmap.png")


# --------------------------------------------------------------------------- examples
def _examples(run_dir: Path, cells: list[dict]) -> Path | None:
    ae_by_k: dict[int, dict] = {}
    for c in _of_kind(cells, "ae"):
        k = _int(c.get("k"))
        if k is not None and _npz_path(run_dir, c) is not None:
            ae_by_k.setdefault(k, c)
    rda_by_k: dict[int, list[dict]] = {}
    for c in _of_kind(cells, "rda"):
        k = _int(c.get("k"))
        if k is not None and k in ae_by_k and _npz_path(run_dir, c) is not None:
            rda_by_k.setdefault(k, []).append(c)

    # Try ks by closeness to the target; fall through if an npz turns out unreadable.
    for k in sorted(rda_by_k, key=lambda k: (abs(k - TARGET_K), k)):
        ae = _load_npz(run_dir, ae_by_k[k], ["L"])
        if ae is None:
            continue
        cands = sorted(rda_by_k[k], key=lambda c: (_finite(c.get("error")) is None,
                                                    _finite(c.get("error")) or 0.0))
        for cell in cands:
            rda = _load_npz(run_dir, cell, ["L", "S"])
            if rda is None:
                continue
            fig = _draw_examples(k, cell, rda, ae)
            if fig is not None:
                return _save(fig, run_dir / "examples.png")
    return None


def _draw_examples(k: int, cell: dict, rda: dict, ae: dict):
    corrupted = rda.get("corrupted", ae.get("corrupted"))
    sizes = [len(np.atleast_2d(a)) for a in (corrupted, rda["L"], rda["S"], ae["L"])
             if a is not None]
    n = min([MAX_EXAMPLES] + sizes)
    if n <= 0:
        return None
    clean = rda.get("clean", ae.get("clean"))
    rows = [
        ("clean original\n(reference)", _as_images(clean, n) if clean is not None else None,
         "gray"),
        ("corrupted input", _as_images(corrupted, n) if corrupted is not None else None, "gray"),
        ("RDA  L_D\n(clean part)", _as_images(rda["L"], n), "gray"),
        ("RDA  S\n(sparse noise)", _as_images(rda["S"], n), "sym"),
        ("plain AE\nreconstruction", _as_images(ae["L"], n), "gray"),
    ]
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        return None
    gvmin, gvmax = _gray_range(*[imgs for _, imgs, kind in rows if kind == "gray"])
    smax = _sym_range(*[imgs for _, imgs, kind in rows if kind == "sym"])

    fig, axes = plt.subplots(len(rows), n, figsize=(1.25 * n + 1.6, 1.35 * len(rows) + 0.6),
                             squeeze=False)
    s_im = g_im = None
    for r, (label, imgs, kind) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            if kind == "sym":
                s_im = ax.imshow(imgs[j], cmap="RdBu_r", vmin=-smax, vmax=smax,
                                 interpolation="nearest")
            else:
                g_im = ax.imshow(imgs[j], cmap="gray", vmin=gvmin, vmax=gvmax,
                                 interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"#{j + 1}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center", labelpad=8)
    lam = _finite(cell.get("lam"))
    err = _finite(cell.get("error"))
    title = f"Denoising examples, k = {k} corrupted pixels"
    if lam is not None:
        title += f", RDA λ = {_fmt_lam(lam)}"
    if err is not None:
        title += f" (RDA RF error {err:.3f})"
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(wspace=0.05, hspace=0.08, right=0.88)
    if g_im is not None:
        cax = fig.add_axes([0.90, 0.55, 0.015, 0.3])
        fig.colorbar(g_im, cax=cax).set_label("pixel value", fontsize=8)
        cax.tick_params(labelsize=7)
    if s_im is not None:
        cax = fig.add_axes([0.90, 0.12, 0.015, 0.3])
        fig.colorbar(s_im, cax=cax).set_label("S value (signed)", fontsize=8)
        cax.tick_params(labelsize=7)
    return fig


# --------------------------------------------------------------------------- Figure 7
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


# --------------------------------------------------------------------------- Figures 5/6
def _prf_plot(ax, x: np.ndarray, p: np.ndarray, r: np.ndarray, f: np.ndarray, xname: str):
    for vals, name, mk, col in ((p, "precision", "s", "tab:blue"),
                                (r, "recall", "^", "tab:orange"),
                                (f, "F1", "o", "tab:green")):
        ok = np.isfinite(vals)
        if ok.any():
            ax.plot(x[ok], vals[ok], marker=mk, ms=5, lw=1.6 if name == "F1" else 1.2,
                    color=col, label=name)
    okf = np.isfinite(f)
    if okf.any():
        i = int(np.nanargmax(np.where(okf, f, -np.inf)))
        ax.plot([x[i]], [f[i]], marker="*", ms=16, color="tab:red", zorder=5,
                label="best F1")
        xmid = 0.5 * (np.nanmin(x) + np.nanmax(x))
        dx = -40 if x[i] > xmid else 40
        ax.annotate(f"best F1 = {f[i]:.3f}\n{xname} = {x[i]:g}", xy=(x[i], f[i]),
                    xytext=(dx, -38), textcoords="offset points", fontsize=9,
                    ha="right" if dx < 0 else "left",
                    arrowprops=dict(arrowstyle="->", color="tab:red"),
                    bbox=dict(boxstyle="round", fc="white", ec="tab:red", alpha=0.9))
    ax.set_ylim(-0.02, 1.08)
    ax.set_ylabel("score (fraction, 0–1)")
    ax.grid(True, alpha=0.3)


def _f1_vs_lambda(run_dir: Path, cells: list[dict]) -> Path | None:
    rda = _rda_sorted_by_lam(cells, lambda c: any(
        _finite(c.get(k)) is not None for k in ("precision", "recall", "f1")))
    if not rda:
        return None
    lam = np.array([_finite(c["lam"]) for c in rda])
    get = lambda key: np.array([np.nan if _finite(c.get(key)) is None else _finite(c.get(key))
                                for c in rda])
    fig, ax = plt.subplots(figsize=(8, 4.8))
    _prf_plot(ax, lam, get("precision"), get("recall"), get("f1"), "λ")
    ae_f1 = [v for c in _of_kind(cells, "ae") if (v := _finite(c.get("f1"))) is not None]
    if ae_f1:
        ax.axhline(max(ae_f1), color="grey", ls="--", lw=1.2,
                   label=f"plain AE best F1 = {max(ae_f1):.3f}")
    ax.set_xlabel("λ (RDA ℓ2,1 penalty weight)")
    ax.set_title("Outlier detection with RDA (ℓ2,1): precision / recall / F1 vs λ")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, run_dir / "f1_vs_lambda.png")


def _iforest(run_dir: Path, cells: list[dict]) -> Path | None:
    for c in _of_kind(cells, "iforest"):
        fr = c.get("fractions")
        if not isinstance(fr, list) or not fr:
            continue
        n = len(fr)

        def arr(key):
            v = c.get(key)
            v = v if isinstance(v, list) else []
            out = np.full(n, np.nan)
            for i, x in enumerate(v[:n]):
                fx = _finite(x)
                out[i] = np.nan if fx is None else fx
            return out

        x = arr("fractions")
        order = np.argsort(np.where(np.isfinite(x), x, np.inf))
        x, p, r, f = (a[order] for a in (x, arr("precision"), arr("recall"), arr("f1")))
        ok = np.isfinite(x)
        if not ok.any() or not (np.isfinite(p) | np.isfinite(r) | np.isfinite(f)).any():
            continue
        x, p, r, f = x[ok], p[ok], r[ok], f[ok]
        fig, ax = plt.subplots(figsize=(8, 4.8))
        _prf_plot(ax, x, p, r, f, "fraction")
        ax.set_xlabel("outlier fraction (Isolation Forest contamination)")
        ax.set_title("Outlier detection with Isolation Forest: precision / recall / F1")
        ax.legend(fontsize=8, loc="best")
        return _save(fig, run_dir / "iforest.png")
    return None


# --------------------------------------------------------------------------- Figure 4
def _mosaic(imgs: np.ndarray, ncols: int) -> tuple[np.ndarray, int]:
    """Tiles (m, 28, 28) into one image with 1-px NaN separators; returns (image, nrows)."""
    m = len(imgs)
    nrows = max(1, math.ceil(m / ncols))
    step = IMG_SIDE + 1
    out = np.full((nrows * step + 1, ncols * step + 1), np.nan)
    for i in range(m):
        r, c = divmod(i, ncols)
        out[1 + r * step:1 + r * step + IMG_SIDE, 1 + c * step:1 + c * step + IMG_SIDE] = imgs[i]
    return out, nrows


def _frame(ax, idx: Iterable[int], ncols: int, color: str, lw: float):
    step = IMG_SIDE + 1
    for i in idx:
        r, c = divmod(int(i), ncols)
        ax.add_patch(Rectangle((c * step, r * step),
                               IMG_SIDE + 1, IMG_SIDE + 1, fill=False, ec=color, lw=lw))


def _s_tiles(run_dir: Path, cells: list[dict]) -> Path | None:
    loaded = []
    for c in _rda_sorted_by_lam(cells, lambda c: _npz_path(run_dir, c) is not None):
        z = _load_npz(run_dir, c, ["S"])
        if z is not None and _as_images(z["S"], len(np.atleast_2d(z["S"]))) is not None:
            loaded.append((c, z))
    if not loaded:
        return None
    chosen = _spread(loaded, MAX_S_TILES)
    X = next((z["X"] for _, z in chosen if "X" in z), None)
    if X is None:
        X = next((z["X"] for _, z in loaded if "X" in z), None)
    out = next((z["is_outlier"] for _, z in chosen if "is_outlier" in z), None)
    m = min(len(np.atleast_2d(z["S"])) for _, z in chosen)
    if X is not None and _as_images(X, m) is not None:
        m = min(m, len(np.atleast_2d(X)))
    else:
        X = None
    out_idx = []
    if out is not None:
        out = np.asarray(out).astype(bool).ravel()[:m]
        out_idx = list(np.flatnonzero(out))
    ncols = 8 if m > 16 else max(1, math.ceil(math.sqrt(m)))
    nrows = max(1, math.ceil(m / ncols))

    panels = 1 + len(chosen) if X is not None else len(chosen)
    gcols = min(panels, 3)
    grows = math.ceil(panels / gcols)
    pw = 0.5 * ncols + 0.3
    ph = 0.5 * nrows + 0.7
    fig, grid = plt.subplots(grows, gcols, figsize=(pw * gcols + 0.8, ph * grows + 0.5),
                             squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[panels:]:
        ax.set_visible(False)
    axes = axes[:panels]
    smax = _sym_range(*[np.asarray(z["S"], float)[:m] for _, z in chosen])
    pos = 0
    if X is not None:
        ax = axes[0]
        ximgs = _as_images(X, m)
        gmin, gmax = _gray_range(ximgs)
        cmap = plt.get_cmap("gray").with_extremes(bad="#4c72b0")
        mos, _ = _mosaic(ximgs, ncols)
        ax.imshow(np.ma.masked_invalid(mos), cmap=cmap, vmin=gmin, vmax=gmax,
                  interpolation="nearest")
        _frame(ax, out_idx, ncols, OUTLIER_FRAME, 2.0)
        note = (f"{len(out_idx)} of {m} rows are outliers" if out is not None
                else "(no outlier labels saved)")
        ax.set_title(f"X (outliers framed)\n{note}", fontsize=9)
        pos = 1
    scmap = plt.get_cmap("RdBu_r").with_extremes(bad="#c8c8c8")
    s_im = None
    for ax, (c, z) in zip(axes[pos:], chosen):
        S = np.asarray(z["S"], float)[:m]
        tol = 1e-8 * max(smax, 1e-12)
        nnz = int(np.sum(np.any(np.abs(S) > tol, axis=1)))
        mos, _ = _mosaic(_as_images(S, m), ncols)
        s_im = ax.imshow(np.ma.masked_invalid(mos), cmap=scmap, vmin=-smax, vmax=smax,
                         interpolation="nearest")
        _frame(ax, out_idx, ncols, OUTLIER_FRAME, 2.0)
        note = f"{len(out_idx)} true outliers framed" if out is not None else "no labels"
        ax.set_title(f"S, λ={_fmt_lam(_finite(c['lam']))}  ({nnz} non-zero rows)\n{note}",
                     fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Outlier detection: sparse part S of RDA (ℓ2,1) for increasing λ\n"
                 "(green frames: true outliers; S in red = positive, blue = negative)",
                 fontsize=10)
    fig.tight_layout()
    if s_im is not None:
        cb = fig.colorbar(s_im, ax=list(grid.ravel()), fraction=0.025, pad=0.02, shrink=0.8)
        cb.set_label("S value", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return _save(fig, run_dir / "s_tiles.png")


# --------------------------------------------------------------------------- public API
def denoise_figures(run_dir, cells: list[dict]) -> list[Path]:
    """Figures of the denoising experiment: heatmap.png (Fig. 2), examples.png, convergence.png (Fig. 7)."""
    run_dir = Path(run_dir)
    cells = [c for c in (cells or []) if isinstance(c, dict)]
    written = [_heatmap(run_dir, cells), _examples(run_dir, cells)]
    with_hist = [c for c in _of_kind(cells, "rda") if _history_arrays(c) is not None
                 and _int(c.get("k")) is not None]
    k = _closest_k(_int(c.get("k")) for c in with_hist)
    if k is not None:
        at_k = sorted((c for c in with_hist if _int(c.get("k")) == k),
                      key=lambda c: (_finite(c.get("lam")) is None, _finite(c.get("lam")) or 0.0))
        written.append(_convergence(
            run_dir, _spread(at_k, MAX_CONVERGENCE),
            f"RDA (ℓ1) convergence on denoising, k = {k} corrupted pixels"))
    return [p for p in written if p is not None]


def outlier_figures(run_dir, cells: list[dict]) -> list[Path]:
    """Figures of the outlier experiment: f1_vs_lambda.png (Fig. 5), iforest.png (Fig. 6),
    s_tiles.png (Fig. 4), convergence.png (Fig. 7)."""
    run_dir = Path(run_dir)
    cells = [c for c in (cells or []) if isinstance(c, dict)]
    written = [_f1_vs_lambda(run_dir, cells), _iforest(run_dir, cells), _s_tiles(run_dir, cells)]
    with_hist = _rda_sorted_by_lam(cells, lambda c: _history_arrays(c) is not None)
    if with_hist:
        written.append(_convergence(run_dir, _spread(with_hist, MAX_CONVERGENCE),
                                    "RDA (ℓ2,1) convergence on outlier detection"))
    return [p for p in written if p is not None]

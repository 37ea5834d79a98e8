"""Figures of the outlier experiment: the paper's Figures 4 (S tiles), 5 (F1 vs lambda), 6 (Isolation
Forest) and 7 (convergence), and every method against its own knob."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from ._shared import (
    IMG_SIDE, MAX_CONVERGENCE, _as_images, _band, _base_cells, _convergence, _finite, _fmt_lam,
    _gray_range, _history_arrays, _load_npz, _n_seeds, _npz_path, _of_kind, _rda_sorted_by_lam, _save,
    _spread, _sym_range
)

__all__ = ["outlier_figures"]

MAX_S_TILES = 4

OUTLIER_FRAME = "#00c000"


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


def _mean_prf(groups: list[list[dict]], getter) -> tuple[np.ndarray, ...]:
    """Per group (one x value, several seeds): means and t half-widths of precision, recall, F1."""
    from ..stats import t_interval

    out = []
    for key in ("precision", "recall", "f1"):
        means, hws = [], []
        for g in groups:
            vals = [v for c in g if (v := getter(c, key)) is not None]
            mean, hw, _ = t_interval(vals)
            means.append(np.nan if mean is None else mean)
            hws.append(np.nan if hw is None else hw)
        out += [np.array(means), np.array(hws)]
    return tuple(out)


def _prf_bands(ax, x, hws) -> bool:
    drew = False
    for (mean, hw), col in zip(hws, ("tab:blue", "tab:orange", "tab:green")):
        drew |= _band(ax, x, mean, hw, col)
    return drew


def _best_f1(c: dict) -> float | None:
    """A cell's best F1: a number, or the maximum of a fraction sweep's list."""
    f1 = c.get("f1")
    if isinstance(f1, list):
        vals = [v for x in f1 if (v := _finite(x)) is not None]
        return max(vals) if vals else None
    return _finite(f1)


def _f1_vs_lambda(run_dir: Path, cells: list[dict]) -> Path | None:
    rda = _rda_sorted_by_lam(cells, lambda c: any(
        _finite(c.get(k)) is not None for k in ("precision", "recall", "f1")))
    if not rda:
        return None
    lams = sorted({_finite(c["lam"]) for c in rda})
    groups = [[c for c in rda if _finite(c["lam"]) == lam] for lam in lams]
    lam = np.array(lams)
    pm, ph, rm, rh, fm, fh = _mean_prf(groups, lambda c, key: _finite(c.get(key)))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    _prf_plot(ax, lam, pm, rm, fm, "λ")
    banded = _prf_bands(ax, lam, [(pm, ph), (rm, rh), (fm, fh)])
    ae_f1 = [v for c in _of_kind(cells, "ae") if (v := _best_f1(c)) is not None]
    if ae_f1:
        mean_ae = float(np.mean(ae_f1))
        ax.axhline(mean_ae, color="grey", ls="--", lw=1.2,
                   label=f"plain AE best F1 = {mean_ae:.3f}" + (" (seed mean)" if len(ae_f1) > 1 else ""))
    ax.set_xlabel("λ (RDA ℓ2,1 penalty weight)")
    n = _n_seeds(rda)
    ax.set_title("Outlier detection with RDA (ℓ2,1): precision / recall / F1 vs λ"
                 + (f"\n(mean over {n} seeds, shaded: 95% t-interval)" if banded else ""))
    ax.legend(fontsize=8, loc="best")
    return _save(fig, run_dir / "f1_vs_lambda.png")


def _sweep_curves(c: dict) -> dict[str, np.ndarray] | None:
    """The fraction sweep of a cell as arrays sorted by fraction, or None if unusable."""
    fr = c.get("fractions")
    if not isinstance(fr, list) or not fr:
        return None
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
    cur = {key: arr(key)[order] for key in ("fractions", "precision", "recall", "f1")}
    ok = np.isfinite(cur["fractions"])
    if not ok.any() or not any(np.isfinite(cur[k][ok]).any() for k in ("precision", "recall", "f1")):
        return None
    return {k: v[ok] for k, v in cur.items()}


def _sweep_groups(cells: list[dict], kind: str):
    """(fractions, [per-seed curves]) of a swept method; curves on other grids are left out."""
    curves = [cur for c in _of_kind(cells, kind) if (cur := _sweep_curves(c)) is not None]
    if not curves:
        return None, []
    x = curves[0]["fractions"]
    same = [cur for cur in curves if cur["fractions"].shape == x.shape and np.allclose(cur["fractions"], x)]
    return x, same


def _iforest(run_dir: Path, cells: list[dict]) -> Path | None:
    from ..stats import curve_intervals

    x, curves = _sweep_groups(cells, "iforest")
    if not curves:
        return None
    stats = [curve_intervals(np.array([cur[key] for cur in curves])) for key in ("precision", "recall", "f1")]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    _prf_plot(ax, x, stats[0][0], stats[1][0], stats[2][0], "fraction")
    banded = _prf_bands(ax, x, stats)
    ax.set_xlabel("outlier fraction (Isolation Forest contamination)")
    ax.set_title("Outlier detection with Isolation Forest: precision / recall / F1"
                 + (f"\n(mean over {len(curves)} seeds, shaded: 95% t-interval)" if banded else ""))
    ax.legend(fontsize=8, loc="best")
    return _save(fig, run_dir / "iforest.png")


KNOB_METHODS = (("rda", "ℓ2,1 RDA (λ sweep)", "tab:red"), ("ae", "plain autoencoder", "tab:purple"),
                ("iforest", "Isolation Forest", "tab:green"), ("rpca", "Robust PCA", "tab:blue"),
                ("outlier_pursuit", "Outlier Pursuit", "tab:cyan"), ("lof", "Local Outlier Factor", "tab:olive"),
                ("ocsvm", "One-Class SVM", "tab:brown"))


def _f1_vs_knob(run_dir: Path, cells: list[dict]) -> Path | None:
    """F1 of every method against the fraction of rows it flags (RDA: through λ), with t-bands."""
    from ..stats import curve_intervals, t_interval

    series = []
    for kind, label, color in KNOB_METHODS:
        if kind == "rda":
            rda = [c for c in _rda_sorted_by_lam(cells) if _finite(c.get("f1")) is not None
                   and _finite(c.get("n_flagged")) is not None and (_finite(c.get("n_rows")) or 0) > 0]
            lams = sorted({_finite(c["lam"]) for c in rda})
            if not lams:
                continue
            xs, ms, hs = [], [], []
            for lam in lams:
                g = [c for c in rda if _finite(c["lam"]) == lam]
                xs.append(float(np.mean([_finite(c["n_flagged"]) / _finite(c["n_rows"]) for c in g])))
                mean, hw, _ = t_interval([_finite(c["f1"]) for c in g])
                ms.append(mean)
                hs.append(np.nan if hw is None else hw)
            order = np.argsort(xs)
            series.append((label, color, np.array(xs)[order], np.array(ms)[order], np.array(hs)[order],
                           _n_seeds(rda), "o"))
        else:
            x, curves = _sweep_groups(cells, kind)
            if not curves:
                continue
            mean, hw = curve_intervals(np.array([cur["f1"] for cur in curves]))
            series.append((label, color, x, mean, hw, len(curves), None))
    if len(series) < 2:
        return None  # one method alone is already drawn by its own figure
    fig, ax = plt.subplots(figsize=(9, 5.2))
    banded = False
    for label, color, x, mean, hw, n, marker in series:
        ok = np.isfinite(mean)
        if not ok.any():
            continue
        i = int(np.nanargmax(np.where(ok, mean, -np.inf)))
        ax.plot(x[ok], mean[ok], color=color, marker=marker, ms=4, lw=2.0 if marker else 1.4,
                label=f"{label}: best {mean[i]:.3f} at {x[i]:.3f}")
        ax.plot([x[i]], [mean[i]], marker="*", ms=11, color=color, zorder=5)
        banded |= _band(ax, x, mean, hw, color, alpha=0.15)
    ax.set_xlabel("fraction of rows flagged (RDA: rows with non-zero S at each λ; others: top fraction by score)")
    ax.set_ylabel("F1")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    n = max(s[5] for s in series)
    ax.set_title("Outlier detection: F1 of every method against its own knob, as the fraction flagged"
                 + (f"\n(mean over {n} seeds, shaded: 95% t-interval; star: best)" if banded else " (star: best)"),
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, run_dir / "f1_vs_knob.png")


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
        z = _load_npz(run_dir, c, ["S"], ["X", "is_outlier"])
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


def outlier_figures(run_dir, cells: list[dict], base_seed: int | None = None) -> list[Path]:
    """Figures of the outlier experiment: f1_vs_lambda.png (Fig. 5), iforest.png (Fig. 6) and
    f1_vs_knob.png (every method; drawn when at least two have curves), over all seeds with
    shaded 95% intervals; s_tiles.png (Fig. 4) and convergence.png (Fig. 7) of one seed
    (``base_seed``, else the smallest)."""
    run_dir = Path(run_dir)
    cells = [c for c in (cells or []) if isinstance(c, dict)]
    one = _base_cells(cells, base_seed)
    written = [_f1_vs_lambda(run_dir, cells), _iforest(run_dir, cells), _f1_vs_knob(run_dir, cells),
               _s_tiles(run_dir, one)]
    with_hist = _rda_sorted_by_lam(one, lambda c: _history_arrays(c) is not None)
    if with_hist:
        written.append(_convergence(run_dir, _spread(with_hist, MAX_CONVERGENCE),
                                    "RDA (ℓ2,1) convergence on outlier detection"))
    return [p for p in written if p is not None]

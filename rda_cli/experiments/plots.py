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

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogFormatter

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


# --------------------------------------------------------------------------- seeds
def _seed(c: dict):
    """A cell's seed (None for cells written before seeds existed)."""
    return _int(c.get("seed"))


def _base_cells(cells: list[dict], base_seed: int | None) -> list[dict]:
    """The cells of one seed (``base_seed``, else the smallest present) plus seedless cells."""
    seeds = sorted({s for c in cells if (s := _seed(c)) is not None})
    if base_seed is None or base_seed not in seeds:
        base_seed = seeds[0] if seeds else None
    return [c for c in cells if _seed(c) in (None, base_seed)]


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


# --------------------------------------------------------------------------- Figure 2
def _heatmap(run_dir: Path, cells: list[dict]) -> Path | None:
    from .stats import excludes_zero, t_interval

    ae_err: dict[tuple[int, Any], float] = {}
    for c in _of_kind(cells, "ae"):
        k, e = _int(c.get("k")), _finite(c.get("error"))
        if k is not None and e is not None:
            ae_err[(k, _seed(c))] = e
    paired: dict[tuple[float, int], list[float]] = {}
    for c in _of_kind(cells, "rda"):
        k, lam, e = _int(c.get("k")), _finite(c.get("lam")), _finite(c.get("error"))
        if k is None or lam is None or e is None or (k, _seed(c)) not in ae_err:
            continue
        paired.setdefault((lam, k), []).append(ae_err[(k, _seed(c))] - e)
    if not paired:
        return None
    diffs = {key: t_interval(v) for key, v in paired.items()}
    n_max = max(n for _, _, n in diffs.values())

    lams = sorted({lam for lam, _ in diffs})
    ks = sorted({k for _, k in diffs})
    grid = np.full((len(lams), len(ks)), np.nan)
    half = np.full((len(lams), len(ks)), np.nan)
    for (lam, k), (mean, hw, _) in diffs.items():
        grid[lams.index(lam), ks.index(k)] = mean
        if hw is not None:
            half[lams.index(lam), ks.index(k)] = hw

    vmax = float(np.nanmax(np.abs(grid)))
    vmax = vmax if vmax > 0 else 1e-3
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#bdbdbd")

    w = max(6.0, 2.8 + 0.8 * len(ks))
    h = max(4.0, 1.8 + 0.42 * len(lams) * (1.4 if n_max > 1 else 1.0))
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto",
                   origin="lower", interpolation="nearest")
    fs = 8 if len(ks) <= 10 else 6
    for i in range(len(lams)):
        for j in range(len(ks)):
            v, hw = grid[i, j], half[i, j]
            if np.isfinite(v):
                color = "white" if abs(v) > 0.6 * vmax else "black"
                text = f"{v:+.3f}" + (f"\n±{hw:.3f}" if np.isfinite(hw) else "")
                sig = excludes_zero(v, hw if np.isfinite(hw) else None)
                ax.text(j, i, text, ha="center", va="center", fontsize=fs, color=color,
                        fontweight="bold" if sig else "normal")
                if sig:
                    ax.add_patch(Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False,
                                           ec="#ffbf00", lw=2.6))
            else:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=fs - 1, color="#555555")
    ax.set_xticks(range(len(ks)))
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_yticks(range(len(lams)))
    ax.set_yticklabels([_fmt_lam(lam) for lam in lams])
    ax.set_xlabel("k (number of corrupted pixels per image)")
    ax.set_ylabel("λ (RDA ℓ1 penalty)")
    title = "Denoising: random-forest test error, AE minus RDA"
    if n_max > 1:
        title += (f"\n(mean over up to {n_max} seeds ± 95% t-interval; bold in a gold frame: interval excludes 0)"
                  "\n(red: RDA better, blue: plain AE better, grey: missing)")
    else:
        title += "\n(red: RDA better, blue: plain AE better, grey: missing)"
    ax.set_title(title, fontsize=10)
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


def _mean_prf(groups: list[list[dict]], getter) -> tuple[np.ndarray, ...]:
    """Per group (one x value, several seeds): means and t half-widths of precision, recall, F1."""
    from .stats import t_interval

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
    from .stats import curve_intervals

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
    from .stats import curve_intervals, t_interval

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
def denoise_figures(run_dir, cells: list[dict], base_seed: int | None = None) -> list[Path]:
    """Figures of the denoising experiment: heatmap.png (Fig. 2; over all seeds, with intervals),
    examples.png and convergence.png (Fig. 7; of one seed: ``base_seed``, else the smallest)."""
    run_dir = Path(run_dir)
    cells = [c for c in (cells or []) if isinstance(c, dict)]
    one = _base_cells(cells, base_seed)
    written = [_heatmap(run_dir, cells), _examples(run_dir, one)]
    with_hist = [c for c in _of_kind(one, "rda") if _history_arrays(c) is not None
                 and _int(c.get("k")) is not None]
    k = _closest_k(_int(c.get("k")) for c in with_hist)
    if k is not None:
        at_k = sorted((c for c in with_hist if _int(c.get("k")) == k),
                      key=lambda c: (_finite(c.get("lam")) is None, _finite(c.get("lam")) or 0.0))
        written.append(_convergence(
            run_dir, _spread(at_k, MAX_CONVERGENCE),
            f"RDA (ℓ1) convergence on denoising, k = {k} corrupted pixels"))
    return [p for p in written if p is not None]


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


# --------------------------------------------------------------------------- stuck pixels (l2,1 columns)
def features_figures(run_dir, cells: list[dict]) -> list[Path]:
    """Figures of the stuck-pixel experiment (l2,1 over columns): f1_vs_lambda.png (column precision /
    recall / F1 vs λ), column_norms.png (S's column norms as a 28×28 image at the best λ, stuck pixels
    marked) and cleaned.png (corrupted images beside L_D at the best λ)."""
    run_dir = Path(run_dir)
    rda = sorted((c for c in (cells or []) if isinstance(c, dict) and c.get("kind") == "rda"
                  and _finite(c.get("lam")) is not None), key=lambda c: _finite(c["lam"]))
    if not rda:
        return []
    written = []
    lam = np.array([_finite(c["lam"]) for c in rda])
    get = lambda key: np.array([np.nan if _finite(c.get(key)) is None else _finite(c.get(key))  # noqa: E731
                                for c in rda])
    p, r, f = get("precision"), get("recall"), get("f1")
    if np.isfinite(f).any():
        fig, ax = plt.subplots(figsize=(8, 4.8))
        for vals, name, mk, col in ((p, "precision", "s", "tab:blue"), (r, "recall", "^", "tab:orange"),
                                    (f, "F1", "o", "tab:green")):
            ok = np.isfinite(vals)
            if ok.any():
                ax.plot(lam[ok], vals[ok], marker=mk, ms=5, lw=1.6 if name == "F1" else 1.2, color=col,
                        label=name)
        i = int(np.nanargmax(f))
        ax.annotate(f"best F1 {f[i]:.3f}\nλ = {_fmt_lam(lam[i])}", xy=(lam[i], f[i]), xytext=(0, -42),
                    textcoords="offset points", ha="center", fontsize=8, color="tab:red",
                    arrowprops=dict(arrowstyle="->", color="tab:red"),
                    bbox=dict(boxstyle="round", fc="white", ec="tab:red", alpha=0.9))
        if len(lam) > 1 and lam.min() > 0 and lam.max() / lam.min() > 4:
            ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.08)
        ax.set_xlabel("λ (ℓ2,1-columns penalty weight; column threshold = λ · n_images)")
        ax.set_ylabel("score over the 784 columns (0–1)")
        ax.set_title("Stuck pixels found by RDA (ℓ2,1 over columns): precision / recall / F1 vs λ")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        written.append(_save(fig, run_dir / "f1_vs_lambda.png"))

    # best cell (highest F1, smaller λ on ties) whose arrays are readable
    order = sorted(range(len(rda)), key=lambda k: (-(f[k] if np.isfinite(f[k]) else -1.0), lam[k]))
    best = z = None
    for k in order:
        z = _load_npz(run_dir, rda[k], ["column_norms", "stuck"])
        if z is not None and np.size(z["column_norms"]) == IMG_SIDE * IMG_SIDE:
            best = rda[k]
            break
    if best is None:
        return written
    title_lam = f"λ = {_fmt_lam(_finite(best['lam']))}"
    norms = np.asarray(z["column_norms"], float).reshape(IMG_SIDE, IMG_SIDE)
    stuck = np.asarray(z["stuck"]).astype(bool).reshape(IMG_SIDE, IMG_SIDE)
    panels = [("S column norms", norms)]
    if "residual_norms" in z and np.size(z["residual_norms"]) == IMG_SIDE * IMG_SIDE:
        panels.append(("residual column norms ‖X − L_D‖", np.asarray(z["residual_norms"], float)
                       .reshape(IMG_SIDE, IMG_SIDE)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels) + 0.6, 4.8), squeeze=False)
    ys, xs = np.nonzero(stuck)
    for ax, (name, img) in zip(axes[0], panels):
        im = ax.imshow(img, cmap="magma", interpolation="nearest")
        ax.scatter(xs, ys, s=90, facecolors="none", edgecolors="cyan", linewidths=1.4, label="stuck pixel")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label("column norm", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower left", framealpha=0.8)
    nf = _int(best.get("n_flagged"))
    fig.suptitle(f"Column norms as 28×28 images, {title_lam} (best F1 {_finite(best.get('f1')) or 0:.3f}; "
                 f"{nf if nf is not None else '?'} columns flagged, {int(stuck.sum())} stuck, circled)",
                 fontsize=10)
    fig.tight_layout()
    written.append(_save(fig, run_dir / "column_norms.png"))

    z = _load_npz(run_dir, best, ["corrupted", "L"])
    if z is not None:
        n = min(MAX_EXAMPLES, len(np.atleast_2d(z["corrupted"])), len(np.atleast_2d(z["L"])))
        rows = [("clean original", z.get("clean")), ("corrupted input", z["corrupted"]), ("RDA  L_D\n(cleaned)", z["L"])]
        rows = [(name, _as_images(a, n)) for name, a in rows if a is not None]
        rows = [(name, imgs) for name, imgs in rows if imgs is not None]
        if n > 0 and rows:
            lo, hi = _gray_range(*[imgs for _, imgs in rows])
            fig, axes = plt.subplots(len(rows), n, figsize=(1.25 * n + 1.6, 1.35 * len(rows) + 0.6), squeeze=False)
            for i, (name, imgs) in enumerate(rows):
                for j in range(n):
                    ax = axes[i, j]
                    ax.imshow(imgs[j], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
                    ax.scatter(xs, ys, s=14, facecolors="none", edgecolors="tab:red", linewidths=0.6)
                    ax.set_xticks([])
                    ax.set_yticks([])
                axes[i, 0].set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center", labelpad=8)
            fig.suptitle(f"Stuck pixels (red circles) removed by RDA ℓ2,1-columns, {title_lam}", fontsize=11)
            fig.subplots_adjust(wspace=0.05, hspace=0.08)
            written.append(_save(fig, run_dir / "cleaned.png"))
    return written

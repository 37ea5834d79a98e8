"""Figures of the denoising experiment: the paper's Figure 2 (heatmap), examples and Figure 7."""

from __future__ import annotations

from collections.abc import Iterable

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle

from ._shared import (
    MAX_CONVERGENCE, MAX_EXAMPLES, _as_images, _base_cells, _convergence, _finite, _fmt_lam, _gray_range,
    _history_arrays, _int, _load_npz, _npz_path, _of_kind, _save, _seed, _spread, _sym_range
)

__all__ = ["denoise_figures"]

TARGET_K = 150  # the k the paper uses for its example images / convergence plot


def _closest_k(ks: Iterable[int], target: int = TARGET_K) -> int | None:
    ks = sorted(set(ks))
    if not ks:
        return None
    return min(ks, key=lambda k: (abs(k - target), k))


def _heatmap(run_dir: Path, cells: list[dict]) -> Path | None:
    from ..stats import excludes_zero, t_interval

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
        ae = _load_npz(run_dir, ae_by_k[k], ["L"], ["corrupted", "clean"])
        if ae is None:
            continue
        cands = sorted(rda_by_k[k], key=lambda c: (_finite(c.get("error")) is None,
                                                    _finite(c.get("error")) or 0.0))
        for cell in cands:
            rda = _load_npz(run_dir, cell, ["L", "S"], ["corrupted", "clean"])
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

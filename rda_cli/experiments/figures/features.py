"""Figures of the stuck-pixel experiment (l2,1 over columns)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._shared import (
    IMG_SIDE, MAX_EXAMPLES, _as_images, _finite, _fmt_lam, _gray_range, _int, _load_npz, _save
)

__all__ = ["features_figures"]

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
        z = _load_npz(run_dir, rda[k], ["column_norms", "stuck"], ["residual_norms"])
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

    z = _load_npz(run_dir, best, ["corrupted", "L"], ["clean"])
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

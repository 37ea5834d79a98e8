"""Check the paper's claims against a finished CI-scale reproduction run.

Reads the saved cells of an outlier run and a denoising run (never retrains) and evaluates:

- outliers: best l2,1-RDA F1 >= 0.50, and >= 1.3 x the best Isolation Forest F1 (paper: 0.64 vs 0.37);
- denoise: at k = 150 the best RDA random-forest error over the lambda grid is <= 0.8 x the plain
  autoencoder's error (paper: up to 30% lower around there), and at the largest lambda S is all zero;
- features (when a run is given): the best l2,1-columns RDA finds the stuck pixels with F1 >= 0.9;
- every figure of the runs exists and is a valid PNG larger than 10 kB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import RdaError
from ..safeio import read_capped, read_json
from .cells import CELL_MAX_BYTES

__all__ = ["Claim", "check_claims", "claims_table", "FIGURES"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURE_MAX_BYTES = 64 << 20  # a figure rda draws is well under 1 MB
FIGURES = {
    "outliers": ("f1_vs_lambda.png", "iforest.png", "s_tiles.png", "convergence.png"),
    "denoise": ("heatmap.png", "examples.png", "convergence.png"),
    "features": ("f1_vs_lambda.png", "column_norms.png", "cleaned.png"),
}


@dataclass
class Claim:
    claim: str
    paper: str
    measured: str
    passed: bool


def _cells(run_dir):
    """The cells of the run's base seed (other seeds' ids end in ``_s<seed>``)."""
    cells = []
    for f in sorted((Path(run_dir) / "cells").glob("*.json")):
        if re.search(r"_s\d+$", f.stem):
            continue
        cells.append(read_json(f, CELL_MAX_BYTES, "cell"))
    return cells


def _png_ok(path, min_bytes=10_000):
    try:
        data = read_capped(path, FIGURE_MAX_BYTES, "figure")
    except OSError:
        return False, "missing"
    except RdaError as exc:  # not a regular file, or larger than any figure rda draws
        return False, str(exc)
    if not data.startswith(PNG_SIGNATURE):
        return False, "not a PNG"
    if len(data) <= min_bytes:
        return False, f"{len(data)} bytes"
    return True, f"{len(data) // 1000} kB"


def check_claims(outlier_dir, denoise_dir, k_claim=150, features_dir=None):
    claims = []
    out_cells = _cells(outlier_dir)
    rda = [c for c in out_cells if c.get("kind") == "rda"]
    forest = next((c for c in out_cells if c.get("kind") == "iforest"), None)
    best_rda = max(rda, key=lambda c: c["f1"]) if rda else None
    best_if = max(forest["f1"]) if forest else None
    if best_rda:
        claims.append(Claim("outliers: best ℓ2,1-RDA F1 ≥ 0.50", "0.64",
                            f"{best_rda['f1']:.3f} (λ = {best_rda['lam']:g})", best_rda["f1"] >= 0.50))
    else:
        claims.append(Claim("outliers: best ℓ2,1-RDA F1 ≥ 0.50", "0.64", "no RDA cell", False))
    if best_rda and best_if is not None:
        ratio = best_rda["f1"] / best_if if best_if > 0 else float("inf")
        claims.append(Claim("outliers: best RDA F1 ≥ 1.3 × best Isolation Forest F1", "0.64 / 0.37 = 1.73",
                            f"{best_rda['f1']:.3f} / {best_if:.3f} = {ratio:.2f}", ratio >= 1.3))
    else:
        claims.append(Claim("outliers: best RDA F1 ≥ 1.3 × best Isolation Forest F1", "1.73",
                            "missing RDA or Isolation Forest cells", False))

    den = _cells(denoise_dir)
    ae = next((c for c in den if c.get("kind") == "ae" and c["k"] == k_claim), None)
    rda_k = [c for c in den if c.get("kind") == "rda" and c["k"] == k_claim]
    name = f"denoise: at k = {k_claim}, best RDA error ≤ 0.8 × AE error"
    if ae and rda_k:
        best = min(rda_k, key=lambda c: c["error"])
        ratio = best["error"] / ae["error"] if ae["error"] > 0 else float("inf")
        claims.append(Claim(name, "up to 30% lower (≤ 0.7×)",
                            f"{best['error']:.4f} / {ae['error']:.4f} = {ratio:.3f} (λ = {best['lam']:g})",
                            ratio <= 0.8))
    else:
        claims.append(Claim(name, "up to 30% lower", f"no AE or RDA cell at k = {k_claim}", False))
    rda_all = [c for c in den if c.get("kind") == "rda"]
    if rda_all:
        top = max(c["lam"] for c in rda_all)
        nz = sum(c["s_nonzero"] for c in rda_all if c["lam"] == top)
        claims.append(Claim(f"denoise: at the largest λ ({top:g}) S is all zero", "S → 0 as λ grows",
                            f"{nz} non-zero entries", nz == 0))
    else:
        claims.append(Claim("denoise: at the largest λ S is all zero", "S → 0 as λ grows", "no RDA cell", False))

    runs = [("outliers", outlier_dir), ("denoise", denoise_dir)]
    if features_dir is not None:
        runs.append(("features", features_dir))
        feat = [c for c in _cells(features_dir) if c.get("kind") == "rda" and c.get("f1") is not None]
        name = "features: ℓ2,1-columns RDA finds the stuck pixels, best column F1 ≥ 0.9"
        if feat:
            best = max(feat, key=lambda c: c["f1"])
            claims.append(Claim(name, "(the paper's Figure 1, right; no number given)",
                                f"{best['f1']:.3f} (λ = {best['lam']:g})", best["f1"] >= 0.9))
        else:
            claims.append(Claim(name, "—", "no RDA cell", False))
    for experiment, run_dir in runs:
        results = {name: _png_ok(Path(run_dir) / name) for name in FIGURES[experiment]}
        bad = [f"{n}: {why}" for n, (ok, why) in results.items() if not ok]
        claims.append(Claim(f"{experiment}: every figure is a valid PNG > 10 kB", "—",
                            "; ".join(bad) if bad else ", ".join(f"{n} {why}" for n, (ok, why) in results.items()),
                            not bad))
    return claims


def claims_table(claims):
    lines = ["| claim | paper | measured | result |", "|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c.claim} | {c.paper} | {c.measured} | {'pass' if c.passed else '**FAIL**'} |")
    return "\n".join(lines) + "\n"

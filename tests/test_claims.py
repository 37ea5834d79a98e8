"""The claims check on synthetic run folders: it passes good metrics and fails a broken model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rda_cli.experiments.claims import FIGURES, check_claims, claims_table

ROOT = Path(__file__).resolve().parents[1]


def png(path, size=20_000):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(size))


def make_runs(root, rda_f1, if_f1, ae_err, rda_errs, s_nonzero_largest=0, figures=True):
    out, den = root / "outliers", root / "denoise"
    for d in (out, den):
        (d / "cells").mkdir(parents=True)
    for i, f1 in enumerate(rda_f1):
        cell = {"id": f"rda_{i}", "kind": "rda", "lam": 0.0005 + 0.0001 * i, "f1": f1}
        (out / "cells" / f"rda_{i}.json").write_text(json.dumps(cell))
    (out / "cells" / "iforest.json").write_text(json.dumps(
        {"id": "iforest", "kind": "iforest", "fractions": [0.01, 0.05], "f1": [if_f1 * 0.5, if_f1]}))
    (den / "cells" / "ae_k150.json").write_text(json.dumps({"id": "ae_k150", "kind": "ae", "k": 150, "error": ae_err}))
    lams = [1.0, 10.0, 100.0]
    for lam, err in zip(lams, rda_errs):
        nz = s_nonzero_largest if lam == lams[-1] else 1000
        cell = {"id": f"rda_{lam}", "kind": "rda", "k": 150, "lam": lam, "error": err, "s_nonzero": nz}
        (den / "cells" / f"rda_{lam}.json").write_text(json.dumps(cell))
    if figures:
        for experiment, d in (("outliers", out), ("denoise", den)):
            for name in FIGURES[experiment]:
                png(d / name)
    return out, den


def test_good_metrics_pass(tmp_path):
    claims = check_claims(*make_runs(tmp_path, [0.3, 0.62, 0.5], 0.38, 0.30, [0.35, 0.2, 0.30]))
    assert all(c.passed for c in claims), claims_table(claims)
    assert "0.620" in claims_table(claims)


def test_broken_model_fails(tmp_path):
    """Threshold forced to 0: S absorbs everything, every row is flagged (F1 = 2p/(1+p) with 5% outliers)."""
    p = 265 / 5124
    everything_f1 = 2 * p / (1 + p)
    # and for denoising, S = X - L everywhere: the features are those of L, no better than the AE's
    claims = check_claims(*make_runs(tmp_path, [everything_f1] * 3, 0.38, 0.30, [0.31, 0.30, 0.32],
                                     s_nonzero_largest=4_000_000))
    failed = {c.claim for c in claims if not c.passed}
    assert any("F1 ≥ 0.50" in c for c in failed)
    assert any("1.3 ×" in c for c in failed)
    assert any("0.8 × AE" in c for c in failed)
    assert any("S is all zero" in c for c in failed)


@pytest.mark.parametrize("case", ["missing", "small", "not_png"])
def test_bad_figures_fail(tmp_path, case):
    out, den = make_runs(tmp_path, [0.62], 0.38, 0.30, [0.35, 0.2, 0.3])
    target = out / "iforest.png"
    if case == "missing":
        target.unlink()
    elif case == "small":
        png(target, 100)
    else:
        target.write_bytes(b"GIF89a" + bytes(20_000))
    claims = check_claims(out, den)
    assert [c.passed for c in claims if c.claim.startswith("outliers: every figure")] == [False]


def test_script_writes_table_and_exit_code(tmp_path):
    make_runs(tmp_path, [0.2], 0.38, 0.30, [0.35, 0.2, 0.3])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_claims.py"), str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "FAIL" in (tmp_path / "claims.md").read_text()
    assert "0.200" in res.stdout


def test_features_claim(tmp_path):
    out, den = make_runs(tmp_path, [0.62], 0.38, 0.30, [0.35, 0.2, 0.3])
    feat = tmp_path / "features"
    (feat / "cells").mkdir(parents=True)
    for name in FIGURES["features"]:
        png(feat / name)
    for f1, ok in ((1.0, True), (0.5, False)):
        (feat / "cells" / "rda_0.01.json").write_text(json.dumps({"id": "x", "kind": "rda", "lam": 0.01, "f1": f1}))
        claims = check_claims(out, den, features_dir=feat)
        assert [c.passed for c in claims if c.claim.startswith("features: ℓ2,1")] == [ok]
        assert len(claims) == 8  # 2 outlier, 2 denoise, 1 features claims, 3 figure checks


def test_other_seeds_are_ignored(tmp_path):
    out, den = make_runs(tmp_path, [0.2], 0.38, 0.30, [0.35, 0.2, 0.3])
    (out / "cells" / "rda_9_s1.json").write_text(json.dumps({"id": "rda_9_s1", "kind": "rda", "lam": 0.1, "f1": 0.9}))
    claims = check_claims(out, den)
    assert not claims[0].passed and "0.200" in claims[0].measured

"""`rda features`: the l2,1-columns (stuck pixels) experiment on a tiny config over real MNIST."""

import csv
import json

import numpy as np
import yaml
from click.testing import CliRunner

from rda_cli.cli import main
from rda_cli.experiments.config import load_config
from rda_cli.experiments.features import SCHEMA, corrupted_data, post_check

PNG = b"\x89PNG\r\n\x1a\n"


def tiny(mnist_dir, **extra):
    cfg = {
        "run_name": "tiny",
        "seed": 0,
        "data": {"path": str(mnist_dir), "n_images": 300},
        "corruption": {"n_pixels": 6, "fraction": 0.2},
        "model": {"layers": [784, 32, 8], "lambdas": [0.01, 0.03], "outer_iterations": 2, "inner_epochs": 3,
                  "batch_size": 64},
        "examples": 4,
    }
    cfg.update(extra)
    return cfg


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_features_end_to_end_and_plot(tmp_path, mnist_dir):
    cfg = tmp_path / "features.yaml"
    cfg.write_text(yaml.safe_dump(tiny(mnist_dir)))
    out = tmp_path / "run"
    res = invoke("features", "--config", cfg, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert "best column F1" in res.output and str(out) in res.output
    for name in ("config.yaml", "manifest.json", "metrics.csv", "summary.json", "summary.md"):
        assert (out / name).exists(), name
    for name in ("f1_vs_lambda.png", "column_norms.png", "cleaned.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 2000, name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [float(r["lam"]) for r in rows] == [0.01, 0.03]
    for r in rows:
        assert all(0 <= float(r[k]) <= 1 for k in ("precision", "recall", "f1", "auroc"))
        assert int(r["n_stuck"]) == 6 and 0 <= int(r["n_flagged"]) <= 784
        assert float(r["threshold"]) == float(r["lam"]) * 300  # paper scaling: lambda * n_images
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["f1"] == max(float(r["f1"]) for r in rows)
    with np.load(out / "cells" / "rda_lam0.01.npz") as z:
        assert z["column_norms"].shape == (784,) and int(z["stuck"].sum()) == 6
        assert z["corrupted"].shape == z["L"].shape == (4, 784)
    cell = json.loads((out / "cells" / "rda_lam0.01.json").read_text())
    assert len(cell["stuck_columns"]) == 6 and len(cell["flagged_columns"]) == cell["n_flagged"]
    # the figures are re-drawn from the saved cells
    (out / "column_norms.png").unlink()
    res = invoke("plot", out)
    assert res.exit_code == 0, res.output
    assert (out / "column_norms.png").read_bytes().startswith(PNG)


def test_corruption_modes(tmp_path, mnist_dir):
    cfg = tmp_path / "c.yaml"
    for rows in ("independent", "shared"):
        cfg.write_text(yaml.safe_dump(tiny(mnist_dir, corruption={"n_pixels": 5, "fraction": 0.1, "rows": rows})))
        config = load_config(cfg, SCHEMA, (), post_check)
        X, Xc, columns, on = corrupted_data(config)
        assert len(columns) == 5 and on.shape == (300, 5)
        assert np.all(Xc[:, columns][on] == 1.0)
        untouched = np.setdiff1d(np.arange(784), columns)
        np.testing.assert_array_equal(Xc[:, untouched], X[:, untouched])
        assert np.all(on.sum(axis=0) <= 30)
        if rows == "shared":  # stuck_pixels as is: the same images for every stuck pixel
            assert (on.any(axis=1) == on.all(axis=1)).all()
        else:
            assert not (on.any(axis=1) == on.all(axis=1)).all()


def test_features_bad_config(tmp_path, mnist_dir):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny(mnist_dir, corruption={"n_pixel": 5})))
    res = invoke("features", "--config", cfg, "--out", tmp_path / "run")
    assert res.exit_code == 2 and "did you mean 'corruption.n_pixels'" in res.output
    assert not (tmp_path / "run").exists()

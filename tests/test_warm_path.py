"""The warm-started lambda path of the outlier experiment."""

import json

import pytest

from rda_cli.experiments.config import validate
from rda_cli.experiments.outliers import SCHEMA, list_cells
from rda_cli.experiments.runner import run_experiment


def config(mnist_dir, warm=True):
    return validate({
        "run_name": "tiny",
        "data": {"path": str(mnist_dir), "n_source": 1500, "n_outliers": 10},
        "model": {"layers": [784, 16, 4], "lambdas": [0.0008, 0.0004, 0.0006], "outer_iterations": 2,
                  "inner_epochs": 1, "batch_size": 64, "warm_start": warm, "warm_outer_iterations": 1},
        "iforest": {"n_estimators": 5},
        "baselines": {name: {"enabled": False} for name in ("ae", "rpca", "outlier_pursuit", "lof", "ocsvm")},
        "tiles": 4,
    }, SCHEMA)


def rda_cells(run_dir):
    out = {}
    for f in sorted((run_dir / "cells").glob("rda_*.json")):
        cell = json.loads(f.read_text())
        out[cell["id"]] = {k: v for k, v in cell.items() if "seconds" not in k and k != "history"}
        out[cell["id"]]["objective"] = [h["objective"] for h in cell["history"]]
    return out


def test_path_runs_ascending_and_resumes_identically(tmp_path, mnist_dir):
    cfg = config(mnist_dir)
    cells = list_cells(cfg, True)
    path = [c for c in cells if c["kind"] == "rda"]
    assert [c["lam"] for c in path] == [0.0004, 0.0006, 0.0008]
    assert [c.get("warm_from") for c in path] == [None, "rda_lam0.0004", "rda_lam0.0006"]
    out = tmp_path / "run"
    run_experiment("outliers", cfg, out, cells=cells)
    first = rda_cells(out)
    assert [c["n_iter"] for c in first.values()] == [2, 1, 1]  # warm lambdas: warm_outer_iterations
    (out / "cells" / "rda_lam0.0006.json").unlink()
    _, _, computed, _ = run_experiment("outliers", cfg, out, cells=cells)
    assert computed == ["rda_lam0.0006"]
    assert rda_cells(out) == first


def test_path_needs_the_local_executor(tmp_path, mnist_dir):
    cfg = config(mnist_dir)
    with pytest.raises(ValueError, match="`executor`='local'"):
        run_experiment("outliers", cfg, tmp_path / "run", cells=list_cells(cfg, True), executor="processes")


def test_loop_started_from_a_pilot(tmp_path, mnist_dir):
    """``model.warm_start_from_pilot``: every lambda's loop starts from one pilot autoencoder per seed, so
    its first prox sees a trained network; the paper's cold start stays the default."""
    from rda_cli.experiments.outliers import compute_cell

    assert validate({}, SCHEMA)["model"]["warm_start_from_pilot"] is False
    cfg = config(mnist_dir, warm=False)
    cfg["model"]["warm_start_from_pilot"] = True
    cell = next(c for c in list_cells(cfg, True) if c["kind"] == "rda")
    first, _ = compute_cell(cfg, cell)
    again, _ = compute_cell(cfg, cell)  # the pilot is reused, the numbers are the same
    assert first["pilot_seconds"] > again["pilot_seconds"] and first["f1"] == again["f1"]
    assert first["history"][0]["nonzero_groups"] == again["history"][0]["nonzero_groups"]
    cfg["model"]["warm_start_from_pilot"] = False
    cold, _ = compute_cell(cfg, cell)
    assert "pilot_seconds" not in cold

"""Cells give the same results whoever runs them: in-process, a process pool, a Dask cluster."""

import json

import pytest

from rda_cli.experiments.config import validate
from rda_cli.experiments.outliers import SCHEMA, list_cells
from rda_cli.experiments.runner import run_experiment


def tiny_config(mnist_dir):
    return validate({
        "run_name": "tiny",
        "data": {"path": str(mnist_dir), "n_source": 1500, "n_outliers": 10},
        "model": {"layers": [784, 16, 4], "lambdas": [0.0004, 0.0006, 0.0008], "outer_iterations": 2,
                  "inner_epochs": 1, "batch_size": 64},
        "iforest": {"n_estimators": 5},
        "tiles": 4,
    }, SCHEMA)


def four_cells(config):
    """Three lambdas and the Isolation Forest (the experiment's other baselines left out)."""
    return [c for c in list_cells(config, True) if c["kind"] in ("rda", "iforest")]


def _untimed(obj):
    """The cell without its wall-clock timings (the only thing allowed to differ)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if "seconds" not in k and "time" not in k}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def results(run_dir):
    out = {}
    for f in sorted((run_dir / "cells").glob("*.json")):
        cell = _untimed(json.loads(f.read_text()))
        out[cell["id"]] = cell
    return out


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, mnist_dir):
    config = tiny_config(mnist_dir)
    out = tmp_path_factory.mktemp("seq") / "run"
    run_experiment("outliers", config, out, cells=four_cells(config))
    return config, results(out)


def test_sweep_has_four_cells(sequential):
    assert len(sequential[1]) == 4


def test_process_pool_matches_sequential(tmp_path, sequential):
    config, expected = sequential
    out = tmp_path / "run"
    run_experiment("outliers", config, out, cells=four_cells(config), executor="processes", workers=2)
    assert results(out) == expected


def test_dask_local_cluster_matches_sequential(tmp_path, sequential):
    distributed = pytest.importorskip("dask.distributed")
    config, expected = sequential
    out = tmp_path / "run"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        run_experiment("outliers", config, out, cells=four_cells(config), executor="dask",
                       scheduler=cluster.scheduler_address)
    assert results(out) == expected

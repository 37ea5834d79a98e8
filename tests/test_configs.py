"""The packaged configs: every one loads, the default outlier run is the fast schedule, the paper's is kept."""

from importlib import resources

import pytest

from rda_cli.experiments.config import load_config
from rda_cli.experiments.runner import experiment_module

CONFIGS = sorted(p.name for p in (resources.files("rda_cli") / "configs").iterdir() if p.name.endswith(".yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_packaged_config_loads(name, tmp_path):
    module = experiment_module(name.split("-")[0].removesuffix(".yaml"))
    # data.path null falls back to $RDA_DATA_DIR etc.; point it at an existing folder so post_check passes
    override = "data.paths=null" if "data" in module.SCHEMA and "paths" in module.SCHEMA["data"] else f"data.path={tmp_path}"
    config = load_config(resources.files("rda_cli") / "configs" / name, module.SCHEMA, (override,), lambda c: None)
    assert config["run_name"]


def _outliers(name):
    module = experiment_module("outliers")
    return load_config(resources.files("rda_cli") / "configs" / name, module.SCHEMA, (), lambda c: None)


def test_default_outliers_is_the_fast_schedule_and_the_paper_one_is_kept():
    fast, paper = _outliers("outliers.yaml"), _outliers("outliers-paper.yaml")
    assert fast["run_name"] == "default" and paper["run_name"] == "paper"
    assert (fast["model"]["outer_iterations"], fast["model"]["inner_epochs"], fast["model"]["reinitialize"]) == (
        10, 10, False)
    assert (paper["model"]["outer_iterations"], paper["model"]["inner_epochs"], paper["model"]["reinitialize"]) == (
        20, 50, True)
    for key in ("layers", "lambdas", "batch_size", "learning_rate", "lambda_scaling"):
        assert fast["model"][key] == paper["model"][key]
    assert fast["data"] == paper["data"] and fast["seed"] == paper["seed"]
    assert "outliers-fast.yaml" not in CONFIGS


def test_every_experiment_implements_the_contract():
    from rda_cli.experiments.contract import Experiment
    from rda_cli.experiments.runner import EXPERIMENTS, experiment_module

    for name in EXPERIMENTS:
        module = experiment_module(name)
        assert isinstance(module, Experiment), name

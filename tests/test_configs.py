"""The packaged configs: every one loads, the default outlier run is the fast schedule, the paper's is kept."""

from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _schemas():
    from rda_cli.detect import _setting_fields
    from rda_cli.experiments.runner import EXPERIMENTS

    yield "rda detect --set", _setting_fields()
    for name in EXPERIMENTS:
        yield name, experiment_module(name).SCHEMA


def _leaves(schema, path=""):
    for key, spec in schema.items():
        if isinstance(spec, dict):
            yield from _leaves(spec, f"{path}{key}.")
        else:
            yield f"{path}{key}", spec


def test_every_count_and_size_has_a_ceiling():
    """Every integer (counts, sizes, seeds) has a maximum and every list a length limit, in every schema."""
    from rda_cli.experiments.config import MAX_ITEMS

    for where, schema in _schemas():
        for key, field in _leaves(schema):
            if field.kind in ("int", "int_list"):
                assert field.maximum is not None, (where, key)
            if field.kind.endswith("_list"):
                assert field.max_length <= MAX_ITEMS, (where, key)


@pytest.mark.parametrize("override, message", [
    ("seed=4294967296", "'seed': got 4294967296, expected an integer >= 0 and <= 4,294,967,295"),
    ("model.inner_epochs=1000000000000", "'model.inner_epochs': got 1000000000000, expected an integer >= 1 and <= 10,000"),
    ("model.outer_iterations=1000000000", "<= 10,000"),
    ("iforest.n_estimators=1000000000", "<= 10,000"),
    ("iforest.fraction_step=1e-9", ">= 0.0001"),
    ("seeds=[" + ",".join(map(str, range(1001))) + "]", "at most 1,000"),
    ("model.lambdas=[" + ",".join(str(k / 1e4) for k in range(1, 1002)) + "]", "at most 1,000"),
])
def test_ceilings_refuse_before_any_work(override, message):
    from rda_cli.experiments.config import ConfigError

    with pytest.raises(ConfigError, match=message.replace("[", "\\[").replace("(", "\\(")):
        load_config(None, experiment_module("outliers").SCHEMA, (override,))


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("1E-3", 0.001), ("-2e5", -2e5), (".5", 0.5),
                                         ("1.0e-3", 0.001), ("7", 7.0)])
def test_a_float_key_takes_what_a_person_types(text, value):
    """YAML 1.1 reads 1e-3 (no point) as text; every float key takes it as the number, lists too."""
    from rda_cli.experiments.config import ConfigError

    schema = experiment_module("outliers").SCHEMA
    if value < 0:
        with pytest.raises(ConfigError, match="expected a number >= 0"):
            load_config(None, schema, (f"model.lam={text}",))
        return
    config = load_config(None, schema, (f"model.lam={text}", f"model.lambdas=[{text}, 2]"))
    assert config["model"]["lam"] == value and config["model"]["lambdas"] == [value, 2.0]


def test_text_that_is_no_number_is_refused():
    from rda_cli.experiments.config import ConfigError

    for text in ("nan", "inf", ".inf", "1e", "e5", "1.2.3", "one"):
        with pytest.raises(ConfigError, match="expected a number"):
            load_config(None, experiment_module("outliers").SCHEMA, (f"model.lam={text}",))


def test_a_config_a_run_writes_can_be_read_back(monkeypatch):
    """A config whose config.yaml would pass the read limit is refused before any work, so every run a
    command starts can be resumed by the same command."""
    from rda_cli.experiments import config as config_module
    from rda_cli.experiments.config import ConfigError, dump_config

    schema = experiment_module("outliers").SCHEMA
    config = load_config(None, schema, ("seeds=[" + ",".join(map(str, range(1000))) + "]",))
    size = len(dump_config(config).encode())
    monkeypatch.setattr(config_module, "CONFIG_MAX_BYTES", size - 1)
    with pytest.raises(ConfigError, match=f"takes {size:,} bytes, more than the {size - 1:,} a run reads back"):
        load_config(None, schema, ("seeds=[" + ",".join(map(str, range(1000))) + "]",))


def _int_fields():
    return [(where, key, field) for where, schema in _schemas() for key, field in _leaves(schema)
            if field.kind in ("int", "int_list")]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_generated_counts_are_refused_above_their_ceiling_only(data):
    """Any integer key, any value: above its maximum one ConfigError line naming the key and the ceiling;
    within its range accepted as it is."""
    from rda_cli.experiments.config import ConfigError, validate_value

    where, key, field = data.draw(st.sampled_from(_int_fields()))
    low, high = int(field.minimum if field.minimum is not None else 0), int(field.maximum)
    over = data.draw(st.integers(high + 1, 10**30))
    within = data.draw(st.integers(low, high))
    def wrap(v):  # a list key: v and distinct in-range items up to its least length
        if field.kind != "int_list":
            return v
        return [v] + [x for x in range(low, low + field.min_length + 1) if x != v][:max(0, field.min_length - 1)]

    with pytest.raises(ConfigError, match=f"'{key}': got .*, expected .*<= {high:,}"):
        validate_value(field, wrap(over), key)
    if field.check is None:
        assert validate_value(field, wrap(within), key) == wrap(within)

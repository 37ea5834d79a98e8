"""Every default has one home: a config that leaves a key out runs what the packaged config says, and the
command's help states the rule's numbers from where they live."""

from importlib import resources

import pytest
import yaml

from rda_cli.experiments.config import Field
from rda_cli.experiments.runner import EXPERIMENTS, experiment_module

IDENTITY = {"run_name"}  # the run folder's name, not a setting: null means a timestamp


def _differences(schema, packaged, path=""):
    out = []
    for key, field in schema.items():
        where = f"{path}{key}"
        if isinstance(field, dict):
            out += _differences(field, packaged.get(key) or {}, where + ".")
        elif isinstance(field, Field) and where not in IDENTITY:
            if key not in packaged:
                out.append(f"{where}: not in the packaged config")
            elif packaged[key] != field.default:
                out.append(f"{where}: packaged {packaged[key]!r}, schema default {field.default!r}")
    out += [f"{path}{key}: not in the schema" for key in packaged if key not in schema]
    return out


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_schema_defaults_are_the_packaged_config(name):
    packaged = yaml.safe_load((resources.files("rda_cli") / "configs" / f"{name}.yaml").read_text())
    assert _differences(experiment_module(name).SCHEMA, packaged) == []


def test_detect_help_states_the_table_rules_numbers():
    from click.testing import CliRunner

    from rda_cli.cli import main
    from rda_cli.table_rule import DEFAULT_RULE as R

    text = " ".join(CliRunner().invoke(main, ["detect", "--help"], terminal_width=1000).output.split())
    assert f"{R.n_members} members (--members)" in text and f"[default: {R.n_members}; 1: a single RDA]" in text
    assert (f"{R.pilot_outer} outer iterations of about {R.pilot_steps} gradient steps at learning rate "
            f"{R.pilot_learning_rate:g}, batch min(rows, max({R.batch_min}, ceil(rows/{R.max_steps_per_epoch})))"
            in text)
    assert f"clip(ceil(width/2), {R.hidden_min}, {R.hidden_max})" in text


def test_one_model_on_a_table_is_the_table_rules():
    """``rda detect --lam`` (and ``RDA(lam=...)``) fit the table rule's member network and pilot schedule."""
    from rda_cli.detect import estimator_params
    from rda_cli.table_rule import member_settings

    for n, d in ((300, 20), (100_000, 200)):
        params, member = estimator_params(d, n, "l1"), member_settings(n, d)
        assert {k: params[k] for k in member if k not in ("lambda_scaling",)} == {
            k: v for k, v in member.items() if k != "lambda_scaling"}
        assert params["lambda_scaling"] == "paper" and params["random_state"] == 0


def test_help_says_which_scores_flag():
    """``> 0 is flagged`` holds for the row penalties and the ensemble; an ``l21_cols`` model flags columns,
    its row scores (residual norms, > 0) flag no row, and the help says so."""
    from click.testing import CliRunner

    from rda_cli.cli import main

    for command in ("detect", "score"):
        text = " ".join(CliRunner().invoke(main, [command, "--help"], terminal_width=1000).output.split())
        assert "l21_cols" in text and "no row" in text, command

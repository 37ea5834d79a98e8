"""Property-based (issue 22): generated cell files, YAML configs and output folders.

Each example ends in one of the documented outcomes -- accepted, or refused with one line (a
ConfigError / RunDirError, exit 2 on the command line), an invalid cell set aside -- never another
exception or a traceback; nothing of the user's is changed; and a cell that validation accepts can
be summarised. Most examples call the validation functions directly (fast); a few run ``rda`` end
to end. Derandomised: the same examples every run.
"""

import json
import socket
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rda_cli.cli import main
from rda_cli.experiments import features as features_module
from rda_cli.experiments.config import ConfigError, load_config
from rda_cli.experiments.rundir import FINGERPRINT_KEY, MARKER_KEY, RunDir, RunDirError, atomic_write_text
from test_reliability import snapshot, tiny_features

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                derandomize=True)
CELL_ID = "rda_lam0.05"


def good_cell(lam=0.05):
    return {"id": f"rda_lam{lam:g}", "kind": "rda", "lam": lam, "threshold": 10.0, "precision": 0.8, "recall": 1.0,
            "f1": 0.889, "auroc": 0.99, "n_flagged": 6, "n_stuck": 5, "flagged_columns": [1, 2, 3, 4, 5, 6],
            "stuck_columns": [1, 2, 3, 4, 5], "n_iter": 2,
            "history": [{"iteration": 1, "objective": 1.0, "c1": 0.1, "c2": 0.2}], "seconds": 1.0}


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, mnist_dir):
    """A features run folder written without training: config.yaml, a marked manifest, three cells."""
    root = tmp_path_factory.mktemp("fuzz_runs")
    cfg = root / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_features(mnist_dir)))
    config = load_config(cfg, features_module.SCHEMA, (), features_module.post_check)
    run = RunDir(root / "run", "features", config, check_cell=features_module.check_cell)
    run.cells_dir.mkdir(parents=True)
    atomic_write_text(run.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(run.path / "manifest.json", json.dumps({MARKER_KEY: 1, FINGERPRINT_KEY: run.fingerprint,
                                                              "experiment": "features", "sessions": []}))
    for lam in (0.01, 0.05, 0.2):
        run.write_cell(f"rda_lam{lam:g}", good_cell(lam))
    return cfg, config, run


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)
keys = st.sampled_from(sorted(good_cell()) + ["id", FINGERPRINT_KEY, "extra"])
literals = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 5000, "7.5", "-3", "null",
                            "[]", '"0.5"', "true"])


@st.composite
def cell_files(draw, fingerprint):
    """The bytes of a cell file: a valid cell, edited (keys dropped or retyped, raw literals, nesting, junk)."""
    cell = dict(good_cell(), **{FINGERPRINT_KEY: fingerprint})
    for key, drop in draw(st.lists(st.tuples(keys, st.booleans()), max_size=3)):
        if drop:
            cell.pop(key, None)
        else:
            cell[key] = draw(json_values)
    text = json.dumps(cell)
    if draw(st.integers(0, 3)) == 0:  # a raw literal JSON itself allows (NaN...) or a huge number, in a key's place
        key = draw(st.sampled_from(["f1", "threshold", "n_flagged", "auroc", "lam"]))
        text = text.replace(f'"{key}": ', f'"{key}": {draw(literals)}, "_was": ', 1)
    shape = draw(st.sampled_from(["as is"] * 6 + ["nested", "truncated", "not utf-8", "empty", "list"]))
    if shape == "nested":
        depth = draw(st.sampled_from([50, 5000, 100_000]))
        text = '{"id": "%s", "x": %s%s}' % (CELL_ID, "[" * depth, "]" * depth)
    elif shape == "truncated":
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif shape == "empty":
        text = ""
    elif shape == "list":
        text = json.dumps([cell])
    data = text.encode()
    return data + b"\xff\xfe" if shape == "not utf-8" else data


@settings(max_examples=160, **SETTINGS)
@given(data=st.data())
def test_generated_cells_are_valid_or_set_aside_and_valid_ones_summarise(synthetic_run, tmp_path, monkeypatch, data):
    import rda_cli.experiments.figures.features as figures

    monkeypatch.setattr(figures, "features_figures", lambda run_dir, cells: [])  # the summary, not the drawing
    _, config, run = synthetic_run
    blob = data.draw(cell_files(run.fingerprint))
    f = run.cells_dir / f"{CELL_ID}.json"
    original = f.read_bytes()
    try:
        f.write_bytes(blob)
        cell, problem = run._read(CELL_ID)
        if problem is None:
            problem = run.cell_problem(CELL_ID, cell, {"id": CELL_ID, "kind": "rda", "lam": 0.05})
        assert problem is None or (isinstance(problem, str) and len(problem) < 400), problem
        if problem is None:  # accepted: the summary must be written from it without an error
            scratch = RunDir(tmp_path / "summary", "features", config)
            scratch.path.mkdir(exist_ok=True)
            cells = [c for c in run.read_cells() if c["id"] != CELL_ID] + [dict(cell)]
            cells[-1].pop(FINGERPRINT_KEY, None)
            features_module.summarize(scratch, cells)
            assert json.loads((scratch.path / "summary.json").read_text())["cells_done"] == 3
    finally:
        f.write_bytes(original)


# ------------------------------------------------------------------------------------------- YAML configs
scalars = st.one_of(st.integers(-5, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.text(max_size=8), st.lists(st.integers(0, 5), max_size=3))


@st.composite
def yaml_configs(draw, mnist_dir):
    """``(bytes, has_alias, has_duplicate, encoding)`` of a config: mostly the tiny one, edited."""
    cfg = tiny_features(mnist_dir)
    for key in draw(st.lists(st.sampled_from(["seed", "examples", "run_name", "model", "bogus"]), max_size=2)):
        cfg[key] = draw(scalars)
    text = yaml.safe_dump(cfg, sort_keys=False)
    has_alias = draw(st.integers(0, 3)) == 0
    if has_alias:
        text += draw(st.sampled_from(["base: &b [1, 2]\nseed: *b\n", "model: &m {lambdas: [0.1]}\nother: *m\n",
                                      "x: &a 1\n", "a0: &a0 [lol, lol]\na1: [*a0, *a0]\n"]))
    has_duplicate = draw(st.integers(0, 3)) == 0 and not has_alias
    if has_duplicate:
        text += draw(st.sampled_from(["seed: 1\nseed: 2\n", "examples: 2\n", "run_name: again\n"]))
    encoding = draw(st.sampled_from(["utf-8"] * 5 + ["utf-8-sig", "utf-16", "latin-1"]))
    if encoding == "latin-1":
        text += "note: caf\xe9\n"
    return text.encode(encoding), has_alias, has_duplicate, encoding


@settings(max_examples=120, **SETTINGS)
@given(data=st.data())
def test_generated_yaml_configs_load_or_are_refused_in_one_line(tmp_path, mnist_dir, data):
    blob, has_alias, has_duplicate, encoding = data.draw(yaml_configs(mnist_dir))
    path = tmp_path / "c.yaml"
    path.write_bytes(blob)
    try:
        config = load_config(path, features_module.SCHEMA, (), features_module.post_check)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message.strip() and len(message) < 500, message
        if encoding in ("utf-16", "latin-1"):
            assert "UTF-8" in message
        elif has_alias:
            assert "aliases" in message
        return
    assert not has_alias and encoding in ("utf-8", "utf-8-sig")
    assert isinstance(config, dict) and config["run_name"]
    if has_duplicate:
        pytest.fail("a duplicate key was accepted")


# ------------------------------------------------------------------------------------------- output folders
def entries(fingerprint):
    dead_lock = json.dumps({"pid": 999_999_999, "host": socket.gethostname(), "start": "t"})
    marked = json.dumps({MARKER_KEY: 1, "experiment": "features", "sessions": []})
    legacy = json.dumps({"experiment": "features", "sessions": []})
    return {
        "user summary": ("summary.md", "mine"), "user csv": ("metrics.csv", "a,b\n"),
        "empty lock": (".lock", ""), "rda lock": (".lock", dead_lock), "user lock": (".lock", "mine"),
        "empty manifest": ("manifest.json", "{}"), "marked manifest": ("manifest.json", marked),
        "legacy manifest": ("manifest.json", legacy), "user config": ("config.yaml", "a: 1\n"),
        "our cell": ("cells/rda_lam0.05.json", json.dumps(dict(good_cell(), **{FINGERPRINT_KEY: fingerprint}))),
        "other cell": ("cells/rda_lam0.2.json", json.dumps(dict(good_cell(0.2), **{FINGERPRINT_KEY: "0" * 16}))),
        "debris": (".manifest.json.x1y2z3.tmp", "{"),
    }


@settings(max_examples=70, **SETTINGS)
@given(data=st.data())
def test_generated_out_folders_are_refused_unless_an_rda_run(synthetic_run, tmp_path_factory, data):
    _, config, run = synthetic_run
    table = entries(run.fingerprint)
    chosen = data.draw(st.lists(st.sampled_from(sorted(table)), max_size=4, unique_by=lambda k: table[k][0]))
    folder = tmp_path_factory.mktemp("out")
    for name in chosen:
        rel, text = table[name]
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    before = snapshot(folder)
    names = set(chosen)
    ours = names & {"marked manifest"} or ({"legacy manifest", "user config"} <= names)
    recoverable = "our cell" in names and "other cell" not in names and not ours and not (
        names & {"legacy manifest"} and "user config" in names)
    only_debris = names <= {"rda lock", "debris"}
    try:
        RunDir(folder, "features", config, check_cell=features_module.check_cell).check_usable()
        accepted = True
    except RunDirError as exc:
        accepted = False
        assert len(str(exc)) < 600
    assert snapshot(folder) == before
    assert accepted == bool(ours or recoverable or only_debris), (chosen, accepted)


# ------------------------------------------------------------------------------------------- end to end
def run_cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    assert "Traceback" not in res.output
    return res


@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_generated_bad_configs_end_to_end(tmp_path_factory, mnist_dir, data):
    blob, has_alias, has_duplicate, encoding = data.draw(yaml_configs(mnist_dir).filter(
        lambda c: c[1] or c[2] or c[3] in ("utf-16", "latin-1")))
    tmp = tmp_path_factory.mktemp("bad_config")
    (tmp / "c.yaml").write_bytes(blob)
    res = run_cli("features", "--config", tmp / "c.yaml", "--out", tmp / "out", "--quiet")
    assert res.exit_code == 2, res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("rda: error:")]) == 1, res.output
    assert not (tmp / "out").exists()


@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_generated_cells_end_to_end_with_plot(synthetic_run, data):
    _, _, run = synthetic_run
    f = run.cells_dir / f"{CELL_ID}.json"
    original = f.read_bytes()
    blob = data.draw(cell_files(run.fingerprint))
    try:
        f.write_bytes(blob)
        before = snapshot(run.cells_dir)
        res = run_cli("plot", run.path)
        assert res.exit_code == 0, res.output
        assert snapshot(run.cells_dir) == before  # plot changes no cell
    finally:
        f.write_bytes(original)

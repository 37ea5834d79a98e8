"""The rda command line on tiny configs over real MNIST images."""

import csv
import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rda_cli import __version__
from rda_cli.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def tiny_denoise(mnist_dir, **extra):
    cfg = {
        "run_name": "tiny",
        "seed": 0,
        "data": {"path": str(mnist_dir), "n_images": 300},
        "corruption": {"k": [50, 150]},
        "model": {"layers": [784, 32, 8], "lambdas": [1.0, 100.0], "outer_iterations": 2, "inner_epochs": 1,
                  "batch_size": 64},
        "forest": {"n_estimators": 5},
        "examples": 4,
    }
    cfg.update(extra)
    return cfg


def tiny_outliers(mnist_dir):
    return {
        "run_name": "tiny",
        "data": {"path": str(mnist_dir), "n_source": 2000, "n_outliers": 12},
        "model": {"layers": [784, 32, 8], "lam": 0.0008, "lambdas": [0.0004, 0.0008], "outer_iterations": 2,
                  "inner_epochs": 1, "batch_size": 64},
        "iforest": {"n_estimators": 10},
        "tiles": 8,
    }


def write(tmp_path, cfg, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 2000, path


def test_version_and_help():
    assert __version__ in invoke("--version").output
    for cmd in ([], ["denoise"], ["outliers"], ["plot"]):
        res = invoke(*cmd, "--help")
        assert res.exit_code == 0 and "Usage" in res.output
    assert "[default:" in invoke("outliers", "--help").output.replace("\n", " ")


def test_denoise_end_to_end_and_plot(tmp_path, mnist_dir):
    out = tmp_path / "run"
    res = invoke("denoise", "--config", write(tmp_path, tiny_denoise(mnist_dir)), "--out", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    for name in ("config.yaml", "manifest.json", "metrics.csv", "summary.json", "summary.md"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 6 and {r["kind"] for r in rows} == {"ae", "rda"}
    assert all(0 <= float(r["error"]) <= 1 for r in rows)
    # lambda = 100 is far above any residual: S is all zero there
    assert all(int(r["s_nonzero"]) == 0 for r in rows if r["lam"] == "100.0")
    for name in ("heatmap.png", "examples.png", "convergence.png"):
        assert_png(out / name)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["versions"]["tensorflow"]
    (out / "heatmap.png").unlink()
    res = invoke("plot", str(out))
    assert res.exit_code == 0, res.output
    assert_png(out / "heatmap.png")


def test_outliers_single_and_sweep(tmp_path, mnist_dir):
    cfg = write(tmp_path, tiny_outliers(mnist_dir))
    out = tmp_path / "run"
    res = invoke("outliers", "--config", cfg, "--out", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    assert len(list((out / "cells").glob("rda_*.json"))) == 1
    res = invoke("outliers", "--config", cfg, "--out", str(out), "--quiet", "--sweep-lambda")
    assert res.exit_code == 0, res.output
    assert "1 computed" in res.output  # 0.0008 and the forest were read back
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["rda"]["f1"] <= 1 and 0 <= summary["iforest"]["auroc"] <= 1
    for name in ("f1_vs_lambda.png", "iforest.png", "s_tiles.png", "convergence.png"):
        assert_png(out / name)
    assert "Isolation Forest" in (out / "summary.md").read_text()


def test_resume_recomputes_only_missing_cell(tmp_path, mnist_dir):
    cfg = write(tmp_path, tiny_denoise(mnist_dir, corruption={"k": [100]}))
    out = tmp_path / "run"
    assert invoke("denoise", "--config", cfg, "--out", str(out), "--quiet").exit_code == 0
    before = (out / "metrics.csv").read_text()
    victim = out / "cells" / "rda_k100_lam1.0.json"
    assert victim.exists()
    victim.unlink()
    res = invoke("denoise", "--config", cfg, "--out", str(out), "--quiet")
    assert res.exit_code == 0
    assert "1 computed, 2 read back" in res.output
    strip = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]  # noqa: E731 (drop seconds)
    assert strip((out / "metrics.csv").read_text()) == strip(before)


def test_changed_config_is_refused(tmp_path, mnist_dir):
    cfg = write(tmp_path, tiny_denoise(mnist_dir, corruption={"k": [100]}, model={
        "layers": [784, 16, 4], "lambdas": [100.0], "outer_iterations": 1, "inner_epochs": 1}))
    out = tmp_path / "run"
    assert invoke("denoise", "--config", cfg, "--out", str(out), "--quiet").exit_code == 0
    res = invoke("denoise", "--config", cfg, "--out", str(out), "--quiet", "--set", "seed=3")
    assert res.exit_code == 2
    assert "another config" in res.output and "'seed'" in res.output


def test_set_overrides_are_typed(tmp_path, mnist_dir):
    cfg = write(tmp_path, tiny_denoise(mnist_dir, corruption={"k": [100]}, model={
        "layers": [784, 16, 4], "lambdas": [100.0], "outer_iterations": 3, "inner_epochs": 1}))
    out = tmp_path / "run"
    res = invoke("denoise", "--config", cfg, "--out", str(out), "--quiet", "--set", "model.outer_iterations=1",
                 "--set", "model.baseline=false")
    assert res.exit_code == 0, res.output
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["model"]["outer_iterations"] == 1 and resolved["model"]["baseline"] is False
    assert not (out / "cells" / "ae_k100.json").exists()


BAD = [
    ("unknown key", {"modle": {}}, "unknown config key 'modle'; did you mean 'model'"),
    ("typo nested", {"model": {"inner_epoch": 3}}, "did you mean 'model.inner_epochs'"),
    ("wrong type", {"model": {"inner_epochs": "five"}}, "'model.inner_epochs': got 'five'"),
    ("float for int", {"model": {"batch_size": 2.5}}, "'model.batch_size'"),
    ("negative lambda", {"model": {"lambdas": [1.0, -2.0]}}, "'model.lambdas'"),
    ("empty grid", {"model": {"lambdas": []}}, "at least 1 item"),
    ("k too large", {"corruption": {"k": [100, 800]}}, "'corruption.k'"),
    ("missing data path", {"data": {"path": "/no/such/folder"}}, "'data.path'"),
    ("bad scaling", {"model": {"lambda_scaling": "relative"}}, "'model.lambda_scaling'"),
    ("bool as number", {"seed": True}, "'seed'"),
    ("not a mapping", {"model": [1, 2]}, "'model': expected a mapping"),
    ("zero learning rate", {"model": {"learning_rate": 0}}, "'model.learning_rate'"),
    ("wrong input width", {"model": {"layers": [100, 10]}}, "784"),
    ("duplicate grid", {"corruption": {"k": [10, 10]}}, "without duplicates"),
]


@pytest.mark.parametrize("name, cfg, message", BAD, ids=[b[0] for b in BAD])
def test_bad_configs_exit_2_with_one_line(tmp_path, name, cfg, message):
    res = invoke("denoise", "--config", write(tmp_path, cfg), "--out", str(tmp_path / "run"))
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rda: error:"), res.output
    assert message in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, message", [
    ("model: {inner_epochs: 3\n", "malformed YAML"),
    ("- just\n- a list\n", "mapping"),
])
def test_malformed_yaml(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    res = invoke("outliers", "--config", str(path))
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1


def test_bad_set_and_missing_config(tmp_path):
    res = invoke("outliers", "--set", "model.lam")
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
    res = invoke("outliers", "--set", "model.lamb=0.1")
    assert res.exit_code == 2 and "did you mean 'model.lam'" in res.output
    res = invoke("outliers", "--config", str(tmp_path / "nope.yaml"))
    assert res.exit_code == 2 and "does not exist" in res.output
    res = invoke("outliers", "--set", "iforest.fraction_min=0.9", "--set", "iforest.fraction_max=0.2")
    assert res.exit_code == 2 and "fraction_min" in res.output


def test_plot_on_non_run_folder(tmp_path):
    res = invoke("plot", str(tmp_path))
    assert res.exit_code == 2 and "not a run folder" in res.output


def test_outliers_all_methods_with_seeds(tmp_path, mnist_dir):
    cfg = tiny_outliers(mnist_dir)
    cfg["model"]["lambdas"] = [0.0002, 0.0004, 0.0008]
    cfg["baselines"] = {"ae": {"enabled": True}, "lof": {"enabled": True}, "ocsvm": {"enabled": True},
                        "rpca": {"enabled": True, "max_iter": 20}, "outlier_pursuit": {"enabled": True, "max_iter": 20}}
    out = tmp_path / "run"
    args = ("outliers", "--config", write(tmp_path, cfg), "--out", str(out), "--quiet", "--sweep-lambda")
    res = invoke(*args, "--seeds", "2")
    assert res.exit_code == 0, res.output
    kinds = ("iforest", "ae", "rpca", "outlier_pursuit", "lof", "ocsvm")
    ids = {p.stem for p in (out / "cells").glob("*.json")}
    assert ids == {f"{k}{s}" for k in kinds + ("rda_lam0.0002", "rda_lam0.0004", "rda_lam0.0008") for s in ("", "_s1")}
    seed1 = json.loads((out / "cells" / "lof_s1.json").read_text())
    assert seed1["seed"] == 1 and len(seed1["f1"]) == len(seed1["fractions"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and set(summary["methods"]) == {"rda", *kinds}
    for m in summary["methods"].values():
        assert m["f1"]["n"] == 2 and m["f1"]["half_width"] is not None and 0 <= m["auroc"]["mean"] <= 1
    sel = summary["lambda_selection"]
    assert [r["seed"] for r in sel["per_seed"]] == [0, 1]
    assert all(r["knee_lam"] in cfg["model"]["lambdas"] and r["knee_f1"] <= r["oracle_f1"] for r in sel["per_seed"])
    md = (out / "summary.md").read_text()
    assert "Outlier Pursuit" in md and "One-Class SVM" in md and "±" in md and "knee" in md
    for name in ("f1_vs_knob.png", "f1_vs_lambda.png", "iforest.png", "s_tiles.png", "convergence.png"):
        assert_png(out / name)
    res = invoke(*args, "--seeds", "2")  # resume: everything read back
    assert res.exit_code == 0 and "0 computed" in res.output


def test_denoise_with_seeds(tmp_path, mnist_dir):
    cfg = write(tmp_path, tiny_denoise(mnist_dir, corruption={"k": [150]}))
    out = tmp_path / "run"
    res = invoke("denoise", "--config", cfg, "--out", str(out), "--quiet", "--seeds", "2")
    assert res.exit_code == 0, res.output
    ids = {p.stem for p in (out / "cells").glob("*.json")}
    assert ids == {"ae_k150", "rda_k150_lam1.0", "rda_k150_lam100.0",
                   "ae_k150_s1", "rda_k150_lam1.0_s1", "rda_k150_lam100.0_s1"}
    summary = json.loads((out / "summary.json").read_text())
    row = summary["per_k"][0]
    assert row["ae_error_ci"]["n"] == 2 and row["ae_minus_rda"]["half_width"] is not None
    assert len(summary["lambda_selection"]["per_k_seed"]) == 2
    assert "knee" in (out / "summary.md").read_text()
    assert_png(out / "heatmap.png")


def test_outliers_finds_the_shared_mnist_with_no_variable_set(tmp_path, monkeypatch, mnist_dir):
    """The README's first command: data.path null, no $RDA_DATA_DIR, run from elsewhere: the
    ../shared/data/mnist copy beside the repository is found (no download)."""
    import rda_cli.data.mnist as mnist_module

    repo_shared = Path(mnist_module.__file__).resolve().parents[3] / "shared" / "data" / "mnist"
    if not (repo_shared / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST copy at {repo_shared}")
    monkeypatch.delenv("RDA_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cfg = tiny_outliers(mnist_dir)
    cfg["data"]["path"] = None
    cfg["baselines"] = {name: {"enabled": False} for name in ("ae", "rpca", "outlier_pursuit", "lof", "ocsvm")}
    res = invoke("outliers", "--config", write(tmp_path, cfg), "--out", str(tmp_path / "run"), "--quiet")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "summary.json").is_file()


def test_an_early_failure_imports_no_tensorflow(tmp_path):
    """A bad config or data path stops before TensorFlow is imported (so none of its start-up lines
    print), and the command sets TF_CPP_MIN_LOG_LEVEL before anything could import it."""
    import subprocess
    import sys

    probe = ("import os, sys\n"
             "from rda_cli.cli import main\n"
             "assert 'tensorflow' not in sys.modules and 'TF_CPP_MIN_LOG_LEVEL' not in os.environ\n"
             "sys.argv = ['rda', 'outliers', '--set', 'data.path=' + sys.argv[1]]\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules, os.environ['TF_CPP_MIN_LOG_LEVEL'])\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "nowhere")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.stdout.split() == ["2", "False", "False", "2"], out.stdout + out.stderr
    assert out.stderr.strip().startswith("rda: error:") and len(out.stderr.strip().splitlines()) == 1, out.stderr

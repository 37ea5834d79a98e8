"""rda benchmark: the ADBench loader, the detectors on planted outliers, the run folder and the CLI."""

import builtins
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from rda_cli.cli import main
from rda_cli.data.adbench import AdbenchError, find_sets, load_adbench, set_name
from rda_cli.experiments import benchmark as B
from rda_cli.experiments.config import validate

ADBENCH_DIR = Path(os.environ.get("RDA_TEST_ADBENCH", Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench"))
FAST_MODEL = {"pilot_outer": 3, "pilot_steps": 60, "warm_outer": 2, "warm_steps": 10, "n_members": 2}


def planted(n=240, d=6, n_out=12, seed=0):
    """Normal rows near a 2-D plane in ``d`` dimensions; anomalies pushed 6-9 sd off it in half the columns."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 2))
    X = Z @ rng.normal(size=(2, d)) + 0.1 * rng.normal(size=(n, d))
    y = np.zeros(n, np.int8)
    rows = rng.choice(n, n_out, replace=False)
    cols = rng.random((n_out, d)) < 0.5
    cols[:, 0] = True
    X[rows] += cols * rng.choice([-1, 1], size=(n_out, d)) * rng.uniform(6, 9, size=(n_out, d)) * X.std(axis=0)
    y[rows] = 1
    return X, y


def write_set(folder, name="1_planted", **kw):
    X, y = planted(**kw)
    path = Path(folder) / f"{name}.npz"
    np.savez(path, X=X, y=y)
    return path


def config(paths, **extra):
    raw = {"seeds": None, "data": {"paths": [str(p) for p in paths]}, "model": dict(FAST_MODEL)}  # one seed
    raw.update(extra)
    return validate(raw, B.SCHEMA)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# ----------------------------------------------------------------------------- loader
def test_loader_reads_and_finds(tmp_path):
    p = write_set(tmp_path, "12_tiny")
    write_set(tmp_path, "3_other", seed=1)
    X, y = load_adbench(p)
    assert X.dtype == np.float64 and y.dtype == np.int8 and X.shape == (240, 6) and y.sum() == 12
    assert set_name(p) == "tiny"
    assert [f.name for f in find_sets([str(tmp_path)])] == ["3_other.npz", "12_tiny.npz"]
    assert [f.name for f in find_sets([str(tmp_path / "*tiny*")])] == ["12_tiny.npz"]
    assert [f.name for f in find_sets([str(tmp_path)], ["TINY"])] == ["12_tiny.npz"]
    with pytest.raises(AdbenchError, match="not found among"):
        find_sets([str(tmp_path)], ["nope"])
    with pytest.raises(AdbenchError, match="no such file"):
        find_sets([str(tmp_path / "missing.npz")])
    with pytest.raises(AdbenchError, match="matches no"):
        find_sets([str(tmp_path / "zz*.npz")])


def _bad_files(tmp_path):
    X, y = planted()
    cases = {}

    def save(name, **arrays):
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        cases[name] = path

    save("no_y", X=X)
    save("one_d", X=X[:, 0], y=y)
    save("short_y", X=X, y=y[:-1])
    save("three_labels", X=X, y=np.where(y == 1, 2, y) + (np.arange(len(y)) % 2 == 0))
    save("nan", X=np.where(np.eye(*X.shape) > 0, np.nan, X), y=y)
    save("one_class", X=X, y=np.zeros_like(y))
    save("strings", X=X.astype(str), y=y)
    save("pickled", X=np.array([object()] * 3, dtype=object), y=np.zeros(3))
    text = tmp_path / "text.npz"
    text.write_text("not a zip\n")
    cases["text"] = text
    return cases


def test_loader_rejects_bad_files_in_one_line(tmp_path):
    for name, path in _bad_files(tmp_path).items():
        with pytest.raises(AdbenchError) as info:
            load_adbench(path)
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg, (name, msg)


def test_cli_bad_data_is_one_error_line(tmp_path):
    bad = _bad_files(tmp_path)
    for path in (bad["no_y"], bad["text"], tmp_path / "missing.npz"):
        res = invoke("benchmark", "--data", path, "--out", tmp_path / "run", "--quiet")
        assert res.exit_code == 2, res.output
        assert res.output.startswith("rda: error:") and len(res.output.strip().splitlines()) == 1, res.output
    good = write_set(tmp_path)
    res = invoke("benchmark", "--data", good, "--detectors", "iforest,bogus", "--quiet")
    assert res.exit_code == 2 and "bogus" in res.output and len(res.output.strip().splitlines()) == 1
    res = invoke("benchmark", "--data", good, "--set", "data.sets=[nope]", "--quiet")
    assert res.exit_code == 2 and "'data.sets'" in res.output and len(res.output.strip().splitlines()) == 1



def test_data_sets_are_bounded_before_reading(tmp_path):
    """`rda benchmark --data`: a FIFO named x.npz or a device is refused without opening it (never hangs);
    an .npz declaring 5e12 values is refused from its header (nothing allocated); members besides X and y
    are refused; no pickles."""
    import io
    import zipfile

    folder = tmp_path / "sets"
    folder.mkdir()
    write_set(folder)
    os.mkfifo(folder / "x.npz")
    with pytest.raises(AdbenchError, match="x.npz is a FIFO .named pipe., not a regular file"):
        find_sets([str(folder)])
    with pytest.raises(AdbenchError, match="/dev/zero is a device, not a regular file"):
        find_sets(["/dev/zero"])
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (5 * 10**12, 1)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as z:
        z.writestr("X.npy", header.getvalue() + b"\0" * 64)
        z.writestr("y.npy", header.getvalue())
    with pytest.raises(AdbenchError, match="declares shape .5000000000000, 1. of float64 .40 TB. but holds only"):
        load_adbench(tmp_path / "bomb.npz")
    X, y = planted()
    np.savez(tmp_path / "extra.npz", X=X, y=y, notes=np.zeros(3))
    with pytest.raises(AdbenchError, match="unexpected array 'notes'"):
        load_adbench(tmp_path / "extra.npz")
    res = invoke("benchmark", "--data", "/dev/zero", "--out", tmp_path / "run", "--quiet")
    assert res.exit_code == 2 and "not a regular file" in res.output and "no such" not in res.output, res.output


# ----------------------------------------------------------------------------- detectors
def test_rda_rule_is_general():
    """One rule for every shape: the batch grows with the rows, so every set gets about 2,000 steps."""
    cfg = validate({}, B.SCHEMA)["model"]
    shapes = {"small": (56, 19), "tall": (171540, 3), "wide": (1376, 1555)}
    rules = {k: B.rda_rule(cfg, *shape) for k, shape in shapes.items()}
    assert rules["small"]["layers"] == [19, 10, 5] and rules["small"]["batch_size"] == 56
    assert rules["tall"]["layers"] == [3, 2, 1] and rules["tall"]["batch_size"] == -(-171540 // 50)
    assert rules["wide"]["layers"] == [1555, 64, 32]
    for k, rule in rules.items():
        n = shapes[k][0]
        steps = rule["outer_iterations"] * rule["inner_epochs"] * -(-n // rule["batch_size"])
        assert 1500 <= steps <= 2600, (k, steps)
    from rda_cli.table_rule import DEFAULT_RULE, TableRule

    assert B.table_rule(cfg) == DEFAULT_RULE == TableRule()  # the schema's defaults are the table rule's


@pytest.mark.parametrize("detector", B.DETECTORS)
def test_every_detector_finds_planted_outliers(tmp_path, detector):
    if detector in B.PYOD_DETECTORS:
        pytest.importorskip("pyod")
    path = write_set(tmp_path)
    cfg = config([path], detectors=[detector])
    res, _ = B.compute_cell(cfg, {"id": "x", "set": "planted", "path": str(path), "detector": detector, "seed": 0})
    assert res["auroc"] > 0.8, res
    assert res["n_train"] == 168 and res["n_test"] == 72 and res["fit_seconds"] >= 0


def test_detectors_never_see_labels(tmp_path, monkeypatch):
    """Every fit is called with y=None, and run_detector has no label argument at all."""
    import inspect

    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    from rda_cli.baselines import RobustPCA
    from rda_cli.estimator import RobustAutoencoder

    assert "y" not in inspect.signature(B.run_detector).parameters
    classes = [IsolationForest, LocalOutlierFactor, OneClassSVM, RobustPCA, RobustAutoencoder]
    try:
        from pyod.models.copod import COPOD
        from pyod.models.ecod import ECOD
        from pyod.models.hbos import HBOS
        from pyod.models.knn import KNN

        classes += [KNN, ECOD, COPOD, HBOS]
    except ImportError:
        pass
    calls = []
    for cls in classes:
        original = cls.fit

        def spy(self, X, y=None, _original=original, **kw):
            calls.append(type(self).__name__)
            assert y is None, f"{type(self).__name__}.fit got labels"
            assert np.asarray(X).shape[1] == 6  # the features only, no label column
            return _original(self, X, **kw)

        monkeypatch.setattr(cls, "fit", spy)
    path = write_set(tmp_path)
    cfg = config([path])
    for det in B.runnable_detectors(cfg)[0]:
        B.compute_cell(cfg, {"id": "x", "set": "planted", "path": str(path), "detector": det, "seed": 0})
    assert {"IsolationForest", "RobustAutoencoder", "RobustPCA", "OneClassSVM", "LocalOutlierFactor"} <= set(calls)


def test_same_seed_same_numbers(tmp_path):
    path = write_set(tmp_path)
    cfg = config([path])
    cell = {"id": "x", "set": "planted", "path": str(path), "detector": "rda", "seed": 1}
    a, _ = B.compute_cell(cfg, cell)
    b, _ = B.compute_cell(cfg, cell)
    assert a["auroc"] == b["auroc"] and a["ap"] == b["ap"] and a["threshold"] == b["threshold"]


def test_quadratic_detectors_are_subsampled(tmp_path):
    path = write_set(tmp_path, n=400, n_out=20)
    cfg = config([path], quadratic_max_rows=100)
    res, _ = B.compute_cell(cfg, {"id": "x", "set": "planted", "path": str(path), "detector": "lof", "seed": 0})
    assert res["n_fit_rows"] == 100 and res["n_train"] == 280 and res["auroc"] > 0.8
    cfg["data"]["scaling"] = "standard"  # the other baseline scaling
    res, _ = B.compute_cell(cfg, {"id": "x", "set": "planted", "path": str(path), "detector": "ocsvm", "seed": 0})
    assert res["n_fit_rows"] == 100 and res["auroc"] > 0.8


# ----------------------------------------------------------------------------- runs
def _run_cfg(tmp_path, **extra):
    cfg = {"run_name": "t", "seeds": None, "data": {"paths": [str(write_set(tmp_path, "1_a")), str(write_set(tmp_path, "2_b", seed=3))]},
           "detectors": ["rda", "ae", "iforest", "ecod"], "model": dict(FAST_MODEL)}
    cfg.update(extra)
    path = tmp_path / "benchmark.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_resume_and_plot(tmp_path):
    pytest.importorskip("pyod")
    cfg = _run_cfg(tmp_path)
    out = tmp_path / "run"
    res = invoke("benchmark", "--config", cfg, "--out", out, "--quiet", "--seeds", "2")
    assert res.exit_code == 0, res.output
    assert "16 computed" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["overall"]) == {"rda", "ae", "iforest", "ecod"}
    assert summary["sets"]["a"]["detectors"]["rda"]["auroc"]["n"] == 2
    assert set(summary["versus"]) == {"ae", "iforest"}
    v = summary["versus"]["ae"]
    assert v["win"] + v["tie"] + v["loss"] == 2
    md = (out / "summary.md").read_text()
    assert "70%/30%" in md and "average rank" in md and "| a |" in md
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 17 and rows[0].startswith("id,set,detector,seed")
    for name in ("benchmark_scatter.png", "benchmark_ranks.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    # resume: only the missing cell is computed again
    (out / "cells" / "b__iforest_s1.json").unlink()
    res = invoke("benchmark", "--config", cfg, "--out", out, "--quiet", "--seeds", "2")
    assert res.exit_code == 0 and "1 computed, 15 read back" in res.output, res.output
    (out / "benchmark_ranks.png").unlink()
    res = invoke("plot", out)
    assert res.exit_code == 0 and "benchmark_ranks.png" in res.output
    assert (out / "benchmark_ranks.png").exists()


def test_transductive_protocol(tmp_path):
    cfg = _run_cfg(tmp_path, protocol="transductive", detectors=["rda", "iforest", "lof"])
    out = tmp_path / "run"
    res = invoke("benchmark", "--config", cfg, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    cell = json.loads((out / "cells" / "a__rda.json").read_text())
    assert cell["protocol"] == "transductive" and cell["n_train"] == cell["n_test"] == 240
    assert "transductive" in (out / "summary.md").read_text()


def test_pyod_missing_skips_its_detectors(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pyod(name, *args, **kwargs):
        if name == "pyod" or name.startswith("pyod."):
            raise ImportError("No module named 'pyod'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyod)
    cfg = _run_cfg(tmp_path, detectors=["iforest", "knn", "ecod"])
    out = tmp_path / "run"
    res = invoke("benchmark", "--config", cfg, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert "2 computed" in res.output and "skipped" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detectors"] == ["iforest"] and set(summary["skipped"]) == {"knn", "ecod"}
    assert "PyOD is not installed" in (out / "summary.md").read_text()


# ----------------------------------------------------------------------------- real data (skipped if absent)
@pytest.fixture(scope="module")
def adbench_dir():
    if not (ADBENCH_DIR / "14_glass.npz").exists():
        pytest.skip(f"ADBench sets not found at {ADBENCH_DIR} (set RDA_TEST_ADBENCH)")
    return ADBENCH_DIR


def test_real_small_sets(tmp_path, adbench_dir):
    for name in ("14_glass", "42_WBC", "21_Lymphography"):
        X, y = load_adbench(adbench_dir / f"{name}.npz")
        assert X.ndim == 2 and set(np.unique(y)) == {0, 1}
    cfg = config([adbench_dir], detectors=["rda", "iforest"])
    cfg["data"]["sets"] = ["WBC"]
    cells = B.list_cells(cfg)
    assert [c["id"] for c in cells] == ["WBC__rda", "WBC__iforest"]
    res, _ = B.compute_cell(cfg, cells[1])
    assert res["n_test"] == 67 and res["auroc"] > 0.8


def test_rda_ranks_every_test_row():
    """RDA's test scores are continuous: rows below the threshold are ranked too (no block of ties at 0)."""
    X, y = planted(n=300, n_out=15, seed=4)
    cfg = validate({"model": dict(FAST_MODEL)}, B.SCHEMA)
    X_fit, X_eval, y_eval = B.split(cfg, X, y, 0)
    scores, facts = B.run_detector(cfg, "rda", X_fit, X_eval, 0)
    assert len(np.unique(scores)) == len(scores)  # rows below the prox threshold are ordered too
    assert facts["n_flagged"] >= 1 and facts["threshold"] > 0

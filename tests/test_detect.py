"""`rda detect` / `rda score` on user tables, and the table reader / scaler behind them."""

import csv
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from rda_cli.cli import main
from rda_cli.detect import parse_overrides
from rda_cli.errors import RdaError
from rda_cli.selection import knee_index
from rda_cli.scaling import MinMaxScaler01
from rda_cli.tabular import TableError, read_table

from synthetic import with_outlier_rows

PNG = b"\x89PNG\r\n\x1a\n"
D = 20
FAST = ["--set", "outer_iterations=8", "--set", "inner_epochs=8", "--quiet"]  # a single model (with --lam etc.)
# the default detector (the ensemble), cheaper: 3 members, half the pilot's steps
FAST_ENS = ["--members", "3", "--set", "pilot_steps=100", "--quiet"]
# Arbitrary units: columns from 1e-2 to 1e3 wide, shifted, so the scaling matters.
SCALE = np.geomspace(0.01, 1000.0, D)
SHIFT = np.linspace(-50.0, 50.0, D)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_csv(path, X, ids=None, header=True):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if header:
            w.writerow((["id"] if ids is not None else []) + [f"f{j}" for j in range(X.shape[1])])
        for i, row in enumerate(X):
            w.writerow(([ids[i]] if ids is not None else []) + [repr(float(v)) for v in row])
    return path


def source(n, sample_seed):
    """Rows of one fixed non-linear 2-D manifold in 20-D (other samples for other seeds), 5% uniform
    random rows, in arbitrary units."""
    X, out = with_outlier_rows(n=n, d=D, fraction=0.05, seed=3, sample_seed=sample_seed)
    return X.astype(np.float64) * SCALE + SHIFT, out


def read_scores(path):
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    return header, rows


def check_explain(run, X, keys=None):
    """explain.csv holds each flagged row's top features (as scores.csv names them), with the cell as read
    and L.npy's value there, in the table's units; returns its rows as dicts."""
    header, rows = read_scores(run / "scores.csv")
    keys = keys if keys is not None else [str(i) for i in range(len(X))]
    where = {k: i for i, k in enumerate(keys)}
    named = {r[0]: [p.split(":") for p in r[3].split(";")] for r in rows if r[2] == "1" and r[3]}
    L = np.load(run / "L.npy")
    with open(run / "explain.csv", newline="") as fh:
        explain = list(csv.DictReader(fh))
    assert explain and list(explain[0]) == ["row", "feature", "value", "expected", "share"]
    got = {}
    for e in explain:
        i, j = where[e["row"]], int(e["feature"][1:])
        got.setdefault(e["row"], []).append([e["feature"], e["share"]])
        value = X[i, j]
        assert (e["value"] == "") if np.isnan(value) else float(e["value"]) == pytest.approx(value, rel=1e-5)
        assert float(e["expected"]) == pytest.approx(L[i, j], rel=1e-5, abs=1e-9)
    assert got == named  # the same rows and features, in the same order, as top_features
    return explain


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One default (the RDA ensemble) detect run on a CSV with a header and an id column."""
    tmp = tmp_path_factory.mktemp("detect")
    X, out = source(400, sample_seed=11)
    ids = [f"r{i:03d}" for i in range(len(X))]
    data = write_csv(tmp / "train.csv", X, ids)
    res = invoke("detect", "--data", data, "--id-column", "id", "--out", tmp / "run", *FAST_ENS)
    assert res.exit_code == 0, res.output
    return {"tmp": tmp, "X": X, "out": out, "ids": ids, "run": tmp / "run", "output": res.output}


def test_detect_end_to_end(fitted):
    run, X, truth = fitted["run"], fitted["X"], fitted["out"]
    assert "rows flagged by the RDA ensemble (3 members" in fitted["output"] and str(run) in fitted["output"]
    header, rows = read_scores(run / "scores.csv")
    assert header == ["id", "score", "flagged", "top_features"]
    assert [r[0] for r in rows] == fitted["ids"]
    scores = np.array([float(r[1]) for r in rows])
    flagged = np.array([int(r[2]) for r in rows])
    assert set(flagged) <= {0, 1} and np.array_equal(flagged == 1, scores > 0)
    assert roc_auc_score(truth, scores) >= 0.9
    assert 0 < flagged.sum() < len(X) // 4

    # L and S (the members' means) in the original units: same shape as the data; the part the model
    # leaves out, X - L - S, is exactly the scaled residual times each column's span.
    L, S = np.load(run / "L.npy"), np.load(run / "S.npy")
    assert L.shape == S.shape == X.shape
    from rda_cli import RobustAutoencoderEnsemble
    from rda_cli.scaling import RobustScaler01

    model = RobustAutoencoderEnsemble.load(run / "model")
    scaler = RobustScaler01.load(run / "model" / "scaler.json")
    # the model folder holds the networks, the scaler and the training rows' scores, not L and S
    model_bytes = sum(p.stat().st_size for p in (run / "model").rglob("*.npz"))
    assert model_bytes < (run / "L.npy").stat().st_size
    with pytest.raises(RdaError, match="keeps no training data"):
        model.decompose()
    # the members' L and S in scaled units are L.npy and S.npy mapped back: S is on the data's scale
    assert np.isfinite(scaler.transform(L)).all() and np.isfinite(S / scaler.span).all()
    # the flagged rows' S is on the scale of the data, not of [0, 1]
    assert np.abs(S).max() > 10
    np.testing.assert_allclose(scores, model.decision_scores_ - model.threshold_, atol=1e-4)

    report = (run / "report.md").read_text()
    assert "RDA ensemble" in report and "3 members" in report and "score_hist.png" in report
    assert report.count("| r") >= 20  # the top-20 table names rows by their ids
    assert (run / "score_hist.png").read_bytes().startswith(PNG)
    assert json.loads((run / "model" / "scaler.json").read_text())["id_column"] == "id"
    # explain.csv: rows named by their ids; the report says what S is for the ensemble
    check_explain(run, X, fitted["ids"])
    s_rows = int(np.any(S != 0, axis=1).sum())
    assert f"({s_rows} rows here)" in report and "`S` does not say which rows are flagged" in report
    assert json.loads((run / "detect.json").read_text())["lam"] is None


def test_score_new_rows(fitted, tmp_path):
    X_new, truth = source(200, sample_seed=12)  # same manifold, other points, other outliers
    data = write_csv(tmp_path / "new.csv", X_new, [f"n{i}" for i in range(len(X_new))])
    out = tmp_path / "new_scores.csv"
    res = invoke("score", "--model", fitted["run"] / "model", "--data", data, "--out", out)
    assert res.exit_code == 0, res.output
    header, rows = read_scores(out)
    assert header == ["id", "score", "flagged", "top_features"] and rows[0][0] == "n0" and len(rows) == 200
    scores = np.array([float(r[1]) for r in rows])
    assert roc_auc_score(truth, scores) >= 0.9
    # .npy rows without ids are numbered from 0; a single row can be scored too
    np.save(tmp_path / "one.npy", X_new[:1])
    res = invoke("score", "--model", fitted["run"] / "model", "--data", tmp_path / "one.npy", "--out", out)
    assert res.exit_code == 0, res.output
    header, rows = read_scores(out)
    assert header == ["row", "score", "flagged", "top_features"] and len(rows) == 1 and rows[0][0] == "0"
    assert float(rows[0][1]) == pytest.approx(scores[0], abs=1e-4)


def test_score_on_a_par_with_detect(fitted, tmp_path):
    """rda score: columns matched by name (any order, missing or extra ones refused by name), --id-column,
    the cut-off moved by --threshold or --contamination (score > 0 still flagged), a histogram beside the
    scores and both files 0644 under umask 022, the detect folder accepted as --model."""
    import os
    import stat

    X_new, _ = source(200, sample_seed=12)
    model = fitted["run"] / "model"
    ordered = write_csv(tmp_path / "ordered.csv", X_new, [f"n{i}" for i in range(len(X_new))])
    old = os.umask(0o022)
    try:
        res = invoke("score", "--model", fitted["run"], "--data", ordered, "--out", tmp_path / "base.csv")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert "rows flagged (the model's cut-off)" in res.output and "base_hist.png" in res.output
    for name in ("base.csv", "base_hist.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert (tmp_path / "base_hist.png").read_bytes().startswith(PNG)
    _, base = read_scores(tmp_path / "base.csv")
    base_scores = np.array([float(r[1]) for r in base])

    # the columns shuffled, the ids in a column the model does not know: by name, with --id-column
    order = np.random.default_rng(0).permutation(D)
    with open(tmp_path / "shuffled.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"f{j}" for j in order] + ["key"])
        for i, row in enumerate(X_new):
            w.writerow([repr(float(v)) for v in row[order]] + [f"k{i}"])
    res = invoke("score", "--model", model, "--data", tmp_path / "shuffled.csv", "--id-column", "key",
                 "--out", tmp_path / "shuffled_scores.csv")
    assert res.exit_code == 0, res.output
    header, rows = read_scores(tmp_path / "shuffled_scores.csv")
    assert header[0] == "key" and rows[0][0] == "k0"
    np.testing.assert_allclose([float(r[1]) for r in rows], base_scores, atol=1e-4)
    res = invoke("score", "--model", model, "--data", tmp_path / "shuffled.csv", "--out", tmp_path / "x.csv")
    assert_one_line_error(res, "'key'")  # a text column that is not named as ids
    with open(tmp_path / "short.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"f{j}" for j in range(1, D)] + ["extra"])
        w.writerows([[repr(float(v)) for v in row[1:]] + ["1.0"] for row in X_new[:5]])
    res = invoke("score", "--model", model, "--data", tmp_path / "short.csv", "--out", tmp_path / "x.csv")
    assert_one_line_error(res, "missing 'f0'; extra 'extra'")

    # the cut-off at scoring time: the scores less the new cut-off
    res = invoke("score", "--model", model, "--data", ordered, "--threshold", -0.5, "--out", tmp_path / "t.csv")
    assert res.exit_code == 0, res.output
    _, rows = read_scores(tmp_path / "t.csv")
    moved = np.array([float(r[1]) for r in rows])
    np.testing.assert_allclose(moved, base_scores + 0.5, atol=2e-5)
    assert [r[2] == "1" for r in rows] == list(moved > 0) and f"{int((moved > 0).sum())} of 200" in res.output
    res = invoke("score", "--model", model, "--data", ordered, "--contamination", 0.1, "--out", tmp_path / "c.csv")
    assert res.exit_code == 0, res.output
    _, rows = read_scores(tmp_path / "c.csv")
    flags = np.array([r[2] == "1" for r in rows])
    assert flags.sum() == 20
    assert set(np.flatnonzero(flags)) == set(np.argsort(-base_scores, kind="stable")[:20])
    assert "the top 0.1 of these rows" in res.output
    res = invoke("score", "--model", model, "--data", ordered, "--contamination", 0.1, "--threshold", 1,
                 "--out", tmp_path / "c.csv")
    assert_one_line_error(res, "--contamination or --threshold, not both")

    # a folder that holds a model/ but is not a detect result: "did you mean"
    (tmp_path / "copy").mkdir()
    import shutil

    shutil.copytree(model, tmp_path / "copy" / "model")
    res = invoke("score", "--model", tmp_path / "copy", "--data", ordered, "--out", tmp_path / "x.csv")
    assert_one_line_error(res, f"did you mean {tmp_path / 'copy' / 'model'}?")


def test_plot_redraws_a_detect_folder(fitted, tmp_path):
    """rda plot DETECT_DIR redraws score_hist.png and top_rows.png from the folder's files, the same
    figures, and the folder stays rda's own (its manifest updated), so --force may still replace it."""
    import shutil

    from rda_cli.owned import ownership_problem

    run = tmp_path / "run"
    shutil.copytree(fitted["run"], run)
    before = {n: (run / n).read_bytes() for n in ("score_hist.png", "top_rows.png")}
    for name in before:
        (run / name).unlink()
    res = invoke("plot", run)
    assert res.exit_code == 0, res.output
    assert "rda detect result with 400 rows; wrote score_hist.png, top_rows.png" in res.output
    assert {n: (run / n).read_bytes() for n in before} == before
    assert ownership_problem(run, "detect.json") is None
    (run / "scores.csv").write_text("id,score\nr0,x\n")
    assert_one_line_error(invoke("plot", run), "scores.csv or explain.csv is not as rda detect wrote it")


def test_messages_say_what_is_true(tmp_path):
    """A lambda that flags nothing says why and what to try; the ensemble's histogram is titled by its
    cut-off, not by a lambda, in good grammar."""
    from rda_cli.detect_report import histogram_title

    X, _ = source(200, sample_seed=41)
    data = write_csv(tmp_path / "t.csv", X)
    res = invoke("detect", "--data", data, "--lam", 1, "--out", tmp_path / "run", "--set", "outer_iterations=1",
                 "--set", "inner_epochs=1", "--quiet")
    assert res.exit_code == 0, res.output
    assert "0 of 200 rows flagged" in res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("rda detect: no row flagged: every row's residual stays below the prox threshold")
    lam_to_flag = float(line.split("try --lam below about ")[1].split(" ")[0])
    assert 0 < lam_to_flag < 1
    assert "no row flagged" in (tmp_path / "run" / "report.md").read_text()
    info = {"data": "x/t.csv", "detector": "ensemble", "n_members": 1, "threshold": 2.5, "lam": None}
    assert histogram_title(info) == "rda detect: t.csv, RDA ensemble of 1 member, cut-off 2.5"


def test_progress_phases_and_a_resumed_bar(monkeypatch):
    """The ensemble's fits are one bar (member and phase named, a fit that stops early counted done); a
    bar that starts with work already done starts there, and its ETA counts only new work."""
    from rda_cli import cli
    from rda_cli.progress import Phases

    seen = []
    phases = Phases(lambda *a: seen.append(a), ["m1 pilot", "m1 rda", "m2 pilot"])
    for done in (1, 2, 3, 1, 2, 1, 2, 3):  # the second fit stopped after 2 of 3 outer iterations
        phases(done, 3)
    assert [(k, label) for k, _, label, _ in seen] == [(0, "m1 pilot")] * 3 + [(1, "m1 rda")] * 2 + [(2, "m2 pilot")] * 3
    assert all(total == 3 for _, total, _, _ in seen)

    bar = cli._Progress(False, "rda outliers")
    try:
        bar(16, 16, None)  # a resumed sweep with every cell read back
        assert bar.bar.pos == bar.base == 1600 and bar.bar.pct == 1.0 and "ETA" not in bar._show()
    finally:
        bar.close()
    bar = cli._Progress(False, "rda outliers")
    try:
        bar(2, 4, None)
        monkeypatch.setattr(cli.time, "time", lambda real=cli.time.time: real() + 10)
        bar(3, 4, "c3")
        assert bar.bar.pos == 300 and "ETA 10s" in bar._show()  # 10 s for the one cell computed, one left
    finally:
        bar.close()


def test_contamination_flags_about_that_fraction(tmp_path):
    X, truth = source(400, sample_seed=21)
    np.save(tmp_path / "data.npy", X)
    res = invoke("detect", "--data", tmp_path / "data.npy", "--contamination", 0.05, "--out", tmp_path / "run",
                 *FAST_ENS)
    assert res.exit_code == 0, res.output
    header, rows = read_scores(tmp_path / "run" / "scores.csv")
    assert header == ["row", "score", "flagged", "top_features"]
    n_flagged = sum(int(r[2]) for r in rows)
    assert n_flagged == 20  # the ensemble flags the top 5% of its scores
    assert "top 0.05 of the scores" in (tmp_path / "run" / "report.md").read_text()
    # a single model searches lambda for about a fraction with --lam-for-fraction; --contamination (a cut-off)
    # is the ensemble's, refused for it with what to use instead
    res = invoke("detect", "--data", tmp_path / "data.npy", "--penalty", "l1", "--lam-for-fraction", 0.05, "--out",
                 tmp_path / "run_l1", *FAST)
    assert res.exit_code == 0, res.output
    assert "lam_for_fraction 0.05" in (tmp_path / "run_l1" / "report.md").read_text()
    res = invoke("detect", "--data", tmp_path / "data.npy", "--penalty", "l1", "--contamination", 0.05, "--out",
                 tmp_path / "run_l1c", *FAST)
    assert res.exit_code == 2 and "--lam-for-fraction" in res.output and not (tmp_path / "run_l1c").exists()


# ------------------------------------------------------------------ bad input
def _write(name, text):
    def make(d):
        (d / name).write_text(text)
        return d / name
    return make


def _csv_text(text):
    return _write("data.csv", text)


def _good_rows(n=5):
    return "a,b,c\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(n))


BAD_DETECT = [
    ("missing file", lambda d: d / "nope.csv", [], "does not exist"),
    ("empty file", _csv_text(""), [], "is empty"),
    ("blank lines only", _csv_text("\n\n"), [], "is empty"),
    ("header only", _csv_text("a,b,c\n"), [], "no data rows"),
    ("non-numeric cell", _csv_text(_good_rows() + "7,oops,1\n"), [], "non-numeric value 'oops'"),
    ("empty cell", _csv_text(_good_rows() + "7,,1\n"), ["--missing", "refuse"], "empty cell"),
    ("nan", _csv_text(_good_rows() + "7,nan,1\n"), ["--missing", "refuse"], "finite"),
    ("row with no value", _csv_text(_good_rows() + ",,\n" + "nan,nan,nan\n"), [], "data row 6 has no value"),
    ("column with no value", _csv_text("a,b\n1,\n2,\n3,\n"), [], "column 'b' has no value in any row"),
    ("inf", _csv_text(_good_rows() + "7,1,-inf\n"), [], "finite"),
    ("ragged row", _csv_text(_good_rows() + "7,1\n"), [], "has 2 cells, expected 3"),
    ("single row", _csv_text("a,b,c\n1,2,3\n"), [], "at least 2"),
    ("unknown id column", _csv_text(_good_rows()), ["--id-column", "ids"], "no column named 'ids'"),
    ("unsupported type", _write("data.txt", "1,2\n3,4\n"), [],
     "unsupported file type"),
    ("npy nan", lambda d: np.save(d / "x.npy", np.array([[1.0, np.nan], [2.0, 3.0]])) or d / "x.npy",
     ["--missing", "refuse"], "finite"),
    ("npy 1-D", lambda d: np.save(d / "x.npy", np.arange(5.0)) or d / "x.npy", [], "2-D"),
    ("lam and lam-for-fraction", _csv_text(_good_rows()), ["--lam", "0.001", "--lam-for-fraction", "0.1"],
     "either --lam or --lam-for-fraction"),
    ("contamination too big", _csv_text(_good_rows()), ["--contamination", "0.7"], "(0, 0.5)"),
    ("lam-for-fraction too big", _csv_text(_good_rows()), ["--lam-for-fraction", "0.5"], "(0, 0.5)"),
    ("unknown setting", _csv_text(_good_rows()), ["--set", "inner_epoch=3"], "did you mean 'inner_epochs'"),
    ("bad setting value", _csv_text(_good_rows()), ["--set", "batch_size=0"], "batch_size"),
    ("bad layers", _csv_text(_good_rows()), ["--layers", "4,x"], "--layers"),
    # the default detector (the ensemble) sizes its own members and takes the table rule's settings
    ("layers for the ensemble", _csv_text(_good_rows()), ["--layers", "4"], "--layers sizes a single model"),
    ("single-model setting for the ensemble", _csv_text(_good_rows()), ["--set", "inner_epochs=3"],
     "a setting of a single model"),
    ("bad ensemble setting", _csv_text(_good_rows()), ["--set", "pilot_steps=0"], "pilot_steps"),
    ("members with lam", _csv_text(_good_rows()), ["--lam", "0.01", "--members", "2"], "--members"),
    ("ensemble setting with lam", _csv_text(_good_rows()), ["--lam", "0.01", "--set", "pilot_steps=5"],
     "a setting of the ensemble"),
]


def assert_one_line_error(res, message):
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rda: error:"), res.output
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("name, make, extra, message", BAD_DETECT, ids=[b[0] for b in BAD_DETECT])
def test_detect_bad_input(tmp_path, name, make, extra, message):
    inputs = tmp_path / "in"
    inputs.mkdir()
    data = make(inputs)
    work = tmp_path / "work"
    work.mkdir()
    res = invoke("detect", "--data", data, "--out", work / "run", "--quiet", *extra)
    assert_one_line_error(res, message)
    assert list(work.iterdir()) == []  # no result folder, no temporary folder


def test_score_bad_input(fitted, tmp_path):
    model = fitted["run"] / "model"
    X = fitted["X"]
    out = tmp_path / "s.csv"
    np.save(tmp_path / "narrow.npy", X[:5, :-1])
    assert_one_line_error(invoke("score", "--model", model, "--data", tmp_path / "narrow.npy", "--out", out),
                          "has 19 feature columns but the model was fitted on 20")
    write_csv(tmp_path / "renamed.csv", X[:5], [str(i) for i in range(5)])
    text = (tmp_path / "renamed.csv").read_text().replace("f3", "g3", 1)
    (tmp_path / "renamed.csv").write_text(text)
    assert_one_line_error(invoke("score", "--model", model, "--data", tmp_path / "renamed.csv", "--out", out),
                          "missing 'f3'; extra 'g3'")
    assert_one_line_error(invoke("score", "--model", tmp_path, "--data", tmp_path / "narrow.npy", "--out", out),
                          "not a model folder")
    assert_one_line_error(invoke("score", "--model", model, "--data", tmp_path / "nope.csv", "--out", out),
                          "does not exist")
    assert not out.exists()


# ------------------------------------------------------------------ library pieces
def test_read_table_formats(tmp_path):
    (tmp_path / "h.csv").write_text("1,2,3\n4,5,6\n")  # no header: first row is numeric
    t = read_table(tmp_path / "h.csv")
    assert not t.has_header and t.X.tolist() == [[1, 2, 3], [4, 5, 6]] and t.ids is None
    (tmp_path / "i.csv").write_text("name,x,y\nalpha,1,2\nbeta,3,4\n")
    t = read_table(tmp_path / "i.csv", id_column="name")
    assert t.ids == ["alpha", "beta"] and t.feature_names == ["x", "y"] and t.X.shape == (2, 2)
    with pytest.raises(TableError, match="non-numeric value 'alpha'"):
        read_table(tmp_path / "i.csv")  # the text column must be named as the id column
    np.savez(tmp_path / "a.npz", meta=np.arange(3), X=np.ones((3, 2)))
    assert read_table(tmp_path / "a.npz").X.shape == (3, 2)
    np.savez(tmp_path / "b.npz", meta=np.arange(3), data=np.ones((4, 5)))
    assert read_table(tmp_path / "b.npz").X.shape == (4, 5)


def test_scaler_constant_columns_and_json(tmp_path):
    X = np.array([[0.0, 5.0, 10.0], [2.0, 5.0, 30.0], [4.0, 5.0, 20.0]])
    sc = MinMaxScaler01().fit(X, ["a", "b", "c"], "id")
    Z = sc.transform(X)
    assert np.isfinite(Z).all() and Z.min() >= 0 and Z.max() <= 1
    np.testing.assert_allclose(Z[:, 1], 0.5)
    np.testing.assert_allclose(sc.inverse_transform(Z), X, atol=1e-5)
    new = sc.transform(np.array([[8.0, 6.0, 10.0], [0.0, 4.0, 10.0]]))
    assert new[0, 0] == pytest.approx(2.0)  # outside the fitted range: not clipped
    assert new[0, 1] == 1.0 and new[1, 1] == 0.0  # a constant column that moved
    sc.save(tmp_path / "scaler.json")
    back = MinMaxScaler01.load(tmp_path / "scaler.json")
    assert back.feature_names == ["a", "b", "c"] and back.id_column == "id"
    np.testing.assert_array_equal(back.transform(X), Z)
    assert "pickle" not in (tmp_path / "scaler.json").read_text()


def test_knee_and_overrides():
    lams = np.geomspace(1e-3, 1e-2, 8)
    counts = [190, 100, 25, 20, 20, 19, 10, 1]  # steep drop, then a plateau of the outlying rows
    # as rda detect calls it: log lambda axis, counts as they are
    assert knee_index(lams, counts, scale="log", count_scale="linear") in (2, 3)
    assert knee_index(lams, [5] * 8, scale="log", count_scale="linear") == 0
    assert parse_overrides(["inner_epochs=3", "tied=false"]) == {"inner_epochs": 3, "tied": False}
    with pytest.raises(ValueError, match="use `penalty`"):  # the library names parameters, the CLI flags
        parse_overrides(["penalty=l1"])


# ------------------------------------------------------------------ explanations, missing values, streaming
@pytest.fixture(scope="module")
def planted_columns(tmp_path_factory):
    """A table whose outlying rows are abnormal in two known columns each; one detect run on it."""
    from synthetic import manifold

    tmp = tmp_path_factory.mktemp("why")
    X = manifold(600, D, seed=3).astype(np.float64)
    rng = np.random.default_rng(5)
    rows = rng.choice(len(X), 24, replace=False)
    cols = {int(r): [int(c) for c in rng.choice(D, 2, replace=False)] for r in rows}
    for r, c in cols.items():
        X[r, c] = np.where(X[r, c] > 0.5, 0.0, 1.0)
    X = X * SCALE + SHIFT
    data = write_csv(tmp / "t.csv", X, [f"r{i}" for i in range(len(X))])
    res = invoke("detect", "--data", data, "--id-column", "id", "--contamination", 0.04, "--out", tmp / "run",
                 *FAST_ENS)
    assert res.exit_code == 0, res.output
    return tmp, X, cols


def test_top_features_name_the_planted_columns(planted_columns):
    tmp, X, cols = planted_columns
    header, rows = read_scores(tmp / "run" / "scores.csv")
    assert header[:3] == ["id", "score", "flagged"] and header[3] == "top_features"
    named = 0
    for i, r in enumerate(rows):
        if r[2] == "0":
            assert r[3] == ""
            continue
        parts = [p.split(":") for p in r[3].split(";")]
        shares = [float(v) for _, v in parts]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 1 + 1e-9
        if i in cols:
            named += {n for n, _ in parts[:2]} == {f"f{c}" for c in cols[i]}
    flagged_planted = sum(rows[i][2] == "1" for i in cols)
    assert flagged_planted >= 20 and named >= 0.9 * flagged_planted, (named, flagged_planted)
    report = (tmp / "run" / "report.md").read_text()
    assert "top_rows.png" in report and "top features" in report
    assert (tmp / "run" / "top_rows.png").read_bytes().startswith(PNG)
    # in the table's units: a planted cell's value lies far from what the model expected there, the
    # expected value inside the column's range
    explain = check_explain(tmp / "run", X, [f"r{i}" for i in range(len(X))])
    span = X.max(axis=0) - X.min(axis=0)
    planted = [e for e in explain if int(e["row"][1:]) in cols and int(e["feature"][1:]) in cols[int(e["row"][1:])]]
    assert len(planted) >= 30
    for e in planted:
        j = int(e["feature"][1:])
        assert abs(float(e["value"]) - float(e["expected"])) > 0.3 * span[j], e
        assert X[:, j].min() - 0.1 * span[j] <= float(e["expected"]) <= X[:, j].max() + 0.1 * span[j], e


def test_score_streams_chunks_with_the_same_result(planted_columns, tmp_path, monkeypatch):
    """Scores of a file read in many small chunks equal those of one read; top features for new rows too."""
    from rda_cli import tabular

    tmp, X, cols = planted_columns
    # new rows (the training file itself would be scored by its fitted decomposition in one read)
    data = write_csv(tmp_path / "new.csv", X[::-1], [f"n{i}" for i in range(len(X))])
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    monkeypatch.setattr(tabular, "_have_arrow", lambda: False)  # one chunk (read_table)
    assert invoke("score", "--model", tmp / "run" / "model", "--data", data, "--out", whole).exit_code == 0
    monkeypatch.undo()
    pytest.importorskip("pyarrow")
    real = tabular.iter_table
    monkeypatch.setattr(tabular, "iter_table", lambda *a, **k: real(*a, **dict(k, block_bytes=4096)))
    assert invoke("score", "--model", tmp / "run" / "model", "--data", data, "--out", chunked).exit_code == 0
    a, b = read_scores(whole), read_scores(chunked)
    assert a[0] == b[0] and [r[0] for r in a[1]] == [r[0] for r in b[1]]
    # float32 products of other batch shapes round differently: equal to about 1e-4
    np.testing.assert_allclose([float(r[1]) for r in a[1]], [float(r[1]) for r in b[1]], rtol=1e-3, atol=1e-4)
    assert sum(r[2] != q[2] for r, q in zip(a[1], b[1])) <= 1
    assert sum(r[3] != "" for r in b[1]) == sum(r[2] == "1" for r in b[1]) > 0


def test_detect_and_score_with_missing_cells(tmp_path):
    X, truth = source(400, sample_seed=31)
    Xm = X.copy()
    miss = np.random.default_rng(2).random(X.shape) < 0.1
    Xm[miss] = np.nan
    text = "\n".join([",".join(f"f{j}" for j in range(D))]
                     + [",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in Xm]) + "\n"
    (tmp_path / "m.csv").write_text(text)
    res = invoke("detect", "--data", tmp_path / "m.csv", "--out", tmp_path / "run", *FAST_ENS)
    assert res.exit_code == 0, res.output
    imputed = np.load(tmp_path / "run" / "imputed.npy")
    assert imputed.shape == X.shape and not np.isnan(imputed).any()
    np.testing.assert_array_equal(imputed[~miss], X[~miss])
    col_mean = np.where(miss, np.nanmean(Xm, axis=0), Xm)
    rng = X.max(axis=0) - X.min(axis=0)  # the default detector imputes with the members' mean L
    inl = miss & ~truth[:, None]
    err = lambda A: np.sqrt(np.mean(((A - X) / rng)[inl] ** 2))  # noqa: E731
    assert err(imputed) < err(col_mean)
    scores = np.array([float(r[1]) for r in read_scores(tmp_path / "run" / "scores.csv")[1]])
    assert roc_auc_score(truth, scores) >= 0.9
    assert "missing values:" in (tmp_path / "run" / "report.md").read_text()
    check_explain(tmp_path / "run", Xm)  # a missing cell: no value; expected: its imputed value
    res = invoke("score", "--model", tmp_path / "run" / "model", "--data", tmp_path / "m.csv", "--out", tmp_path / "s.csv")
    assert res.exit_code == 0, res.output
    res = invoke("score", "--model", tmp_path / "run" / "model", "--data", tmp_path / "m.csv", "--out",
                 tmp_path / "s2.csv", "--missing", "refuse")
    assert_one_line_error(res, "empty cell")


# ------------------------------------------------------------------ the other penalties, end to end
def test_detect_and_score_with_the_l1_penalty(tmp_path):
    """Single bad cells: flagged rows are those with a non-zero cell of S; score reads the model back."""
    X, _ = source(300, sample_seed=31)
    rng = np.random.default_rng(5)
    bad = rng.choice(len(X), 15, replace=False)
    cols = rng.integers(0, D, size=15)
    lo, hi = X.min(axis=0), X.max(axis=0)
    for i, c in zip(bad, cols):  # one cell per bad row flipped to the far end of its column's range
        X[i, c] = lo[c] if X[i, c] > (lo[c] + hi[c]) / 2 else hi[c]
    data = write_csv(tmp_path / "cells.csv", X)
    res = invoke("detect", "--data", data, "--penalty", "l1", "--out", tmp_path / "run", *FAST)
    assert res.exit_code == 0, res.output
    assert "rows flagged" in res.output and "rows penalty l1" in res.output
    header, rows = read_scores(tmp_path / "run" / "scores.csv")
    flagged = np.array([int(r[2]) for r in rows]) == 1
    scores = np.array([float(r[1]) for r in rows])
    assert np.array_equal(flagged, scores > 0)
    truth = np.zeros(len(X), bool)
    truth[bad] = True
    assert roc_auc_score(truth, scores) >= 0.9
    S = np.load(tmp_path / "run" / "S.npy")
    np.testing.assert_array_equal(flagged, (S != 0).any(axis=1))
    # the planted cell is the top feature of its flagged row
    hits = [rows[i][3].split(":")[0] == f"f{c}" for i, c in zip(bad, cols) if flagged[i]]
    assert hits and np.mean(hits) >= 0.8, hits
    check_explain(tmp_path / "run", X)  # rows numbered as scores.csv numbers them
    assert not (tmp_path / "run" / "columns.csv").exists()
    out = tmp_path / "scored.csv"
    res = invoke("score", "--model", tmp_path / "run" / "model", "--data", data, "--out", out)
    assert res.exit_code == 0, res.output
    assert f"{int(flagged.sum())} of {len(X)} rows flagged" in res.output
    _, again = read_scores(out)
    np.testing.assert_allclose([float(r[1]) for r in again], scores, rtol=1e-4, atol=1e-5)


def test_detect_and_score_with_the_l21_cols_penalty(tmp_path):
    """Corrupted columns: the columns are flagged (report, columns.csv), no row is; score ranks rows by
    their residual norm."""
    X, _ = source(300, sample_seed=32)
    rng = np.random.default_rng(6)
    X[:, [4, 11]] = SHIFT[[4, 11]] + SCALE[[4, 11]] * rng.random((len(X), 2)) * 3
    data = write_csv(tmp_path / "cols.csv", X)
    res = invoke("detect", "--data", data, "--penalty", "l21_cols", "--lam-for-fraction", 0.1, "--out", tmp_path / "run",
                 *FAST, "--set", "reinitialize=auto")
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    with open(run / "columns.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    flagged_cols = [r["column"] for r in table if r["flagged"] == "1"]
    assert len(table) == D and set(flagged_cols[:2]) == {"f4", "f11"}  # the corrupted ones, largest S norms first
    n_cols = len(flagged_cols)
    assert n_cols <= 3  # lam_for_fraction 0.1 of 20 columns: 2, within the search's tolerance of 1
    assert f"{n_cols} of {D} columns flagged" in res.output
    report = (run / "report.md").read_text()
    assert f"**{n_cols} of {D} columns**" in report and "| f4 |" in report and "| f11 |" in report
    info = json.loads((run / "detect.json").read_text())
    assert info["reinitialize"] == "auto" and info["n_flagged"] == 0
    assert set(info["flagged_columns"]) == {r["column"] for r in table if r["flagged"] == "1"}
    report = (run / "report.md").read_text()  # how sure each column call is
    assert "residual norm / threshold" in report and "no column would be flagged at lambda above about" in report
    _, rows = read_scores(run / "scores.csv")
    assert all(r[2] == "0" for r in rows)  # a column penalty flags no row
    scores = np.array([float(r[1]) for r in rows])
    assert (scores > 0).all()  # residual norms
    out = tmp_path / "scored.csv"
    res = invoke("score", "--model", run / "model", "--data", data, "--out", out)
    assert res.exit_code == 0, res.output
    assert f"0 of {len(X)} rows flagged" in res.output
    _, again = read_scores(out)
    np.testing.assert_allclose([float(r[1]) for r in again], scores, rtol=1e-4)
    np.save(tmp_path / "one.npy", X[:1])  # a single row is scored too
    res = invoke("score", "--model", run / "model", "--data", tmp_path / "one.npy", "--out", out)
    assert res.exit_code == 0, res.output


def test_extreme_cells_are_scored_not_a_bug(tmp_path):
    """A cell of 1e25: the default detector scales it within 10^6 training spans, fits, and ranks its row
    first, every score finite. A column of +-1e308 (its span beyond float64): refused before training."""
    X, _ = with_outlier_rows(n=200, d=5, fraction=0.0, seed=0)
    X = X.astype(float)
    X[:, 4] = np.where(np.arange(len(X)) % 2 == 0, 1e308, -1e308)
    path = tmp_path / "x.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c,d,e", comments="", fmt="%.17g")
    res = invoke("detect", "--data", path, "--out", tmp_path / "run", "--quiet")
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert f"{path}: column 5 spans -1e+308 to 1e+308" in res.output and not (tmp_path / "run").exists()
    X[:, 4] = 0.5
    X[7, 2] = 1e25
    np.savetxt(path, X, delimiter=",", header="a,b,c,d,e", comments="", fmt="%.17g")
    res = invoke("detect", "--data", path, "--out", tmp_path / "run", "--members", "1", "--set", "pilot_steps=50",
                 "--set", "warm_outer=2", "--quiet")
    assert res.exit_code == 0, res.output
    scores = np.loadtxt(tmp_path / "run" / "scores.csv", delimiter=",", skiprows=1, usecols=1)
    assert np.isfinite(scores).all() and int(np.argmax(scores)) == 7


# ------------------------------------------------------------------ where results go: one ownership rule
# (rda_cli/owned.py, rda_cli/outputs.py; docs/reliability.md). A single fast model where training is needed.
QUICK = ["--lam", "0.01", "--set", "outer_iterations=1", "--set", "inner_epochs=1", "--quiet"]


def tree(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def one_line(res, code, text):
    assert res.exit_code == code, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rda: error:") and "Traceback" not in res.output, res.output
    assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def small(tmp_path):
    X, _ = with_outlier_rows(n=60, d=5, fraction=0.05, seed=0)
    data = tmp_path / "d.csv"
    np.savetxt(data, X, delimiter=",", header="a,b,c,d,e", comments="")
    return data


def test_force_claims_no_folder_without_its_manifest(fitted, small, tmp_path):
    """rda-like names are no claim; nor is a real result whose top manifest was deleted."""
    u = tmp_path / "u"
    u.mkdir()
    (u / "detect.json").write_text("{}")
    (u / "scores.csv").write_text("id,mine\n")
    (u / "report.md").write_text("# my report\n")
    before = tree(u)
    line = one_line(invoke("detect", "--data", small, "--out", u, "--force", *QUICK), 2, "did not write")
    assert str(u) in line and ".rda-files.json" in line and tree(u) == before
    import shutil

    r = tmp_path / "r"
    shutil.copytree(fitted["run"], r)
    (r / ".rda-files.json").unlink()
    (r / "report.md").write_text("# my edits\n")
    before = tree(r)
    one_line(invoke("detect", "--data", small, "--out", r, "--force", *QUICK), 2, str(r))
    assert tree(r) == before and sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "r", "u"]


def test_a_folder_that_appears_during_detect_is_kept(small, tmp_path, monkeypatch):
    import rda_cli.detect as detect_module

    out = tmp_path / "X"
    real = detect_module.write_result

    def user_makes_the_folder(*args, **kw):
        out.mkdir()
        (out / "report.md").write_text("notes")
        return real(*args, **kw)

    monkeypatch.setattr(detect_module, "write_result", user_makes_the_folder)
    line = one_line(invoke("detect", "--data", small, "--out", out, *QUICK), 1, "appeared")
    assert str(out) in line and "discarded" in line
    assert tree(out) == {"report.md": b"notes"} and sorted(p.name for p in tmp_path.iterdir()) == ["X", "d.csv"]


def test_two_detect_runs_on_one_new_folder_the_later_loses_loudly(small, tmp_path, monkeypatch):
    """Run B claims the new folder, then run A starts, finishes and puts its result there while B trains:
    B loses (one line, exit 1) and A's result is intact."""
    import rda_cli.detect as detect_module
    from rda_cli.owned import ownership_problem

    out = tmp_path / "X"
    real = detect_module.write_result
    started = []

    def a_finishes_first(*args, **kw):
        if not started:
            started.append(True)
            detect_module.detect(small, out, lam=0.01, overrides=("outer_iterations=1", "inner_epochs=1"))
        return real(*args, **kw)

    monkeypatch.setattr(detect_module, "write_result", a_finishes_first)
    one_line(invoke("detect", "--data", small, "--out", out, *QUICK), 1, "appeared or was filled while rda ran")
    assert ownership_problem(out, "detect.json") is None  # A's result, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X", "d.csv"]


def test_score_writes_into_no_folder_rda_owns(fitted, tmp_path):
    """Not the model folder, not a member folder, not the result folder: so the result stays replaceable."""
    from rda_cli.owned import claim

    run = fitted["run"]
    data = write_csv(tmp_path / "new.csv", fitted["X"][:5], fitted["ids"][:5])
    for out in (run / "model" / "s.csv", run / "model" / "member_0" / "s.csv", run / "s.csv",
                run / "model" / "member_0" / "sub" / "s.csv"):
        one_line(invoke("score", "--model", run / "model", "--data", data, "--out", out), 2,
                 "model folder or result folder that rda wrote as a whole")
        assert not out.exists()
    assert claim(run, "detect.json").state == "owned"  # rda detect --out run --force may replace it


def test_score_output_messages_and_permissions(fitted, tmp_path, monkeypatch):
    import errno

    import rda_cli.outputs as outputs
    import rda_cli.safeio as safeio

    model = fitted["run"] / "model"
    data = write_csv(tmp_path / "new.csv", fitted["X"][:5], fitted["ids"][:5])
    out = tmp_path / "s.csv"
    (tmp_path / ".s.csv.rda-scores.json").mkdir()  # the sidecar's name taken by a folder: named, not a temp file
    line = one_line(invoke("score", "--model", model, "--data", data, "--out", out), 2, "sidecar")
    assert str(tmp_path / ".s.csv.rda-scores.json") in line and ".tmp" not in line
    (tmp_path / ".s.csv.rda-scores.json").rmdir()

    def read_only(*args, **kw):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".s.csv.rda-x.tmp"))

    with monkeypatch.context() as m:  # cannot create the file: refused before any row is read (exit 2)
        m.setattr(safeio.tempfile, "mkstemp", read_only)
        one_line(invoke("score", "--model", model, "--data", data, "--out", out), 2, "Read-only file system")

    def disk_full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write through a file object: no name

    with monkeypatch.context() as m:
        m.setattr(outputs, "scores_csv", disk_full)
        line = one_line(invoke("score", "--model", model, "--data", data, "--out", out), 1, "No space left")
        assert str(out) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv"]
    old = os.umask(0o022)
    try:
        odd = tmp_path / "s\nnew.csv"
        res = invoke("score", "--model", model, "--data", data, "--out", odd)
        assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 1 and repr(str(odd)) in res.output
        assert stat.S_IMODE(odd.stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_detect_result_follows_the_umask_with_a_long_name_and_a_line_break(small, tmp_path):
    name = "r\n" + "x" * 248  # 250 characters: temporary names must still fit the 255-byte limit
    out = tmp_path / name
    old = os.umask(0o022)
    try:
        res = invoke("detect", "--data", small, "--out", out, *QUICK)
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert len(res.output.strip().splitlines()) == 1 and repr(str(out)) in res.output
    assert {stat.S_IMODE(d.stat().st_mode) for d in (out, out / "model")} == {0o755}
    assert {stat.S_IMODE((out / f).stat().st_mode) for f in ("scores.csv", "report.md", "detect.json",
                                                              "model/params.json")} == {0o644}


def test_a_full_disk_in_detect_names_the_folder(small, tmp_path, monkeypatch):
    import errno

    import rda_cli.detect as detect_module

    def disk_full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(detect_module, "write_result", disk_full)
    line = one_line(invoke("detect", "--data", small, "--out", tmp_path / "o", *QUICK), 1, "No space left")
    assert str(tmp_path / "o") in line and sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_a_data_file_named_dot_csv_does_not_make_the_default_out_the_detect_folder():
    from rda_cli.detect import default_out_dir

    assert default_out_dir("..csv") == default_out_dir("...csv") != Path("results") / "detect"
    assert default_out_dir("data/train.csv") == Path("results") / "detect" / "train"

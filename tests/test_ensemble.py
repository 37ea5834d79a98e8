"""``RobustAutoencoderEnsemble``: one code path with the benchmark, explanations, seeds, files, single rows."""

import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from rda_cli import RobustAutoencoderEnsemble
from rda_cli.cli import main
from rda_cli.detect import detect
from rda_cli.errors import RdaError
from rda_cli.owned import NotOwnedError
from rda_cli.experiments import benchmark as B
from rda_cli.experiments.config import validate
from rda_cli.persistence import ModelFileError
from rda_cli.scaling import RobustScaler01
from rda_cli.table_rule import fit_member, member_seed

QUICK = dict(n_members=2, pilot_outer=3, pilot_steps=60, warm_outer=2, warm_steps=10)


def planted_table(n=2000, d=24, n_out=60, seed=0):
    """The issue's table: a 4-D manifold in raw units 40..60; ``n_out`` rows +40 in column 3, -40 in column 17."""
    rng = np.random.default_rng([seed, 21])
    u = rng.uniform(-1, 1, size=(n, 4))
    A = rng.normal(0, 1.5, size=(4, d))
    X = 40 + 20 / (1 + np.exp(-(u @ A + rng.normal(0, 0.5, size=d)))) + rng.normal(0, 0.3, size=(n, d))
    rows = rng.choice(n, n_out, replace=False)
    y = np.zeros(n, int)
    y[rows] = 1
    X[rows, 3] += 40.0
    X[rows, 17] -= 40.0
    return X, y


@pytest.fixture(scope="module")
def small():
    X, y = planted_table(n=400, d=18, n_out=12, seed=1)
    return X, y, RobustAutoencoderEnsemble(**QUICK, random_state=3).fit(X)


def test_benchmark_cell_and_detect_are_one_code_path(tmp_path):
    """The benchmark's RDA cell and ``rda detect`` fit the same ensemble: identical scores, same seed."""
    X, _ = planted_table(n=300, d=18, n_out=10, seed=2)
    np.save(tmp_path / "t.npy", X)
    cfg = validate({"protocol": "transductive", "seed": 5, "model": dict(QUICK)}, B.SCHEMA)
    bench, facts = B.run_detector(cfg, "rda-ens", X, X, 5)
    info = detect(tmp_path / "t.npy", tmp_path / "run", overrides=[f"{k}={v}" for k, v in QUICK.items()]
                  + ["random_state=5"])
    rows = (tmp_path / "run" / "scores.csv").read_text().splitlines()[1:]
    ours = np.array([float(r.split(",")[1]) for r in rows]) + info["threshold"]
    np.testing.assert_allclose(ours, bench, atol=1e-5)  # scores.csv keeps 6 significant digits
    assert facts["n_members"] == 2 and info["n_members"] == 2
    # the single RDA (n_members=1, no tail score, no forest) is member 0 of the same function
    single, _ = B.run_detector(cfg, "rda", X, X, 5)
    ens = RobustAutoencoderEnsemble(**dict(QUICK, n_members=1, tail=False, forest=False), random_state=5).fit(X)
    model, _ = fit_member(ens.scaler_.transform(X), member_seed(5, 0), "l21_rows", ens.rule())
    np.testing.assert_allclose(single, ens.decision_scores_)
    z = model.decision_function(ens.scaler_.transform(X))
    np.testing.assert_allclose(ens.decision_scores_, (z - ens.member_location_[0]) / ens.member_scale_[0])


def test_planted_columns_explained_in_raw_units():
    """On the issue's table (raw units) the default ensemble flags the planted rows and names f3 and f17."""
    X, y = planted_table()
    ens = RobustAutoencoderEnsemble(random_state=0).fit(X)
    assert roc_auc_score(y, ens.decision_scores_) >= 0.99
    flagged = np.flatnonzero((ens.labels_ == 1) & (y == 1))
    assert len(flagged) >= 0.9 * y.sum()
    shares = ens.feature_contributions(X)
    top2 = np.argsort(-shares[flagged], axis=1)[:, :2]
    named = np.mean([set(t) == {3, 17} for t in top2])
    assert named >= 0.9, named
    assert np.all(shares >= 0) and np.all(shares.sum(axis=1) <= 1 + 1e-9)
    # the loop starts warm: each member's first prox holds about 5% of the rows, not most of them
    assert max(i["first_flagged"] for i in ens.member_info_) <= 0.10


def test_same_seed_same_scores(small):
    X, _, ens = small
    again = RobustAutoencoderEnsemble(**QUICK, random_state=3).fit(X)
    np.testing.assert_array_equal(again.decision_scores_, ens.decision_scores_)
    other = RobustAutoencoderEnsemble(**QUICK, random_state=4).fit(X)
    assert not np.array_equal(other.decision_scores_, ens.decision_scores_)


def test_flags_and_contamination(small):
    X, y, ens = small
    np.testing.assert_array_equal(ens.labels_, (ens.decision_scores_ > ens.threshold_).astype(int))
    assert roc_auc_score(y, ens.decision_scores_) >= 0.9  # a short schedule: ranked well, not all flagged
    assert np.array_equal(ens.predict(X) == -1, ens.labels_ == 1)
    top = RobustAutoencoderEnsemble(**QUICK, contamination=0.05, random_state=3).fit(X)
    assert top.labels_.sum() == 20


def test_save_load_single_rows_and_missing_values(small, tmp_path):
    X, _, ens = small
    ens.save(tmp_path / "m")
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "m").rglob("*"))
    back = RobustAutoencoderEnsemble.load(tmp_path / "m")
    assert back.get_params() == ens.get_params() and back.threshold_ == ens.threshold_
    new = X[::-1] + 0.01
    np.testing.assert_allclose(back.decision_function(new), ens.decision_function(new), atol=1e-6)
    np.testing.assert_allclose(back.decision_function(X), ens.decision_scores_, atol=1e-6)
    one = back.decision_function(new[:1])
    assert one.shape == (1,) and one[0] == pytest.approx(ens.decision_function(new)[0], abs=1e-4)
    gaps = new[:5].copy()
    gaps[:, 2] = np.nan
    assert np.isfinite(back.decision_function(gaps)).all()
    assert (back.feature_contributions(gaps)[:, 2] == 0).all()
    meta = json.loads((tmp_path / "m" / "ensemble.json").read_text())
    meta["member_scale_"][0] = -1
    (tmp_path / "m" / "ensemble.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="normalisation"):
        RobustAutoencoderEnsemble.load(tmp_path / "m")
    (tmp_path / "m" / "ensemble.json").write_text("{")
    with pytest.raises(ModelFileError):
        RobustAutoencoderEnsemble.load(tmp_path / "m")


def test_parameters_are_checked():
    X = np.random.default_rng(0).random((50, 4))
    for bad in ({"n_members": 0}, {"n_members": 9}, {"penalty": "l1"}, {"warm_learning_rate": 0},
                {"member_grid": "nope"}, {"combine": "median"}):
        with pytest.raises(ValueError):
            RobustAutoencoderEnsemble(**bad).fit(X)


DIVERSE = dict(QUICK, n_members=3, member_grid="extent", combine="max", tail=True, forest=True)


@pytest.fixture(scope="module")
def diverse():
    X, y = planted_table(n=400, d=18, n_out=12, seed=1)
    return X, y, RobustAutoencoderEnsemble(**DIVERSE, random_state=3).fit(X)


def test_extent_grid_members_combined_per_row(diverse):
    """Members over learning rate and scaling ("extent"), the tail score and the forest as two more, each row's
    largest robust z: member 1 learns at a tenth of the rate, member 2 on min-max scaled rows."""
    X, y, ens = diverse
    assert ens.member_scalings_ == ["robust", "robust", "minmax"]
    assert [i["pilot_learning_rate"] for i in ens.member_info_] == pytest.approx([0.01, 0.001, 0.01])
    Z = ens.member_scores(X)
    assert Z.shape == (5, len(X))  # three networks, the tail score and the forest
    np.testing.assert_allclose(ens.decision_scores_, Z.max(axis=0))
    np.testing.assert_allclose(ens.decision_function(X[:9]), ens.member_scores(X[:9]).max(axis=0))
    _, scores = ens.feature_contributions(X[:9], return_scores=True)
    np.testing.assert_allclose(scores, ens.decision_function(X[:9]))
    assert roc_auc_score(y, ens.decision_scores_) >= 0.9
    again = RobustAutoencoderEnsemble(**DIVERSE, random_state=3).fit(X)
    np.testing.assert_array_equal(again.decision_scores_, ens.decision_scores_)


def test_extent_grid_save_load_identical_scores(diverse, tmp_path):
    X, _, ens = diverse
    ens.save(tmp_path / "m")
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"scaler_minmax.json", "tail.npz", "forest.npz"} <= names
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "m").rglob("*"))
    back = RobustAutoencoderEnsemble.load(tmp_path / "m")
    assert back.get_params() == ens.get_params() and back.threshold_ == ens.threshold_
    new = X[::-1] + 0.01
    np.testing.assert_array_equal(back.decision_function(new), ens.decision_function(new))
    np.testing.assert_array_equal(back.decision_function(X), ens.decision_scores_)
    np.savez(tmp_path / "m" / "tail.npz", quantiles=np.zeros((3, 5)), right_skewed=np.ones(5, bool), counts=np.ones(5))
    with pytest.raises(ModelFileError):
        RobustAutoencoderEnsemble.load(tmp_path / "m")


def test_forest_is_one_more_member_saved_as_arrays(small, tmp_path):
    """With ``forest`` an Isolation Forest (kept as arrays) is the row after the tail score's, normalised
    against its own training scores; it contributes no explanation shares; ``forest.npz`` round-trips
    the scores exactly and a crafted one is refused with one line naming it."""
    from rda_cli.forest import ForestScore

    X = small[0]
    ens = RobustAutoencoderEnsemble(**dict(QUICK, n_members=1), forest=True, random_state=3).fit(X)
    Z = ens.member_scores(X)
    assert Z.shape == (3, len(X))  # one network, the tail score, the forest
    raw = ForestScore(random_state=3).fit(ens.scaler_.transform(X)).score(ens.scaler_.transform(X))
    np.testing.assert_allclose(Z[2], (raw - ens.member_location_[2]) / ens.member_scale_[2])
    np.testing.assert_allclose(ens.decision_scores_, Z.mean(axis=0))
    shares, scores = ens.feature_contributions(X[:9], return_scores=True)
    np.testing.assert_allclose(shares, ens.members_[0].feature_contributions(ens.scaler_.transform(X[:9])))
    np.testing.assert_allclose(scores, ens.member_scores(X[:9]).mean(axis=0))
    L, S = ens.decompose(X)
    assert L.shape == S.shape == X.shape
    ens.save(tmp_path / "m")
    assert {"tail.npz", "forest.npz"} <= {p.name for p in (tmp_path / "m").iterdir()}
    back = RobustAutoencoderEnsemble.load(tmp_path / "m")
    assert back.forest and back.get_params() == ens.get_params()
    new = X[::-1] + 0.01
    np.testing.assert_array_equal(back.decision_function(new), ens.decision_function(new))
    np.testing.assert_array_equal(back.member_scores(new), ens.member_scores(new))
    arrays = ens.forest_.to_arrays()
    arrays["left"] = np.where(arrays["left"] > 0, 0, arrays["left"])  # every child back to the root: a cycle
    np.savez(tmp_path / "m" / "forest.npz", **arrays)
    with pytest.raises(ModelFileError, match="forest.npz: forest node children") as info:
        RobustAutoencoderEnsemble.load(tmp_path / "m")
    assert "\n" not in str(info.value) and str(tmp_path / "m" / "forest.npz") in str(info.value)
    np.savez(tmp_path / "m" / "forest.npz", **dict(arrays, extra=np.zeros(2)))
    with pytest.raises(ModelFileError, match="forest.npz: unexpected array"):
        RobustAutoencoderEnsemble.load(tmp_path / "m")
    (tmp_path / "m" / "forest.npz").unlink()
    with pytest.raises(ModelFileError, match="forest.npz does not exist"):
        RobustAutoencoderEnsemble.load(tmp_path / "m")


def test_folder_saved_before_the_grid_settings_keeps_its_behaviour(small, tmp_path):
    """A folder whose parameters predate member_grid / combine / tail / forest (the previous default: the widths
    grid, averaged, no tail score) loads with that behaviour, not with today's defaults."""
    X = small[0]
    ens = RobustAutoencoderEnsemble(**QUICK, member_grid="widths", combine="mean", tail=False, forest=False,
                                    random_state=3).fit(X)
    ens.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "ensemble.json").read_text())
    for name in ("member_grid", "combine", "tail", "forest"):
        meta["params"].pop(name)
    (tmp_path / "m" / "ensemble.json").write_text(json.dumps(meta))
    back = RobustAutoencoderEnsemble.load(tmp_path / "m")
    assert (back.member_grid, back.combine, back.tail, back.forest) == ("widths", "mean", False, False)
    np.testing.assert_array_equal(back.decision_function(X[:20]), ens.decision_function(X[:20]))


# ------------------------------------------------------------------ model folders: versions, size, ownership, guards
ENSEMBLE_V1 = Path(__file__).parent / "data" / "ensemble-v1"  # saved by version 1 (members with L_ and S_)
SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _expected_v1():
    with np.load(ENSEMBLE_V1.parent / "ensemble-v1-expected.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The version-1 fixture, the same ensemble saved by this version (2), and a CSV of its columns."""
    tmp = tmp_path_factory.mktemp("ensfolders")
    shutil.copytree(ENSEMBLE_V1, tmp / "v1")
    RobustAutoencoderEnsemble.load(ENSEMBLE_V1).save(tmp / "v2")
    X = _expected_v1()["X_new"]
    np.savetxt(tmp / "d.csv", np.nan_to_num(X, nan=45.0), delimiter=",", header="a,b,c,d", comments="")
    return tmp


def test_folders_of_version_1_load_with_their_scores(folders):
    """tests/data/ensemble-v1 was written by version 1 (two members keeping L_ and S_; one missing cell);
    it loads and scores as it did then, and saved again (version 2) it keeps every score."""
    z = _expected_v1()
    for folder in (ENSEMBLE_V1, folders / "v2"):
        ens = RobustAutoencoderEnsemble.load(folder)
        np.testing.assert_array_equal(ens.decision_scores_, z["decision_scores_"])
        np.testing.assert_allclose(ens.decision_function(z["X_new"]), z["decision_function"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ens.decision_function(z["X"]), z["training_scores"], rtol=1e-6, atol=1e-7)
        shares, scores = ens.feature_contributions(z["X_new"], return_scores=True)
        np.testing.assert_allclose(shares, z["shares"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(scores, z["decision_function"], rtol=1e-6, atol=1e-7)
    v1, v2 = RobustAutoencoderEnsemble.load(ENSEMBLE_V1), RobustAutoencoderEnsemble.load(folders / "v2")
    np.testing.assert_array_equal(v1.decision_function(z["X_new"]), v2.decision_function(z["X_new"]))


def test_a_saved_ensemble_holds_no_training_data(small, tmp_path):
    """Members are saved as networks (arrays.npz: the column means where missing entries start); the
    training rows' scores are one vector; a loaded ensemble scores new rows exactly as the fitted one and
    gives the training rows their fitted scores."""
    X, _, ens = small
    ens.save(tmp_path / "m")
    for j in range(len(ens.members_)):
        with np.load(tmp_path / "m" / f"member_{j}" / "arrays.npz") as a:
            assert a.files == ["fill_values"] and a["fill_values"].shape == (X.shape[1],)
    with np.load(tmp_path / "m" / "scores.npz") as a:
        assert a.files == ["decision_scores_"] and a["decision_scores_"].shape == (len(X),)
    back = RobustAutoencoderEnsemble.load(tmp_path / "m")
    new = X[::-1] + 0.01
    new[:3, 2] = np.nan
    np.testing.assert_array_equal(back.decision_function(new), ens.decision_function(new))
    np.testing.assert_array_equal(back.feature_contributions(new), ens.feature_contributions(new))
    np.testing.assert_array_equal(back.decision_function(X), ens.decision_scores_)
    np.testing.assert_array_equal(back.labels_, ens.labels_)
    with pytest.raises(RdaError, match="keeps no training data"):
        back.decompose()
    back.save(tmp_path / "again")  # a loaded ensemble saves again, the same files
    for name in ("scores.npz", "ensemble.json", "scaler.json", "member_0/arrays.npz", "member_1/params.json"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "m" / name).read_bytes(), name


def test_save_replaces_only_its_own_folders(small, tmp_path):
    """Issue 27 item 3: the one ownership rule (rda_cli.owned): what a user added is never deleted, a folder
    with foreign files is not replaced, and no manifest, no claim."""
    _, _, ens = small
    m = tmp_path / "m"
    ens.save(m)
    ens.save(m)  # its own folder: replaced
    for added in ("NOTES.md", "member_0/plots/"):
        target = m / added.rstrip("/")
        target.mkdir() if added.endswith("/") else target.write_text("mine")
        with pytest.raises(NotOwnedError, match="it is not replaced"):
            ens.save(m)
        assert target.exists()
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    (m / "scaler.json").write_text((m / "scaler.json").read_text().replace("1", "2", 1))  # edited by hand
    with pytest.raises(NotOwnedError, match="changed since rda wrote it"):
        ens.save(m)
    for name, files in (("thesis", {"ensemble.json": "{}", "thesis.tex": "\\chapter{}"}), ("mine", {"a.txt": "a"})):
        folder = tmp_path / name
        folder.mkdir()
        for f, text in files.items():
            (folder / f).write_text(text)
        with pytest.raises(NotOwnedError, match="holds files rda did not write"):
            ens.save(folder)
        assert {p.name: p.read_text() for p in folder.iterdir()} == files
    old = tmp_path / "old"  # a folder of version 1: no manifest at its top, so not claimed
    shutil.copytree(ENSEMBLE_V1, old)
    with pytest.raises(NotOwnedError, match="no .rda-files.json"):
        ens.save(old)
    assert sorted(p.relative_to(old) for p in old.rglob("*")) == sorted(p.relative_to(ENSEMBLE_V1)
                                                                        for p in ENSEMBLE_V1.rglob("*"))


def _npy_header(shape, descr="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _bomb(path, declared_rows, inflated_rows=0):
    """An .npz whose decision_scores_ declares ``declared_rows`` float64 and holds ``inflated_rows`` zeros, deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("decision_scores_.npy", _npy_header((declared_rows,)) + b"\0" * (8 * inflated_rows or 64))


def _edit_json(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def damage(folder, how, target, cut=0, junk=b""):
    """Damage one file of an ensemble folder as ``how`` says (the cases of issues 26 and 27)."""
    path = folder / target
    if how == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif how == "dev-zero":
        path.unlink()
        path.symlink_to("/dev/zero")
    elif how == "folder":
        path.unlink()
        path.mkdir()
    elif how == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "duplicate-key":
        path.write_text(path.read_text().replace("{", '{"kind": "x", ', 1) if target.endswith(".json")
                        else '{"a": 1, "a": 2}')
    elif how == "true-count":
        _edit_json(folder / "ensemble.json", lambda m: m["params"].update(n_members=True))
    elif how == "declared-rows":
        _bomb(folder / "scores.npz", 10 ** 12)
    elif how == "inflating":
        _bomb(folder / "scores.npz", 2_000_000, 2_000_000)  # 16 MB from 16 KB
    elif how == "nan-scores":
        n = len(np.load(folder / "scores.npz")["decision_scores_"])
        np.savez(folder / "scores.npz", decision_scores_=np.full(n, np.nan))
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[:cut])
    else:  # junk
        path.write_bytes(junk)


FILES = ("ensemble.json", "scaler.json", "scores.npz")


@pytest.mark.parametrize("how,target", [
    *[(how, name) for how in ("fifo", "dev-zero") for name in FILES],
    ("deep", "ensemble.json"), ("deep", "scaler.json"), ("duplicate-key", "ensemble.json"),
    ("true-count", "ensemble.json"), ("declared-rows", "scores.npz"), ("inflating", "scores.npz"),
    ("nan-scores", "scores.npz")])
def test_rda_score_refuses_damaged_ensemble_folders_in_one_line(folders, tmp_path, how, target):
    """Issue 26 / 27 item 6 through ``rda score``: one ``rda: error:`` line naming the file, exit 2, at once."""
    folder = tmp_path / "m"
    shutil.copytree(folders / "v2", folder)
    damage(folder, how, target)
    out = tmp_path / "s.csv"
    t0 = time.monotonic()
    res = CliRunner().invoke(main, ["score", "--model", str(folder), "--data", str(folders / "d.csv"), "--out", str(out)])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("rda: error:"), res.output
    assert str(folder / ("ensemble.json" if how == "true-count" else target)) in lines[0], lines[0]
    assert "bug" not in lines[0] and not out.exists() and time.monotonic() - t0 < 10


@settings(max_examples=60, **SETTINGS)
@given(version=st.sampled_from(["v1", "v2"]),
       target=st.sampled_from([*FILES, "member_0/params.json", "member_1/arrays.npz"]),
       how=st.sampled_from(["fifo", "dev-zero", "folder", "deep", "duplicate-key", "true-count", "declared-rows",
                            "inflating", "nan-scores", "truncate", "junk"]),
       cut=st.integers(0, 3000), junk=st.binary(max_size=300))
def test_generated_damaged_ensemble_folders_are_one_error(folders, version, target, how, cut, junk):
    """Generated folders: each loads, or is one ModelFileError line (an OSError at worst), never a hang or
    another exception; a truncated file loads only when the cut left it whole."""
    folder = folders / "work"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(folders / version, folder)
    whole = (folder / target).read_bytes()
    damage(folder, how, target, cut, junk)
    t0 = time.monotonic()
    try:
        RobustAutoencoderEnsemble.load(folder)
        outcome = "ok"
    except ModelFileError as exc:
        outcome = str(exc)
        assert "\n" not in outcome and len(outcome) < 600, outcome
    except OSError:
        outcome = "oserror"
    assert time.monotonic() - t0 < 10
    loads = (how == "truncate" and cut >= len(whole)) or (how == "junk" and junk == whole)
    assert (outcome == "ok") == loads, (how, target, outcome)


# ------------------------------------------------------------------ isolate: rows the networks do not learn
def test_networks_do_not_learn_the_rows_the_feature_wise_members_isolate():
    """With ``isolate`` the networks learn every row but the fraction the tail score and the forest score
    highest, the scalings are estimated on the learned rows, and every training row is still scored."""
    X, y = planted_table(n=400, d=18, n_out=12, seed=1)
    ens = RobustAutoencoderEnsemble(**QUICK, isolate=0.2, random_state=3).fit(X)
    assert ens.n_learned_ == 320
    assert all(len(m.S_) == ens.n_learned_ for m in ens.members_)
    feature_z = ens.member_scores(X)[len(ens.members_):].mean(axis=0)
    learned = feature_z <= np.quantile(feature_z, 0.8)
    assert learned.sum() == ens.n_learned_ and not learned[y == 1].any()  # the planted rows are isolated
    np.testing.assert_allclose(ens.scaler_.low, RobustScaler01().fit(X[learned]).low)
    assert ens.decision_scores_.shape == (len(X),)
    np.testing.assert_allclose(ens.decision_function(X), ens.decision_scores_)
    with pytest.raises(RdaError, match="isolate"):
        ens.decompose()
    L, S = ens.decompose(X)
    assert L.shape == S.shape == X.shape
    everyone = RobustAutoencoderEnsemble(**QUICK, isolate=0.0, random_state=3).fit(X)
    assert everyone.n_learned_ == len(X) and all(len(m.S_) == len(X) for m in everyone.members_)
    # without a feature-wise member there is nothing to isolate by: every row is learned
    plain = RobustAutoencoderEnsemble(**QUICK, tail=False, forest=False, isolate=0.2, random_state=3).fit(X)
    assert plain.n_learned_ == len(X)


def test_n_learned_is_saved_and_checked(tmp_path):
    X, _ = planted_table(n=300, d=18, n_out=9, seed=2)
    ens = RobustAutoencoderEnsemble(**QUICK, random_state=1).fit(X)
    ens.save(tmp_path / "m")
    assert RobustAutoencoderEnsemble.load(tmp_path / "m").n_learned_ == ens.n_learned_ < len(X)
    meta = json.loads((tmp_path / "m" / "ensemble.json").read_text())
    for bad in (0, len(X) + 1, "many", True):
        (tmp_path / "m" / "ensemble.json").write_text(json.dumps(dict(meta, n_learned_=bad)))
        with pytest.raises(ModelFileError, match="n_learned_"):
            RobustAutoencoderEnsemble.load(tmp_path / "m")
    meta.pop("n_learned_")  # a folder saved before isolate: every row
    (tmp_path / "m" / "ensemble.json").write_text(json.dumps(meta))
    assert RobustAutoencoderEnsemble.load(tmp_path / "m").n_learned_ == len(X)

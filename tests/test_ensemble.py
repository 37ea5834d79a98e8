"""``RobustAutoencoderEnsemble``: one code path with the benchmark, explanations, seeds, files, single rows."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rda_cli import RobustAutoencoderEnsemble
from rda_cli.detect import detect
from rda_cli.experiments import benchmark as B
from rda_cli.experiments.config import validate
from rda_cli.persistence import ModelFileError
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
    # the single RDA (n_members=1, no tail score) is member 0 of the same function
    single, _ = B.run_detector(cfg, "rda", X, X, 5)
    ens = RobustAutoencoderEnsemble(**dict(QUICK, n_members=1, tail=False), random_state=5).fit(X)
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


DIVERSE = dict(QUICK, n_members=3, member_grid="extent", combine="max", tail=True)


@pytest.fixture(scope="module")
def diverse():
    X, y = planted_table(n=400, d=18, n_out=12, seed=1)
    return X, y, RobustAutoencoderEnsemble(**DIVERSE, random_state=3).fit(X)


def test_extent_grid_members_combined_per_row(diverse):
    """Members over learning rate and scaling ("extent"), the tail score as one more member, each row's
    largest robust z: member 1 learns at a tenth of the rate, member 2 on min-max scaled rows."""
    X, y, ens = diverse
    assert ens.member_scalings_ == ["robust", "robust", "minmax"]
    assert [i["pilot_learning_rate"] for i in ens.member_info_] == pytest.approx([0.01, 0.001, 0.01])
    Z = ens.member_scores(X)
    assert Z.shape == (4, len(X))  # three networks and the tail score
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
    assert {"scaler_minmax.json", "tail.npz"} <= names and not any(p.suffix == ".pkl" for p in (tmp_path / "m").rglob("*"))
    back = RobustAutoencoderEnsemble.load(tmp_path / "m")
    assert back.get_params() == ens.get_params() and back.threshold_ == ens.threshold_
    new = X[::-1] + 0.01
    np.testing.assert_array_equal(back.decision_function(new), ens.decision_function(new))
    np.testing.assert_array_equal(back.decision_function(X), ens.decision_scores_)
    np.savez(tmp_path / "m" / "tail.npz", quantiles=np.zeros((3, 5)), right_skewed=np.ones(5, bool), counts=np.ones(5))
    with pytest.raises(ModelFileError):
        RobustAutoencoderEnsemble.load(tmp_path / "m")


def test_folder_saved_before_the_grid_settings_keeps_its_behaviour(small, tmp_path):
    """A folder whose parameters predate member_grid / combine / tail (the previous default: the widths
    grid, averaged, no tail score) loads with that behaviour, not with today's defaults."""
    X = small[0]
    ens = RobustAutoencoderEnsemble(**QUICK, member_grid="widths", combine="mean", tail=False, random_state=3).fit(X)
    ens.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "ensemble.json").read_text())
    for name in ("member_grid", "combine", "tail"):
        meta["params"].pop(name)
    (tmp_path / "m" / "ensemble.json").write_text(json.dumps(meta))
    back = RobustAutoencoderEnsemble.load(tmp_path / "m")
    assert (back.member_grid, back.combine, back.tail) == ("widths", "mean", False)
    np.testing.assert_array_equal(back.decision_function(X[:20]), ens.decision_function(X[:20]))

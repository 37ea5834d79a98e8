"""Missing values (NaN) handled by the decomposition, and per-feature explanations."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rda_cli import RobustAutoencoder
from synthetic import manifold, with_outlier_rows

KW = dict(layers=[50, 25, 5], batch_size=64, learning_rate=0.01, random_state=0, outer_iterations=10,
          inner_epochs=10, lam=0.0015)


def with_missing(X, fraction, seed):
    mask = np.random.default_rng(seed).random(X.shape) < fraction
    Xm = X.copy()
    Xm[mask] = np.nan
    return Xm, mask


@pytest.fixture(scope="module")
def planted():
    X, truth = with_outlier_rows(n=1000, d=50, fraction=0.05, seed=0)
    complete = RobustAutoencoder(**KW).fit(X)
    Xm, miss = with_missing(X, 0.1, seed=7)
    return X, truth, complete, Xm, miss, RobustAutoencoder(**KW).fit(Xm)


def test_auroc_with_10_percent_missing_within_002_of_complete(planted):
    X, truth, complete, Xm, _, model = planted
    base = roc_auc_score(truth, complete.decision_function(X))
    assert roc_auc_score(truth, model.decision_function(Xm)) >= base - 0.02
    assert roc_auc_score(truth, model.decision_scores_) >= base - 0.02
    # new rows with missing entries too
    Xn, tn = with_outlier_rows(n=400, d=50, fraction=0.05, seed=0, sample_seed=50)
    Xnm, _ = with_missing(Xn, 0.1, seed=8)
    assert roc_auc_score(tn, model.decision_function(Xnm)) >= roc_auc_score(tn, complete.decision_function(Xn)) - 0.02


def test_imputation_beats_column_means(planted):
    X, truth, _, Xm, miss, model = planted
    sel = miss & ~truth[:, None]  # the inlier rows' missing entries (outlier rows are uniform noise)
    rmse = np.sqrt(np.mean((model.L_[sel] - X[sel]) ** 2))
    column_means = np.where(miss, np.nanmean(Xm, axis=0)[None, :], Xm)
    assert rmse < 0.5 * np.sqrt(np.mean((column_means[sel] - X[sel]) ** 2))
    np.testing.assert_array_equal(model.impute(Xm), np.where(miss, model.L_, Xm))
    assert not np.isnan(model.impute(Xm)).any()


def test_missing_entries_carry_no_sparse_part_and_observed_ones_are_kept(planted):
    *_, Xm, miss, model = planted
    assert not model.S_[miss].any()
    assert np.isfinite(model.L_).all() and np.isfinite(model.decision_scores_).all()
    np.testing.assert_array_equal(model.labels_, model.decision_scores_ > model.threshold_)
    for method in ("transform", "predict", "score_samples", "reconstruct"):
        assert np.isfinite(getattr(model, method)(Xm[:50])).all(), method


def test_save_and_load_keep_the_missing_mask(planted, tmp_path):
    *_, Xm, _, model = planted
    model.save(tmp_path / "m")
    loaded = RobustAutoencoder.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_scores_, model.decision_scores_)
    np.testing.assert_array_equal(loaded.decision_function(Xm), model.decision_function(Xm))


def test_rows_or_columns_with_nothing_observed_are_refused(planted):
    *_, model = planted
    X = manifold(100, 50)
    X[3] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        RobustAutoencoder(**KW).fit(X)
    with pytest.raises(ValueError, match="row 3"):
        model.decision_function(X)
    X = manifold(100, 50)
    X[:, 7] = np.nan
    with pytest.raises(ValueError, match="column 7"):
        RobustAutoencoder(**KW).fit(X)
    assert np.isfinite(model.decision_function(X)).all()  # new data: the network fills the column


def test_masked_training_does_not_retrace(planted):
    from rda_cli.autoencoder import cached_trainer

    *_, Xm, _, _ = planted
    trainer = cached_trainer(KW["layers"], True, KW["learning_rate"], KW["batch_size"])
    RobustAutoencoder(**dict(KW, outer_iterations=2, inner_epochs=1)).fit(Xm)
    traced = trainer.traces
    Xm2, _ = with_missing(manifold(1000, 50, sample_seed=3), 0.2, seed=1)  # same shape, other mask
    RobustAutoencoder(**dict(KW, outer_iterations=2, inner_epochs=1)).fit(Xm2)
    assert trainer.traces == traced


def test_feature_contributions_name_the_planted_columns_first():
    """Rows made abnormal in known columns: those columns carry the largest shares."""
    X = manifold(1000, 50, seed=0)
    rng = np.random.default_rng(4)
    rows = rng.choice(1000, 40, replace=False)
    cols = {int(r): rng.choice(50, 3, replace=False) for r in rows}
    for r, c in cols.items():
        X[r, c] = np.where(X[r, c] > 0.5, 0.0, 1.0)  # flip three features of the row
    model = RobustAutoencoder(**dict(KW, lam=0.001)).fit(X)
    share = model.feature_contributions(X)
    assert share.shape == X.shape and np.all(share >= 0)
    np.testing.assert_allclose(share.sum(axis=1)[share.sum(axis=1) > 0], 1, rtol=1e-6)
    hits = [set(np.argsort(-share[r])[:3]) == set(cols[r]) for r in cols]
    first = [int(np.argmax(share[r])) in set(cols[r]) for r in cols]
    assert np.mean(first) >= 0.95 and np.mean(hits) >= 0.8, (np.mean(first), np.mean(hits))
    # unseen rows: the same, from the residual (or S) found for them
    Xn = manifold(200, 50, seed=0, sample_seed=9)
    Xn[:20, 5] = np.where(Xn[:20, 5] > 0.5, 0.0, 1.0)
    assert np.mean(np.argmax(model.feature_contributions(Xn)[:20], axis=1) == 5) >= 0.9

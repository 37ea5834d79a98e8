"""Baseline detectors on synthetic data with planted outlier rows."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rda_cli.baselines import OutlierPursuit, RobustPCA, lof_scores, ocsvm_scores, svt, top_fraction_mask

from synthetic import with_outlier_rows


@pytest.fixture(scope="module")
def data():
    return with_outlier_rows(n=300, d=30, fraction=0.06, seed=1)


def test_svt_matches_full_svd():
    rng = np.random.default_rng(0)
    for shape in ((40, 12), (12, 40)):
        M = rng.normal(size=shape)
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
        tau = float(np.median(s))
        expected = (U * np.maximum(s - tau, 0)) @ Vt
        L, rank = svt(M, tau)
        assert rank == int((s > tau).sum())
        np.testing.assert_allclose(L, expected, atol=1e-8)


@pytest.mark.parametrize("model", [RobustPCA(), OutlierPursuit(gamma=0.06)], ids=["rpca", "outlier_pursuit"])
def test_linear_models_rank_planted_rows(data, model):
    X, out = data
    model.fit(X)
    assert model.L_.shape == X.shape and model.n_iter_ >= 1
    assert model.history_[-1]["residual"] < 1e-3  # X = L + S holds
    np.testing.assert_allclose(model.decision_scores_, np.linalg.norm(model.S_, axis=1))
    assert roc_auc_score(out, model.decision_scores_) > 0.6


def test_sklearn_detectors_beat_chance(data):
    X, out = data
    assert roc_auc_score(out, lof_scores(X, 20)) > 0.6
    assert roc_auc_score(out, ocsvm_scores(X, nu=0.1)) > 0.6


def test_plain_autoencoder_beats_chance(data):
    from rda_cli import RobustAutoencoder

    X, out = data
    ae = RobustAutoencoder(layers=[30, 15, 4], penalty=None, outer_iterations=2, inner_epochs=20, batch_size=32,
                           random_state=0).fit(X)
    assert roc_auc_score(out, ae.residual_scores_) > 0.6


def test_top_fraction_mask():
    mask = top_fraction_mask([0.1, 0.9, 0.5, 0.7], 0.5)
    assert mask.tolist() == [False, True, False, True]
    assert top_fraction_mask([1.0, 2.0], 0.0).sum() == 0


def test_bad_parameters():
    X = np.random.default_rng(0).random((20, 5))
    with pytest.raises(ValueError):
        RobustPCA(max_iter=0).fit(X)
    with pytest.raises(ValueError):
        OutlierPursuit(gamma=0.0).fit(X)

"""``rda_cli.pyod_detector.RDA`` under PyOD's own detector contract.

The checks follow PyOD's per-detector tests (e.g. ``pyod/test/test_iforest.py``): fitted attributes,
training scores, prediction scores / labels / probabilities / confidence / rank, ``fit_predict``,
``fit_predict_score``, cloning; plus PyOD's score combination and the LSCP ensemble with RDA inside.
Skipped when PyOD is not installed (``pip install rda[pyod]``).
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

pyod = pytest.importorskip("pyod")

from pyod.models.base import BaseDetector  # noqa: E402
from pyod.utils.data import generate_data  # noqa: E402

from rda_cli.pyod_detector import RDA  # noqa: E402

CONTAMINATION = 0.1
ROC_FLOOR = 0.8


@pytest.fixture(scope="module")
def data():
    X_train, X_test, y_train, y_test = generate_data(n_train=200, n_test=100, n_features=10,
                                                     contamination=CONTAMINATION, random_state=42)
    return X_train, y_train, X_test, y_test


@pytest.fixture(scope="module")
def clf(data):
    return RDA(contamination=CONTAMINATION, random_state=0).fit(data[0])


def fixed_lam(**kw):
    """A detector with lambda given: one fit instead of a search (for the tests that refit)."""
    return RDA(lam=clf_lam_hint, random_state=0, **kw)


clf_lam_hint = 0.004


def test_is_a_pyod_detector_with_fitted_attributes(clf, data):
    assert isinstance(clf, BaseDetector)
    for name in ("decision_scores_", "labels_", "threshold_", "detector_", "lam_"):
        assert getattr(clf, name, None) is not None, name
    assert clf.decision_scores_.shape == (data[0].shape[0],)
    np.testing.assert_array_equal(clf.labels_, (clf.decision_scores_ > clf.threshold_).astype(int))
    # labels_ are exactly the rows S flags, and contamination chose lambda to flag about that fraction
    np.testing.assert_array_equal(clf.labels_, clf.detector_.labels_)
    assert abs(clf.labels_.mean() - CONTAMINATION) <= 0.02
    assert roc_auc_score(data[1], clf.decision_scores_) >= ROC_FLOOR


def test_prediction_scores_and_labels(clf, data):
    _, _, X_test, y_test = data
    scores = clf.decision_function(X_test)
    assert scores.shape == (X_test.shape[0],)
    assert roc_auc_score(y_test, scores) >= ROC_FLOOR
    labels = clf.predict(X_test)
    assert labels.shape == y_test.shape and set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (scores > clf.threshold_).astype(int))


@pytest.mark.parametrize("method", ["linear", "unify"])
def test_prediction_proba(clf, data, method):
    proba = clf.predict_proba(data[2], method=method)
    assert proba.shape == (data[2].shape[0], 2)
    assert proba.min() >= 0 and proba.max() <= 1
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    proba, confidence = clf.predict_proba(data[2], method=method, return_confidence=True)
    assert confidence.shape == (data[2].shape[0],) and confidence.min() >= 0 and confidence.max() <= 1
    with pytest.raises(ValueError):
        clf.predict_proba(data[2], method="something")


def test_prediction_confidence(clf, data):
    confidence = clf.predict_confidence(data[2])
    assert confidence.shape == (data[2].shape[0],) and confidence.min() >= 0 and confidence.max() <= 1
    labels, confidence2 = clf.predict(data[2], return_confidence=True)
    np.testing.assert_array_equal(labels, clf.predict(data[2]))
    np.testing.assert_allclose(confidence2, confidence)


def test_prediction_rank(clf, data):
    """PyOD's rank of a new row among the training scores: how many training scores lie below its score
    (0 to n_train: a new row may score below every training row), in the order of the scores."""
    rank = clf._predict_rank(data[2])
    assert rank.min() >= 0 and rank.max() <= data[0].shape[0]
    order = np.argsort(clf.decision_function(data[2]), kind="stable")
    assert np.all(np.diff(rank[order]) >= 0)
    normalized = clf._predict_rank(data[2], normalized=True)
    assert normalized.min() >= 0 and normalized.max() <= 1


@pytest.mark.filterwarnings("ignore:Function fit_predict(_score)? is deprecated:FutureWarning")  # PyOD's, on purpose
def test_fit_predict_and_fit_predict_score(data):
    X_train, y_train, _, _ = data
    labels = fixed_lam().fit_predict(X_train)
    assert labels.shape == y_train.shape
    fixed_lam().fit_predict_score(X_train, y_train)
    fixed_lam().fit_predict_score(X_train, y_train, scoring="prc_n_score")
    with pytest.raises(NotImplementedError):
        fixed_lam().fit_predict_score(X_train, y_train, scoring="something")


def test_clone_and_params(clf):
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "decision_scores_")
    assert clf.set_params(verbose=0) is clf


def test_pyod_score_combination(clf, data):
    pytest.importorskip("combo")  # pyod.models.combination needs PyOD's own optional dependency
    from pyod.models.combination import aom, average, maximization, moa
    from pyod.models.iforest import IForest
    from pyod.utils.utility import standardizer

    X_train, _, X_test, y_test = data
    iforest = IForest(random_state=0).fit(X_train)
    train = np.column_stack([clf.decision_scores_, iforest.decision_scores_])
    test = np.column_stack([clf.decision_function(X_test), iforest.decision_function(X_test)])
    _, test_n = standardizer(train, test)
    for combine in (average, maximization):
        assert roc_auc_score(y_test, combine(test_n)) >= ROC_FLOOR
    for combine in (aom, moa):
        assert roc_auc_score(y_test, combine(test_n, n_buckets=2)) >= ROC_FLOOR


@pytest.mark.filterwarnings("ignore:The number of histogram bins is greater than the number of classifiers")  # LSCP, 2
def test_inside_a_pyod_ensemble(data):
    from pyod.models.lscp import LSCP

    X_train, _, X_test, y_test = data
    ensemble = LSCP([fixed_lam(), fixed_lam(hidden_layers=(8, 4))], random_state=0).fit(X_train)
    assert roc_auc_score(y_test, ensemble.decision_function(X_test)) >= ROC_FLOOR


def test_missing_values_and_plain_autoencoder(data):
    X_train, y_train, X_test, y_test = data
    X = X_train.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    d = fixed_lam().fit(X)
    assert np.isfinite(d.decision_scores_).all()
    assert roc_auc_score(y_train, d.decision_scores_) >= ROC_FLOOR
    contrib = d.feature_contributions(X)
    assert contrib.shape == X.shape and (contrib[np.isnan(X)] == 0).all()
    plain = RDA(penalty=None, random_state=0).fit(X_train)  # PyOD's quantile rule
    assert plain.labels_.sum() == pytest.approx(CONTAMINATION * len(X_train), abs=2)
    assert roc_auc_score(y_test, plain.decision_function(X_test)) >= ROC_FLOOR


@pytest.mark.parametrize("value", [0.5, 0.0, -0.1, True, "0.1"])
def test_bad_contamination_is_refused_at_construction_and_fit(data, value):
    with pytest.raises(ValueError, match="contamination"):
        RDA(contamination=value)
    clf = RDA()
    clf.contamination = value  # set behind __init__'s back: fit applies the same check
    with pytest.raises(ValueError, match="contamination"):
        clf.fit(data[0])


def test_lam_for_fraction_chooses_one_models_lambda(data):
    """One model's lambda for a flagged fraction (selection.lambda_for_fraction); contamination stays a cut-off
    that the fit does not depend on."""
    X_train, y_train, _, _ = data
    d = RDA(lam_for_fraction=0.1, contamination=0.2, random_state=0).fit(X_train)
    assert abs(d.labels_.mean() - 0.1) <= 0.02 and d.lam_ == d.detector_.lam_
    np.testing.assert_array_equal(d.labels_, d.detector_.labels_)
    e = RDA(lam_for_fraction=0.1, contamination=0.05, random_state=0).fit(X_train)
    np.testing.assert_array_equal(d.decision_scores_, e.decision_scores_)
    with pytest.raises(ValueError, match="lam_for_fraction"):
        RDA(lam=0.01, lam_for_fraction=0.1).fit(X_train)


def test_one_model_is_what_rda_detect_fits():
    """``RDA(lam=...)`` and ``rda detect --lam`` fit one model with the same settings (table_rule.one_model_settings)."""
    from rda_cli.detect import estimator_params

    for n, d in ((200, 10), (5000, 300)):
        ours = RDA(lam=0.01, random_state=0)._estimator_params(d, n)
        theirs = estimator_params(d, n, "l21_rows", overrides={"verbose": 0})
        assert {k: v for k, v in theirs.items() if k != "lam"} == ours
    given = estimator_params(10, 200, "l1", "6,3", {"inner_epochs": 4, "verbose": 0})
    assert given["layers"] == [10, 6, 3] and given["inner_epochs"] == 4 and given["max_steps_per_epoch"] is None
    assert RDA(lam=0.01, hidden_layers=(6, 3), inner_epochs=4, penalty="l1", random_state=0)._estimator_params(
        10, 200) == {k: v for k, v in given.items() if k != "lam"}

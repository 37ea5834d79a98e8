"""The forest kept as arrays (``rda_cli.forest``): scikit-learn's scores from plain arrays, bounded loading."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from rda_cli.forest import MAX_TREES, ForestScore


def _sklearn_scores(X, rows, seed):
    return -IsolationForest(random_state=seed).fit(X).score_samples(rows)


def test_array_scores_are_scikit_learns():
    rng = np.random.default_rng(0)
    X = rng.lognormal(size=(700, 5))
    fresh = np.vstack([rng.lognormal(size=(300, 5)) * 3, X[:5] + 100, X[:5] - 100])
    forest = ForestScore(random_state=4).fit(X)
    assert forest.max_samples_ == 256 and len(forest.features_) == 100
    np.testing.assert_allclose(forest.score(fresh), _sklearn_scores(X, fresh, 4), rtol=0, atol=1e-12)
    back = ForestScore.from_arrays(forest.to_arrays(), 5)
    np.testing.assert_array_equal(back.score(fresh), forest.score(fresh))


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(n=st.integers(2, 300), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), ties=st.booleans())
def test_array_scores_match_on_any_table(n, d, seed, ties):
    """Tiny tables (one or two rows: c(max_samples) of 0 or 1), repeated values, any seed."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if ties:
        X = np.round(X)
    rows = rng.normal(size=(40, d)) * 2
    np.testing.assert_allclose(ForestScore(seed).fit(X).score(rows), _sklearn_scores(X, rows, seed), atol=1e-12)


def test_missing_values_are_the_columns_training_median():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    X[::5, 1] = np.nan
    forest = ForestScore(2).fit(X)
    filled = X.copy()
    filled[::5, 1] = np.nanmedian(X[:, 1])
    assert forest.fill_[1] == pytest.approx(np.nanmedian(X[:, 1]))
    np.testing.assert_allclose(forest.score(X), _sklearn_scores(filled, filled, 2), atol=1e-12)
    X[:, 2] = np.nan  # a column with no observed value: filled with 0
    assert np.isfinite(ForestScore(2).fit(X).score(X)).all()


@pytest.mark.parametrize("name, change, match", [
    ("left", lambda a: a.__setitem__("left", np.where(a["left"] > 0, 0, a["left"])), "children"),  # a cycle
    ("right", lambda a: a.__setitem__("right", np.where(a["right"] > 0, 10**6, a["right"])), "children"),
    ("feature", lambda a: a.__setitem__("feature", a["feature"] + 50), "split features"),
    ("threshold", lambda a: a["threshold"].__setitem__(0, np.inf), "finite"),
    ("features", lambda a: a.__setitem__("features", a["features"] + 3), "columns"),
    ("offsets", lambda a: a["offsets"].__setitem__(-1, a["offsets"][-1] + 1), "offsets"),
    ("offsets", lambda a: a.__setitem__("offsets", a["offsets"][:-1]), "feature subsets"),
    ("n_node_samples", lambda a: a.__setitem__("n_node_samples", a["n_node_samples"] * 0), "sample counts"),
    ("max_samples", lambda a: a.__setitem__("max_samples", np.array([0])), "sample counts"),
    ("threshold", lambda a: a.__setitem__("threshold", a["threshold"].astype(np.int64)), "kinds"),
    ("offsets", lambda a: a.__setitem__("offsets", np.arange(MAX_TREES + 2)), "at most"),
])
def test_crafted_arrays_are_refused(name, change, match):
    arrays = ForestScore(0).fit(np.random.default_rng(3).normal(size=(100, 3))).to_arrays()
    change(arrays)
    with pytest.raises(ValueError, match=match):
        ForestScore.from_arrays(arrays, 3)

"""The per-feature tail score (``rda_cli.tails``) and the planted validation tables (``rda_cli.data.planted``)."""

import numpy as np
import pytest

from rda_cli.data.planted import ANOMALY_TYPES, planted_table
from rda_cli.tails import TailScore


def test_tail_score_is_the_empirical_cdf_tails():
    rng = np.random.default_rng(0)
    X = rng.lognormal(size=(200, 3))
    ts = TailScore().fit(X)
    x = np.array([[np.median(X[:, 0]), np.median(X[:, 1]), X[:, 2].max() * 10]])
    n = len(X)
    # left, right and skew sums; the far right value of column 2 has the smallest tail probability kept
    assert ts.score(x)[0] >= np.log(n // 2 + 1)
    assert ts.score(X).argmax() in np.argsort(-np.abs(np.log(X)).sum(axis=1))[:20]
    # n // 2 quantiles kept, none of them a row's own value; the smallest value lies in the first of them
    assert ts.quantiles_.shape == (n // 2, 3) and not np.isin(ts.quantiles_, X).all()
    assert ts.score(np.array([[X[:, 0].min(), np.median(X[:, 1]), np.median(X[:, 2])]]))[0] >= np.log(n // 2) - 1e-9
    gaps = X[:4].copy()
    gaps[:, 1] = np.nan
    assert np.isfinite(ts.score(gaps)).all()


def test_tail_score_round_trips_as_arrays():
    X = np.random.default_rng(1).normal(size=(3000, 4))  # more rows than quantiles kept
    X[::7, 2] = np.nan
    ts = TailScore(max_quantiles=256).fit(X)
    assert ts.quantiles_.shape == (256, 4)
    back = TailScore.from_arrays(ts.to_arrays())
    np.testing.assert_array_equal(back.score(X), ts.score(X))
    bad = ts.to_arrays()
    bad["quantiles"] = bad["quantiles"][::-1]
    with pytest.raises(ValueError, match="sorted"):
        TailScore.from_arrays(bad)


@pytest.mark.parametrize("kind", ANOMALY_TYPES)
def test_planted_tables(kind):
    rng = np.random.default_rng(2)
    inliers = rng.normal(100, 10, size=(400, 5)) @ rng.normal(size=(5, 5))
    X, y = planted_table(inliers, kind, fraction=0.05, seed=3)
    assert X.shape == (421, 5) and y.sum() == 21
    np.testing.assert_array_equal(np.sort(X[y == 0], axis=0), np.sort(inliers, axis=0))  # inliers kept as they are
    X2, y2 = planted_table(inliers, kind, fraction=0.05, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError):
        planted_table(inliers, "nope")

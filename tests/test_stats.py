"""The t-interval code and the label-free lambda rules."""

import math

import numpy as np
import pytest

from rda_cli.experiments.stats import curve_intervals, excludes_zero, fmt_pm, interval_dict, t_interval
from rda_cli.prox import l21_shrink
from rda_cli.selection import contamination_lambda, knee_lambda

from synthetic import with_outlier_rows


def test_textbook_t_interval():
    # sample 1..5: mean 3, s = sqrt(10 / 4) = 1.5811, t(0.975, 4) = 2.7764 -> 2.7764 * 1.5811 / sqrt(5)
    mean, hw, n = t_interval([1, 2, 3, 4, 5])
    expected = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert n == 5 and mean == pytest.approx(3.0)
    assert hw == pytest.approx(expected, rel=1e-5) and hw == pytest.approx(1.9632, abs=1e-4)
    assert fmt_pm(mean, hw) == "3.000 ± 1.963"


def test_interval_edge_cases():
    assert t_interval([]) == (None, None, 0)
    assert t_interval([0.4]) == (0.4, None, 1)
    assert t_interval([0.4, None, float("nan"), 0.6])[2] == 2  # missing values dropped
    assert interval_dict([2.0, 2.0])["half_width"] == 0.0
    means, hws = curve_intervals([[1, 2], [3, np.nan]])
    assert means.tolist() == [2.0, 2.0] and np.isnan(hws[1]) and hws[0] > 0
    assert excludes_zero(0.5, 0.2) and not excludes_zero(0.1, 0.2) and not excludes_zero(0.1, None)
    assert fmt_pm(None) == "—" and fmt_pm(0.5) == "0.500"


def test_knee_on_constructed_curve():
    lams = [1, 2, 3, 4, 5, 6, 7, 8]
    counts = [1000, 400, 120, 52, 50, 48, 45, 40]  # steep fall, then the 50 planted rows
    assert knee_lambda(lams, counts) == 4.0
    assert knee_lambda(lams, counts, count_scale="linear") == 3.0  # the plain Kneedle stops earlier
    # order of the input does not matter; flat curve: smallest lambda
    assert knee_lambda(lams[::-1], counts[::-1]) == 4.0
    assert knee_lambda([0.1, 0.2, 0.3], [7, 7, 7]) == 0.1
    # a lambda that zeroes S entirely does not drag the knee to itself
    assert knee_lambda([1, 2, 3, 4, 5, 6], [1000, 300, 60, 52, 50, 0]) == 3.0
    assert knee_lambda([1, 10, 100, 1000], [10**6, 10**5, 9 * 10**4, 8 * 10**4], scale="log") == 10.0
    with pytest.raises(ValueError):
        knee_lambda([1, 2], [1])


def test_label_free_rules_find_planted_contamination():
    """A real l2,1 sweep on the residual of a low-rank fit of synthetic data with 5% outlier rows."""
    X, out = with_outlier_rows(n=600, d=30, fraction=0.05, seed=3)
    Xc = X - X.mean(axis=0)
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    R = Xc - (U[:, :4] * s[:4]) @ Vt[:4]  # what a 4-component model cannot fit
    lams = np.linspace(0.02, 2.0, 60)
    counts = [int(np.any(l21_shrink(R, lam) != 0, axis=1).sum()) for lam in lams]
    assert counts[0] > 3 * out.sum()  # small lambdas flag ordinary rows too
    for lam in (knee_lambda(lams, counts), contamination_lambda(lams, counts, len(X), 0.05)):
        flagged = np.linalg.norm(R, axis=1) > lam
        tp = (flagged & out).sum()
        precision, recall = tp / max(flagged.sum(), 1), tp / out.sum()
        assert 0.8 * out.sum() <= flagged.sum() <= 1.3 * out.sum()
        assert precision >= 0.75 and recall >= 0.9


def test_contamination_rule():
    lams, counts = [1, 2, 3, 4], [300, 120, 40, 10]
    assert contamination_lambda(lams, counts, 1000, 0.05) == 3.0
    assert contamination_lambda(lams, counts, 1000, 0.001) == 4.0  # none low enough: largest

"""The table rule (``rda_cli.table_rule``): shapes, schedule, the warm start of the loop, the flag rule, scaling."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rda_cli.scaling import RobustScaler01, load_scaler
from rda_cli.table_rule import (DEFAULT_RULE, TableRule, batch_size_for, combine_scores, fit_member, flag_threshold,
                                layers_for, phase_schedule, robust_location_scale)
from rda_cli.scaling import MinMaxScaler01
from rda_cli.tabular import TableError

from synthetic import manifold

QUICK = DEFAULT_RULE.replace(pilot_outer=5, pilot_steps=100, warm_outer=5)


def test_network_and_batch_from_the_shape():
    assert layers_for(24) == [24, 12, 6]
    assert layers_for(24, 0.5, 2) == [24, 6, 3] and layers_for(24, 2.0, 3) == [24, 24, 12, 6]
    assert layers_for(3) == [3, 2, 1] and layers_for(1555) == [1555, 64, 32]
    assert batch_size_for(56) == 56 and batch_size_for(2000) == 128 and batch_size_for(1_000_000) == 20_000
    # about pilot_steps gradient steps per outer iteration, in whole epochs; one capped epoch when an epoch is longer
    assert phase_schedule(200, 2000, 128) == (12, None)
    assert phase_schedule(20, 2000, 128) == (1, None) and phase_schedule(20, 56, 56) == (20, None)
    assert phase_schedule(20, 20000, 400) == (1, 20)  # 50 steps an epoch: one epoch of 20 random batches


def test_rule_defaults_are_the_documented_rule():
    r = TableRule()
    assert (r.pilot_learning_rate, r.warm_learning_rate, r.lambda_quantile, r.flag_mads) == (0.01, 0.003, 0.95, 2.5)
    assert (r.pilot_outer, r.pilot_steps, r.warm_outer, r.warm_steps, r.n_members) == (10, 200, 10, 20, 2)
    assert (r.member_grid, r.combine, r.tail) == ("extent", "mean", True)
    with pytest.raises(TypeError):
        r.replace(nonsense=1)


def test_warm_start_begins_near_the_quantile_not_with_most_rows():
    """The first prox of the warm continuation sees a network that has learnt the inliers: about
    1 - lambda_quantile of the rows are in S after the first outer iteration, not most of them."""
    X = manifold(800, 16, seed=1).astype(np.float32)
    rng = np.random.default_rng(0)
    X[rng.choice(800, 20, replace=False)] = rng.random((20, 16))
    model, info = fit_member(X, seed=0, rule=QUICK)
    assert abs(info["start_flagged"] - 0.05) <= 0.01
    assert 0.02 <= info["first_flagged"] <= 0.10, info
    assert model.prox_threshold_ == pytest.approx(info["threshold"])
    plain, info_plain = fit_member(X, seed=0, penalty=None, rule=QUICK)
    assert plain.penalty is None and "threshold" not in info_plain


def test_combine_scores():
    Z = np.array([[0.0, 5.0, -1.0], [1.0, 1.0, 3.0], [2.0, -4.0, 0.0]])
    np.testing.assert_allclose(combine_scores(Z, "mean"), [1.0, 2 / 3, 2 / 3])
    np.testing.assert_allclose(combine_scores(Z, "max"), [2.0, 5.0, 3.0])
    np.testing.assert_allclose(combine_scores(Z, "top2"), [1.5, 3.0, 1.5])
    np.testing.assert_allclose(combine_scores(Z[:1], "max"), Z[0])
    with pytest.raises(ValueError):
        combine_scores(Z, "median")


def test_flag_rule():
    s = np.r_[np.random.default_rng(0).normal(size=1000), [8.0, 9.0, 10.0]]
    med, scale = robust_location_scale(s)
    assert flag_threshold(s) == pytest.approx(med + 2.5 * scale)
    assert 0 < (s > flag_threshold(s)).mean() < 0.03
    assert (s > flag_threshold(s, contamination=0.1)).mean() == pytest.approx(0.1, abs=0.002)
    assert robust_location_scale(np.ones(10)) == (1.0, 1.0)  # constant scores: no division by zero


def test_robust_scaler(tmp_path):
    X = np.c_[np.arange(100.0), np.full(100, 7.0), np.r_[np.zeros(99), 1e6]]
    sc = RobustScaler01().fit(X, ["a", "b", "c"], "id")
    Z = sc.transform(X)
    assert Z[1, 0] == pytest.approx((1 - 0.99) / (98.01 - 0.99))  # 1st..99th percentile -> [0, 1]
    assert np.all(Z[:, 1] == 0.5) and Z[-1, 2] > 1  # constant column; beyond the percentiles: not clipped
    np.testing.assert_allclose(sc.inverse_transform(Z), X, rtol=1e-6, atol=1e-3)
    sc.save(tmp_path / "s.json")
    back = load_scaler(tmp_path / "s.json")
    assert isinstance(back, RobustScaler01) and back.feature_names == ["a", "b", "c"] and back.id_column == "id"
    np.testing.assert_array_equal(back.transform(X), Z)
    MinMaxScaler01().fit(X).save(tmp_path / "m.json")
    assert isinstance(load_scaler(tmp_path / "m.json"), MinMaxScaler01)  # older detect folders
    for bad in ('{"kind": "robust01", "low": [0], "span": [0]}', '{"kind": "robust01", "low": [0, 1], "span": [1]}',
                '{"kind": "robust01", "low": ["x"], "span": [1]}', "not json"):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(TableError):
            load_scaler(tmp_path / "bad.json")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(X=arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 4)),
                elements=st.floats(-1e308, 1e308, allow_nan=False)))
def test_scaled_values_stay_within_the_clip_and_float32(X):
    """Any finite table (values up to +-1e308): refused with one line when a column's span overflows float64,
    else scaled within [-CLIP, 1 + CLIP], so a row's squares sum finitely in float32 (the network's arithmetic)."""
    from rda_cli.scaling import CLIP

    try:
        scaler = RobustScaler01().fit(X)
    except TableError as exc:  # a column whose percentile span overflows float64
        assert "beyond what a float64 number holds" in str(exc)
        return
    Z = scaler.transform(X)
    assert Z.dtype == np.float32 and np.isfinite(Z).all() and Z.min() >= -CLIP and Z.max() <= 1 + CLIP
    assert np.isfinite(np.einsum("ij,ij->i", Z, Z)).all()

"""The RobustAutoencoder estimator: ground truth recovery, the alternating loop, persistence."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score, roc_auc_score

from rda_cli import RobustAutoencoder
from rda_cli.estimator import effective_threshold
from synthetic import with_outlier_rows, with_spikes

FAST = dict(layers=[50, 25, 5], batch_size=64, learning_rate=0.01, random_state=0)


@pytest.fixture(scope="module")
def outlier_data():
    return with_outlier_rows(n=1000, d=50, fraction=0.05, seed=0)


def test_l21_rows_recovers_planted_rows(outlier_data):
    X, truth = outlier_data
    f1 = {}
    for lam in (0.0015, 0.002):
        rda = RobustAutoencoder(lam=lam, outer_iterations=10, inner_epochs=10, **FAST).fit(X)
        f1[lam] = f1_score(truth, rda.outlier_mask_)
        assert roc_auc_score(truth, rda.residual_scores_) > 0.9
    assert max(f1.values()) >= 0.9, f1


def test_l1_locates_spikes_better_than_autoencoder_residual():
    """Metric: F1 of the support of S against the spike mask, versus the plain autoencoder's
    residual |X - L| thresholded at its own best threshold (an oracle advantage for the AE)."""
    X, mask = with_spikes(fraction=0.1)
    kw = dict(outer_iterations=10, inner_epochs=10, reinitialize=False, **FAST)
    ae = RobustAutoencoder(penalty=None, **kw).fit(X)
    assert not ae.S_.any()
    residual = np.abs(X - ae.L_).ravel()
    ae_f1 = max(f1_score(mask.ravel(), residual > t) for t in np.linspace(0.05, 0.9, 35))
    rda_f1 = max(
        f1_score(mask.ravel(), (RobustAutoencoder(penalty="l1", lam=lam, **kw).fit(X).S_ != 0).ravel())
        for lam in (0.25, 0.5)
    )
    assert rda_f1 > ae_f1 + 0.02, (rda_f1, ae_f1)


def test_history_and_objective_decrease(outlier_data):
    X, _ = outlier_data
    rda = RobustAutoencoder(lam=0.002, outer_iterations=6, inner_epochs=5, reinitialize=False, tol=0, **FAST)
    rda.fit(X)
    assert rda.n_iter_ == 6 and len(rda.history_) == 6
    keys = {"reconstruction_error", "penalty", "objective", "c1", "c2", "nonzero_entries",
            "nonzero_groups", "seconds", "loss", "iteration"}
    for h in rda.history_:
        assert keys <= set(h)
        assert h["objective"] == pytest.approx(h["reconstruction_error"] + rda.prox_threshold_ * h["penalty"])
    assert rda.history_[-1]["objective"] < rda.history_[0]["objective"]


def test_stops_early_when_tol_is_met(outlier_data):
    X, _ = outlier_data
    kw = dict(lam=0.002, outer_iterations=6, inner_epochs=2, reinitialize=False, **FAST)
    full = RobustAutoencoder(tol=0.0, **kw).fit(X)
    assert full.n_iter_ == 6
    crit = [min(h["c1"], h["c2"]) for h in full.history_]
    # a tolerance first met at iteration k (1-based) must stop the loop there
    k = int(np.argmin(crit[:5])) + 1
    tol = crit[k - 1] * 1.0001
    first = next(i + 1 for i, c in enumerate(crit) if c < tol)
    early = RobustAutoencoder(tol=tol, **kw).fit(X)
    assert early.n_iter_ == first < 6


def test_plain_autoencoder_has_zero_S(outlier_data):
    X, _ = outlier_data
    ae = RobustAutoencoder(penalty=None, outer_iterations=2, inner_epochs=2, **FAST).fit(X)
    assert not ae.S_.any() and ae.prox_threshold_ == 0.0 and ae.threshold_ == 0.0
    assert not ae.labels_.any()
    assert ae.decision_function(X[:10]).shape == (10,)


def test_threshold_conventions():
    X = np.random.default_rng(0).random((300, 20)).astype(np.float32)
    assert effective_threshold(X, "l21_rows", 0.001) == pytest.approx(0.3)
    assert effective_threshold(X, "l21_cols", 0.001) == pytest.approx(0.3)
    mu = X.size / (4 * np.abs(X).sum(axis=0).max())
    assert effective_threshold(X, "l1", 2.0) == pytest.approx(20 / mu)
    assert effective_threshold(X, "l1", 2.0, "absolute") == 2.0
    rda = RobustAutoencoder(layers=[20, 8], lam=0.001, outer_iterations=1, inner_epochs=1,
                            random_state=0).fit(X)
    assert rda.prox_threshold_ == pytest.approx(0.3)
    # PyOD's threshold_ is the cut-off on decision_scores_: the rows S flags
    assert rda.threshold_ == 0.0
    np.testing.assert_array_equal(rda.labels_, rda.decision_scores_ > rda.threshold_)


def test_same_seed_same_result_and_save_load(outlier_data, tmp_path):
    X, _ = outlier_data
    kw = dict(lam=0.002, outer_iterations=3, inner_epochs=3, **FAST)
    a = RobustAutoencoder(**kw).fit(X)
    b = RobustAutoencoder(**kw).fit(X)
    np.testing.assert_array_equal(a.S_ != 0, b.S_ != 0)
    np.testing.assert_allclose(a.decision_scores_, b.decision_scores_, atol=1e-5)
    new = np.random.default_rng(5).random((30, 50)).astype(np.float32)
    np.testing.assert_allclose(a.decision_function(new), b.decision_function(new), atol=1e-5)

    a.save(tmp_path / "model")
    c = RobustAutoencoder.load(tmp_path / "model")
    np.testing.assert_array_equal(a.decision_function(new), c.decision_function(new))
    np.testing.assert_array_equal(a.decision_function(X), c.decision_function(X))
    np.testing.assert_array_equal(a.predict(new), c.predict(new))
    assert c.prox_threshold_ == a.prox_threshold_ and c.threshold_ == a.threshold_ and c.get_params() == a.get_params()


def test_decision_function_on_new_data_ranks_outliers(outlier_data):
    X, truth = outlier_data
    rda = RobustAutoencoder(lam=0.0015, outer_iterations=10, inner_epochs=10, **FAST).fit(X)
    # new points on the same manifold (same map, other draws), 10% of them outliers
    X_new, truth_new = with_outlier_rows(n=400, d=50, fraction=0.1, seed=0, sample_seed=7)
    scores = rda.decision_function(X_new)
    assert roc_auc_score(truth_new, scores) > 0.9
    pred = rda.predict(X_new)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred == -1, scores > 0)


def test_transform_gives_code_features(outlier_data):
    X, _ = outlier_data
    rda = RobustAutoencoder(lam=0.002, outer_iterations=2, inner_epochs=2, **FAST).fit(X)
    Z = rda.transform(X)
    assert Z.shape == (len(X), 5)
    with rda._trainer() as net:
        np.testing.assert_allclose(Z, net.encode(X - rda.S_), atol=1e-6)
    assert rda.reconstruct(X[:7]).shape == (7, 50)


def test_no_retracing_across_outer_iterations_or_fits(outlier_data):
    from rda_cli.autoencoder import cached_trainer

    X, _ = outlier_data
    kw = dict(lam=0.002, outer_iterations=4, inner_epochs=2, tol=0, reinitialize=True, **FAST)
    trainer = cached_trainer(FAST["layers"], True, FAST["learning_rate"], FAST["batch_size"])
    before = trainer.traces
    first = RobustAutoencoder(**kw).fit(X)
    assert first.n_iter_ == 4
    assert trainer.traces - before <= 1  # 4 outer x 2 epochs, with re-initialisation: at most one trace
    traced = trainer.traces
    second = RobustAutoencoder(**{**kw, "lam": 0.003, "random_state": 1}).fit(X)
    assert trainer.traces == traced  # a second fit of the same shape reuses the compiled loop
    # the first model's network is still its own after the second fit used the cached trainer
    with first._trainer() as net:
        np.testing.assert_allclose(first.transform(X), net.encode(X - first.S_), atol=1e-6)
    assert not np.allclose(first.reconstruct(X[:20]), second.reconstruct(X[:20]))


@pytest.mark.parametrize(
    "params, X, match",
    [
        (dict(layers=[10, 5]), np.ones((20, 11)), "layers\\[0\\]"),
        (dict(), np.ones(10), "2D array"),
        (dict(), np.array([[0.1, np.nan], [0.2, np.nan]]), "column\\(s\\) with no observed value"),
        (dict(), np.array([[np.nan, np.nan], [0.2, 0.3]]), "row\\(s\\) with no observed value"),
        (dict(), np.array([[0.1, np.inf], [0.2, 0.3]]), "infinity"),
        (dict(penalty="l3"), np.ones((20, 4)), "penalty"),
        (dict(lam=-1.0), np.ones((20, 4)), "lam"),
        (dict(lambda_scaling="relative"), np.ones((20, 4)), "lambda_scaling"),
        (dict(outer_iterations=0), np.ones((20, 4)), "outer_iterations"),
        (dict(layers=[4, 0]), np.ones((20, 4)), "layers"),
        (dict(learning_rate=0.0), np.ones((20, 4)), "learning_rate"),
    ],
)
def test_bad_input_raises_value_error(params, X, match):
    with pytest.raises(ValueError, match=match):
        RobustAutoencoder(**params).fit(X)


def test_warm_start_continues_from_the_fitted_state(outlier_data):
    X, truth = outlier_data
    kw = dict(outer_iterations=6, inner_epochs=5, reinitialize=False, **FAST)
    warm = RobustAutoencoder(lam=0.0015, warm_start=True, **kw).fit(X)
    flagged_before = warm.outlier_mask_.copy()
    warm.set_params(lam=0.0016, outer_iterations=1)
    warm.fit(X)
    cold = RobustAutoencoder(lam=0.0016, warm_start=True, **{**kw, "outer_iterations": 1}).fit(X)
    # one outer iteration from the fitted state moves L + S far less than one from scratch ...
    assert warm.history_[0]["c2"] < 0.5 * cold.history_[0]["c2"]
    # ... starts from a trained network (lower objective) and keeps finding the planted rows
    assert warm.history_[0]["objective"] < cold.history_[0]["objective"]
    assert f1_score(truth, warm.outlier_mask_) >= 0.8 * f1_score(truth, flagged_before)


def test_reinitialize_auto_keeps_training_on_a_short_schedule():
    """12 outer x 15 epochs on a 3-D manifold with 6% planted rows, the estimator's other defaults:
    re-drawing the network every outer iteration leaves it unfitted when S is updated ("auto"
    does not re-draw below REINIT_MIN_EPOCHS epochs), while the authors' 20 x 50 still re-draws."""
    from rda_cli.estimator import REINIT_MIN_EPOCHS

    X, truth = with_outlier_rows(n=1000, d=50, fraction=0.06, seed=0, latent=3)
    f1 = {}
    for reinit in ("auto", True):
        for lam in (0.001, 0.0015):
            m = RobustAutoencoder(lam=lam, outer_iterations=12, inner_epochs=15, random_state=0,
                                  reinitialize=reinit).fit(X)
            assert m.reinitialize_ is (reinit is True)
            f1[reinit, lam] = f1_score(truth, m.outlier_mask_)
    auto, redraw = [f1[("auto", lam)] for lam in (0.001, 0.0015)], [f1[(True, lam)] for lam in (0.001, 0.0015)]
    assert max(auto) >= 0.95, f1
    assert np.mean(auto) > np.mean(redraw) + 0.15, f1
    assert RobustAutoencoder()._resolved_reinitialize() is True  # 20 x 50: the authors' re-drawing
    assert RobustAutoencoder(inner_epochs=REINIT_MIN_EPOCHS - 1)._resolved_reinitialize() is False


@pytest.mark.parametrize("name, value", [
    ("random_state", "abc"), ("tied", "abc"), ("reinitialize", "abc"), ("warm_start", "yes"),
    ("inner_epochs", 2.5), ("batch_size", "64"), ("lam", float("nan")), ("tol", -1.0), ("layers", "784,10"),
    ("penalty", "l2"), ("verbose", "loud"), ("random_state", -1), ("outer_iterations", True), ("lam", True),
])
def test_parameter_constraints_reject_bad_types(name, value):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=name):
        RobustAutoencoder(**{name: value}).fit(np.ones((20, 4), np.float32))
    with pytest.raises(ValueError, match=name):  # as detect.py validates settings
        RobustAutoencoder(**{name: value})._validate_params()


def test_keyword_only_parameters():
    with pytest.raises(TypeError):
        RobustAutoencoder([4, 2])


def test_warm_state_from_elsewhere_equals_own_warm_start(outlier_data):
    X, _ = outlier_data
    kw = dict(outer_iterations=3, inner_epochs=2, reinitialize=False, **FAST)
    a = RobustAutoencoder(lam=0.0015, **kw).fit(X)
    S, L, weights = a.S_, a.L_, a.get_weights()
    a.set_params(warm_start=True, lam=0.0016, outer_iterations=1).fit(X)
    b = RobustAutoencoder(lam=0.0016, **{**kw, "outer_iterations": 1}).set_warm_state(S, L, weights)
    # the state is private and used once: the warm_start parameter (and so a clone) carries nothing
    assert not b.warm_start and "_warm_state" not in clone(b).__dict__
    b.fit(X)
    np.testing.assert_array_equal(a.S_, b.S_)
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])


def test_estimators_from_two_threads_equal_sequential_fits(outlier_data):
    """The cached compiled trainer is locked: fits and scores from two threads equal sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    X, _ = outlier_data
    kw = dict(outer_iterations=2, inner_epochs=2, reinitialize=False, **FAST)

    def run(lam):
        m = RobustAutoencoder(lam=lam, **kw).fit(X)
        return m.S_, m.decision_function(X[:50] * 0.9)

    sequential = [run(lam) for lam in (0.0015, 0.002)]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(run, (0.0015, 0.002)))
    for (s1, d1), (s2, d2) in zip(sequential, threaded):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(d1, d2)


def test_model_files_from_before_prox_threshold_are_read(outlier_data, tmp_path):
    """Earlier versions saved the prox threshold as ``threshold_`` (and no ``lam_``)."""
    import json

    X, _ = outlier_data
    a = RobustAutoencoder(lam=0.002, outer_iterations=2, inner_epochs=2, **FAST).fit(X)
    a.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "params.json").read_text())
    meta["threshold_"] = meta.pop("prox_threshold_")
    del meta["lam_"]
    (tmp_path / "m" / "params.json").write_text(json.dumps(meta))
    old = RobustAutoencoder.load(tmp_path / "m")
    assert old.prox_threshold_ == a.prox_threshold_ and old.threshold_ == 0.0 and old.lam_ == a.lam
    np.testing.assert_array_equal(old.decision_function(X[:30] * 0.9), a.decision_function(X[:30] * 0.9))

    # files from when the estimator ran the lambda search itself hold `contamination`: the lambda found is kept
    meta = json.loads((tmp_path / "m" / "params.json").read_text())
    meta["params"].update(contamination=0.05, lam=0.5)
    meta["lam_"] = a.lam
    (tmp_path / "m" / "params.json").write_text(json.dumps(meta))
    old = RobustAutoencoder.load(tmp_path / "m")
    assert "contamination" not in old.get_params() and old.lam == old.lam_ == a.lam


def test_lambda_for_fraction_chooses_lambda(outlier_data):
    from rda_cli.selection import lambda_for_fraction

    X, truth = outlier_data
    m, lam, search = lambda_for_fraction(X, 0.05, dict(outer_iterations=10, inner_epochs=10, **FAST))
    assert m.lam_ == lam
    assert search["target"] == 50 and m.lam_ in [s["lam"] for s in search["steps"]]
    assert abs(int(m.labels_.sum()) - 50) <= search["tolerance"]
    assert m.prox_threshold_ == pytest.approx(effective_threshold(X, "l21_rows", m.lam_))
    assert f1_score(truth, m.outlier_mask_) >= 0.9
    np.testing.assert_array_equal(m.labels_, m.decision_scores_ > m.threshold_)


def test_max_steps_per_epoch_bounds_an_epoch(outlier_data):
    from rda_cli.autoencoder import cached_trainer

    X, truth = outlier_data
    kw = dict(lam=0.0015, outer_iterations=10, inner_epochs=10, **FAST)
    bounded = RobustAutoencoder(max_steps_per_epoch=4, **kw)  # 4 x 64 of the 1000 rows per epoch
    trainer = cached_trainer(FAST["layers"], True, FAST["learning_rate"], FAST["batch_size"])
    before = trainer.traces
    bounded.fit(X)
    assert trainer.traces - before <= 1
    assert roc_auc_score(truth, bounded.decision_scores_) > 0.9
    full = RobustAutoencoder(**kw).fit(X)
    assert not np.array_equal(bounded.L_, full.L_)


# ------------------------------------------------------------------ defects a read of the code found
def test_save_after_a_fit_with_numpy_scalar_parameters(outlier_data, tmp_path):
    X, _ = outlier_data
    a = RobustAutoencoder(lam=np.float32(0.0015), outer_iterations=np.int64(2), inner_epochs=np.int64(1),
                          layers=(np.int64(50), 25, 5), batch_size=64, random_state=np.int64(0)).fit(X)
    a.save(tmp_path / "m")
    b = RobustAutoencoder.load(tmp_path / "m")
    assert b.get_params()["lam"] == pytest.approx(0.0015) and b.get_params()["outer_iterations"] == 2
    np.testing.assert_array_equal(a.decision_function(X[:10]), b.decision_function(X[:10]))


def test_a_single_row_is_scored_as_in_a_batch(outlier_data):
    X, _ = outlier_data
    for penalty in ("l21_rows", "l1", "l21_cols", None):
        m = RobustAutoencoder(penalty=penalty, lam=0.0015, outer_iterations=2, inner_epochs=1, **FAST).fit(X)
        rows = X[:6] if penalty != "l21_cols" else X[:1]  # a column penalty's S couples the rows of a batch
        batch = m.decision_function(rows)
        for i in range(len(rows)):
            one = rows[i : i + 1]
            assert m.decision_function(one) == pytest.approx(batch[i:i + 1], abs=1e-5)
            assert m.predict(one).shape == (1,) and m.feature_contributions(one).shape == (1, 50)
            assert m.transform(one).shape == (1, 5)


@pytest.fixture(scope="module")
def corrupted_columns():
    from synthetic import manifold

    X = manifold(400, 30, seed=0)
    X[:, [3, 17]] = np.random.default_rng(1).random((400, 2)).astype(np.float32)
    m = RobustAutoencoder(layers=[30, 15, 5], penalty="l21_cols", lam=0.01, outer_iterations=6, inner_epochs=6,
                          batch_size=64, learning_rate=0.01, reinitialize=False, random_state=0).fit(X)
    return X, m


def test_l21_cols_flags_columns_not_rows(corrupted_columns, tmp_path):
    """Every row has an entry in a corrupted column, so S touches every row: rows are still not what a
    column penalty flags. The columns are (column_mask_); rows score their residual norm."""
    X, m = corrupted_columns
    assert np.count_nonzero(m.S_.any(axis=1)) == len(X)
    np.testing.assert_array_equal(np.flatnonzero(m.column_mask_), [3, 17])
    np.testing.assert_array_equal(m.column_mask_, m.column_scores_ > 0)
    assert not m.outlier_mask_.any() and not m.labels_.any() and not m.decision_scores_.any()
    assert (m.predict(X) == 1).all() and (m.fit_predict(X) == 1).all()
    np.testing.assert_allclose(m.decision_function(X), np.linalg.norm(X - m.L_, axis=1), rtol=1e-5)
    np.testing.assert_allclose(m.decision_function(X), m.residual_scores_, rtol=1e-5)
    shares, scores = m.feature_contributions(X, return_scores=True)
    np.testing.assert_allclose(shares, (X - m.L_) ** 2 / ((X - m.L_) ** 2).sum(axis=1, keepdims=True), rtol=1e-4)
    m.save(tmp_path / "m")
    back = RobustAutoencoder.load(tmp_path / "m")
    np.testing.assert_array_equal(back.column_mask_, m.column_mask_)
    assert not back.outlier_mask_.any()


def test_the_trainer_cache_is_bounded(outlier_data):
    from rda_cli import autoencoder

    X, _ = outlier_data
    m = RobustAutoencoder(lam=0.0015, outer_iterations=1, inner_epochs=1, **FAST).fit(X)
    before = m.decision_function(X[:20])
    first = autoencoder.cached_trainer(FAST["layers"], True, FAST["learning_rate"], FAST["batch_size"])
    for batch in range(1, autoencoder.CACHE_SIZE + 2):  # more shapes than the cache holds
        autoencoder.cached_trainer([50, 25, 5], True, 0.01, batch)
    assert len(autoencoder._CACHE) == autoencoder.CACHE_SIZE
    assert autoencoder.cached_trainer(FAST["layers"], True, FAST["learning_rate"], FAST["batch_size"]) is not first
    np.testing.assert_allclose(m.decision_function(X[:20]), before, rtol=1e-6)  # the estimator owns its network


def test_prox_threads_respect_the_process_limit(monkeypatch):
    from rda_cli import prox

    S = np.random.default_rng(0).normal(size=(2048, 1024)).astype(np.float32)  # > 2**20 entries: threaded
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what the process executor sets in each worker
    assert prox.prox_threads() == 1
    alone = prox.l21_shrink(S, 30.0)
    monkeypatch.setattr(prox.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert prox.prox_threads() == 2  # two cores allowed to this process
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert prox.prox_threads() == 2
    np.testing.assert_array_equal(prox.l21_shrink(S, 30.0), alone)  # the threads split rows, nothing else


def test_values_that_overflow_float32_are_refused_at_fit(outlier_data):
    """The network squares and sums X in float32: X whose squares sum past F32_SQUARES_MAX is refused with
    one line before any training; just below it the scores are finite."""
    from rda_cli.errors import RdaError
    from rda_cli.estimator import F32_SQUARES_MAX

    X, _ = outlier_data
    with pytest.raises(RdaError, match="too large for the network's float32 arithmetic"):
        RobustAutoencoder(lam=0.1, **FAST).fit(X * 1e20)
    below = X * np.sqrt(F32_SQUARES_MAX / 4 / np.square(X).sum())
    model = RobustAutoencoder(lam=0.1, outer_iterations=1, inner_epochs=1, **FAST).fit(below)
    assert np.isfinite(model.decision_scores_).all() and np.isfinite(model.residual_scores_).all()


def test_save_never_writes_what_load_refuses(outlier_data, tmp_path):
    from rda_cli.errors import RdaError

    X, _ = outlier_data
    model = RobustAutoencoder(lam=0.002, outer_iterations=1, inner_epochs=1, **FAST).fit(X)
    model.residual_scores_ = model.residual_scores_.copy()
    model.residual_scores_[3] = np.inf
    with pytest.raises(RdaError, match="residual_scores_ holds NaN or infinite values; the model is not saved"):
        model.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_a_default_network_too_large_does_not_blame_layers():
    """No `layers` given: the message names the data's width and the default network, before any training."""
    from rda_cli.errors import RdaError

    with pytest.raises(RdaError, match=r"the default network for 40,000 columns, \[40000, 20000, 10000\]: .* "
                                       "exceeds the limit"):
        RobustAutoencoder(lam=0.1).fit(np.zeros((3, 40_000), np.float32))

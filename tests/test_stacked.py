"""Several models trained side by side in one stacked trainer (a lambda path; the table detector's members
of one network) give the models separate fits give."""

import numpy as np
import pytest

from rda_cli import RobustAutoencoder, RobustAutoencoderEnsemble
from rda_cli.autoencoder import AutoencoderTrainer, DeepAutoencoder
from rda_cli.stacked import StackedTrainer, fit_lambda_path, fit_together
from rda_cli.table_rule import DEFAULT_RULE, MEMBER_GRIDS, fit_members, fit_phases, member_groups

from synthetic import with_outlier_rows

LAMS = [0.002, 0.004, 0.006]


def settings(**kw):
    base = dict(layers=[30, 12, 4], outer_iterations=4, inner_epochs=4, batch_size=32, random_state=3,
                reinitialize=False)
    base.update(kw)
    return base


@pytest.fixture(scope="module")
def data():
    return with_outlier_rows(600, 30, 0.05, seed=0)


@pytest.mark.parametrize("reinitialize,tied", [(False, True), (True, True), (False, False)])
def test_stacked_models_equal_separate_fits(data, reinitialize, tied):
    X, _ = data
    kw = settings(reinitialize=reinitialize, tied=tied)
    separate = [RobustAutoencoder(lam=lam, **kw).fit(X) for lam in LAMS]
    stacked = fit_lambda_path(X, LAMS, **kw)
    for a, b in zip(separate, stacked):
        assert b.lam == a.lam and b.prox_threshold_ == a.prox_threshold_
        np.testing.assert_allclose(b.L_, a.L_, atol=1e-5)
        np.testing.assert_array_equal(b.outlier_mask_, a.outlier_mask_)
        assert b.n_iter_ == a.n_iter_
        assert [h["nonzero_groups"] for h in b.history_] == [h["nonzero_groups"] for h in a.history_]
        np.testing.assert_allclose([h["loss"] for h in b.history_], [h["loss"] for h in a.history_], rtol=1e-4)
        # the fitted network works on new data as a separately fitted one does
        np.testing.assert_allclose(b.decision_function(X[:50] * 0.9), a.decision_function(X[:50] * 0.9),
                                   atol=1e-4)


def test_stack_size_does_not_change_the_models(data):
    X, _ = data
    together = fit_lambda_path(X, LAMS, **settings())
    one_by_one = fit_lambda_path(X, LAMS, stack=1, **settings())
    for a, b in zip(together, one_by_one):
        np.testing.assert_allclose(a.L_, b.L_, atol=1e-5)
        np.testing.assert_array_equal(a.outlier_mask_, b.outlier_mask_)


def test_a_model_that_converges_keeps_its_state(data):
    X, _ = data
    # tol = 1 stops every model after its first outer iteration
    models = fit_lambda_path(X, LAMS, **settings(tol=1.0))
    assert [m.n_iter_ for m in models] == [1, 1, 1]


def test_one_trace_per_data_shape(data):
    X, _ = data
    trainer = StackedTrainer([30, 12, 4], 2, [0, 1], batch_size=32)
    trainer.reinitialize()
    XX = np.stack([X, X])
    for _ in range(3):
        trainer.train(XX, 1)
        trainer.reinitialize()
    assert trainer.traces == 1


@pytest.mark.parametrize("args,kw,match", [
    ([], {}, "lambdas must not be empty"),
    ([0.1], {"stack": 0}, "stack must be"),
    ([0.1], {"warm_start": True}, "warm_start"),
    ([0.1], {"batch_size": 0}, "batch_size"),
])
def test_bad_arguments(data, args, kw, match):
    X, _ = data
    with pytest.raises(ValueError, match=match):
        fit_lambda_path(X, args, **settings(**kw) if "stack" not in kw else dict(settings(), **kw))


def test_exported_from_the_package():
    import rda_cli

    assert rda_cli.fit_lambda_path is fit_lambda_path


def test_seeds_per_model_required():
    with pytest.raises(ValueError, match="one seed per model"):
        StackedTrainer([4, 2], 2, [0])


def test_per_model_learning_rates_caps_and_masks_equal_single_trainers(data):
    """Each stacked network is the single trainer with its seed and learning rate: same draws, same batches
    (``max_steps`` random ones per epoch), the fused Adam update, the masked loss of missing entries."""
    X, _ = data
    mask = np.random.default_rng(1).random(X.shape) > 0.1
    seeds, lrs = [4, 9], [0.01, 0.001]
    stacked = StackedTrainer([30, 12, 4], 2, seeds, learning_rate=lrs, batch_size=32, jit_compile=False)
    stacked.reinitialize()
    losses = stacked.train(np.stack([X, X * 0.5]), 3, mask=mask, max_steps=5)
    for k in range(2):
        single = AutoencoderTrainer(DeepAutoencoder([30, 12, 4]), learning_rate=lrs[k], batch_size=32, seed=seeds[k],
                                    jit_compile=False)
        single.reinitialize()
        alone = single.train(X * [1.0, 0.5][k], 3, mask=mask, max_steps=5)
        np.testing.assert_allclose(losses[:, k], alone, rtol=1e-5)
        for a, b in zip(stacked.get_weights(k), single.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-6)
    assert stacked.learning_rates == pytest.approx(lrs)


QUICK = DEFAULT_RULE.replace(pilot_outer=2, pilot_steps=30, warm_outer=2, warm_steps=5)
CAPPED = QUICK.replace(pilot_steps=2, warm_steps=1)  # fewer steps than an epoch: max_steps_per_epoch random batches


@pytest.mark.parametrize("rule", [QUICK, CAPPED], ids=["whole-epochs", "capped"])
@pytest.mark.parametrize("missing", [False, True])
def test_members_fitted_together_equal_members_fitted_alone(data, rule, missing):
    """The default grid's members (one network, one scaling; own seed, pilot learning rate, lambda and warm
    weights) fitted side by side equal :func:`fit_member` one after another, up to float rounding."""
    X, _ = data
    Z = X[:300].astype(np.float32)
    if missing:
        Z = Z.copy()
        Z[np.random.default_rng(2).random(Z.shape) < 0.05] = np.nan
    specs = MEMBER_GRIDS["extent"][:2]
    together = fit_members({"robust": Z}, specs, seed=7, rule=rule)
    alone = fit_members({"robust": Z}, specs, seed=7, rule=rule, together=False)
    if rule is CAPPED:
        assert together[0][0].max_steps_per_epoch == 1 and together[0][1]["inner_epochs"] == 1
    for (a, info_a), (b, info_b) in zip(together, alone):
        assert (a.random_state, a.learning_rate, a.layers_) == (b.random_state, b.learning_rate, b.layers_)
        assert info_a["pilot_learning_rate"] == info_b["pilot_learning_rate"]
        assert info_a["threshold"] == pytest.approx(info_b["threshold"], rel=1e-5)
        sa, sb = a.decision_function(Z), b.decision_function(Z)
        np.testing.assert_allclose(sa, sb, atol=1e-5)
        assert np.corrcoef(np.argsort(np.argsort(sa)), np.argsort(np.argsort(sb)))[0, 1] > 0.9999
        np.testing.assert_allclose(a.L_, b.L_, atol=1e-5)
        np.testing.assert_allclose(a.decision_function(Z[:20] * 0.9), b.decision_function(Z[:20] * 0.9), atol=1e-5)
    assert together[0][1]["threshold"] != together[1][1]["threshold"]  # each member its own lambda


def test_the_default_detector_trains_its_members_together(data):
    """The ensemble's default members share a network and scaling: fitted together, its scores are the
    one-by-one fit's up to float rounding; the progress names the shared phases."""
    X, _ = data
    raw = 40 + 20 * X[:300]
    params = dict(pilot_outer=2, pilot_steps=30, warm_outer=2, warm_steps=5, random_state=2)
    together = RobustAutoencoderEnsemble(**params).fit(raw)
    alone = RobustAutoencoderEnsemble(**params, train_together=False).fit(raw)
    np.testing.assert_allclose(together.decision_scores_, alone.decision_scores_, atol=1e-4)
    assert together.fit_phases() == ["members 1, 2/2 together, pilot autoencoder", "members 1, 2/2 together, warm RDA"]
    assert alone.fit_phases()[1:3] == ["member 1/2, warm RDA", "member 2/2, pilot autoencoder"]


def test_member_groups():
    assert member_groups(MEMBER_GRIDS["extent"]) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert member_groups(MEMBER_GRIDS["widths"]) == [[0, 6], [1], [2], [3], [4], [5, 7]]
    assert member_groups(MEMBER_GRIDS["extent"][:3], together=False) == [[0], [1], [2]]
    assert len(fit_phases(MEMBER_GRIDS["widths"], penalty=None)) == 6


def test_fit_together_refuses_models_of_other_schedules(data):
    X, _ = data
    models = [RobustAutoencoder(**settings()), RobustAutoencoder(**settings(inner_epochs=2))]
    with pytest.raises(ValueError, match="must share"):
        fit_together(X, models)

"""Several lambdas trained side by side in one stacked trainer give the models separate fits give."""

import numpy as np
import pytest

from rda_cli import RobustAutoencoder
from rda_cli.stacked import StackedTrainer, fit_lambda_path

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

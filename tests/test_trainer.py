"""The compiled trainer: its Adam step, its XLA rule, and the reconstruction it returns."""

import numpy as np
import pytest

from rda_cli import RobustAutoencoder
from rda_cli import autoencoder
from rda_cli.autoencoder import XLA_MIN_STEPS, AutoencoderTrainer, DeepAutoencoder

LAYERS = [12, 6, 3]


def data(n=300, d=12, seed=0):
    return np.random.default_rng(seed).random((n, d), dtype=np.float32)


def trainer(seed=0, **kw):
    t = AutoencoderTrainer(DeepAutoencoder(LAYERS), learning_rate=0.01, batch_size=300, seed=seed, **kw)
    t.reinitialize()
    return t


@pytest.mark.parametrize("xla", [False, True])
def test_adam_steps_equal_keras_adam(xla):
    """Three full-batch steps of the fused kernel give what Keras' Adam gives from the same weights."""
    import keras
    import tensorflow as tf

    X = data()
    ours = trainer(jit_compile=xla)
    start = ours.get_weights()
    ours.train(X, 3)

    ref = DeepAutoencoder(LAYERS)
    ref.set_weights(start)
    opt = keras.optimizers.Adam(learning_rate=0.01)
    Xt = tf.constant(X)
    for _ in range(3):  # one batch of all rows: the row order does not change the step
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(ref(Xt) - Xt))
        opt.apply(tape.gradient(loss, ref.trainable_variables), ref.trainable_variables)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_xla_rule_counts_the_fits_steps():
    t = trainer()
    assert t.steps_per_epoch(300) == 1 and t.steps_per_epoch(301) == 2
    assert t.steps_per_epoch(10_000, max_steps=4) == 4
    assert not t.use_xla(XLA_MIN_STEPS - 1) and t.use_xla(XLA_MIN_STEPS)
    assert trainer(jit_compile=True).use_xla(1) and not trainer(jit_compile=False).use_xla(10**9)
    X = data(n=1000)
    short = RobustAutoencoder(layers=LAYERS, outer_iterations=2, inner_epochs=3, batch_size=100)
    long = RobustAutoencoder(layers=LAYERS, outer_iterations=20, inner_epochs=10, batch_size=100)
    for m in (short, long):
        m._start(X)
    cached = autoencoder.cached_trainer(LAYERS, True, 0.001, 100)
    assert not short._use_xla(cached, 1000)  # 2 x 3 x 10 steps
    assert long._use_xla(cached, 1000)  # 20 x 10 x 10 = 2000 steps


def test_xla_and_graph_mode_train_alike():
    X = data()
    a, b = trainer(jit_compile=True), trainer(jit_compile=False)
    la, lb = a.train(X, 5), b.train(X, 5)
    np.testing.assert_allclose(la, lb, rtol=1e-4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-3, atol=1e-5)


def test_reconstruction_in_the_training_call_equals_the_chunked_one():
    X = data(n=500)
    fused, chunked = trainer(), trainer()
    chunked.FORWARD_CHUNK = 64  # more rows than this: reconstructed after the call, 64 rows at a time
    losses_f, L_f = fused.train(X, 2, reconstruct=True)
    losses_c, L_c = chunked.train(X, 2, reconstruct=True)
    np.testing.assert_array_equal(losses_f, losses_c)
    np.testing.assert_allclose(L_f, L_c, atol=1e-6)
    np.testing.assert_allclose(L_f, fused.reconstruct(X), atol=1e-6)


def test_a_fit_gives_the_same_numbers_after_other_fits_compiled():
    """The XLA choice depends on the fit alone: a short fit after a long one (which compiled the XLA
    program of the same shape) equals the same short fit first in a fresh trainer cache."""
    from rda_cli import autoencoder

    X = data(n=400)
    kw = dict(layers=LAYERS, lam=0.05, batch_size=40, random_state=3)
    saved = dict(autoencoder._CACHE)
    try:
        autoencoder._CACHE.clear()
        alone = RobustAutoencoder(outer_iterations=2, inner_epochs=2, **kw).fit(X)
        autoencoder._CACHE.clear()
        RobustAutoencoder(outer_iterations=25, inner_epochs=8, **kw).fit(X)  # 2000 steps: XLA
        after = RobustAutoencoder(outer_iterations=2, inner_epochs=2, **kw).fit(X)
    finally:
        autoencoder._CACHE.clear()
        autoencoder._CACHE.update(saved)
    np.testing.assert_array_equal(alone.S_, after.S_)
    np.testing.assert_array_equal(alone.L_, after.L_)

"""Fit Robust Deep Autoencoders for several lambdas at once, in one compiled training step.

A lambda sweep fits K models of the same shape on the same ``X``. ``StackedTrainer`` holds their
K networks as stacked weights (kernels of shape ``(K, a, b)``) and trains them together: every
layer is one batched matrix product over the K models, so the small per-batch products of a
single network (133 x 784 by 784 x 400 at the paper's batch size) become K times larger calls,
with less per-call overhead. The models stay independent: the loss is the sum of their own mean
squared errors, so each model's gradient is its own, and Adam works element by element; each
model draws its own weights and mini-batch order from its own seed, as a single fit would.

:func:`fit_lambda_path` runs the alternating algorithm of :class:`~rda_cli.estimator.RobustAutoencoder`
for all K lambdas in lockstep, through the loop of a single fit (:func:`~rda_cli.estimator.fit_alternating`),
and returns K fitted ``RobustAutoencoder`` objects, as K separate fits with the same seed would (up
to floating-point rounding: the batched products add in another order). A model that meets the stopping rule keeps the state it stopped in, while the others go on.
"""

from __future__ import annotations

import numpy as np

from .autoencoder import DeepAutoencoder, reset_optimizer_state  # first: imports TensorFlow (see _process)
from .estimator import RobustAutoencoder, fit_alternating, start_fits

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["StackedTrainer", "fit_lambda_path"]


class StackedTrainer:
    """Adam / mean-squared-error training of K tied-or-untied sigmoid autoencoders of one shape.

    Parameters
    ----------
    layer_sizes : list of int
        Sizes including the input width, as for :class:`~rda_cli.autoencoder.DeepAutoencoder`.
    n_models : int
        K, the number of networks trained together.
    seeds : list of int
        One seed per network: its weight draws and its per-epoch shuffles.
    tied, learning_rate, batch_size, jit_compile
        As for :class:`~rda_cli.autoencoder.AutoencoderTrainer`.

    Attributes
    ----------
    traces : int
        How many times the training loop was traced (once per data shape).
    """

    def __init__(self, layer_sizes, n_models, seeds, tied=True, learning_rate=0.001, batch_size=133,
                 jit_compile=True):
        self.layer_sizes = [int(d) for d in layer_sizes]
        self.k = int(n_models)
        if len(seeds) != self.k:
            raise ValueError(f"need one seed per model: {self.k} models, {len(seeds)} seeds")
        self.tied = bool(tied)
        self.batch_size = int(batch_size)
        # One single-model network gives the weight order and the initial-value draws, so that a
        # stacked model k starts exactly where a single fit with seed k would.
        self._template = DeepAutoencoder(self.layer_sizes, tied=self.tied)
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.variables = [
            tf.Variable(tf.zeros((self.k,) + tuple(w.shape)), name=w.name, trainable=True)
            for w in self._template.weights
        ]
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build(self.variables)
        self.traces = 0
        self._train = tf.function(self._train_impl, jit_compile=jit_compile)
        self._forward = tf.function(self._forward_impl, jit_compile=jit_compile, reduce_retracing=True)

    # -- weights -------------------------------------------------------------------------------
    def _split(self):
        """The stacked variables as (encoder kernels, encoder biases, decoder kernels, decoder biases)."""
        n = len(self.layer_sizes) - 1
        v = self.variables
        dec_k = [] if self.tied else v[2 * n : 3 * n]
        return v[:n], v[n : 2 * n], dec_k, v[-n:]

    def reinitialize(self):
        """Each model draws fresh weights from its own stream; Adam's state is reset."""
        draws = [self._template.init_values(rng) for rng in self.rngs]
        for i, var in enumerate(self.variables):
            var.assign(np.stack([d[i] for d in draws]))
        reset_optimizer_state(self.optimizer)

    def get_weights(self, k):
        """Model ``k``'s weights in :class:`DeepAutoencoder`'s order (as ``get_weights`` gives them)."""
        return [v[k].numpy() for v in self.variables]

    # -- compiled kernels ----------------------------------------------------------------------
    def _net(self, x):
        enc_k, enc_b, dec_k, dec_b = self._split()
        h = x
        for w, b in zip(enc_k, enc_b):
            h = tf.sigmoid(tf.matmul(h, w) + b[:, None, :])
        code = h
        for i in reversed(range(len(enc_k))):
            if self.tied:
                h = tf.matmul(h, enc_k[i], transpose_b=True)
            else:
                h = tf.matmul(h, dec_k[i])
            h = tf.sigmoid(h + dec_b[i][:, None, :])
        return h, code

    def _step(self, xb):
        with tf.GradientTape() as tape:
            recon, _ = self._net(xb)
            # sum over models of each model's own mean squared error: model k's gradient is its own
            loss_k = tf.reduce_mean(tf.square(recon - xb), axis=[1, 2])
            loss = tf.reduce_sum(loss_k)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply(grads, self.variables)
        return loss_k

    def _train_impl(self, X, perms):
        """One epoch: ``X`` is (K, n, d), ``perms`` (K, n) each model's row order."""
        self.traces += 1
        n = X.shape[1]
        b = min(self.batch_size, n)
        n_full, rest = divmod(n, b)
        total = tf.zeros((self.k,))
        for i in tf.range(n_full):
            idx = tf.slice(perms, [0, i * b], [self.k, b])
            total += self._step(tf.gather(X, idx, axis=1, batch_dims=1)) * b
        if rest:
            total += self._step(tf.gather(X, perms[:, n_full * b :], axis=1, batch_dims=1)) * rest
        return total / n

    def _forward_impl(self, X):
        return self._net(X)

    # -- public API ----------------------------------------------------------------------------
    def train(self, X, epochs):
        """Train every model ``epochs`` epochs on its own slice of ``X`` (K, n, d).

        Returns the mean loss per epoch and model, shape (epochs, K).
        """
        X = tf.convert_to_tensor(np.asarray(X, dtype=np.float32))
        n = int(X.shape[1])
        losses = []
        for _ in range(int(epochs)):
            perms = np.stack([rng.permutation(n) for rng in self.rngs]).astype(np.int32)
            losses.append(self._train(X, tf.convert_to_tensor(perms)).numpy())
        return np.array(losses)

    def train_reconstruct(self, X, epochs):
        """:meth:`train`, then :meth:`reconstruct` of the same ``X``: ``(losses, reconstructions)``."""
        return self.train(X, epochs), self.reconstruct(X)

    def reconstruct(self, X, chunk=8192):
        """Each model's reconstruction of its own slice of ``X`` (K, n, d)."""
        X = np.asarray(X, dtype=np.float32)
        out = [self._forward(tf.convert_to_tensor(X[:, s : s + chunk]))[0].numpy()
               for s in range(0, X.shape[1], chunk)]
        return np.concatenate(out, axis=1) if out else np.zeros_like(X)


def fit_lambda_path(X, lambdas, stack=None, **params):
    """Fit one :class:`RobustAutoencoder` per lambda, ``stack`` of them at a time in one trainer.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    lambdas : sequence of float
    stack : int or None, default=None
        How many lambdas train together; None: all of them.
    **params
        Any other :class:`RobustAutoencoder` parameter (``warm_start`` is not supported). Every
        model gets the same ``random_state``, as independent fits of a sweep would.

    Returns
    -------
    list of RobustAutoencoder
        Fitted, in the order of ``lambdas``; each behaves as a separately fitted model
        (``decision_function``, ``transform``, ``save``...).

    Examples
    --------
    >>> import numpy as np
    >>> from rda_cli.stacked import fit_lambda_path
    >>> X = np.random.default_rng(0).random((200, 20)).astype("float32")
    >>> models = fit_lambda_path(X, [0.001, 0.01], layers=[20, 10, 5], outer_iterations=2,
    ...                          inner_epochs=2, random_state=0)
    >>> [m.S_.shape for m in models]
    [(200, 20), (200, 20)]
    """
    lambdas = [float(v) for v in lambdas]
    if not lambdas:
        raise ValueError("lambdas must not be empty")
    if params.get("warm_start"):
        raise ValueError("fit_lambda_path trains the lambdas side by side; warm_start is not supported")
    if params.get("max_steps_per_epoch") is not None:
        raise ValueError("fit_lambda_path visits every row each epoch; max_steps_per_epoch is not supported")
    if np.isnan(np.asarray(X, dtype=np.float32)).any():
        raise ValueError("fit_lambda_path does not take missing values (NaN): fit RobustAutoencoder per lambda")
    stack = len(lambdas) if stack is None else int(stack)
    if stack < 1:
        raise ValueError(f"stack must be >= 1, got {stack!r}")
    models = [RobustAutoencoder(lam=lam, **params) for lam in lambdas]
    for start in range(0, len(models), stack):
        _fit_together(X, models[start : start + stack])
    return models


def _fit_together(X, models):
    """Fit ``models`` (same schedule, own lambdas) on ``X`` side by side in one stacked trainer."""
    X = start_fits(X, models)
    first, k = models[0], len(models)
    trainer = StackedTrainer(first.layers_, k, [first._seed()] * k, tied=first.tied,
                             learning_rate=first.learning_rate, batch_size=first.batch_size)
    trainer.reinitialize()
    S = np.zeros((k,) + X.shape, np.float32)
    fit_alternating(X, models, trainer, S, np.broadcast_to(X, S.shape).copy())

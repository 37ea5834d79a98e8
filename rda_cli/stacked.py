"""Fit several Robust Deep Autoencoders of one shape at once, in one compiled training step.

K models of the same network shape and batch size on the same rows -- a lambda sweep, or the table
detector's members of one network and scaling (:func:`rda_cli.table_rule.fit_members`) -- train side
by side. ``StackedTrainer`` holds their K networks and trains them in one compiled step: each step
runs every model's forward and backward pass as its own chain of operations in one program, which
the runtime runs side by side, with one call, one loop and one step counter for all. The models stay
independent: the loss is the sum of their own mean squared errors, so each model's gradient is its
own; each model's weights are updated by TensorFlow's fused Adam kernel with its own learning rate
(the update a single fit applies, :class:`~rda_cli.autoencoder.AutoencoderTrainer`); each model draws
its weights and mini-batch orders (all rows, or ``max_steps_per_epoch`` random batches) from its own
seed, and missing values (NaN) take the single fit's masked loss.

:func:`fit_together` runs the alternating algorithm of :class:`~rda_cli.estimator.RobustAutoencoder`
for K estimators in lockstep, through the loop of a single fit (:func:`~rda_cli.estimator.fit_alternating`):
each ends as it would fitted alone with its seed, up to floating-point rounding (XLA, where a fit is
long enough to be compiled, may fuse the K models' operations differently). Each may have its own
``lam``, penalty, learning rate, seed and warm state
(:meth:`~rda_cli.estimator.RobustAutoencoder.set_warm_state`); the network, batch size and schedule are
shared. :func:`fit_lambda_path` is the lambda sweep through it. A model that meets the stopping rule
keeps the state it stopped in, while the others go on.
"""

from __future__ import annotations

import threading

import numpy as np

from .autoencoder import (  # first: imports TensorFlow (see _process)
    AutoencoderTrainer, CompiledLoop, DeepAutoencoder, cached, epoch_orders, rows_per_epoch, steps_per_epoch)
from .estimator import RobustAutoencoder, fit_alternating, start_fits

import tensorflow as tf  # noqa: E402

__all__ = ["StackedTrainer", "cached_stacked_trainer", "fit_together", "fit_lambda_path", "stack_key"]


class StackedTrainer(CompiledLoop):
    """Adam / mean-squared-error training of K tied-or-untied sigmoid autoencoders of one shape.

    Parameters
    ----------
    layer_sizes : list of int
        Sizes including the input width, as for :class:`~rda_cli.autoencoder.DeepAutoencoder`.
    n_models : int
        K, the number of networks trained together.
    seeds : list of int
        One seed per network: its weight draws and its per-epoch shuffles.
    tied, batch_size, jit_compile
        As for :class:`~rda_cli.autoencoder.AutoencoderTrainer`.
    learning_rate : float or sequence of float
        Adam's learning rate: one for all, or one per network (:attr:`learning_rates`).

    Attributes
    ----------
    traces : int
        How many times the training loop was traced (once per data shape and rows per epoch).
    lock : threading.RLock
        Held by whoever trains with it (a cached trainer, :func:`cached_stacked_trainer`).
    """

    BETA_1, BETA_2, EPSILON = AutoencoderTrainer.BETA_1, AutoencoderTrainer.BETA_2, AutoencoderTrainer.EPSILON
    FORWARD_CHUNK = AutoencoderTrainer.FORWARD_CHUNK

    def __init__(self, layer_sizes, n_models, seeds, tied=True, learning_rate=0.001, batch_size=133,
                 jit_compile="auto"):
        self.layer_sizes = [int(d) for d in layer_sizes]
        self.k = int(n_models)
        self.tied = bool(tied)
        self.batch_size = int(batch_size)
        self.jit_compile = jit_compile
        # One single-model network gives the weight order and the initial-value draws, so that a
        # stacked model k starts exactly where a single fit with seed k would.
        self._template = DeepAutoencoder(self.layer_sizes, tied=self.tied)
        self.reseed(seeds)
        self._lr = tf.Variable(tf.zeros((self.k,)), trainable=False)  # read by the compiled step: no retracing
        self.learning_rates = learning_rate
        # model k's own variables (DeepAutoencoder's order) and Adam moments; the forward pass stacks them
        self.variables = [[tf.Variable(tf.zeros(w.shape), name=f"m{k}_{w.name}") for w in self._template.weights]
                          for k in range(self.k)]
        self.moments = [[(tf.Variable(tf.zeros(v.shape), trainable=False), tf.Variable(tf.zeros(v.shape), trainable=False))
                         for v in own] for own in self.variables]
        self.step_count = tf.Variable(0.0, trainable=False)  # Adam's t, shared: the models step together
        self.traces = 0
        self._programs = {jit: tf.function(self._run_impl, jit_compile=jit, autograph=False) for jit in (True, False)}
        self._signatures = set()
        self._forward = tf.function(self._forward_impl, autograph=False, reduce_retracing=True)
        self.lock = threading.RLock()

    # -- state ---------------------------------------------------------------------------------
    @property
    def learning_rates(self):
        """Each model's Adam learning rate (a variable of the compiled step: setting it does not retrace)."""
        return [float(v) for v in self._lr.numpy()]

    @learning_rates.setter
    def learning_rates(self, value):
        self._lr.assign(np.broadcast_to(np.asarray(value, np.float32), (self.k,)))

    def reseed(self, seeds):
        """Restart each model's random stream of weight draws and shuffles, one seed per model."""
        if len(seeds) != self.k:
            raise ValueError(f"need one seed per model: {self.k} models, {len(seeds)} seeds")
        self.rngs = [np.random.default_rng(s) for s in seeds]

    def reinitialize(self):
        """Each model draws fresh weights from its own stream; Adam's state is reset."""
        for own, rng in zip(self.variables, self.rngs):
            for var, value in zip(own, self._template.init_values(rng)):
                var.assign(value)
        self.reset_optimizer()

    def reset_optimizer(self):
        """Zero Adam's moments and step counter, keeping the weights."""
        for own in self.moments:
            for m, v in own:
                m.assign(tf.zeros(m.shape))
                v.assign(tf.zeros(v.shape))
        self.step_count.assign(0.0)

    def get_weights(self, k):
        """Model ``k``'s weights in :class:`DeepAutoencoder`'s order (as ``get_weights`` gives them)."""
        return [v.numpy() for v in self.variables[k]]

    def set_weights(self, k, weights):
        """Give model ``k`` these weights (:class:`DeepAutoencoder`'s order)."""
        for var, w in zip(self.variables[k], weights):
            var.assign(np.asarray(w, np.float32))

    # -- compiled kernels ----------------------------------------------------------------------
    def _net(self, x):
        """Reconstructions and codes of ``x`` (K, rows, d): model k's own network on its own slice. Each
        model is its own chain of operations in the one compiled step, so the runtime runs the K chains
        side by side (on CPU faster than one batched matrix product per layer over the K models)."""
        n = len(self.layer_sizes) - 1
        recon, codes = [], []
        for k, w in enumerate(self.variables):
            enc_k, enc_b = w[:n], w[n : 2 * n]
            dec_k, dec_b = ([] if self.tied else w[2 * n : 3 * n]), w[-n:]
            h = x[k]
            for kernel, b in zip(enc_k, enc_b):
                h = tf.sigmoid(tf.matmul(h, kernel) + b)
            codes.append(h)
            for i in reversed(range(n)):
                h = tf.matmul(h, enc_k[i], transpose_b=True) if self.tied else tf.matmul(h, dec_k[i])
                h = tf.sigmoid(h + dec_b[i])
            recon.append(h)
        return tf.stack(recon), tf.stack(codes)

    def _step(self, xb, wb=None):
        """One Adam step per model on its batch ``xb[k]`` (with ``wb``: observed entries, the masked loss of
        :meth:`AutoencoderTrainer._step`); returns each model's loss."""
        with tf.GradientTape() as tape:
            err = tf.square(self._net(xb)[0] - xb)
            if wb is None:
                loss_k = tf.reduce_mean(err, axis=[1, 2])
            else:
                loss_k = tf.reduce_sum(wb * err, axis=[1, 2]) / tf.maximum(tf.reduce_sum(wb, axis=[1, 2]), 1.0)
            loss = tf.reduce_sum(loss_k)  # model k's gradient is its own loss's
        grads = tape.gradient(loss, self.variables)
        t = self.step_count.assign_add(1.0)
        b1, b2 = self.BETA_1, self.BETA_2
        b1_power, b2_power = tf.pow(b1, t), tf.pow(b2, t)
        lrs = self._lr.read_value()
        for k in range(self.k):
            for var, (m, v), g in zip(self.variables[k], self.moments[k], grads[k]):
                tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1_power,
                                             beta2_power=b2_power, lr=lrs[k], beta1=b1, beta2=b2,
                                             epsilon=self.EPSILON, grad=g)
        return loss_k

    def _run_impl(self, X, perms, W, reconstruct):
        """Epoch ``e`` visits, for model ``k``, the rows ``perms[e, k]`` of ``X[k]`` (and of the mask ``W``)
        in that order; returns each epoch's mean loss per model, and with ``reconstruct`` the reconstructions."""
        self.traces += 1  # Python side effect: runs only while tracing
        visit = perms.shape[2]
        b = min(self.batch_size, visit)
        n_full, rest = divmod(visit, b)

        def step(idx):
            xb = tf.gather(X, idx, axis=1, batch_dims=1)
            return self._step(xb) if W is None else self._step(xb, tf.gather(W, idx))

        def epoch(e, losses):
            perm = tf.gather(perms, e)

            def batch(i, total):
                return i + 1, total + step(tf.slice(perm, [0, i * b], [self.k, b])) * b

            _, total = tf.while_loop(lambda i, _: i < n_full, batch, (tf.constant(0), tf.zeros((self.k,))))
            if rest:
                total += step(perm[:, n_full * b :]) * rest
            return e + 1, losses.write(e, total / visit)

        n_epochs = tf.shape(perms)[0]
        _, losses = tf.while_loop(lambda e, _: e < n_epochs, epoch,
                                  (tf.constant(0), tf.TensorArray(tf.float32, size=n_epochs)))
        if reconstruct:
            return losses.stack(), self._net(X)[0]
        return losses.stack()

    def _forward_impl(self, X):
        return self._net(X)

    # -- public API ----------------------------------------------------------------------------
    def train(self, X, epochs, mask=None, max_steps=None, reconstruct=False, xla=None):
        """Train every model ``epochs`` epochs on its own slice of ``X`` (K, n, d) in one compiled call.

        ``mask`` (n, d), ``max_steps``, ``reconstruct`` and ``xla`` as for :meth:`AutoencoderTrainer.train`;
        model ``k`` draws its epochs' row orders from its own stream as a single trainer with its seed does.
        Returns the mean loss per epoch and model, shape (epochs, K), or with ``reconstruct`` the pair
        (losses, reconstructions (K, n, d)).
        """
        X_host = np.asarray(X, dtype=np.float32)
        n, epochs = X_host.shape[1], int(epochs)
        visit = rows_per_epoch(n, self.batch_size, max_steps)
        if xla is None:
            xla = self.use_xla(epochs * steps_per_epoch(n, self.batch_size, max_steps))
        perms = np.stack([epoch_orders(rng, n, visit, epochs) for rng in self.rngs], axis=1)  # (epochs, K, visit)
        return self._run(X_host, perms, mask, reconstruct, xla, n)

    def train_reconstruct(self, X, epochs, mask=None, max_steps=None):
        """:meth:`train`, then each model's reconstruction of its slice of ``X``: ``(losses, reconstructions)``."""
        return self.train(X, epochs, mask=mask, max_steps=max_steps, reconstruct=True)

    def reconstruct(self, X, chunk=None):
        """Each model's reconstruction of its own slice of ``X`` (K, n, d)."""
        X = np.asarray(X, dtype=np.float32)
        chunk = self.FORWARD_CHUNK if chunk is None else int(chunk)
        out = [self._forward(tf.convert_to_tensor(X[:, s : s + chunk]))[0].numpy()
               for s in range(0, X.shape[1], chunk)]
        return np.concatenate(out, axis=1) if out else np.zeros_like(X)


def cached_stacked_trainer(layer_sizes, n_models, tied=True, batch_size=133):
    """The process's stacked trainer of ``n_models`` networks of these settings, created on first use (in
    the cache of :func:`rda_cli.autoencoder.cached_trainer`); its seeds and learning rates are set by
    whoever trains, under its ``lock``."""
    key = ("stacked", tuple(int(d) for d in layer_sizes), int(n_models), bool(tied), int(batch_size))
    return cached(key, lambda: StackedTrainer(key[1], key[2], [0] * key[2], tied=key[3], batch_size=key[4]))


def stack_key(model):
    """What estimators must share to be fitted together (started by :func:`~rda_cli.estimator.start_fits`):
    the network, the batch size and the schedule."""
    return (tuple(model.layers_), bool(model.tied), int(model.batch_size), model._schedule())


class _Bank:
    """A stacked trainer as the bank :func:`rda_cli.solver.alternate` drives, compiled with XLA or not
    (decided once per fit)."""

    def __init__(self, trainer, xla):
        self.trainer, self.xla = trainer, xla

    def reinitialize(self):
        self.trainer.reinitialize()

    def train_reconstruct(self, X, epochs, mask=None, max_steps=None):
        return self.trainer.train(X, epochs, mask=mask, max_steps=max_steps, reconstruct=True, xla=self.xla)

    def get_weights(self, k):
        return self.trainer.get_weights(k)


def fit_together(X, models, seeds=None):
    """Fit the :class:`RobustAutoencoder` estimators ``models`` on ``X`` side by side in one stacked trainer.

    Each ends as it would after its own ``fit(X)`` (up to floating-point rounding): its ``lam``, penalty,
    learning rate, ``random_state`` and warm state (:meth:`~rda_cli.estimator.RobustAutoencoder.set_warm_state`
    or ``warm_start``) are its own. They must share the network, batch size and schedule
    (:func:`stack_key`; ValueError otherwise). ``seeds``: one per model instead of their ``random_state``.

    Returns
    -------
    list of RobustAutoencoder
        ``models``, fitted.
    """
    models = list(models)
    if not models:
        raise ValueError("fit_together needs at least one model")
    X = start_fits(X, models)
    key = stack_key(models[0])
    if any(stack_key(m) != key for m in models[1:]):
        raise ValueError("models fitted together must share layers, tied, batch_size and the schedule "
                         "(outer_iterations, inner_epochs, max_steps_per_epoch, reinitialize, tol, verbose)")
    first, k = models[0], len(models)
    seeds = [m._seed() for m in models] if seeds is None else [int(s) for s in seeds]
    starts = [m._start_state(X) for m in models]  # (S, LS_prev, weights or None)
    trainer = cached_stacked_trainer(first.layers_, k, first.tied, first.batch_size)
    with trainer.lock:
        trainer.reseed(seeds)
        trainer.learning_rates = [m.learning_rate for m in models]
        trainer.reinitialize()  # as a single fit: draw, then a warm state's weights, Adam reset
        for j, (_, _, weights) in enumerate(starts):
            if weights is not None:
                trainer.set_weights(j, weights)
        trainer.reset_optimizer()
        schedule = first._schedule()
        steps = steps_per_epoch(X.shape[0], first.batch_size, schedule.max_steps_per_epoch)
        bank = _Bank(trainer, trainer.use_xla(schedule.outer_iterations * schedule.inner_epochs * steps))
        S = np.stack([s[0] for s in starts])
        LS_prev = np.stack([s[1] for s in starts])
        fit_alternating(X, models, bank, S, LS_prev)
    return models


def fit_lambda_path(X, lambdas, stack=None, **params):
    """Fit one :class:`RobustAutoencoder` per lambda, ``stack`` of them at a time in one trainer.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NaN: missing.
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
    stack = len(lambdas) if stack is None else int(stack)
    if stack < 1:
        raise ValueError(f"stack must be >= 1, got {stack!r}")
    models = [RobustAutoencoder(lam=lam, **params) for lam in lambdas]
    seed = models[0]._seed()  # one seed for the whole path, also when random_state is None
    for start in range(0, len(models), stack):
        group = models[start : start + stack]
        fit_together(X, group, [seed] * len(group))
    return models

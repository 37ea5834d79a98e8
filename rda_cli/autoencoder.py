"""The deep autoencoder of the paper, and a trainer that runs an outer iteration's epochs in one compiled call.

``DeepAutoencoder`` is a small Keras model: sigmoid layers of the given sizes, and a decoder that
by default reuses the encoder's kernels transposed (tied weights, own biases), as in Zhou &
Paffenroth (2017). ``AutoencoderTrainer`` trains it with Adam on mean squared error. One call is
one ``tf.function`` that loops over all mini-batches of all requested epochs and can end with the
reconstruction of the data; it is traced once per data shape, so the alternating RDA loop calls it
every outer iteration without retracing. Re-initialising the network (as the authors' outlier
script does every outer iteration) assigns new values to the same variables, so it does not
retrace either. The loop works on the TensorFlow variables under the Keras model's weights and
updates them with TensorFlow's fused Adam kernel; XLA compiles it for long fits only
(:data:`XLA_MIN_STEPS`).
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from ._process import quiet_native_stderr

with quiet_native_stderr():  # only when the rda command asked for a quiet start (see _process)
    import keras
    import tensorflow as tf
    from keras import ops

    tf.config.list_physical_devices()

__all__ = ["DeepAutoencoder", "AutoencoderTrainer", "cached_trainer", "cached", "CACHE_SIZE", "rows_per_epoch",
           "steps_per_epoch", "epoch_orders"]


@keras.saving.register_keras_serializable(package="rda_cli")
class DeepAutoencoder(keras.Model):
    """Sigmoid autoencoder ``d0 -> d1 -> ... -> dk -> ... -> d1 -> d0``.

    Parameters
    ----------
    layer_sizes : list of int
        Sizes including the input, e.g. ``[784, 196, 49]``; the last is the code size.
    tied : bool, default=True
        Decoder kernels are the encoder's transposed (``W.T``); each decoder layer still has its
        own bias. With ``tied=False`` the decoder has its own kernels.
    """

    def __init__(self, layer_sizes, tied=True, **kwargs):
        super().__init__(**kwargs)
        self.layer_sizes = [int(d) for d in layer_sizes]
        self.tied = bool(tied)
        pairs = list(zip(self.layer_sizes[:-1], self.layer_sizes[1:]))
        self.enc_kernels = [
            self.add_weight(shape=(a, b), initializer="glorot_uniform", name=f"enc_kernel_{i}")
            for i, (a, b) in enumerate(pairs)
        ]
        self.enc_biases = [
            self.add_weight(shape=(b,), initializer="zeros", name=f"enc_bias_{i}")
            for i, (a, b) in enumerate(pairs)
        ]
        self.dec_kernels = (
            []
            if self.tied
            else [
                self.add_weight(shape=(b, a), initializer="glorot_uniform", name=f"dec_kernel_{i}")
                for i, (a, b) in enumerate(pairs)
            ]
        )
        self.dec_biases = [
            self.add_weight(shape=(a,), initializer="zeros", name=f"dec_bias_{i}")
            for i, (a, b) in enumerate(pairs)
        ]
        self.built = True

    def encode(self, x):
        """Innermost hidden layer (the code)."""
        for w, b in zip(self.enc_kernels, self.enc_biases):
            x = ops.sigmoid(ops.matmul(x, w) + b)
        return x

    def decode(self, h):
        for i in reversed(range(len(self.enc_kernels))):
            w = ops.transpose(self.enc_kernels[i]) if self.tied else self.dec_kernels[i]
            h = ops.sigmoid(ops.matmul(h, w) + self.dec_biases[i])
        return h

    def call(self, x):
        return self.decode(self.encode(x))

    def get_config(self):
        return {"layer_sizes": self.layer_sizes, "tied": self.tied, "name": self.name}

    def init_values(self, rng):
        """Fresh weights drawn from ``rng`` (Glorot-uniform kernels, zero biases), as numpy arrays."""
        values = []
        for v in self.weights:
            shape = tuple(v.shape)
            if len(shape) == 2:
                limit = np.sqrt(6.0 / (shape[0] + shape[1]))
                values.append(rng.uniform(-limit, limit, size=shape).astype(np.float32))
            else:
                values.append(np.zeros(shape, np.float32))
        return values


def reset_optimizer_state(optimizer):
    """Zero a Keras optimizer's moments and step counter in place (its learning rate is kept)."""
    for v in optimizer.variables:
        if "learning_rate" not in v.path:
            v.assign(ops.zeros(v.shape, dtype=v.dtype))


XLA_MIN_STEPS = 2000
"""``jit_compile="auto"`` compiles the training loop with XLA for a fit of at least this many
mini-batch steps. Compiling costs about half a second once per data shape; it then saves about
0.2 ms per step against TensorFlow's graph executor (``docs/performance.md``): a short fit is
faster without it, a long one with it."""


def rows_per_epoch(n_rows, batch_size, max_steps=None):
    """The rows an epoch over ``n_rows`` rows visits: all, or ``max_steps`` mini-batches of ``batch_size``."""
    return n_rows if max_steps is None else min(n_rows, int(max_steps) * min(int(batch_size), n_rows))


def steps_per_epoch(n_rows, batch_size, max_steps=None):
    """Mini-batch steps of one epoch over ``n_rows`` rows (:func:`rows_per_epoch`)."""
    visit = rows_per_epoch(n_rows, batch_size, max_steps)
    return -(-visit // min(int(batch_size), max(visit, 1)))


def epoch_orders(rng, n_rows, visit, epochs):
    """The rows each of ``epochs`` epochs visits, in order: the first ``visit`` of a fresh permutation of
    ``n_rows`` drawn from ``rng`` per epoch; an int32 array of shape (epochs, visit)."""
    perms = np.empty((int(epochs), visit), np.int32)
    for e in range(int(epochs)):  # one permutation per epoch, drawn in order
        perms[e] = rng.permutation(n_rows)[:visit]
    return perms


class CompiledLoop:
    """What :class:`AutoencoderTrainer` and :class:`rda_cli.stacked.StackedTrainer` share: running their
    compiled training program (``_programs[xla]``), traced once per signature for any number of epochs."""

    def use_xla(self, steps):
        """Whether a fit of ``steps`` mini-batch steps in all (per network) is compiled with XLA (``jit_compile``)."""
        if self.jit_compile == "auto":
            return steps >= XLA_MIN_STEPS
        return bool(self.jit_compile)

    def _run(self, X_host, perms, mask, reconstruct, xla, n_rows):
        """Train on ``X_host`` visiting the rows ``perms`` (epochs first), the loss over ``mask``'s entries;
        returns the losses, or with ``reconstruct`` (losses, reconstruction of ``X_host``)."""
        X = tf.convert_to_tensor(X_host)
        W = None if mask is None else tf.convert_to_tensor(np.asarray(mask, dtype=np.float32))
        # up to FORWARD_CHUNK rows the reconstruction runs in the training call; beyond, in chunks
        # after it (the hidden layers of all rows at once could take more memory than X itself)
        fused = bool(reconstruct) and n_rows <= self.FORWARD_CHUNK
        program = self._programs[bool(xla)]
        signature = (bool(xla), tuple(X.shape), perms.shape[1:], W is None, fused)
        if signature not in self._signatures:  # traced once for any number of epochs (pilot and continuation)
            program.get_concrete_function(tf.TensorSpec(X.shape, tf.float32),
                                          tf.TensorSpec((None,) + perms.shape[1:], tf.int32),
                                          None if W is None else tf.TensorSpec(W.shape, tf.float32), fused)
            self._signatures.add(signature)
        out = program(X, tf.convert_to_tensor(perms), W, fused)
        if fused:
            return out[0].numpy(), out[1].numpy()
        if reconstruct:
            return out.numpy(), self.reconstruct(X_host)
        return out.numpy()


class AutoencoderTrainer(CompiledLoop):
    """Adam / mean-squared-error training of a :class:`DeepAutoencoder` on in-memory arrays.

    One call of :meth:`train` runs all requested epochs (and, if asked, the reconstruction of the
    data) in one compiled TensorFlow function: a loop over epochs and mini-batches, each step a
    forward and backward pass and TensorFlow's fused Adam update of every weight. It is traced once
    per data shape and number of epochs; re-drawing the weights assigns new values to the same
    variables and does not retrace.

    Parameters
    ----------
    model : DeepAutoencoder
    learning_rate : float
    batch_size : int
    seed : int
        Seeds the weight draws and the per-epoch shuffles.
    jit_compile : bool or "auto", default="auto"
        Compile the training loop with XLA: always, never, or (``"auto"``) when a call asks for at
        least :data:`XLA_MIN_STEPS` mini-batch steps. :meth:`train`'s ``xla`` overrides it per call.
    """

    BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Keras' Adam defaults
    FORWARD_CHUNK = 16384  # rows per forward pass (bounds the memory of the hidden layers)

    def __init__(self, model, learning_rate=0.001, batch_size=133, seed=0, jit_compile="auto"):
        self.model = model
        self.batch_size = int(batch_size)
        # a variable read by the compiled step: changing it (pilot -> continuation) does not retrace
        self._lr = tf.Variable(float(learning_rate), trainable=False, dtype=tf.float32)
        self.rng = np.random.default_rng(seed)
        self.jit_compile = jit_compile
        # the TensorFlow variables under the Keras ones (TensorFlow backend): the loop updates them in place
        self.variables = [v.value for v in model.trainable_variables]
        if not all(isinstance(v, tf.Variable) for v in self.variables):
            raise TypeError("AutoencoderTrainer needs Keras' TensorFlow backend")
        self.moments = [(tf.Variable(tf.zeros(v.shape), trainable=False), tf.Variable(tf.zeros(v.shape), trainable=False))
                        for v in self.variables]
        self.step_count = tf.Variable(0.0, trainable=False)  # Adam's t
        self.traces = 0  # how many times the training loop was traced (tests assert on it)
        self._programs = {jit: tf.function(self._run_impl, jit_compile=jit, autograph=False) for jit in (True, False)}
        self._signatures = set()  # (xla, X shape, rows per epoch, masked, fused) traced with any number of epochs
        self._forward = tf.function(self._forward_impl, autograph=False, reduce_retracing=True)
        self.lock = threading.RLock()  # held by whoever trains or scores with it (see cached_trainer)
        self.loaded = None  # the NetworkState whose weights the model holds now, if any

    # -- state ---------------------------------------------------------------------------------
    @property
    def learning_rate(self):
        """Adam's learning rate: a variable of the compiled step, so setting it does not retrace."""
        return float(self._lr.numpy())

    @learning_rate.setter
    def learning_rate(self, value):
        if float(value) != self.learning_rate:
            self._lr.assign(float(value))

    def reseed(self, seed):
        """Restart the random stream of weight draws and shuffles."""
        self.rng = np.random.default_rng(seed)

    def get_weights(self):
        return [np.array(w) for w in self.model.get_weights()]

    def set_weights(self, weights):
        self.model.set_weights(weights)

    def load(self, network):
        """Hold ``network``'s weights (a :class:`~rda_cli.persistence.NetworkState`); a no-op if it does already."""
        if self.loaded is not network:
            self.set_weights(network.weights)
            self.loaded = network

    def reinitialize(self):
        """Draw new weights and reset Adam's moments and step counter (no retracing)."""
        for v, value in zip(self.model.weights, self.model.init_values(self.rng)):
            v.assign(value)
        self.reset_optimizer()

    def reset_optimizer(self):
        """Zero Adam's moments and step counter, keeping the weights."""
        for m, v in self.moments:
            m.assign(tf.zeros(m.shape))
            v.assign(tf.zeros(v.shape))
        self.step_count.assign(0.0)

    # -- compiled kernels ----------------------------------------------------------------------
    def _step(self, xb, wb=None):
        """One Adam step on the mean squared error of batch ``xb``; with ``wb`` (1 observed, 0 missing)
        the squared error over observed entries divided by their count."""
        with tf.GradientTape() as tape:
            err = tf.square(self.model(xb) - xb)
            loss = tf.reduce_mean(err) if wb is None else tf.reduce_sum(wb * err) / tf.maximum(tf.reduce_sum(wb), 1.0)
        grads = tape.gradient(loss, self.variables)
        t = self.step_count.assign_add(1.0)
        b1, b2 = self.BETA_1, self.BETA_2
        b1_power, b2_power = tf.pow(b1, t), tf.pow(b2, t)
        for var, (m, v), g in zip(self.variables, self.moments, grads):
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1_power,
                                         beta2_power=b2_power, lr=self._lr.read_value(), beta1=b1, beta2=b2,
                                         epsilon=self.EPSILON, grad=g)
        return loss

    def _run_impl(self, X, perms, W, reconstruct):
        """Epoch ``e`` visits the rows ``perms[e]`` of ``X`` (and of the mask ``W``, if any) in that
        order; returns each epoch's mean loss, and with ``reconstruct`` the reconstruction of ``X``."""
        self.traces += 1  # Python side effect: runs only while tracing
        arrays = (X,) if W is None else (X, W)
        visit = perms.shape[1]  # the rows an epoch visits (all, unless train's max_steps is set)
        b = min(self.batch_size, visit)
        n_full, rest = divmod(visit, b)

        def epoch(e, losses):
            perm = tf.gather(perms, e)

            def batch(i, total):
                idx = tf.slice(perm, [i * b], [b])
                return i + 1, total + self._step(*[tf.gather(a, idx) for a in arrays]) * b

            _, total = tf.while_loop(lambda i, _: i < n_full, batch, (tf.constant(0), tf.constant(0.0)))
            if rest:
                total += self._step(*[tf.gather(a, perm[n_full * b :]) for a in arrays]) * rest
            return e + 1, losses.write(e, total / visit)

        n_epochs = tf.shape(perms)[0]
        _, losses = tf.while_loop(lambda e, _: e < n_epochs, epoch,
                                  (tf.constant(0), tf.TensorArray(tf.float32, size=n_epochs)))
        if reconstruct:
            return losses.stack(), self.model(X)
        return losses.stack()

    def _forward_impl(self, X):
        return self.model(X), self.model.encode(X)

    # -- public API ----------------------------------------------------------------------------
    def rows_per_epoch(self, n_rows, max_steps=None):
        """The rows an epoch over ``n_rows`` rows visits: all, or ``max_steps`` mini-batches of them."""
        return rows_per_epoch(n_rows, self.batch_size, max_steps)

    def steps_per_epoch(self, n_rows, max_steps=None):
        """Mini-batch steps of one epoch over ``n_rows`` rows."""
        return steps_per_epoch(n_rows, self.batch_size, max_steps)

    def train(self, X, epochs, mask=None, max_steps=None, reconstruct=False, xla=None):
        """Train ``epochs`` epochs on ``X`` (shuffled each epoch) in one compiled call; returns the
        mean loss per epoch, or with ``reconstruct`` the pair (losses, reconstruction of ``X`` by the
        trained network).

        ``mask`` (boolean, the shape of ``X``): the loss covers the entries where it is True only
        (missing values); each mask shape is traced once, as the complete-data loop is.
        ``max_steps``: an epoch takes at most this many mini-batches, the first rows of that epoch's
        random order (None: all rows). ``xla``: compile with XLA (None: as :meth:`use_xla` says for
        this call's steps).
        """
        X_host = np.asarray(X, dtype=np.float32)
        n, epochs = X_host.shape[0], int(epochs)
        visit = self.rows_per_epoch(n, max_steps)
        if xla is None:
            xla = self.use_xla(epochs * self.steps_per_epoch(n, max_steps))
        return self._run(X_host, epoch_orders(self.rng, n, visit, epochs), mask, reconstruct, xla, n)

    def forward(self, X, chunk=None):
        """Reconstruction and code of ``X`` as numpy arrays, ``chunk`` rows at a time (default
        :attr:`FORWARD_CHUNK`)."""
        X = np.asarray(X, dtype=np.float32)
        chunk = self.FORWARD_CHUNK if chunk is None else int(chunk)
        recon, code = [], []
        for start in range(0, X.shape[0], chunk):
            r, c = self._forward(tf.convert_to_tensor(X[start : start + chunk]))
            recon.append(r.numpy())
            code.append(c.numpy())
        if not recon:
            return (np.zeros((0, self.model.layer_sizes[0]), np.float32),
                    np.zeros((0, self.model.layer_sizes[-1]), np.float32))
        return np.concatenate(recon), np.concatenate(code)

    def reconstruct(self, X):
        return self.forward(X)[0]

    def encode(self, X):
        return self.forward(X)[1]


CACHE_SIZE = 8
"""How many compiled trainers (one per layers, tied, batch size; the learning rate is a variable of the
trainer) the process keeps (8: an ensemble of 6 members of different shapes and a few more); the
least recently used goes beyond that. A sweep reuses one; a program alternating between more shapes
than this re-traces (about a second each time) rather than holding every network and its traced loops."""

_CACHE = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()


def cached_trainer(layer_sizes, tied=True, learning_rate=0.001, batch_size=133):
    """The process's compiled trainer for these settings, created on first use: a cache only, of at
    most :data:`CACHE_SIZE` trainers (least recently used dropped first).

    Sweeps fit many models of the same shape one after another; reusing one network, optimizer and
    traced training loop among them means no retracing and no growth of memory per fit. The
    trainer owns no estimator's state (``learning_rate`` is set on it by whoever trains, under its lock):
    an estimator keeps its fitted weights (its ``network_``)
    and loads them (``trainer.load``) under ``trainer.lock`` before it computes, so dropping a
    trainer loses nothing but its compiled loops.
    """
    key = (tuple(int(d) for d in layer_sizes), bool(tied), int(batch_size))
    return cached(key, lambda: AutoencoderTrainer(DeepAutoencoder(key[0], tied=key[1]), learning_rate=learning_rate,
                                                  batch_size=key[2]))


def cached(key, make):
    """The process's trainer under ``key``, made by ``make()`` on first use (the cache of :func:`cached_trainer`,
    shared with :func:`rda_cli.stacked.cached_stacked_trainer`: at most :data:`CACHE_SIZE` trainers in all)."""
    with _CACHE_LOCK:
        trainer = _CACHE.get(key)
        if trainer is None:
            trainer = _CACHE[key] = make()
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(key)
    return trainer

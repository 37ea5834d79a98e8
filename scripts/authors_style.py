#!/usr/bin/env python
"""An l2,1 Robust Deep Autoencoder fit written the way the paper's public scripts are: the reference
that ``scripts/bench.py --fresh`` times ``RobustAutoencoder.fit`` against.

TensorFlow 1 style through ``tf.compat.v1``: a static graph (placeholder, sigmoid layers with tied
weights, mean squared error, ``AdamOptimizer.minimize``), one ``Session.run`` per mini-batch from a
Python loop, every variable re-initialised at the start of each outer iteration, the reconstruction
in one ``Session.run``, and the l2,1 shrink of rows with a Python loop over the entries of the rows
that survive. The alternating loop and stopping rule are the paper's (section 4.1), as in
``rda_cli.solver``. Written for this benchmark; it imports nothing of ``rda_cli`` but the data loader.

Usage: python scripts/authors_style.py OUTER INNER [LAMBDA]   (prints one JSON line: times and F1)
"""

from __future__ import annotations

import json
import os
import sys
import time

T_START = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

T_IMPORT = time.perf_counter() - T_START
v1 = tf.compat.v1


class TiedAutoencoderGraph:
    """Graph of a sigmoid autoencoder with tied weights, trained by Adam on mean squared error."""

    def __init__(self, sizes, learning_rate=0.001, seed=0):
        v1.set_random_seed(seed)
        self.x = v1.placeholder(tf.float32, [None, sizes[0]])
        kernels, h = [], self.x
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            limit = np.sqrt(6.0 / (a + b))
            w = v1.get_variable(f"w{i}", [a, b], initializer=v1.random_uniform_initializer(-limit, limit))
            bias = v1.get_variable(f"b{i}", [b], initializer=v1.zeros_initializer())
            kernels.append(w)
            h = tf.sigmoid(tf.matmul(h, w) + bias)
        for i in reversed(range(len(kernels))):
            bias = v1.get_variable(f"c{i}", [sizes[i]], initializer=v1.zeros_initializer())
            h = tf.sigmoid(tf.matmul(h, kernels[i], transpose_b=True) + bias)
        self.recon = h
        self.loss = tf.reduce_mean(tf.square(self.recon - self.x))
        self.train_op = v1.train.AdamOptimizer(learning_rate).minimize(self.loss)
        self.init_op = v1.global_variables_initializer()

    def fit(self, sess, X, epochs, batch_size, rng):
        sess.run(self.init_op)  # a fresh network and optimizer every outer iteration
        for _ in range(epochs):
            order = rng.permutation(X.shape[0])
            for start in range(0, X.shape[0], batch_size):
                sess.run(self.train_op, feed_dict={self.x: X[order[start:start + batch_size]]})

    def reconstruct(self, sess, X):
        return sess.run(self.recon, feed_dict={self.x: X})


def l21_shrink_rows(threshold, R):
    """Group shrink of the rows of ``R``, entry by entry for the rows whose norm exceeds ``threshold``."""
    out = np.zeros_like(R)
    norms = np.linalg.norm(R, axis=1)
    for i in range(R.shape[0]):
        if norms[i] > threshold:
            for j in range(R.shape[1]):
                out[i, j] = R[i, j] - threshold * R[i, j] / norms[i]
    return out


def fit(X, lam, outer, inner, batch_size=133, tol=1e-7, seed=0):
    v1.disable_eager_execution()
    rng = np.random.default_rng(seed)
    graph = TiedAutoencoderGraph([X.shape[1], 400, 200], seed=seed)
    threshold = lam * X.shape[0]  # the paper's scaling of lambda for l2,1
    S = np.zeros_like(X)
    LS_prev = X.copy()
    norm_x = np.linalg.norm(X)
    with v1.Session() as sess:
        for _ in range(outer):
            L = X - S
            graph.fit(sess, L, inner, batch_size, rng)
            L = graph.reconstruct(sess, L)
            S = l21_shrink_rows(threshold, X - L)
            c1 = np.linalg.norm(X - L - S) / norm_x
            c2 = np.linalg.norm(LS_prev - L - S) / norm_x
            LS_prev = L + S
            if c1 < tol or c2 < tol:
                break
    return S


def main():
    from rda_cli.data import load_mnist, outlier_mix

    outer, inner = int(sys.argv[1]), int(sys.argv[2])
    lam = float(sys.argv[3]) if len(sys.argv) > 3 else 0.00095
    t0 = time.perf_counter()
    X, y = load_mnist(os.environ.get("RDA_DATA_DIR"))
    X_mix, _, truth = outlier_mix(X, y)
    X_mix = np.asarray(X_mix, np.float32)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    S = fit(X_mix, lam, outer, inner)
    t_fit = time.perf_counter() - t0
    flagged = np.any(S != 0, axis=1)
    tp = int(np.sum(flagged & truth))  # F1 by hand: scikit-learn's import would add to this process's time
    f1 = 2 * tp / max(int(flagged.sum()) + int(np.sum(truth)), 1)
    print(json.dumps({"import_s": T_IMPORT, "data_s": t_data, "fit_s": t_fit, "f1": f1,
                      "outer": outer, "inner": inner}))


if __name__ == "__main__":
    main()

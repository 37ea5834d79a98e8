"""Synthetic data with known ground truth for the estimator tests."""

import numpy as np


def manifold(n=1000, d=50, seed=0, sample_seed=None, latent=2):
    """A ``latent``-dimensional latent mapped non-linearly to ``d`` features in (0, 1).

    ``seed`` fixes the map (the manifold), ``sample_seed`` the points drawn on it."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(latent, d)) * 3
    B = rng.normal(size=(latent, d))
    z = np.random.default_rng(seed if sample_seed is None else sample_seed).random((n, latent))
    return (1 / (1 + np.exp(-(np.sin(z @ A) + (z**2) @ B)))).astype(np.float32)


def with_outlier_rows(n=1000, d=50, fraction=0.05, seed=0, sample_seed=None, latent=2):
    """The manifold with a ``fraction`` of rows replaced by uniform random vectors."""
    X = manifold(n, d, seed, sample_seed, latent)
    rng = np.random.default_rng((seed if sample_seed is None else sample_seed) + 1)
    out = np.zeros(n, bool)
    out[rng.choice(n, int(round(fraction * n)), replace=False)] = True
    X[out] = rng.random((out.sum(), d))
    return X, out


def with_spikes(n=1000, d=50, fraction=0.03, seed=0):
    """The manifold with a ``fraction`` of entries flipped (> 0.5 -> 0, else -> 1)."""
    X = manifold(n, d, seed)
    rng = np.random.default_rng(seed + 2)
    mask = rng.random(X.shape) < fraction
    X_noisy = X.copy()
    X_noisy[mask] = np.where(X[mask] > 0.5, 0.0, 1.0)
    return X_noisy, mask

"""The alternating algorithm of the Robust Deep Autoencoder (Zhou & Paffenroth, KDD 2017, section 4.1).

For each of K models trained side by side on the same ``X``:

1. ``L_D = X - S``; train the autoencoder on ``L_D`` for ``inner_epochs`` epochs;
2. ``L_D = D(E(L_D))``;
3. ``S = prox(X - L_D)`` with the penalty's proximal operator (:class:`SparsePart`);
4. stop when ``c1 = ||X - L_D - S|| / ||X||`` or ``c2 = ||LS_prev - L_D - S|| / ||X||``
   falls below ``tol``.

:func:`alternate` knows nothing of estimators: it takes a *bank* of K networks (what trains and
reconstructs), a :class:`Schedule` and one :class:`SparsePart` per model, and returns one
:class:`SolverResult` (``L``, ``S``, weights, history) per model. The estimator
(:mod:`rda_cli.estimator`) and the stacked lambda path (:mod:`rda_cli.stacked`) build those
inputs and keep the results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .missing import fill_missing, observed_mask, observed_scale
from .progress import outer_iteration
from .prox import l1_shrink, l21_shrink, penalty_value

__all__ = ["Schedule", "SparsePart", "SolverResult", "BankOfOne", "alternate", "record", "sparse_part_of",
           "sparse_step"]


@dataclass(frozen=True)
class Schedule:
    """How long and how the alternating loop runs (shared by the K models).

    ``reinitialize``: re-draw the networks at the start of every outer iteration but the first;
    ``max_steps_per_epoch``: passed to the bank's training (None: every row); ``verbose``: 1 prints a
    line per model and outer iteration.
    """

    outer_iterations: int
    inner_epochs: int
    reinitialize: bool = False
    max_steps_per_epoch: int | None = None
    tol: float = 1e-7
    verbose: int = 0


@dataclass(frozen=True)
class SparsePart:
    """The S-step of one model: the penalty (``"l1"``, ``"l21_rows"``, ``"l21_cols"`` or None) and the
    prox threshold it shrinks with. ``label`` names the model in verbose lines (e.g. ``lam=0.001``)."""

    penalty: str | None
    threshold: float
    label: str = ""

    def prox(self, R, mask=None):
        """The penalty's proximal operator applied to the residual ``R`` in place; returns ``R``.

        With ``mask`` (observed entries; ``R`` is zero elsewhere) an l2,1 group with ``m`` of ``n``
        entries observed is shrunk with the threshold ``threshold * sqrt(m / n)``. None zeroes ``R``.
        """
        if self.penalty is None:
            R.fill(0)
            return R
        if self.penalty == "l1":
            return l1_shrink(R, self.threshold, out=R)
        groups = "rows" if self.penalty == "l21_rows" else "columns"
        if mask is None:
            return l21_shrink(R, self.threshold, groups, out=R)
        scale = observed_scale(mask, axis=1 if groups == "rows" else 0)
        scale = scale[:, None] if groups == "rows" else scale[None, :]
        R *= scale
        l21_shrink(R, self.threshold, groups, out=R)
        R /= scale
        return R


@dataclass
class SolverResult:
    """What a model's fit ends with: the reconstruction ``L``, the sparse part ``S``, the network's
    weights (in :meth:`~rda_cli.autoencoder.DeepAutoencoder.get_weights` order) and one history record
    per outer iteration run (see :func:`record`)."""

    L: np.ndarray
    S: np.ndarray
    weights: list
    history: list = field(default_factory=list)


class BankOfOne:
    """One :class:`~rda_cli.autoencoder.AutoencoderTrainer` seen as a bank of K = 1 networks (the
    interface of :class:`~rda_cli.stacked.StackedTrainer` that :func:`alternate` drives). ``xla``:
    compile the training loop with XLA (decided once per fit)."""

    def __init__(self, trainer, xla):
        self.trainer = trainer
        self.xla = xla

    def reinitialize(self):
        self.trainer.reinitialize()

    def train_reconstruct(self, X, epochs, mask=None, max_steps=None):
        losses, L = self.trainer.train(X[0], epochs, mask=mask, max_steps=max_steps, reconstruct=True, xla=self.xla)
        return losses[:, None], L[None]

    def get_weights(self, k):
        return self.trainer.get_weights()


def record(history, it, part, X, L_in, L, S, LS_prev, norm_x, loss, seconds, scratch):
    """Append outer iteration ``it``'s record to ``history`` and return it: ``reconstruction_error``
    (``||L_in - L||``), ``penalty``, ``objective`` (reconstruction error plus threshold times penalty),
    ``c1``, ``c2``, ``nonzero_entries``, ``nonzero_groups``, ``loss`` and ``seconds``. ``scratch``: an
    array of ``X``'s shape and dtype that the differences are computed in."""

    def distance(A, B, C=None):  # ||A - B - C||, without a new array
        np.subtract(A, B, out=scratch)
        if C is not None:
            np.subtract(scratch, C, out=scratch)
        return float(np.linalg.norm(scratch))

    rec = distance(L_in, L)
    pen = penalty_value(S, part.penalty)
    per_group = np.count_nonzero(S, axis=0 if part.penalty == "l21_cols" else 1)
    history.append({
        "iteration": it + 1,
        "reconstruction_error": rec,
        "penalty": pen,
        "objective": rec + part.threshold * pen,
        "c1": distance(X, L, S) / norm_x,
        "c2": distance(LS_prev, L, S) / norm_x,
        "nonzero_entries": int(per_group.sum()),
        "nonzero_groups": int(np.count_nonzero(per_group)),
        "loss": float(loss),
        "seconds": seconds,
    })
    return history[-1]


def alternate(X, parts, bank, schedule, S, LS_prev):
    """Run the alternating loop (module docstring, steps 1-4) for K models side by side.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32
        The data; NaN marks missing entries.
    parts : list of SparsePart
        One per model; the models differ in their S-step only.
    bank : object
        ``reinitialize()``, ``train_reconstruct(X_k, epochs, [mask=], [max_steps=]) -> (losses (epochs, K),
        L_k)`` (train, then reconstruct ``X_k`` with the trained networks) and ``get_weights(k)``, where
        ``X_k`` and ``L_k`` stack one (n_samples, n_features) array per model.
    schedule : Schedule
    S, LS_prev : ndarray of shape (K, n_samples, n_features)
        The starting sparse parts and ``L + S`` (``c2``'s reference). Updated in place.

    Returns
    -------
    list of SolverResult
        One per model, in the order of ``parts``. A model that meets the stopping rule keeps the
        state it stopped in while the others go on.

    Notes
    -----
    Missing entries of ``X`` (the bank's training then takes ``mask=``, the observed entries): each
    model keeps its own filled copy of ``X``, whose missing entries start at the column means and
    take its reconstruction after every outer iteration; the loss covers observed entries only and
    the residual that the prox shrinks is zero at missing ones. Without NaN this is the
    complete-data loop.
    """
    k = len(parts)
    mask = observed_mask(X)
    filled = None
    if mask is not None:
        filled = np.repeat(fill_missing(X, mask)[None], k, axis=0)
        np.copyto(LS_prev, filled, where=np.isnan(LS_prev))
    norm_x = float(np.linalg.norm(X if mask is None else filled[0])) or 1.0
    train_options = {} if mask is None else {"mask": mask}  # banks without these options are not asked for them
    if schedule.max_steps_per_epoch is not None:
        train_options["max_steps"] = schedule.max_steps_per_epoch
    L_in = np.empty_like(S)  # buffers reused by every outer iteration: no new arrays of X's size per iteration
    scratch = np.empty_like(X)
    histories = [[] for _ in parts]
    results = [None] * k
    active = list(range(k))
    total = schedule.outer_iterations
    for it in range(total):
        t0 = time.perf_counter()
        if schedule.reinitialize and it > 0:
            bank.reinitialize()
        np.subtract(X[None] if mask is None else filled, S, out=L_in)
        losses, L = bank.train_reconstruct(L_in, schedule.inner_epochs, **train_options)  # L: a new array
        shared = (time.perf_counter() - t0) / len(active)
        for j in list(active):
            t1 = time.perf_counter()
            Xj = X
            if mask is not None:  # impute: the residual is then zero at missing entries
                Xj = filled[j]
                np.copyto(Xj, L[j], where=~mask)
            Sj = S[j]
            np.subtract(Xj, L[j], out=Sj)  # the residual, which the prox shrinks in place
            parts[j].prox(Sj, mask)
            h = record(histories[j], it, parts[j], Xj, L_in[j], L[j], Sj, LS_prev[j], norm_x, losses[-1, j],
                       shared + time.perf_counter() - t1, scratch)
            np.add(L[j], Sj, out=LS_prev[j])
            if schedule.verbose:
                print(
                    f"[rda] {parts[j].label} iter {it + 1}/{total} loss={h['loss']:.5f} "
                    f"obj={h['objective']:.4f} c1={h['c1']:.2e} c2={h['c2']:.2e} "
                    f"nonzero groups={h['nonzero_groups']} ({h['seconds']:.1f}s)"
                )
            if h["c1"] < schedule.tol or h["c2"] < schedule.tol or it + 1 == total:
                # L and S are reused for the models still running: a finished model keeps copies
                results[j] = SolverResult(L[j] if k == 1 else L[j].copy(), S[j].copy(), bank.get_weights(j),
                                          histories[j])
                active.remove(j)
        outer_iteration(it + 1, total)
        if not active:  # every model finishes by its last outer iteration
            break
    return results


def sparse_step(X, L, part):
    """``S = prox(X - L)``: one S-step of ``part`` on data ``X`` (NaN: missing, where the residual is zero and
    an l2,1 group's threshold scales as in :meth:`SparsePart.prox`) given a reconstruction ``L``; a new
    float32 array. The one way to start the loop from a network fitted elsewhere (a pilot's ``L``)."""
    mask = observed_mask(X)
    R = np.asarray(X - L if mask is None else np.where(mask, X - L, 0.0), np.float32)
    return part.prox(R, mask)


def sparse_part_of(X, mask, reconstruct, part, n_iter=10):
    """``(S, L)`` of data ``X`` with the network held fixed: ``S = prox(X - D(E(X - S)))`` iterated from
    ``S = 0`` until ``S`` no longer changes (at most ``n_iter`` times). ``reconstruct``: the network's
    ``D(E(.))``; with ``mask`` (observed entries) the missing entries of ``X`` (filled) take ``L`` at
    every step, in place."""
    S = np.zeros_like(X)
    for _ in range(n_iter):
        L = reconstruct(X - S)
        if mask is not None:
            np.copyto(X, L, where=~mask)
        S_new = part.prox(X - L, mask)
        if np.array_equal(S_new, S):
            break
        S = S_new
    return S, L

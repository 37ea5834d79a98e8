"""The label-free table rule: every default of the table detector, in one place.

``rda detect``, ``rda benchmark`` (its ``rda``/``ae``/``rda-ens`` cells), :class:`rda_cli.pyod_detector.RDA`
and :class:`rda_cli.ensemble.RobustAutoencoderEnsemble` all take their settings from here, and fit a
member through the one function :func:`fit_member`. The rule is computed from the table's shape and
its unlabeled rows only, the same on every table (measured in ``docs/benchmark.md``, "The table rule"):

* **scaling** -- robust: each column's 1st..99th training percentile -> [0, 1], not clipped
  (:class:`rda_cli.scaling.RobustScaler01`);
* **network from the shape** -- ``h = clip(ceil(d / 2), hidden_min, hidden_max)``, layers
  ``[d, h, ceil(h / 2)]``, sigmoid, tied; a member of width factor ``w`` uses ``ceil(w h)``, depth 3
  adds a layer ``ceil(h / 4)`` (:func:`layers_for`);
* **batch** -- ``min(n, max(batch_min, ceil(n / max_steps_per_epoch)))`` (:func:`batch_size_for`),
  so an epoch is at most ``max_steps_per_epoch`` (50) gradient steps however many rows there are;
* **schedule in gradient steps** -- the *pilot* (plain autoencoder, ``S = 0``): ``pilot_outer`` (10)
  outer iterations of about ``pilot_steps`` (200) steps at learning rate ``pilot_learning_rate``
  (0.01); lambda = the ``lambda_quantile`` (0.95) quantile of the pilot's training residual row
  norms (``lambda_scaling="absolute"``); the *warm continuation*: ``S0 = prox_lambda(Z - L_pilot)``,
  the pilot's weights (Adam reset), ``warm_outer`` (10) outer iterations of about ``warm_steps`` (20)
  steps at ``warm_learning_rate`` (0.003) -- its first prox sees the residuals of a network that has
  learned the inliers, so about ``1 - lambda_quantile`` of the rows are in ``S`` from the start;
* **ensemble** -- ``n_members`` (2) members over :data:`MEMBER_GRIDS` ``[member_grid]`` (``"extent"``:
  the pilot's learning rate x1 and x0.1 on robustly scaled rows; members 2..3 the same on min-max
  scaled rows, 4..7 other widths; ``"widths"``: width x1, x1/2, x2 by 2 or 3 hidden layers), member
  ``j`` seeded ``seed + SEED_STRIDE * j``, members of one network and scaling trained together in one
  compiled step (:func:`fit_members`); with ``tail`` (on) a per-feature empirical-CDF tail score
  (:class:`rda_cli.tails.TailScore`) is one more member, and with ``forest`` (on) an Isolation Forest kept as
  arrays (:class:`rda_cli.forest.ForestScore`) one more after it; each member's scores normalised against its
  own training scores (robust z: ``(s - median) / (1.4826 MAD)``) and combined per row by
  ``combine`` (the mean); chosen by ``docs/benchmark.md``'s sensitivity study and held-out checks;
* **flags** -- ``median + flag_mads (2.5) * 1.4826 * MAD`` of the combined training scores, or with a
  ``contamination`` the top fraction;
* **explanations** -- per-feature shares of the members' ``S`` / residuals in scaled units, averaged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["TableRule", "DEFAULT_RULE", "MEMBER_GRID", "MEMBER_GRIDS", "COMBINE", "SEED_STRIDE", "MAD_TO_SIGMA",
           "SCORE_CHUNK", "layers_for", "batch_size_for", "phase_schedule", "member_settings", "one_model_settings",
           "member_seed", "fit_member", "fit_members", "member_groups", "fit_phases",
           "continue_from_pilot", "combine_scores", "robust_location_scale",
           "flag_threshold"]

MEMBER_GRID = ((1.0, 2), (0.5, 2), (2.0, 2), (1.0, 3), (0.5, 3), (2.0, 3), (1.0, 2), (2.0, 3))
"""``(width factor of h, hidden layers)`` of member ``j`` on the ``"widths"`` grid (``n_members`` <= 8;
members 6 and 7 repeat settings 0 and 5 with their own seeds)."""
MEMBER_GRIDS = {
    "widths": tuple((w, d, "robust", 1.0) for w, d in MEMBER_GRID),
    "extent": ((1.0, 2, "robust", 1.0), (1.0, 2, "robust", 0.1), (1.0, 2, "minmax", 1.0), (1.0, 2, "minmax", 0.1),
               (0.5, 2, "robust", 1.0), (0.5, 2, "robust", 0.1), (2.0, 2, "minmax", 1.0), (2.0, 2, "minmax", 0.1)),
}
"""Member ``j`` of grid ``member_grid``: ``(width factor, hidden layers, scaling, factor of the pilot's
learning rate)``. ``"widths"`` varies the network's shape on robustly scaled rows; ``"extent"`` varies
how far the pilot learns the table (learning rate x1 and x0.1) and the scaling (robust and min-max),
where ``docs/benchmark.md``'s sensitivity study finds the spread."""
COMBINE = ("mean", "max", "top2")
"""How members' robust z-scores are combined per row: their mean, the largest, the mean of the two largest."""
SEED_STRIDE = 1000  # member j is seeded seed + SEED_STRIDE * j
MAD_TO_SIGMA = 1.4826  # MAD x this estimates a normal standard deviation
SCORE_CHUNK = 65536  # rows scored at a time (bounds memory on large tables)


@dataclass(frozen=True)
class TableRule:
    """The settings of the table rule (module docstring); the defaults are the rule.

    Every field is also a parameter of :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` and a key
    of the benchmark config's ``model:`` section, with these defaults.
    """

    n_members: int = 2
    hidden_min: int = 2
    hidden_max: int = 64
    code_min: int = 1
    batch_min: int = 128
    max_steps_per_epoch: int = 50
    pilot_outer: int = 10
    pilot_steps: int = 200
    pilot_learning_rate: float = 0.01
    lambda_quantile: float = 0.95
    warm_outer: int = 10
    warm_steps: int = 20
    warm_learning_rate: float = 0.003
    flag_mads: float = 2.5
    tied: bool = True
    member_grid: str = "extent"
    combine: str = "mean"
    tail: bool = True
    forest: bool = True
    isolate: float = 0.2

    def replace(self, **changes):
        """A copy with ``changes`` (unknown names raise TypeError)."""
        return TableRule(**{**asdict(self), **changes})

    @classmethod
    def names(cls):
        return [f.name for f in fields(cls)]


DEFAULT_RULE = TableRule()


def layers_for(n_features, width=1.0, depth=2, rule=DEFAULT_RULE):
    """Layer sizes of a member: ``[d, h', max(code_min, ceil(h'/2))]`` (+ ``ceil(h'/4)`` for depth 3)
    with ``h = clip(ceil(d/2), hidden_min, hidden_max)`` and ``h' = max(hidden_min, ceil(width * h))``."""
    d = int(n_features)
    h0 = min(rule.hidden_max, max(rule.hidden_min, -(-d // 2)))
    h = max(rule.hidden_min, int(math.ceil(width * h0)))
    layers = [d, h, max(rule.code_min, -(-h // 2))]
    if depth >= 3:
        layers.append(max(rule.code_min, -(-h // 4)))
    return layers


def batch_size_for(n_rows, rule=DEFAULT_RULE):
    """``min(n, max(batch_min, ceil(n / max_steps_per_epoch)))``: an epoch is at most
    ``max_steps_per_epoch`` steps."""
    n = int(n_rows)
    return max(1, min(n, max(rule.batch_min, -(-n // rule.max_steps_per_epoch))))


def phase_schedule(steps, n_rows, batch_size):
    """``(inner_epochs, max_steps_per_epoch)`` for about ``steps`` gradient steps per outer iteration:
    whole epochs when an epoch is at most ``steps`` steps, else one epoch of ``steps`` random batches."""
    per_epoch = -(-int(n_rows) // int(batch_size))
    if steps >= per_epoch:
        return max(1, int(round(steps / per_epoch))), None
    return 1, max(1, int(steps))


def member_settings(n_rows, n_features, rule=DEFAULT_RULE, width=1.0, depth=2):
    """The pilot's :class:`~rda_cli.estimator.RobustAutoencoder` settings for a member on this shape."""
    batch = batch_size_for(n_rows, rule)
    epochs, cap = phase_schedule(rule.pilot_steps, n_rows, batch)
    return dict(layers=layers_for(n_features, width, depth, rule), batch_size=batch,
                outer_iterations=rule.pilot_outer, inner_epochs=epochs, max_steps_per_epoch=cap,
                learning_rate=rule.pilot_learning_rate, tied=rule.tied, lambda_scaling="absolute", tol=0.0,
                reinitialize=False)


def one_model_settings(n_rows, n_features, given=None, rule=DEFAULT_RULE):
    """The settings of a single :class:`~rda_cli.estimator.RobustAutoencoder` on a table: ``rda detect``
    with ``lam``, ``lam_for_fraction``, ``l1`` or ``l21_cols``, and :class:`rda_cli.pyod_detector.RDA`'s one
    model, so that both fit the same network with the same schedule.

    The member network and pilot schedule of :func:`member_settings` (the table detector's, sized by the
    shape), lambda in the paper's scale on the [0, 1]-scaled table, ``random_state`` 0. ``given``
    (estimator parameters) replace any of them; a given ``inner_epochs`` lifts the pilot's cap on steps
    per epoch (whole epochs, as asked) unless ``max_steps_per_epoch`` is given too.
    """
    given = dict(given or {})
    settings = dict(member_settings(n_rows, n_features, rule), lambda_scaling="paper", random_state=0)
    if "inner_epochs" in given:
        settings["max_steps_per_epoch"] = None
    settings.update(given)
    settings["batch_size"] = min(int(settings["batch_size"]), int(n_rows))
    return settings


def member_seed(seed, j):
    return int(seed) + SEED_STRIDE * int(j)


def fit_member(Z, seed=0, penalty="l21_rows", rule=DEFAULT_RULE, width=1.0, depth=2):
    """Fit one member on scaled rows ``Z``: the pilot, then (with a penalty) lambda and the warm RDA.

    This is the one function ``rda detect``, the benchmark's RDA cells and the ensemble call for a
    member; :func:`fit_members` fits several members of one network together with the same result.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Scaled rows (NaN: missing).
    seed : int
    penalty : {"l21_rows"} or None
        None: the pilot (plain autoencoder) is the member.
    rule : TableRule
    width, depth : float, int
        The member's width factor and hidden layers (:func:`layers_for`).

    Returns
    -------
    model : RobustAutoencoder
        The fitted member (the RDA, or the pilot for ``penalty=None``).
    info : dict
        ``layers``, ``batch_size``, ``inner_epochs``; with a penalty also ``threshold`` (the prox
        threshold), ``start_flagged`` (fraction of rows in ``S0``), ``first_flagged`` (after the first
        outer iteration) and ``n_flagged``.
    """
    _check_penalty(penalty)
    pilot, info = _pilot(Z, seed, rule, width, depth)
    pilot.fit(Z)
    if penalty is None:
        return pilot, info
    model, warm_info = continue_from_pilot(Z, pilot, seed, penalty, rule)
    info.update(warm_info)
    return model, info


def _pilot(Z, seed, rule, width, depth):
    """The member's pilot (unfitted) and its facts: ``layers``, ``batch_size``, ``inner_epochs``."""
    from .estimator import RobustAutoencoder

    settings = member_settings(*Z.shape, rule, width, depth)
    pilot = RobustAutoencoder(penalty=None, lam=0.0, random_state=int(seed), **settings)
    return pilot, {"layers": "-".join(map(str, settings["layers"])), "batch_size": settings["batch_size"],
                   "inner_epochs": settings["inner_epochs"]}


def _check_penalty(penalty, allow_none=True):
    if penalty != "l21_rows" and not (allow_none and penalty is None):
        raise ValueError(f"the table rule's members use penalty 'l21_rows' or None, got {penalty!r}")


def continue_from_pilot(Z, pilot, seed=0, penalty="l21_rows", rule=DEFAULT_RULE):
    """The warm ℓ2,1 RDA after a fitted ``pilot`` on the same scaled rows ``Z``: lambda = the
    ``lambda_quantile`` quantile of the pilot's residual row norms, ``S0 = prox(Z - L_pilot)``, the
    pilot's weights (Adam reset), ``warm_outer`` x about ``warm_steps`` steps at ``warm_learning_rate``.

    Returns ``(model, info)`` with ``info`` holding ``threshold``, ``start_flagged``, ``first_flagged``
    and ``n_flagged`` (:func:`fit_member`)."""
    model, S0 = _warm_model(Z, pilot, seed, penalty, rule)
    model.fit(Z)
    return model, _warm_info(model, S0)


def _warm_model(Z, pilot, seed, penalty, rule):
    """The warm RDA of :func:`continue_from_pilot`, unfitted but holding its warm state, and its ``S0``."""
    from .estimator import RobustAutoencoder
    from .solver import SparsePart, sparse_step

    _check_penalty(penalty, allow_none=False)
    threshold = float(np.quantile(pilot.residual_scores_, rule.lambda_quantile))
    S0 = sparse_step(Z, pilot.L_, SparsePart("l21_rows", threshold))  # prox of the pilot's residual
    epochs, cap = phase_schedule(rule.warm_steps, len(Z), pilot.batch_size)
    warm = dict(pilot.get_params(), penalty=penalty, lam=threshold, random_state=int(seed),
                outer_iterations=rule.warm_outer, inner_epochs=epochs, max_steps_per_epoch=cap,
                learning_rate=rule.warm_learning_rate)
    return RobustAutoencoder(**warm).set_warm_state(S0, pilot.L_, pilot.get_weights()), S0


def _warm_info(model, S0):
    return dict(threshold=model.prox_threshold_, start_flagged=float(np.mean(np.any(S0 != 0, axis=1))),
                first_flagged=model.history_[0]["nonzero_groups"] / len(S0), n_flagged=int(model.outlier_mask_.sum()))


def member_groups(specs, together=True):
    """The members of ``specs`` (:data:`MEMBER_GRIDS` rows) that :func:`fit_members` fits together: lists of
    member indices, in the order they are fitted; members of one width, depth and scaling share a group
    (with ``together``; else each is its own)."""
    if not together:
        return [[j] for j in range(len(specs))]
    groups = {}
    for j, (width, depth, scaling, _) in enumerate(specs):
        groups.setdefault((float(width), int(depth), scaling), []).append(j)
    return list(groups.values())


def fit_phases(specs, penalty="l21_rows", together=True):
    """One label per fit :func:`fit_members` runs, in order (a progress display's phases)."""
    labels = []
    for group in member_groups(specs, together):
        who = f"member {group[0] + 1}/{len(specs)}" if len(group) == 1 else \
            f"members {', '.join(str(j + 1) for j in group)}/{len(specs)} together"
        labels += [f"{who}, pilot autoencoder"] + ([f"{who}, warm RDA"] if penalty is not None else [])
    return labels


def fit_members(Z, specs, seed=0, penalty="l21_rows", rule=DEFAULT_RULE, together=True):
    """Fit the members ``specs`` (:data:`MEMBER_GRIDS` rows) of an ensemble seeded ``seed``: member ``j`` is
    :func:`fit_member` on ``Z[scaling]`` with seed :func:`member_seed` ``(seed, j)`` and the pilot's learning
    rate times its factor.

    With ``together`` the members of one network and scaling (:func:`member_groups`) are fitted side by
    side in one compiled step (:func:`rda_cli.stacked.fit_together`), pilots together and then warm RDAs
    together, each from its own pilot: each member equals its :func:`fit_member` up to floating-point
    rounding. Returns ``[(model, info), ...]`` in the order of ``specs``; ``info`` as :func:`fit_member`'s,
    with ``scaling`` and ``pilot_learning_rate``.
    """
    _check_penalty(penalty)
    out = [None] * len(specs)
    for group in member_groups(specs, together):
        width, depth, scaling, _ = specs[group[0]]
        X = Z[scaling]
        rules = [rule.replace(pilot_learning_rate=rule.pilot_learning_rate * specs[j][3]) for j in group]
        seeds = [member_seed(seed, j) for j in group]
        if len(group) == 1:
            fitted = [fit_member(X, seeds[0], penalty, rules[0], width, depth)]
        else:
            fitted = _fit_stacked(X, seeds, penalty, rules, width, depth)
        for j, r, (model, info) in zip(group, rules, fitted):
            info.update(scaling=scaling, pilot_learning_rate=r.pilot_learning_rate)
            out[j] = (model, info)
    return out


def _fit_stacked(Z, seeds, penalty, rules, width, depth):
    """:func:`fit_member` for each ``(seeds[i], rules[i])`` on ``Z``, the pilots side by side, then the warm RDAs."""
    from .stacked import fit_together

    pilots, infos = zip(*(_pilot(Z, s, r, width, depth) for s, r in zip(seeds, rules)))
    fit_together(Z, pilots)
    if penalty is None:
        return list(zip(pilots, infos))
    warm = [_warm_model(Z, p, s, penalty, r) for p, s, r in zip(pilots, seeds, rules)]
    fit_together(Z, [m for m, _ in warm])
    for info, (m, S0) in zip(infos, warm):
        info.update(_warm_info(m, S0))
    return [(m, info) for (m, _), info in zip(warm, infos)]


def combine_scores(Z, how="mean"):
    """Combine members' normalised scores ``Z`` (n_members, n_rows) per row (:data:`COMBINE`)."""
    Z = np.asarray(Z, np.float64)
    if how == "mean" or len(Z) == 1:
        return Z.mean(axis=0)
    if how == "max":
        return Z.max(axis=0)
    if how == "top2":
        return np.sort(Z, axis=0)[-2:].mean(axis=0)
    raise ValueError(f"combine must be one of {COMBINE}, got {how!r}")


def robust_location_scale(scores):
    """``(median, 1.4826 MAD)`` of ``scores``; a zero MAD falls back to the standard deviation, then 1."""
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if not s.size:
        return 0.0, 1.0
    med = float(np.median(s))
    scale = MAD_TO_SIGMA * float(np.median(np.abs(s - med)))
    if not scale > 0:
        scale = float(np.std(s))
    return med, (scale if scale > 0 else 1.0)


def flag_threshold(scores, contamination=None, rule=DEFAULT_RULE):
    """The cut-off on ``scores`` above which a row is flagged: ``median + flag_mads * 1.4826 MAD``, or
    with ``contamination`` the ``1 - contamination`` quantile (PyOD's rule)."""
    s = np.asarray(scores, np.float64)
    if contamination is not None:
        return float(np.quantile(s, 1.0 - float(contamination)))
    med, scale = robust_location_scale(s)
    return med + float(rule.flag_mads) * scale

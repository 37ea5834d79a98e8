"""Pieces shared by the experiments: schema fragments, cached data, the model factory."""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

import numpy as np

from ..persistence import MAX_LAYER_WIDTH
from .config import (MAX_BATCH, MAX_DEPTH, MAX_EPOCHS, MAX_ITERATIONS, MAX_SEED, MAX_SEEDS, ConfigError,  # noqa: F401
                     Field)

__all__ = ["model_schema", "data_path_field", "load_data_cached", "make_estimator", "check_data_path", "json_safe",
           "seeds_field", "seed_list", "seed_suffix", "cell_seed", "base_seed", "pick_seed", "tag_seeds",
           "untag_seeds", "header_schema", "knee_cell", "write_summary", "check_run_name", "cell_problem",
           "preflight_data"]

RUN_NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_run_name(value):
    """``run_name`` must be a plain folder name: letters, digits, ``.``, ``_``, ``-`` (not ``.`` or ``..``), so a
    shared config cannot write outside ``results/<experiment>/``."""
    if not RUN_NAME.fullmatch(value) or value in (".", ".."):
        return "expected a plain folder name (letters, digits, '.', '_', '-'; no '/', not '.' or '..')"
    return None


INT_LIMIT = 2 ** 53  # integers a float holds exactly: larger counts in a cell are damage


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 1e300


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT_LIMIT


def _fraction(v):
    return _number(v) and 0.0 <= v <= 1.0


def _nullable(ok):
    return lambda v: v is None or ok(v)


def _list_of(ok):
    return lambda v: isinstance(v, list) and len(v) > 0 and all(ok(x) for x in v)


_KINDS = {
    "num": (_number, "a finite number"),
    "num?": (_nullable(_number), "a finite number or null"),
    "frac": (_fraction, "a number in [0, 1]"),
    "frac?": (_nullable(_fraction), "a number in [0, 1] or null"),
    "int": (_count, f"an integer in [0, {INT_LIMIT}]"),
    "int?": (_nullable(_count), f"an integer in [0, {INT_LIMIT}] or null"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "fracs": (_list_of(_fraction), "a non-empty list of numbers in [0, 1]"),
    "ints": (lambda v: isinstance(v, list) and all(_count(x) for x in v), "a list of integers >= 0"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


def cell_problem(cell, spec, same_length=()):
    """Check a cell read back from disk against ``spec`` (key -> a kind of :data:`_KINDS`: "num", "frac",
    "int", "fracs", ... with "?" for nullable); the keys in ``same_length`` must be lists of one length.
    Returns a one-line problem or None. Fractions (precision, recall, F1, AUROC, AP, error rates) must lie
    in [0, 1], numbers must be finite, counts whole and >= 0."""
    from .config import quote

    for key, kind in spec.items():
        if key not in cell:
            return f"missing key {key!r}"
        ok, what = _KINDS[kind]
        if not ok(cell[key]):
            return f"key {key!r} is {quote(cell[key])}, expected {what}"
    lengths = {key: len(cell[key]) for key in same_length}
    if len(set(lengths.values())) > 1:
        return "lists of different lengths: " + ", ".join(f"{k} has {n}" for k, n in lengths.items())
    return None


def preflight_data(build, what="data"):
    """Run ``build()`` (which builds an experiment's data from its config) before any folder is made; a
    ValueError from the data layer becomes a ConfigError naming the config section."""
    from ..data import DataError

    try:
        return build()
    except (ConfigError, DataError):
        raise
    except ValueError as exc:
        raise ConfigError(f"config section '{what}': {' '.join(str(exc).split())}") from None


def data_path_field():
    return Field("str", None, nullable=True,
                 doc="MNIST folder (IDX files or mnist.npz); null: RDA_DATA_DIR, [../]shared/data/mnist, Keras' cache, then download")


def mnist_data_schema(n_images, doc):
    """The ``data:`` section of an MNIST experiment: the source folder and the first ``n_images``
    training images by default (``doc``: the latter's description)."""
    return {"path": data_path_field(), "n_images": Field("int", n_images, minimum=30, maximum=60000, doc=doc)}


def seeds_field():
    return Field("int_list", None, nullable=True, minimum=0, maximum=MAX_SEED, min_length=1, max_length=MAX_SEEDS,
                 doc="repeat the data draw and the training for each seed (95% t-intervals over them); "
                     "null: just `seed`")


def seed_list(config):
    """The seeds a run covers: ``config["seeds"]``, or ``[config["seed"]]`` when that is null."""
    seeds = config.get("seeds")
    return list(seeds) if seeds else [config["seed"]]


def seed_suffix(config, seed):
    """Cell-id suffix of a seed: none for the config's ``seed`` (so single-seed ids stay as they
    were), ``_s<seed>`` for any other."""
    return "" if seed == config["seed"] else f"_s{seed}"


def cell_seed(config, cell):
    """The seed of a cell (cells written before seeds existed carry none: the config's ``seed``)."""
    seed = cell.get("seed")
    return config["seed"] if seed is None else seed


def tag_seeds(config, cells):
    """Write each cell's seed under ``"_seed"`` (for grouping while summarising); return the sorted
    seeds present. :func:`untag_seeds` removes the tags before cells are written or plotted."""
    for c in cells:
        c["_seed"] = cell_seed(config, c)
    return sorted({c["_seed"] for c in cells})


def untag_seeds(cells):
    for c in cells:
        c.pop("_seed", None)


def header_schema(experiment, seed_doc, seeds=True):
    """The keys every experiment config starts with: ``run_name``, ``seed`` and (unless ``seeds`` is False)
    ``seeds``, whose default is null or the list ``seeds``."""
    spec = {
        "run_name": Field("str", None, nullable=True, check=check_run_name,
                          doc=f"folder name under results/{experiment}/ (letters, digits, . _ -); null: timestamp"),
        "seed": Field("int", 0, minimum=0, maximum=MAX_SEED, doc=seed_doc),
    }
    if seeds is not False:
        spec["seeds"] = seeds_field()
        if isinstance(seeds, list):
            spec["seeds"].default = list(seeds)
    return spec


def pick_seed(present, preferred):
    """``preferred`` when it is among the ``present`` seeds (or none is present), else the smallest
    present: the one rule for which seed feeds single-seed figures and keys."""
    present = sorted(set(present))
    if not present or preferred in present:
        return preferred
    return present[0]


def base_seed(config, cells):
    """The seed whose cells feed the single-run figures and keys: the config's ``seed`` if present,
    else the smallest seed present."""
    return pick_seed({cell_seed(config, c) for c in cells}, config["seed"])


def knee_cell(cells, count_key, scale):
    """The cell at the knee of ``count_key`` against lambda (:func:`~rda_cli.selection.knee_lambda`),
    among ``cells`` of one seed; a log lambda axis falls back to linear when a lambda is <= 0."""
    from ..selection import knee_lambda

    lams = [c["lam"] for c in cells]
    if scale == "log" and min(lams) <= 0:
        scale = "linear"
    knee = knee_lambda(lams, [c[count_key] for c in cells], scale=scale)
    return next(c for c in cells if c["lam"] == knee)


SUMMARY_MAX_BYTES = 64 << 20  # a run's summary.json (ours: a few hundred KB at most)


def read_summary(run):
    """A run's ``summary.json`` (as :func:`write_summary` wrote it) through the one JSON reader
    (:func:`rda_cli.safeio.read_json`: a regular file, at most :data:`SUMMARY_MAX_BYTES`; else ConfigError)."""
    from ..safeio import read_json

    return read_json(run.path / "summary.json", SUMMARY_MAX_BYTES, "summary", ConfigError)


def write_summary(run, summary, markdown):
    """A run's ``summary.json`` (``summary``, JSON-safe) and ``summary.md`` (``markdown``), atomically."""
    from ..safeio import atomic_write_text

    atomic_write_text(run.path / "summary.json", json.dumps(json_safe(summary), indent=1))
    atomic_write_text(run.path / "summary.md", markdown)


def model_schema(layers=None, outer_iterations=None, inner_epochs=None, batch_size=None, **defaults):
    """The autoencoder/RDA settings shared by experiments (and their types, which ``rda detect --set``
    checks). The network and schedule are the experiment's own (its packaged config's values); the other
    defaults are the estimator's
    (:class:`~rda_cli.estimator.RobustAutoencoder`'s, the one home of the paper estimator's defaults),
    ``reinitialize`` False unless given; ``defaults`` override any."""
    from ..estimator import RobustAutoencoder

    paper = RobustAutoencoder().get_params()
    spec = {
        "layers": Field("int_list", layers, minimum=1, maximum=MAX_LAYER_WIDTH, min_length=2, max_length=MAX_DEPTH,
                        doc="layer sizes including the input width (784 for MNIST)"),
        "lambda_scaling": Field("choice", paper["lambda_scaling"], choices=("paper", "absolute"),
                                doc="paper: thresholds as in the authors' scripts; absolute: lambda itself"),
        "outer_iterations": Field("int", outer_iterations, minimum=1, maximum=MAX_ITERATIONS,
                                  doc="alternating (outer) iterations"),
        "inner_epochs": Field("int", inner_epochs, minimum=1, maximum=MAX_EPOCHS,
                              doc="autoencoder epochs per outer iteration"),
        "batch_size": Field("int", batch_size, minimum=1, maximum=MAX_BATCH, doc="mini-batch size"),
        "learning_rate": Field("float", paper["learning_rate"], minimum=0, exclusive_minimum=True,
                               doc="Adam learning rate"),
        "tol": Field("float", paper["tol"], minimum=0, doc="convergence tolerance on c1 and c2"),
        "tied": Field("bool", paper["tied"], doc="decoder weights tied to the encoder's"),
        "reinitialize": Field("bool", False, doc="re-draw weights and reset Adam every outer iteration"),
    }
    for key, value in defaults.items():
        spec[key].default = value
    return spec


def check_data_path(config):
    path = config["data"]["path"]
    if path is not None and not Path(path).expanduser().exists():
        raise ConfigError(f"config key 'data.path': got {path!r}, which does not exist")
    if config["model"]["layers"][0] != 784:
        raise ConfigError(
            f"config key 'model.layers': got {config['model']['layers']!r}, expected the first size to be 784 (MNIST width)"
        )


@functools.lru_cache(maxsize=2)
def _load(path, split):
    from ..data import load_mnist

    return load_mnist(path, split=split)


def load_data_cached(path, split="train"):
    """MNIST as (X, y), read once per process."""
    return _load(None if path is None else str(Path(path).expanduser()), split)


def make_estimator(model_cfg, penalty, lam, seed):
    from ..estimator import RobustAutoencoder

    return RobustAutoencoder(
        layers=list(model_cfg["layers"]),
        penalty=penalty,
        lam=lam if lam is not None else 0.0,
        lambda_scaling=model_cfg["lambda_scaling"],
        outer_iterations=model_cfg["outer_iterations"],
        inner_epochs=model_cfg["inner_epochs"],
        batch_size=model_cfg["batch_size"],
        learning_rate=model_cfg["learning_rate"],
        tol=model_cfg["tol"],
        tied=model_cfg["tied"],
        reinitialize=model_cfg["reinitialize"],
        random_state=seed,
    )


def json_safe(obj):
    """Floats that JSON can hold (NaN/inf become None), numpy scalars as Python ones."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def cell_key(value):
    """A compact, filename-safe rendering of a number for cell ids."""
    return json.dumps(value).replace("-", "m")

"""What a benchmark config runs: the detectors the benchmark knows (their names, which of them need
PyOD or a subsample) and the data sets a config names."""

from __future__ import annotations

DETECTORS = ("rda-ens", "rda", "ae", "ae-ens", "rda+iforest", "iforest", "lof", "ocsvm", "knn", "ecod", "copod", "hbos", "rpca")
DEFAULT_DETECTORS = tuple(d for d in DETECTORS if d != "ae-ens")  # ae-ens (plain AE ensemble) on request
PYOD_DETECTORS = ("knn", "ecod", "copod", "hbos")
QUADRATIC = ("lof", "ocsvm", "knn")
AUTOENCODERS = ("rda-ens", "rda", "ae", "ae-ens", "rda+iforest")  # the table rule's detectors
DETECTOR_NAMES = {
    "rda-ens": "RDA ensemble",
    "rda": "ℓ2,1 RDA",
    "ae": "plain AE",
    "ae-ens": "AE ensemble",
    "rda+iforest": "RDA ens. + IForest",
    "iforest": "IForest",
    "lof": "LOF",
    "ocsvm": "OCSVM",
    "knn": "KNN",
    "ecod": "ECOD",
    "copod": "COPOD",
    "hbos": "HBOS",
    "rpca": "Robust PCA",
}
PYOD_MISSING = 'PyOD is not installed (pip install "rda-cli[pyod]"); its detectors were skipped'


def data_sets(config):
    """``{name: path}`` of the sets of a config, in ADBench's order."""
    from ..data.adbench import find_sets, set_name

    return {set_name(p): str(p) for p in find_sets(config["data"]["paths"], config["data"]["sets"])}


def pyod_available():
    """Whether PyOD (the ``benchmark`` extra) can be imported."""
    try:
        import pyod  # noqa: F401
    except ImportError:
        return False
    return True


def runnable_detectors(config):
    """``(detectors that run, {skipped detector: reason})``."""
    wanted = list(config["detectors"])
    if pyod_available():
        return wanted, {}
    return [d for d in wanted if d not in PYOD_DETECTORS], {d: PYOD_MISSING for d in wanted if d in PYOD_DETECTORS}


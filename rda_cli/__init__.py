"""rda: Robust Deep Autoencoders (Zhou & Paffenroth, KDD 2017) for denoising and anomaly detection."""

__version__ = "0.1.0"

__all__ = ["RobustAutoencoder", "RobustAutoencoderEnsemble", "fit_lambda_path", "effective_threshold", "l1_shrink", "l21_shrink", "__version__"]

_LAZY = {
    "RobustAutoencoder": "estimator",
    "RobustAutoencoderEnsemble": "ensemble",
    "effective_threshold": "estimator",
    "fit_lambda_path": "stacked",
    "l1_shrink": "prox",
    "l21_shrink": "prox",
}


def __getattr__(name):
    # Imported on first use, so that the command's help does not pay for scikit-learn.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Figures of the experiments, one module each, drawn from a run folder's saved cells (no training).

:mod:`._shared` holds what they share. Figure numbers refer to Zhou & Paffenroth, "Anomaly
Detection with Robust Deep Autoencoders", KDD 2017.
"""

from .denoise import denoise_figures
from .features import features_figures
from .outliers import outlier_figures

__all__ = ["denoise_figures", "outlier_figures", "features_figures"]

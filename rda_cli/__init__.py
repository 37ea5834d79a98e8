"""rda: Robust Deep Autoencoders (Zhou & Paffenroth, KDD 2017) for denoising and anomaly detection."""

__version__ = "0.1.0"

from .prox import l1_shrink, l21_shrink  # noqa: E402
from .rda import RobustAutoencoder, effective_threshold  # noqa: E402

__all__ = ["RobustAutoencoder", "effective_threshold", "l1_shrink", "l21_shrink", "__version__"]

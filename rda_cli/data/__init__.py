"""Data layer: MNIST loading and synthetic corruptions."""

from .corruption import corrupt_pixels, outlier_mix, stuck_pixels
from .mnist import DataError, load_mnist

__all__ = ["load_mnist", "corrupt_pixels", "outlier_mix", "stuck_pixels", "DataError"]

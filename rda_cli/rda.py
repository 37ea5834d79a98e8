"""The names of ``rda_cli.rda`` of version 0.1.0, where they live now.

``rda.py`` held the estimator, the alternating loop, the model files and the missing-value
helpers; each is now a module of its own (see ``docs/design.md``):

- :mod:`rda_cli.estimator` -- :class:`RobustAutoencoder` (parameters, ``fit``), :func:`effective_threshold`,
  :func:`default_layers`;
- :mod:`rda_cli.scoring` -- its scoring API (``decision_function``, ``predict``, ...);
- :mod:`rda_cli.solver` -- the alternating algorithm (:func:`~rda_cli.solver.alternate`);
- :mod:`rda_cli.persistence` -- ``save`` / ``load`` and :class:`ModelFileError`;
- :mod:`rda_cli.missing` -- masks, filling and norms over observed entries.

Every name importable from here before stays importable.
"""

from .estimator import (PENALTIES, REINIT_MIN_EPOCHS, SCALINGS, RobustAutoencoder, default_layers,  # noqa: F401
                        effective_threshold, fit_alternating, start_fits)
from .missing import check_observed, fill_missing, observed_mask, observed_scale, row_norms  # noqa: F401
from .persistence import MAX_LAYER_WIDTH, MAX_PARAMETERS, ModelFileError, NetworkState  # noqa: F401
from .persistence import _check_network_config, _read_meta  # noqa: F401
from .scoring import fingerprint as _fingerprint  # noqa: F401
from .solver import BankOfOne as _BankOfOne  # noqa: F401

__all__ = ["RobustAutoencoder", "NetworkState", "ModelFileError", "effective_threshold", "default_layers",
           "REINIT_MIN_EPOCHS"]

"""scikit-learn's estimator checks on small settings."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from rda_cli import RobustAutoencoder

# Checks that cannot apply, each with its reason.
SKIPPED = {
    # scikit-learn's outlier checks assume its sign convention (decision_function < 0 for
    # outliers) and that predict flags some rows of every toy data set. RobustAutoencoder's
    # decision_function follows PyOD's (higher = more abnormal, > 0 flagged; its predict is
    # scikit-learn's +1 / -1; see the class docstring's Notes) and it flags exactly the rows whose
    # S row is non-zero, which may be none of the checks' blobs.
    "check_outliers_train": "PyOD sign convention; flags may be empty on the check's blobs",
    "check_outliers_fit_predict": "flags only rows with non-zero S (lambda decides how many), which may be none",
    # The network is sigmoid-bounded and fitted with Adam: results are not exactly invariant
    # to sample order or to being fitted on a subset of rows.
    "check_methods_subset_invariance": "transform of a row depends on its S row, found per batch",
    "check_methods_sample_order_invariance": "mini-batch order follows the row order",
}


def _estimator():
    return RobustAutoencoder(outer_iterations=2, inner_epochs=1, batch_size=32, random_state=0, lam=0.001)


@parametrize_with_checks([_estimator()])
def test_sklearn_compatible(estimator, check):
    name = getattr(check, "func", check).__name__
    reason = SKIPPED.get(name, "run")
    if reason is not None and reason != "run":
        pytest.skip(reason)
    check(estimator)

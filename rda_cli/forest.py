"""An Isolation Forest kept as plain arrays: the detector's forest score, saved and loaded without pickle.

scikit-learn's :class:`~sklearn.ensemble.IsolationForest` (its defaults; ``random_state`` the detector's
seed) is fitted on the robustly scaled rows the tail score sees. scikit-learn offers no pickle-free
format for a fitted forest, so :meth:`ForestScore.to_arrays` keeps what scoring needs as numbers --
every tree's children, split feature, threshold and node sample counts (concatenated, with offsets),
each tree's feature subset and ``max_samples_`` -- and :meth:`ForestScore.score` computes the forest's
anomaly score from those arrays alone (all trees traversed at once, vectorised over rows): the path
length of each row in each tree plus the average path length of the rows left in its leaf,
``2 ** (-mean path / c(max_samples_))``, which is ``-IsolationForest.score_samples`` (higher is more
abnormal; ``tests/test_forest.py`` checks the two agree).

Missing values (NaN) are filled with the column's training median (0 for a column with none
observed) before the forest sees a row, when fitting and when scoring, so a missing value sends a row
where a typical one goes.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["ForestScore", "MAX_TREES", "MAX_NODES"]

MAX_TREES = 1024  # trees a loaded forest may hold (ours: 100)
MAX_NODES = 1 << 22  # nodes over all trees (ours: at most 100 x 511)
_ROWS = 4096  # rows traversed at a time (bounds the rows x trees index array)


def average_path_length(n):
    """The average path length of an unsuccessful search in a binary search tree of ``n`` keys
    (``c(n)`` of Liu, Ting and Zhou, 2008): 0 for ``n <= 1``, 1 for ``n == 2``."""
    n = np.asarray(n, np.float64)
    out = np.where(n == 2, 1.0, 0.0)
    big = n > 2
    m = n[big] - 1.0
    out[big] = 2.0 * (np.log(m) + np.euler_gamma) - 2.0 * m / n[big]
    return out


class ForestScore:
    """Isolation Forest anomaly scores of rows (higher is more abnormal), from arrays.

    Parameters
    ----------
    random_state : int

    Attributes
    ----------
    fill_ : ndarray of shape (n_features,)
        Each column's training median (what a missing value becomes).
    offsets_ : ndarray of int, shape (n_trees + 1,)
        Tree ``t``'s nodes are ``offsets_[t]:offsets_[t + 1]`` of the node arrays.
    left_, right_, feature_, threshold_, n_node_samples_ : ndarray of shape (n_nodes,)
        Node arrays of all trees; children are indices within their tree, -1 at a leaf.
    features_ : ndarray of int, shape (n_trees, n_sub)
        The columns tree ``t`` sees (its ``feature_`` indexes into them).
    max_samples_ : int
        Rows drawn per tree.
    """

    def __init__(self, random_state=0):
        self.random_state = int(random_state)

    def _filled(self, X):
        X = np.array(X, np.float64)
        missing = np.isnan(X)
        if missing.any():
            X[missing] = np.broadcast_to(self.fill_, X.shape)[missing]
        return X

    def fit(self, X):
        from sklearn.ensemble import IsolationForest

        X = np.asarray(X, np.float64)
        with warnings.catch_warnings():  # a column with no observed value: its median is NaN, filled with 0
            warnings.simplefilter("ignore", RuntimeWarning)
            self.fill_ = np.nan_to_num(np.nanmedian(X, axis=0)) if np.isnan(X).any() else np.median(X, axis=0)
        forest = IsolationForest(random_state=self.random_state).fit(self._filled(X))
        trees = [e.tree_ for e in forest.estimators_]
        self.offsets_ = np.concatenate([[0], np.cumsum([t.node_count for t in trees])]).astype(np.int64)
        self.left_ = np.concatenate([t.children_left for t in trees]).astype(np.int64)
        self.right_ = np.concatenate([t.children_right for t in trees]).astype(np.int64)
        self.feature_ = np.concatenate([np.where(t.children_left < 0, 0, t.feature) for t in trees]).astype(np.int64)
        self.threshold_ = np.concatenate([np.where(t.children_left < 0, 0.0, t.threshold) for t in trees])
        self.n_node_samples_ = np.concatenate([t.n_node_samples for t in trees]).astype(np.int64)
        self.features_ = np.asarray(forest.estimators_features_, np.int64)
        self.max_samples_ = int(forest.max_samples_)
        return self

    def score(self, X):
        """The rows' forest scores (shape ``(n_samples,)``), ``-IsolationForest.score_samples``."""
        X = self._filled(X)
        # scikit-learn's trees compare float32 values with float64 thresholds
        X = X.astype(np.float32).astype(np.float64)
        n_trees = len(self.features_)
        base = self.offsets_[:-1]
        # global child indices (-1 stays at a leaf) and each node's column in X
        leaf = self.left_ < 0
        tree_of = np.repeat(np.arange(n_trees), np.diff(self.offsets_))
        left = np.where(leaf, -1, self.left_ + self.offsets_[tree_of])
        right = np.where(leaf, -1, self.right_ + self.offsets_[tree_of])
        column = self.features_[tree_of, self.feature_]
        leaf_c = average_path_length(self.n_node_samples_)
        out = np.empty(len(X))
        for start in range(0, len(X), _ROWS):
            rows = X[start : start + _ROWS]
            node = np.broadcast_to(base, (len(rows), n_trees)).copy()
            depth = np.zeros(node.shape)
            r = np.arange(len(rows))[:, None]
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = rows[r, column[node]] <= self.threshold_[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
                depth += inner
            out[start : start + len(rows)] = (depth + leaf_c[node]).sum(axis=1)
        denominator = n_trees * float(average_path_length([self.max_samples_])[0])
        if denominator == 0:
            return np.ones(len(X))
        return 2.0 ** (-out / denominator)

    def to_arrays(self):
        """The fitted state as plain arrays (for an ``.npz`` saved without pickle): 24 bytes a node, so
        at most about 1.2 MB for scikit-learn's default forest (100 trees of at most 511 nodes), whatever
        the number of rows."""
        i32 = np.int32  # indices and counts below 2**31 (at most MAX_NODES nodes); thresholds stay float64
        return {"fill": self.fill_, "offsets": self.offsets_.astype(i32), "left": self.left_.astype(i32),
                "right": self.right_.astype(i32), "feature": self.feature_.astype(i32), "threshold": self.threshold_,
                "n_node_samples": self.n_node_samples_.astype(i32), "features": self.features_.astype(i32),
                "max_samples": np.array([self.max_samples_], np.int64)}

    @staticmethod
    def expected_shapes(n_features):
        """``read_npz``'s expected shapes of :meth:`to_arrays`' arrays for ``n_features`` columns."""
        node = (None,)
        return {"fill": (n_features,), "offsets": (None,), "left": node, "right": node, "feature": node,
                "threshold": node, "n_node_samples": node, "features": (None, None), "max_samples": (1,)}

    @classmethod
    def from_arrays(cls, arrays, n_features):
        """A fitted score from :meth:`to_arrays`' arrays, checked (raises ValueError): tree and node
        counts within :data:`MAX_TREES` / :data:`MAX_NODES`, integer indices, every child after its
        parent and inside its tree, split features inside the tree's columns, columns inside
        ``n_features``, finite numbers, positive sample counts."""
        a = {k: np.asarray(v) for k, v in arrays.items()}
        ints = ("offsets", "left", "right", "feature", "n_node_samples", "features", "max_samples")
        if any(a[k].dtype.kind not in "iu" for k in ints) or any(a[k].dtype.kind != "f" for k in ("fill", "threshold")):
            raise ValueError("forest arrays of the wrong kinds (integer indices, float thresholds)")
        offsets, features = a["offsets"].astype(np.int64), a["features"].astype(np.int64)
        n_trees, n_nodes = len(offsets) - 1, len(a["left"])
        if not 1 <= n_trees <= MAX_TREES or not 1 <= n_nodes <= MAX_NODES:
            raise ValueError(f"a forest of {n_trees} trees and {n_nodes} nodes (at most {MAX_TREES} and {MAX_NODES})")
        if any(len(a[k]) != n_nodes for k in ("right", "feature", "threshold", "n_node_samples")):
            raise ValueError("forest node arrays of mismatched lengths")
        if features.shape[0] != n_trees or not 1 <= features.shape[1] <= n_features:
            raise ValueError(f"forest feature subsets of shape {features.shape}, expected ({n_trees}, <= {n_features})")
        if offsets[0] != 0 or offsets[-1] != n_nodes or np.any(np.diff(offsets) < 1):
            raise ValueError("forest tree offsets out of range")
        if np.any(features < 0) or np.any(features >= n_features):
            raise ValueError("forest feature subsets index columns out of range")
        left, right, feature = (a[k].astype(np.int64) for k in ("left", "right", "feature"))
        tree_of = np.repeat(np.arange(n_trees), np.diff(offsets))
        local = np.arange(n_nodes) - offsets[tree_of]
        size = np.diff(offsets)[tree_of]
        leaf = left == -1
        inner_ok = (left > local) & (left < size) & (right > local) & (right < size)
        if np.any(leaf != (right == -1)) or not np.all(leaf | inner_ok):
            raise ValueError("forest node children out of range (each child must follow its parent inside its tree)")
        if np.any((feature < 0) | (feature >= features.shape[1])):
            raise ValueError("forest split features out of range")
        if np.any(a["n_node_samples"] < 1) or int(a["max_samples"][0]) < 1:
            raise ValueError("forest sample counts must be positive")
        if not (np.all(np.isfinite(a["threshold"])) and np.all(np.isfinite(a["fill"]))):
            raise ValueError("forest thresholds must be finite")
        self = cls()
        self.fill_, self.offsets_, self.features_ = a["fill"].astype(np.float64), offsets, features
        self.left_, self.right_, self.feature_ = left, right, feature
        self.threshold_ = a["threshold"].astype(np.float64)
        self.n_node_samples_ = a["n_node_samples"].astype(np.int64)
        self.max_samples_ = int(a["max_samples"][0])
        return self

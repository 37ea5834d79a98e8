import numpy as np
import pytest

from rda_cli.prox import l1_shrink, l21_shrink


def reference_l1(S, t):
    out = np.zeros_like(S)
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            s = S[i, j]
            out[i, j] = np.sign(s) * max(abs(s) - t, 0.0)
    return out


def reference_l21(S, t, groups):
    A = S if groups == "rows" else S.T
    out = np.zeros_like(A)
    for i in range(A.shape[0]):
        g = A[i]
        nrm = np.sqrt(np.sum(g * g))
        if nrm > t:
            out[i] = g * (1 - t / nrm)
    return out if groups == "rows" else out.T


@pytest.fixture
def S():
    rng = np.random.default_rng(1)
    S = rng.normal(size=(40, 17))
    S[3] = 0.0  # a zero row
    S[:, 5] = 0.0  # a zero column
    S[7] *= 1e-3  # a small row
    return S


@pytest.mark.parametrize("t", [0.0, 0.05, 0.3, 1.0, 1e6])
def test_l1_matches_reference(S, t):
    np.testing.assert_allclose(l1_shrink(S, t), reference_l1(S, t), atol=1e-6)


@pytest.mark.parametrize("groups", ["rows", "columns"])
@pytest.mark.parametrize("t", [0.0, 0.5, 2.0, 4.0, 1e6])
def test_l21_matches_reference_and_norms(S, t, groups):
    out = l21_shrink(S, t, groups)
    np.testing.assert_allclose(out, reference_l21(S, t, groups), atol=1e-6)
    axis = 1 if groups == "rows" else 0
    np.testing.assert_allclose(
        np.linalg.norm(out, axis=axis), np.maximum(np.linalg.norm(S, axis=axis) - t, 0), atol=1e-6
    )
    assert np.all(np.isfinite(out))


def test_threshold_zero_returns_input_unchanged_copy(S):
    for out in (l1_shrink(S, 0), l21_shrink(S, 0), l21_shrink(S, 0, "columns")):
        np.testing.assert_array_equal(out, S)
        assert out is not S


def test_threshold_above_every_norm_gives_zero(S):
    assert not l21_shrink(S, 1e6).any()
    assert not l1_shrink(S, 1e6).any()


def test_input_not_modified(S):
    before = S.copy()
    l1_shrink(S, 0.3)
    l21_shrink(S, 0.3)
    np.testing.assert_array_equal(S, before)


def test_float32_preserved():
    S = np.ones((3, 4), np.float32)
    assert l21_shrink(S, 0.5).dtype == np.float32
    assert l1_shrink(S, 0.5).dtype == np.float32


@pytest.mark.parametrize("fn", [l1_shrink, l21_shrink])
def test_bad_inputs(fn):
    with pytest.raises(ValueError, match="threshold"):
        fn(np.ones((2, 2)), -0.1)
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones(3), 0.1)
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones((2, 2, 2)), 0.1)


def test_l21_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        l21_shrink(np.ones((2, 2)), 0.1, groups="diagonal")


@pytest.mark.parametrize("groups", ["rows", "columns"])
def test_large_array_threaded_chunks_match_plain_numpy(groups):
    # > 1M elements and rows of 3.2 kB: several 2 MB chunks per thread
    S = np.random.default_rng(2).normal(size=(3001, 800)).astype(np.float32)
    S[10] = 0.0
    axis = 1 if groups == "rows" else 0
    norms = np.linalg.norm(S.astype(np.float64), axis=axis, keepdims=True)
    t = float(np.median(norms))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(norms > t, S * (1 - t / norms), 0.0)
    # float32 norms: groups whose norm is within rounding of t scale by ~1e-7, hence the atol
    np.testing.assert_allclose(l21_shrink(S, t, groups), expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(l1_shrink(S, 0.7), np.sign(S) * np.maximum(np.abs(S) - 0.7, 0), atol=1e-6)


@pytest.mark.parametrize("fn,args", [(l1_shrink, (0.3,)), (l21_shrink, (2.0, "rows")), (l21_shrink, (2.0, "columns"))])
def test_in_place_equals_new_array(S, fn, args):
    S = S.astype(np.float32)
    expected = fn(S, *args)
    work = S.copy()
    result = fn(work, *args, out=work)
    assert result is work
    np.testing.assert_array_equal(work, expected)
    other = np.empty_like(S)
    assert fn(S, *args, out=other) is other
    np.testing.assert_array_equal(other, expected)


def test_out_of_wrong_shape_or_dtype_rejected():
    S = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="out must be"):
        l21_shrink(S, 0.1, out=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        l1_shrink(S, 0.1, out=np.empty((4, 3), np.float64))


def test_tiny_groups_under_a_large_threshold_shrink_to_zero_without_a_warning():
    import warnings

    S = np.zeros((3, 4), np.float32)
    S[1, 2] = 1e-30  # a norm far below the threshold: threshold / norm overflows, as meant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for groups in ("rows", "columns"):
            assert not l21_shrink(S, 1e10, groups).any()


def test_sparse_step_is_the_solvers_prox_of_the_residual():
    """``solver.sparse_step`` (the one way to start the loop from a pilot's L): the prox of ``X - L``, zero at
    missing entries, with the l2,1 threshold scaled by the observed share of a group as in the loop."""
    from rda_cli.solver import SparsePart, sparse_step

    rng = np.random.default_rng(3)
    X, L = rng.random((30, 6)), rng.random((30, 6)).astype(np.float32)
    part = SparsePart("l21_rows", 0.8)
    np.testing.assert_array_equal(sparse_step(X, L, part), l21_shrink((X - L).astype(np.float32), 0.8, "rows"))
    X[rng.random(X.shape) < 0.2] = np.nan
    S = sparse_step(X, L, part)
    mask = ~np.isnan(X)
    assert S.dtype == np.float32 and not S[~mask].any()
    np.testing.assert_array_equal(S, part.prox(np.where(mask, X - L, 0).astype(np.float32), mask))

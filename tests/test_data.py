"""Tests of the data layer: MNIST loading, validation errors, corruptions."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from rda_cli.data import DataError, corrupt_pixels, load_mnist, outlier_mix, stuck_pixels
from rda_cli.data import mnist as mnist_module

SHARED_DIRS = mnist_module.shared_dirs  # the real search, which the isolated tests switch off

MNIST_DIR = Path(
    os.environ.get("RDA_TEST_MNIST")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
)
TRAIN_LABELS_MD5 = "a25bea736e30d166cdddb491f175f624"
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"shared MNIST copy not found at {MNIST_DIR} (set RDA_TEST_MNIST to a folder with the IDX .gz files)",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test may see the user's data settings or Keras cache, nor download."""
    monkeypatch.delenv("RDA_DATA_DIR", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(mnist_module, "shared_dirs", lambda: [])  # the shared copy: only where a test says


@pytest.fixture(scope="module")
def mnist_train():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"shared MNIST copy not found at {MNIST_DIR}")
    return load_mnist(MNIST_DIR, "train", download=False)


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, magic: int | None = None, count: int | None = None) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    dims = list(array.shape)
    if count is not None:
        dims[0] = count
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.tobytes()


def write_idx_set(folder: Path, n_images=5, n_labels=None, image_magic=None, split="train", gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n_images, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_labels if n_labels is not None else n_images, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    opener = gzip.open if gz else open
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as fh:
        fh.write(idx_bytes(images, magic=image_magic))
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as fh:
        fh.write(idx_bytes(labels))
    return images, labels


def assert_one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message and "\r" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --------------------------------------------------------------------------- real MNIST


@needs_mnist
def test_shared_mnist_train(mnist_train):
    X, y = mnist_train
    assert X.shape == (60000, 784) and y.shape == (60000,)
    assert X.dtype == np.float32 and y.dtype == np.uint8
    assert X.min() == 0.0 and X.max() == 1.0
    assert int((y[:50000] == 4).sum()) == 4859


@needs_mnist
def test_shared_mnist_test_split():
    X, y = load_mnist(MNIST_DIR, split="test", download=False)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert np.bincount(y, minlength=10).tolist() == TEST_LABEL_COUNTS


@needs_mnist
def test_shared_mnist_labels_md5(mnist_train):
    with gzip.open(MNIST_DIR / "train-labels-idx1-ubyte.gz", "rb") as fh:
        assert hashlib.md5(fh.read()).hexdigest() == TRAIN_LABELS_MD5
    _, y = mnist_train
    rebuilt = idx_bytes(y)  # the loaded labels re-encode to the canonical file
    assert hashlib.md5(rebuilt).hexdigest() == TRAIN_LABELS_MD5


def test_bad_split():
    with pytest.raises(DataError) as excinfo:
        load_mnist(MNIST_DIR, split="validation", download=False)
    assert_one_line_error(excinfo, "validation")


# --------------------------------------------------------------------------- file layouts


def test_plain_and_dotted_idx_names(tmp_path):
    images, labels = write_idx_set(tmp_path / "plain", gz=False)
    X, y = load_mnist(tmp_path / "plain")
    np.testing.assert_array_equal(X, images.reshape(5, -1) / np.float32(255))
    np.testing.assert_array_equal(y, labels)

    dotted = tmp_path / "dotted"
    dotted.mkdir()
    (dotted / "t10k-images.idx3-ubyte").write_bytes(idx_bytes(images))
    (dotted / "t10k-labels.idx1-ubyte").write_bytes(idx_bytes(labels))
    X2, y2 = load_mnist(str(dotted), split="test")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_npz_layout(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    y_train = np.array([0, 1, 2, 3, 4, 5], dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    y_test = np.array([7, 8, 9], dtype=np.int64)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    X, y = load_mnist(tmp_path)  # folder holding mnist.npz
    assert X.shape == (6, 784) and X.dtype == np.float32 and y.dtype == np.uint8
    np.testing.assert_allclose(X, x_train.reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, y_train)

    Xt, yt = load_mnist(tmp_path / "mnist.npz", split="test")  # the file itself
    assert Xt.shape == (3, 784) and yt.tolist() == [7, 8, 9] and yt.dtype == np.uint8


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)
    assert_one_line_error(excinfo, "mnist.npz", "y_train")


def test_env_var_is_honored(tmp_path, monkeypatch):
    images, labels = write_idx_set(tmp_path / "envdata", n_images=4)
    monkeypatch.setenv("RDA_DATA_DIR", str(tmp_path / "envdata"))
    X, y = load_mnist(download=False)
    assert X.shape == (4, 784)
    np.testing.assert_array_equal(y, labels)


def test_keras_cache_is_used(tmp_path):
    cache = Path(os.environ["HOME"]) / ".keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.array([1, 2]),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.array([3]))
    X, y = load_mnist(split="test", download=False)
    assert X.shape == (1, 784) and y.tolist() == [3]


@pytest.mark.parametrize("cwd", [".", "sub"])
def test_shared_folder_under_the_current_folder(tmp_path, monkeypatch, cwd):
    """No variable set: shared/data/mnist (or ../shared/data/mnist) from the current folder is found."""
    monkeypatch.setattr(mnist_module, "shared_dirs", SHARED_DIRS)
    _, labels = write_idx_set(tmp_path / "shared" / "data" / "mnist", n_images=3)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / cwd)
    X, y = load_mnist(download=False)
    assert X.shape == (3, 784)
    np.testing.assert_array_equal(y, labels)


@needs_mnist
def test_shared_folder_next_to_the_repository(tmp_path, monkeypatch):
    """No variable set, run from elsewhere: ../shared/data/mnist beside the repository is found."""
    monkeypatch.setattr(mnist_module, "shared_dirs", SHARED_DIRS)
    monkeypatch.chdir(tmp_path)
    repo_shared = Path(mnist_module.__file__).resolve().parents[3] / "shared" / "data" / "mnist"
    if not (repo_shared / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST copy at {repo_shared}")
    X, y = load_mnist(split="test", download=False)
    assert X.shape == (10000, 784) and np.bincount(y).tolist() == TEST_LABEL_COUNTS


def test_nothing_found_lists_places(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_mnist(download=False)
    expected_cache = str(Path(os.environ["HOME"]) / ".keras" / "datasets" / "mnist.npz")
    assert_one_line_error(excinfo, "RDA_DATA_DIR", expected_cache, "path argument", "data.path")


# --------------------------------------------------------------------------- bad files


def test_truncated_gz(tmp_path):
    src = tmp_path / "src"
    write_idx_set(src, n_images=50)
    bad = tmp_path / "bad"
    bad.mkdir()
    data = (src / "train-images-idx3-ubyte.gz").read_bytes()
    (bad / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    (bad / "train-labels-idx1-ubyte.gz").write_bytes((src / "train-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(DataError) as excinfo:
        load_mnist(bad)
    assert_one_line_error(excinfo, "train-images-idx3-ubyte.gz", "truncated")


@needs_mnist
def test_truncated_real_gz(tmp_path):
    data = (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(data[:-100])
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path, split="test")
    assert_one_line_error(excinfo, "t10k-labels-idx1-ubyte.gz")


def test_garbage_gz(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)
    assert_one_line_error(excinfo, "train-labels-idx1-ubyte.gz")


def test_wrong_magic(tmp_path):
    write_idx_set(tmp_path, image_magic=2049)
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)
    assert_one_line_error(excinfo, "train-images-idx3-ubyte.gz", "magic", "2049", "2051")


def test_declared_count_exceeds_bytes(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images, count=4))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)
    assert_one_line_error(excinfo, "train-images-idx3-ubyte", "truncated")


def test_count_mismatch(tmp_path):
    write_idx_set(tmp_path, n_images=5, n_labels=4)
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)
    assert_one_line_error(excinfo, "train-images-idx3-ubyte.gz", "5 images", "4 labels")


def test_missing_labels_file(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)
    assert_one_line_error(excinfo, str(tmp_path), "train-labels-idx1-ubyte")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path / "empty")  # explicit path: no fall-through to download
    assert_one_line_error(excinfo, str(tmp_path / "empty"), "empty")


def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path / "nowhere")
    assert_one_line_error(excinfo, str(tmp_path / "nowhere"), "does not exist")


def test_bad_env_var_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("RDA_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as excinfo:
        load_mnist()
    assert_one_line_error(excinfo, str(tmp_path / "nowhere"), "RDA_DATA_DIR")


# --------------------------------------------------------------------------- corrupt_pixels


@needs_mnist
def test_corrupt_pixels_on_mnist(mnist_train):
    X = mnist_train[0][:2000]
    before = X.copy()
    k = 100
    Xc, mask = corrupt_pixels(X, k, seed=3)
    np.testing.assert_array_equal(X, before)  # input untouched
    assert mask.dtype == bool and mask.shape == X.shape and Xc.shape == X.shape
    assert (mask.sum(axis=1) == k).all()
    changed = Xc != X
    np.testing.assert_array_equal(changed, mask)  # MNIST values never equal their flip
    expected = np.where(X > 0.5, 0.0, 1.0)
    np.testing.assert_array_equal(Xc[mask], expected[mask])

    Xc2, mask2 = corrupt_pixels(X, k, seed=3)
    np.testing.assert_array_equal(mask, mask2)
    np.testing.assert_array_equal(Xc, Xc2)
    _, mask3 = corrupt_pixels(X, k, seed=4)
    assert not np.array_equal(mask, mask3)


def test_corrupt_pixels_edges():
    X = np.full((4, 10), 0.25, dtype=np.float32)
    Xc, mask = corrupt_pixels(X, 0, seed=0)
    assert not mask.any()
    np.testing.assert_array_equal(Xc, X)
    Xc, mask = corrupt_pixels(X, 10, seed=0)
    assert mask.all() and (Xc == 1.0).all()
    for bad_k in (-1, 11):
        with pytest.raises(ValueError):
            corrupt_pixels(X, bad_k, seed=0)


def test_corrupt_pixels_spreads_uniformly():
    X = np.zeros((20000, 8), dtype=np.float32)
    _, mask = corrupt_pixels(X, 2, seed=0)
    freq = mask.mean(axis=0)
    assert np.allclose(freq, 2 / 8, atol=0.02)


# --------------------------------------------------------------------------- outlier_mix


@needs_mnist
def test_outlier_mix_defaults(mnist_train):
    X, y = mnist_train
    X_mix, y_mix, is_outlier = outlier_mix(X, y)
    assert X_mix.shape == (5124, 784) and y_mix.shape == (5124,) and is_outlier.dtype == bool
    assert int(is_outlier.sum()) == 265
    assert (y_mix[~is_outlier] == 4).all()
    assert not (y_mix[is_outlier] == 4).any()
    assert len({row.tobytes() for row in X_mix}) == 5124
    assert not is_outlier[:265].all()  # shuffled, not stacked


def test_outlier_mix_synthetic():
    n = 1000
    X = np.arange(n, dtype=np.float32)[:, None].repeat(3, axis=1)  # row i holds i
    y = (np.arange(n) % 10).astype(np.uint8)
    X_mix, y_mix, is_outlier = outlier_mix(X, y, nominal=3, n_outliers=40, n_source=500, seed=1)
    source = X_mix[:, 0].astype(int)
    assert len(set(source.tolist())) == len(source) == 50 + 40
    assert (source < 500).all()
    np.testing.assert_array_equal(y_mix, y[source])
    assert set(source[~is_outlier].tolist()) == set(range(3, 500, 10))
    again = outlier_mix(X, y, nominal=3, n_outliers=40, n_source=500, seed=1)
    np.testing.assert_array_equal(again[0], X_mix)

    with pytest.raises(ValueError):
        outlier_mix(X, y, nominal=11)
    with pytest.raises(ValueError):
        outlier_mix(X, y, nominal=3, n_outliers=451, n_source=500)
    with pytest.raises(ValueError):
        outlier_mix(X, y, n_outliers=-1)


# --------------------------------------------------------------------------- stuck_pixels


def test_stuck_pixels_basic():
    rng = np.random.default_rng(0)
    X = np.zeros((200, 50), dtype=np.float32)
    X[:, :10] = rng.random((200, 10))  # bright-ish columns 0..9, dark 10..49
    X[:, :10] += 0.5
    X = np.clip(X, 0, 1)
    before = X.copy()
    Xc, cols = stuck_pixels(X, 5, 0.25, seed=7)
    np.testing.assert_array_equal(X, before)
    assert isinstance(cols, np.ndarray) and np.issubdtype(cols.dtype, np.integer)
    assert cols.tolist() == sorted(set(cols.tolist())) and len(cols) == 5
    assert (cols >= 10).all()  # chosen among dark columns
    hit_rows = (Xc != X).any(axis=1)
    assert hit_rows.sum() == 50
    assert (Xc[hit_rows][:, cols] == 1.0).all()
    other = np.setdiff1d(np.arange(50), cols)
    np.testing.assert_array_equal(Xc[:, other], X[:, other])

    Xc2, cols2 = stuck_pixels(X, 5, 0.25, seed=7)
    np.testing.assert_array_equal(Xc, Xc2)
    np.testing.assert_array_equal(cols, cols2)

    Xall, cols_all = stuck_pixels(X, 45, 1.0, seed=0, value=0.7)  # more than the 40 dark ones
    assert len(cols_all) == 45 and (Xall[:, cols_all] == np.float32(0.7)).all()

    for kwargs in ({"n_pixels": 0, "fraction": 0.5}, {"n_pixels": 51, "fraction": 0.5},
                   {"n_pixels": 3, "fraction": 0.0}, {"n_pixels": 3, "fraction": 1.5}):
        with pytest.raises(ValueError):
            stuck_pixels(X, seed=0, **kwargs)


@needs_mnist
def test_stuck_pixels_on_mnist(mnist_train):
    X = mnist_train[0][:5000]
    Xc, cols = stuck_pixels(X, 10, 0.1, seed=0)
    assert (X[:, cols].mean(axis=0) < 0.1).all()
    assert (Xc != X).any(axis=1).sum() == 500

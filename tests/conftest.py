import os
from pathlib import Path

import pytest

MNIST_DIR = Path(os.environ.get("RDA_TEST_MNIST", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))


@pytest.fixture(scope="session")
def mnist_dir():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found at {MNIST_DIR} (set RDA_TEST_MNIST)")
    return MNIST_DIR


@pytest.fixture(scope="module")
def features_run(tmp_path_factory, mnist_dir):
    """A finished tiny features run (3 cells) and its config file."""
    from synthetic import invoke, tiny_features, write_config

    tmp = tmp_path_factory.mktemp("features")
    cfg = write_config(tmp, tiny_features(mnist_dir))
    out = tmp / "whole"
    res = invoke("features", "--config", cfg, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    return cfg, out

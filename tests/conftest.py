import os
from pathlib import Path

import pytest

MNIST_DIR = Path(os.environ.get("RDA_TEST_MNIST", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))


@pytest.fixture(scope="session")
def mnist_dir():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found at {MNIST_DIR} (set RDA_TEST_MNIST)")
    return MNIST_DIR

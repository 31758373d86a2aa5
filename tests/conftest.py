"""Shared test settings (never download, fast mode, one torch thread) and fixtures."""

import os

import pytest
import torch

from helpers import config

os.environ["COURSE_DOWNLOAD"] = "0"  # tests never download
os.environ.setdefault("COURSE_MODE", "fast")
torch.set_num_threads(1)  # small tensors: threads only add overhead, and CI has 2 cores


@pytest.fixture
def tmp_checkpoints(tmp_path, monkeypatch):
    """A fresh, empty checkpoint folder that `config.checkpoint_dir()` points at."""
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    return tmp_path


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


@pytest.fixture
def mnist():
    """The MNIST raw folder; the test is skipped, with the reason, when its files are not under the data root.

    Use it as `@pytest.mark.usefixtures("mnist")` on every test that reads MNIST."""
    raw = config.data_root() / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).exists()]
    if missing:
        pytest.skip(f"MNIST is not under {raw} (missing {', '.join(missing)}); set COURSE_DATA_ROOT")
    return raw

"""Shared test settings: never download, fast mode, one torch thread."""

import os

import pytest
import torch

os.environ["COURSE_DOWNLOAD"] = "0"  # tests never download
os.environ.setdefault("COURSE_MODE", "fast")
torch.set_num_threads(1)  # small tensors: threads only add overhead, and CI has 2 cores


@pytest.fixture
def tmp_checkpoints(tmp_path, monkeypatch):
    """A fresh, empty checkpoint folder that `config.checkpoint_dir()` points at."""
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    return tmp_path

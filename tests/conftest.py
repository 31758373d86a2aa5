"""Shared test settings (never download, fast mode, one torch thread) and fixtures."""

import os

import pytest
import torch

from helpers import config

os.environ["COURSE_DOWNLOAD"] = "0"  # tests never download
os.environ.setdefault("COURSE_MODE", "fast")
torch.set_num_threads(1)  # small tensors: threads only add overhead, and CI has 2 cores
# The notebooks' kernels inherit this environment: under pytest-xdist (-n W) each worker's kernel gets
# cores // W threads, so W workers never run more threads than there are cores (two processes of two
# threads each on two cores run 10-100x slower). Without xdist a count the user set wins, and OpenMP and MKL
# get the same one (a kernel with OpenMP at 1 and MKL at 2 ran many times slower).
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_threads = str(max(1, (os.cpu_count() or 1) // _workers))
if _workers == 1:
    _threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS") or _threads
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads


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


# The time of each notebook (the sum of its cells' setup, call and teardown), printed after the run: the
# five slowest notebooks, which set the floor of a parallel run (CI prints them).
_NOTEBOOK_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _NOTEBOOK_SECONDS[path] = _NOTEBOOK_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if _NOTEBOOK_SECONDS and not os.environ.get("PYTEST_XDIST_WORKER"):
        terminalreporter.write_sep("=", "slowest 5 notebooks (all cells)")
        for path, seconds in sorted(_NOTEBOOK_SECONDS.items(), key=lambda kv: -kv[1])[:5]:
            terminalreporter.write_line(f"{seconds:8.1f}s  {path}")

"""The one place that reads the environment.

Every other module asks this one for the run mode, the data root, the checkpoint folder, the device and
the seed; nothing else in `helpers` reads `os.environ`.

| variable               | meaning                                                    | default                     |
|------------------------|------------------------------------------------------------|-----------------------------|
| `COURSE_MODE`          | `fast` (CPU minutes, shipped checkpoints) or `full`         | `fast`                      |
| `COURSE_DATA_ROOT`     | folder holding `MNIST/raw/` (torchvision's layout)          | `<repo>/data`               |
| `COURSE_DOWNLOAD`      | `1` lets torchvision download MNIST when it is missing      | `1`                         |
| `COURSE_CHECKPOINTS`   | folder of the `.pt` files and their `manifest.json`         | `<repo>/checkpoints`        |
| `COURSE_DEVICE`        | `cpu`, `cuda`, `cuda:1`, ... (`auto`: cuda when available) | `auto`                      |
| `COURSE_SEED`          | base seed of every chapter                                 | `0`                         |
| `COURSE_FAST_PATH`     | `1`: bf16 autocast and channels_last in training (`accel`)  | `auto`: on a GPU, off on CPU |
| `COURSE_COMPILE`       | `1`: `torch.compile` the network in `models.draw_samples`   | `0`                         |
| `COURSE_LOG_DIR`       | folder of TensorBoard logs of every training (`tblog`)     | none: nothing is logged     |
| `RANK`, `LOCAL_RANK`, `WORLD_SIZE` | set by `torchrun` for data-parallel training (`distributed`) | one process   |
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
MODES = ("fast", "full")


def mode() -> str:
    """`fast` or `full`, from `COURSE_MODE`; anything else raises `ConfigError` naming the variable."""
    value = os.environ.get("COURSE_MODE", "fast").strip().lower()
    if value not in MODES:
        raise ConfigError(f"COURSE_MODE must be one of {MODES}, got {value!r}")
    return value


def is_fast() -> bool:
    """True in fast mode (the default): short training runs, full results from shipped checkpoints."""
    return mode() == "fast"


def data_root() -> Path:
    """Folder that holds `MNIST/raw/`, from `COURSE_DATA_ROOT` (default `<repo>/data`)."""
    return Path(os.environ.get("COURSE_DATA_ROOT", REPO_ROOT / "data")).expanduser().resolve()


def allow_download() -> bool:
    """Whether torchvision may download missing datasets (`COURSE_DOWNLOAD`, default `1`)."""
    value = os.environ.get("COURSE_DOWNLOAD", "1").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"COURSE_DOWNLOAD must be 0 or 1, got {value!r}")
    return value in ("1", "true", "yes")


def checkpoint_dir() -> Path:
    """Folder of the shipped checkpoints and `manifest.json` (`COURSE_CHECKPOINTS`)."""
    return Path(os.environ.get("COURSE_CHECKPOINTS", REPO_ROOT / "checkpoints")).expanduser().resolve()


def log_dir() -> Path | None:
    """Folder of TensorBoard logs of trainings (`COURSE_LOG_DIR`), or None: no logs."""
    value = os.environ.get("COURSE_LOG_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else None


def device(requested: str | None = None) -> torch.device:
    """The torch device: `requested`, else `COURSE_DEVICE`, else cuda when available, else cpu.

    Asking for cuda on a machine without it raises `ConfigError` rather than failing later.
    """
    name = (requested or os.environ.get("COURSE_DEVICE", "auto")).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and ranks()[2] > 1:  # torchrun: one GPU per process, cuda:LOCAL_RANK
        name = f"cuda:{ranks()[1]}"
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {name!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA device here")
    return dev


def ranks() -> tuple[int, int, int]:
    """(RANK, LOCAL_RANK, WORLD_SIZE) as `torchrun` sets them; (0, 0, 1) in a plain process."""
    try:
        return tuple(int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)))
    except ValueError as err:
        raise ConfigError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers (torchrun sets them): {err}") from err


def fast_path(device_: torch.device) -> bool:
    """Whether training on `device_` takes the fast path of `accel` (`COURSE_FAST_PATH`: 1, 0 or auto).

    auto: on a GPU, where `python -m helpers bench` measures it faster; off on a CPU, where it measured
    slower (book/appendix_performance.md)."""
    value = os.environ.get("COURSE_FAST_PATH", "auto").strip().lower()
    if value not in ("auto", "0", "1"):
        raise ConfigError(f"COURSE_FAST_PATH must be auto, 0 or 1, got {value!r}")
    return device_.type == "cuda" if value == "auto" else value == "1"


def compile_sampling() -> bool:
    """Whether `models.draw_samples` runs the network through `torch.compile` (`COURSE_COMPILE`: 0 or 1).

    Off by default: the first call compiles for a minute or two. It pays on long CPU runs (`python -m
    helpers evaluate`: 1.3x faster U-Net sampling here, book/appendix_performance.md); outputs agree with
    the eager network to about 1e-6, not bit for bit."""
    value = os.environ.get("COURSE_COMPILE", "0").strip().lower()
    if value not in ("0", "1"):
        raise ConfigError(f"COURSE_COMPILE must be 0 or 1, got {value!r}")
    return value == "1"


def seed() -> int:
    """Base seed (`COURSE_SEED`, default 0)."""
    value = os.environ.get("COURSE_SEED", "0")
    try:
        return int(value)
    except ValueError as err:
        raise ConfigError(f"COURSE_SEED must be an integer, got {value!r}") from err


def generator(seed_value: int | None = None, device_: torch.device | str = "cpu") -> torch.Generator:
    """A `torch.Generator` seeded with `seed_value` (default: `seed()`), so no code uses the global RNG."""
    g = torch.Generator(device=device_)
    g.manual_seed(seed() if seed_value is None else int(seed_value))
    return g


def show_path(path: Path) -> str:
    """`path` relative to the repository when it lies inside it, so printed outputs hold no home folder."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT)) or "."
    except ValueError:
        return str(path)


def describe() -> str:
    """One line a notebook prints at its top: mode, device and checkpoint folder."""
    return f"mode={mode()}  device={device().type}  checkpoints={show_path(checkpoint_dir())}"

"""Data sets of the course: 2D toys, 1D Gaussian mixtures with exact density, and MNIST.

No plotting and no training here. Every sampler takes a seed or a `torch.Generator`, never the global RNG.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import config
from .errors import DataNotFoundError  # noqa: F401  (raised here; data.DataNotFoundError still works)

# ----------------------------------------------------------------------------------------------- 2D toys


def make_moons(n: int, noise: float = 0.05, seed: int = 0) -> Tensor:
    """scikit-learn's `make_moons` as a float32 tensor of shape (n, 2), shuffled. Chapters 1 and 2.

    scikit-learn spaces the angles evenly on each half circle, so two calls differ only in their noise;
    use `sample_moons` where independent samples matter (training batches, metric floors).
    """
    from sklearn.datasets import make_moons as sk_make_moons

    _check_positive_int("n", n)
    x, _ = sk_make_moons(n_samples=n, noise=noise, shuffle=True, random_state=seed)
    return torch.as_tensor(x, dtype=torch.float32)


def sample_moons(n: int, noise: float = 0.05, generator: torch.Generator | None = None) -> Tensor:
    """I.i.d. samples of the two-moons distribution, shape (n, 2). Chapters 1 and 2.

    Same distribution as `make_moons`: with probability 1/2 the upper moon (cos u, sin u), else the lower
    moon (1 - cos u, 1/2 - sin u), u ~ U(0, pi), plus N(0, noise^2 I); but the angles are drawn at random,
    so two calls give independent samples (what a metric's floor needs).
    """
    _check_positive_int("n", n)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    g = generator if generator is not None else config.generator()
    u = torch.rand(n, generator=g) * math.pi
    lower = torch.rand(n, generator=g) < 0.5
    x = torch.where(lower, 1.0 - torch.cos(u), torch.cos(u))
    y = torch.where(lower, 0.5 - torch.sin(u), torch.sin(u))
    points = torch.stack([x, y], dim=1)
    return points + noise * torch.randn(n, 2, generator=g)


def moons_moments(noise: float = 0.05) -> tuple[Tensor, Tensor]:
    """Exact mean (2,) and standard deviation (2,) of the moons distribution with Gaussian noise `noise`.

    With u ~ U(0, pi): E[sin u] = 2/pi, E[cos^2 u] = E[sin^2 u] = 1/2, hence mean (1/2, 1/4),
    Var x = 3/4 + noise^2 and Var y = 5/8 - 1/pi - 1/16 + noise^2. Used to standardise the 2D models' inputs.
    """
    mean = torch.tensor([0.5, 0.25])
    var = torch.tensor([0.75 + noise**2, 0.625 - 1.0 / math.pi - 0.0625 + noise**2])
    return mean, var.sqrt()


def make_blobs(n: int, centers: int = 3, std: float = 0.3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """scikit-learn's `make_blobs` in 2D: points (n, 2) float32 and labels (n,) int64. Chapter 4."""
    from sklearn.datasets import make_blobs as sk_make_blobs

    _check_positive_int("n", n)
    x, y = sk_make_blobs(n_samples=n, centers=centers, n_features=2, cluster_std=std, random_state=seed)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


# ------------------------------------------------------------------------------------ 1D Gaussian mixtures


@dataclass(frozen=True)
class GaussianMixture1D:
    """p(x) = sum_k w_k N(x; mu_k, s_k^2), with exact density, score, CDF and sampling. Chapters 3 and 5.

    weights must be positive and sum to 1; stds positive. Arguments are tuples of floats.
    """

    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self):
        w, m, s = (tuple(float(v) for v in arr) for arr in (self.weights, self.means, self.stds))
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "stds", s)
        if not (len(w) == len(m) == len(s) >= 1):
            raise ValueError(f"weights, means and stds need one equal length, got {len(w)}, {len(m)}, {len(s)}")
        if min(w) <= 0 or abs(sum(w) - 1.0) > 1e-6:
            raise ValueError(f"weights must be positive and sum to 1, got {w}")
        if min(s) <= 0:
            raise ValueError(f"stds must be positive, got {s}")

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        kw = dict(dtype=x.dtype if x.is_floating_point() else torch.float64, device=x.device)
        return torch.tensor(self.weights, **kw), torch.tensor(self.means, **kw), torch.tensor(self.stds, **kw)

    def component_log_probs(self, x: Tensor) -> Tensor:
        """log(w_k N(x; mu_k, s_k^2)) of shape (*x.shape, K)."""
        w, m, s = self._params(x)
        z = (x.unsqueeze(-1) - m) / s
        return torch.log(w) - 0.5 * z**2 - torch.log(s) - 0.5 * math.log(2 * math.pi)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x), same shape as x."""
        return torch.logsumexp(self.component_log_probs(x), dim=-1)

    def pdf(self, x: Tensor) -> Tensor:
        """p(x), same shape as x."""
        return self.log_prob(x).exp()

    def score(self, x: Tensor) -> Tensor:
        """d/dx log p(x) = sum_k r_k(x) (mu_k - x) / s_k^2 with responsibilities r_k; same shape as x."""
        _, m, s = self._params(x)
        r = torch.softmax(self.component_log_probs(x), dim=-1)
        return (r * (m - x.unsqueeze(-1)) / s**2).sum(-1)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x) for numpy input (used by the KS statistic)."""
        from scipy.stats import norm

        x = np.asarray(x, dtype=np.float64)
        return sum(w * norm.cdf(x, loc=m, scale=s) for w, m, s in zip(self.weights, self.means, self.stds))

    def mean(self) -> float:
        return float(sum(w * m for w, m in zip(self.weights, self.means)))

    def variance(self) -> float:
        second = sum(w * (s**2 + m**2) for w, m, s in zip(self.weights, self.means, self.stds))
        return float(second - self.mean() ** 2)

    def sample(self, n: int, seed: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n i.i.d. samples, shape (n,), float32. Give `seed` or `generator` (default: the config seed)."""
        _check_positive_int("n", n)
        g = generator if generator is not None else config.generator(seed)
        w, m, s = (torch.tensor(v) for v in (self.weights, self.means, self.stds))
        k = torch.multinomial(w, n, replacement=True, generator=g)
        return (m[k] + s[k] * torch.randn(n, generator=g)).float()


# ------------------------------------------------------------------------------------------------- MNIST


def mnist_dataset(train: bool = True, root: str | Path | None = None, download: bool | None = None):
    """`torchvision.datasets.MNIST` read from `root` (default: `config.data_root()`). Chapters 4, 6, 7, 8.

    Looks for `root/MNIST/raw/` first. When the files are missing and downloads are allowed
    (`COURSE_DOWNLOAD`, default on), torchvision downloads them there, saying so; when that fails too,
    raises `DataNotFoundError` naming `COURSE_DATA_ROOT`. Images are PIL images; use `mnist_tensors`.
    """
    try:
        from torchvision.datasets import MNIST
    except ImportError as err:  # torchvision is in requirements.txt, but say it clearly
        raise ImportError("MNIST needs torchvision: pip install -r requirements.txt") from err

    root = Path(root) if root is not None else config.data_root()
    download = config.allow_download() if download is None else download
    try:
        return MNIST(root=str(root), train=train, download=False)
    except RuntimeError as missing:
        if not download:
            raise DataNotFoundError(_mnist_help(root, "downloads are off (COURSE_DOWNLOAD=0)")) from missing
    print(f"MNIST not found under {root}/MNIST/raw; downloading it there with torchvision ...", flush=True)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a machine without network fails fast instead of hanging
    try:
        return MNIST(root=str(root), train=train, download=True)
    except Exception as err:  # URLError, HTTPError, RuntimeError, OSError: all mean "no MNIST here"
        raise DataNotFoundError(_mnist_help(root, f"the download failed: {err}")) from err
    finally:
        socket.setdefaulttimeout(old_timeout)


def _mnist_help(root: Path, why: str) -> str:
    return (f"MNIST was not found in {root}/MNIST/raw/ and {why}. Set COURSE_DATA_ROOT to a folder that "
            "holds MNIST/raw/ with the four original files (train-images-idx3-ubyte, ...), for example "
            "COURSE_DATA_ROOT=../shared/datasets, or run once with internet access and COURSE_DOWNLOAD=1.")


def mnist_tensors(train: bool = True, root: str | Path | None = None,
                  download: bool | None = None) -> tuple[Tensor, Tensor]:
    """All of MNIST's train (60,000) or test (10,000) split as tensors. Chapters 4, 6, 7, 8.

    Returns images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64.
    """
    ds = mnist_dataset(train=train, root=root, download=download)
    images = ds.data.unsqueeze(1).float() / 255.0
    return images, ds.targets.long()


def to_model_range(images01: Tensor) -> Tensor:
    """[0, 1] pixels to the models' range [-1, 1] (x -> 2x - 1). Chapters 6 and 7."""
    return images01 * 2.0 - 1.0


def from_model_range(images: Tensor) -> Tensor:
    """Model outputs in [-1, 1] back to pixels in [0, 1], clamped."""
    return ((images + 1.0) / 2.0).clamp(0.0, 1.0)


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def noised_score(x: Tensor, reference: Tensor, sigma: float) -> Tensor:
    """Score of the data smoothed by N(0, sigma^2 I), estimated with a reference sample. Chapter 2.

    p_sigma(x) = E_y N(x; y, sigma^2 I) over data y, so grad log p_sigma(x) = sum_j w_j(x) (y_j - x) / sigma^2
    with w = softmax_j(-|x - y_j|^2 / (2 sigma^2)): exact for the empirical distribution of `reference`
    (m, d), and close to the true noised score when m is large and sigma is not tiny.
    x: (n, d) -> (n, d).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    w = torch.softmax(-torch.cdist(x, reference).pow(2) / (2 * sigma**2), dim=1)
    return (w @ reference - x) / sigma**2


_MNIST_CACHE: dict[tuple[bool, str], tuple[Tensor, Tensor]] = {}


def mnist_tensors_cached(train: bool = True) -> tuple[Tensor, Tensor]:
    """`mnist_tensors(train)` from `config.data_root()`, read from disk once per process. Chapters 6-8.

    Returns the same tensors on every call (images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64):
    treat them as read-only. Nothing is read at import time; the first call reads the split.
    """
    key = (bool(train), str(config.data_root()))
    if key not in _MNIST_CACHE:
        _MNIST_CACHE[key] = mnist_tensors(train=train)
    return _MNIST_CACHE[key]

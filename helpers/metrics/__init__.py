"""Sample-quality metrics and diagnostics, each meant to be read next to its floor.

A metric between model samples and data is only meaningful beside the same metric between two
independent data samples of the same size (the *floor*): even a perfect sampler scores the floor, not 0.

    distances.py    MMD, energy distance, W1 and KS (1D), Frechet distance
    checks.py       with_floor (a metric beside its floor and spread), verdict (a check cell's line)
    mcmc.py         autocorrelation and effective sample size of parallel chains (chapter 3)
    manifold.py     improved precision and recall (Kynkaenniemi et al. 2019): fidelity and diversity apart
    mnist_eval.py   the MNIST evaluation protocol: FD, class histogram, precision and recall against real-digit floors
Everything is re-exported here: `metrics.mmd2_unbiased`, `metrics.mnist_quality`, ...
"""

from .checks import verdict, with_floor
from .distances import (energy_distance, frechet_distance, ks_statistic, median_bandwidth, mmd2_unbiased,
                        wasserstein_1d, wasserstein_1d_cdf)
from .mcmc import autocorrelation, effective_sample_size
from .manifold import K_NEAREST, knn_radii, precision_recall
from .mnist_eval import (MNIST_HELD_OUT, mnist_class_quality, mnist_fd_floor,
                         mnist_fd_floor_spread, mnist_quality, mnist_test_accuracy)

__all__ = ["autocorrelation", "effective_sample_size", "energy_distance", "frechet_distance", "K_NEAREST",
           "knn_radii", "ks_statistic", "median_bandwidth", "mmd2_unbiased", "mnist_class_quality",
           "mnist_fd_floor", "mnist_fd_floor_spread", "MNIST_HELD_OUT", "mnist_quality", "mnist_test_accuracy",
           "precision_recall", "verdict", "wasserstein_1d", "wasserstein_1d_cdf", "with_floor"]

"""The MNIST evaluation protocol of chapters 6-8: Frechet distance and class histogram of generated digits
(and, per class, precision and recall) in the features of the `mnist-eval` classifier, each beside what real
digits score at the same n. The classifier comes in as an argument (`models.evaluation_classifier()`), so
this package never imports the models.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import config, data
from .distances import frechet_distance
from .manifold import precision_recall


# The evaluation classifier ("mnist-eval", helpers/models/mnist_classifier.py) trains on the first 50,000 MNIST training images;
# the last 10,000 (indices 50,000..59,999) it never sees are the real sample of the FD floor.
MNIST_HELD_OUT = (50_000, 60_000)

_FEATURE_CACHE = None  # weakref.WeakKeyDictionary: classifier -> {(split, seed, n): (features, predictions)}


def _classifier_outputs(classifier, images01: Tensor, batch: int = 200) -> tuple[Tensor, Tensor]:
    """Features (n, d) float64 and predicted classes (n,) of images (n, 1, 28, 28) in [0, 1]."""
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    feats, preds = [], []
    try:
        with torch.no_grad():
            for chunk in images01.split(batch):
                f = classifier.features(chunk.to(device))
                feats.append(f.double().cpu())
                preds.append(classifier.head(f).argmax(1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(preds)


def _reference_outputs(classifier, split: str, n: int, seed: int, label: int | None = None) -> tuple[Tensor, Tensor]:
    """Classifier outputs on the real reference images, cached per classifier instance.

    split "test": n MNIST test images, the first n of torch.randperm(10000) seeded `seed`;
    split "held_out": n of the held-out training images MNIST_HELD_OUT, the first n of their
    torch.randperm seeded `seed + 1`. label: only the images of that digit (chapter 8), the first n of a
    randperm of their indices, seeded alike. The classifier must not change after its first use here.
    """
    global _FEATURE_CACHE
    import weakref

    if _FEATURE_CACHE is None:
        _FEATURE_CACHE = weakref.WeakKeyDictionary()
    cache = _FEATURE_CACHE.setdefault(classifier, {})
    key = (split, int(seed), int(n), label)
    if key not in cache:
        lo, hi = (0, 10_000) if split == "test" else MNIST_HELD_OUT
        images, labels = data.mnist_tensors_cached(train=split != "test")
        pool = torch.arange(lo, hi) if label is None else lo + torch.nonzero(labels[lo:hi] == label)[:, 0]
        if n > len(pool):
            raise ValueError(f"n = {n} is more than the {len(pool)} real images of digit {label} in the {split} set")
        idx = pool[torch.randperm(len(pool), generator=config.generator(seed + (split != "test")))[:n]]
        cache[key] = _classifier_outputs(classifier, images[idx])
    return cache[key]


def _class_tv(predictions: Tensor, label_freq: Tensor) -> float:
    """Total variation between the histogram of predicted classes and the frequencies `label_freq` (10,)."""
    hist = torch.bincount(predictions, minlength=10).double() / len(predictions)
    return float(0.5 * (hist - label_freq).abs().sum())


def mnist_fd_floor(classifier, n: int, n_reference_seed: int = 0, label: int | None = None) -> float:
    """FD between n held-out real training images and n test images (both as in `mnist_quality`; with `label`,
    images of that digit only, as in `mnist_class_quality`, whose fd_floor it is).

    What a perfect sampler scores at this n, in the features of `classifier` (a `nets.MNISTClassifier`).
    """
    _check_mnist_n(n)
    test_feats, _ = _reference_outputs(classifier, "test", n, n_reference_seed, label)
    held_feats, _ = _reference_outputs(classifier, "held_out", n, n_reference_seed, label)
    return frechet_distance(held_feats, test_feats)


def mnist_fd_floor_spread(classifier, n: int, draws: int = 5, label: int | None = None) -> tuple[float, float]:
    """Mean and sd of `mnist_fd_floor` over `draws` reference draws (n_reference_seed = 0..draws - 1), of one
    digit's images with `label` (chapter 8's per-digit floor, `quality --label`). Chapters 6-8.

    The floor is itself a noisy statistic, very much so below n = 128 (the feature dimension): a sample's FD
    is judged against floor + k sd, never against a bare multiple of one floor draw.
    """
    if draws < 2:
        raise ValueError(f"draws must be at least 2 for a spread, got {draws}")
    floors = np.array([mnist_fd_floor(classifier, n, k, label) for k in range(draws)])
    return float(floors.mean()), float(floors.std(ddof=1))


def _check_mnist_n(n: int) -> None:
    lo, hi = MNIST_HELD_OUT
    if not 2 <= n <= min(10_000, hi - lo):
        raise ValueError(f"mnist_quality needs between 2 and 10000 images, got n={n}")


def mnist_quality(images01, classifier, n_reference_seed: int = 0) -> dict:
    """Sample quality of n generated MNIST digits, beside what n real digits score. Chapters 6, 7 and 8.

    images01: (n, 28, 28) or (n, 1, 28, 28) pixels in [0, 1] (array or tensor), 2 <= n <= 10,000;
    classifier: a trained `nets.MNISTClassifier` whose penultimate features are the feature space (the
    shipped "mnist-eval": `models.evaluation_classifier()`). Returns a dict:
      fd              FD (`frechet_distance`) between the samples' features and those of n MNIST test
                      images (the first n of torch.randperm(10000) seeded n_reference_seed);
      fd_floor        FD between n real training images the classifier never saw (from MNIST_HELD_OUT,
                      the first n of a randperm seeded n_reference_seed + 1) and the same n test images:
                      what a perfect sampler scores at this n;
      class_histogram how many samples the classifier puts in each class 0..9 (list of 10 ints);
      class_tv        total variation between that histogram (normalised) and the test labels' frequencies,
                      and class_tv_floor the same for the held-out real images' predictions;
      n               the number of samples.
    Features of the real images are cached per classifier instance, so repeated calls are cheap.
    """
    x = torch.as_tensor(np.asarray(images01) if not isinstance(images01, Tensor) else images01).float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"images01 must have shape (n, 28, 28) or (n, 1, 28, 28), got {tuple(x.shape)}")
    n = len(x)
    _check_mnist_n(n)
    lo_px, hi_px = float(x.min()), float(x.max())
    if lo_px < -1e-3 or hi_px > 1 + 1e-3:
        raise ValueError(f"images01 must hold pixels in [0, 1], got values in [{lo_px:.3g}, {hi_px:.3g}] "
                         "(model outputs in [-1, 1] go through data.from_model_range first)")
    feats, preds = _classifier_outputs(classifier, x.clamp(0.0, 1.0))
    test_feats, _ = _reference_outputs(classifier, "test", n, n_reference_seed)
    held_feats, held_preds = _reference_outputs(classifier, "held_out", n, n_reference_seed)
    labels = data.mnist_tensors_cached(train=False)[1]
    label_freq = torch.bincount(labels, minlength=10).double() / len(labels)
    return {"fd": frechet_distance(feats, test_feats), "fd_floor": mnist_fd_floor(classifier, n, n_reference_seed),
            "class_histogram": torch.bincount(preds, minlength=10).tolist(),
            "class_tv": _class_tv(preds, label_freq), "class_tv_floor": _class_tv(held_preds, label_freq),
            "n": n}


def mnist_class_quality(images01, label: int, classifier, n_reference_seed: int = 0) -> dict:
    """Quality of n generated digits meant to be `label`, beside what n real digits of it score. Chapter 8.

    images01: (n, 28, 28) or (n, 1, 28, 28) pixels in [0, 1]; classifier: a `nets.MNISTClassifier` (the
    shipped `mnist-eval`: `models.evaluation_classifier()`). Returns a dict:
      accuracy   the share of the samples the classifier calls `label`;
      fd         FD between the samples' features and those of n test digits of that class;
      fd_floor   FD between n held-out real training digits of that class and the same test digits;
      precision, recall  improved precision and recall (`precision_recall`, k = 3) of the samples against
                 the same test digits, in the same features: fidelity and diversity apart;
      precision_floor, recall_floor  the same for the n held-out real digits: what a perfect sampler scores;
      n          the number of samples (at most the class's count in both real sets, about 900);
      predictions  (n,) int64 numpy array, the class the classifier gives each sample (accuracy is their
                 share equal to `label`), so a caller needs no second pass of the classifier.
    """
    x = torch.as_tensor(np.asarray(images01) if not isinstance(images01, Tensor) else images01).float()
    x = x.unsqueeze(1) if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28) or len(x) < 2:
        raise ValueError(f"images01 must have shape (n, 28, 28) or (n, 1, 28, 28) with n >= 2, got {tuple(x.shape)}")
    if not isinstance(label, int) or not 0 <= label <= 9:
        raise ValueError(f"label must be a digit 0-9, got {label!r}")
    if float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3:
        raise ValueError("images01 must hold pixels in [0, 1]")
    n = len(x)
    feats, preds = _classifier_outputs(classifier, x.clamp(0.0, 1.0))
    test_feats, _ = _reference_outputs(classifier, "test", n, n_reference_seed, label)
    held_feats, _ = _reference_outputs(classifier, "held_out", n, n_reference_seed, label)
    precision, recall = precision_recall(test_feats, feats)
    precision_floor, recall_floor = precision_recall(test_feats, held_feats)
    return {"accuracy": float((preds == label).double().mean()), "fd": frechet_distance(feats, test_feats),
            "fd_floor": frechet_distance(held_feats, test_feats), "precision": precision, "recall": recall,
            "precision_floor": precision_floor, "recall_floor": recall_floor, "n": n,
            "predictions": preds.cpu().numpy()}


@torch.no_grad()
def mnist_test_accuracy(classifier, device: torch.device | str = "cpu") -> float:
    """Accuracy of a `nets.MNISTClassifier` on the 10,000 MNIST test images. Chapters 6 and 8."""
    images, labels = data.mnist_tensors_cached(train=False)
    classifier.eval()
    correct = sum(int((classifier(x.to(device)).argmax(1).cpu() == y).sum())
                  for x, y in zip(images.split(200), labels.split(200)))
    return correct / len(labels)

"""The course's named models: a registry of specs, their lifecycle, and one file per model family.

    registry.py          ModelSpec, register, get, compatible
    lifecycle.py         train_model (with the warm restart and TensorBoard logs), profile_training, evaluate_model,
                         load, load_required, load_or_train,
                         sample, time_steps
    moons.py             moons-ddpm (chapter 1) and moons-ncsn (chapter 2)
    sde1d.py             sde-1d, the VP-SDE on a 1D mixture with exact scores (chapter 5)
    mnist_common.py      MNIST images, the generators' U-Net and budget, digit evaluation (chapters 6-8)
    mnist_classifier.py  mnist-eval, the evaluation classifier
    mnist_ddpm.py        mnist-ddpm (chapter 6)
    mnist_vpsde.py       mnist-vpsde (chapter 7), and its classifier-guided sampling (chapter 8)
    mnist_noisy_classifier.py  mnist-noisy-classifier, p_t(y | x_t) for guidance (chapter 8)
    mnist_cfg.py         mnist-cfg, the label-conditional model of classifier-free guidance (chapter 8)
    ebm.py               ebm-2d, its Gaussian-prior ablation ebm-2d-gauss, ebm-mnist and ebm-mnist-pang (Pang et
                         al.'s generator): the latent-space EBM prior model (chapter 4), and the chapter's in-memory
                         2D experiments
    ebm_grid.py          ebm-2d-mle and ebm-2d-exact-mle (the prior family's ceilings) and ebm-2d-exact (learning
                         with exact prior draws): 2D priors handled exactly on a grid (chapter 4)
    ebm_diffusion.py     ebm-2d-ddpm, ebm-2d-exact-ddpm, ebm-mnist-ddpm and ebm-mnist-pang-ddpm: DDPM priors on
                         those generators' latents (chapter 4)
    ebm_anomaly.py       ebm-anomaly-D: ebm-mnist trained without digit D, Pang et al.'s anomaly benchmark (chapter 4)
A new model family is one new file that calls `register`, and one import line below.
The command line (`python -m helpers`) and the notebooks use the names re-exported here.
"""

from .registry import REGISTRY, ModelSpec, compatible, get, register
from .lifecycle import (draw_samples, evaluate_model, expected_training_minutes, load, load_or_train,
                        load_required, profile_training, sample, time_steps, train_model)
from .moons import MOONS_NOISE, ddpm_schedule, moons_quality, moons_reference, ncsn_sigmas
from .sde1d import sde1d_process, sde1d_quality, sde1d_score, sde1d_score_error
from .mnist_common import fd_record, train_images as mnist_train_images
from .mnist_classifier import augment_digits, evaluation_classifier
from .mnist_ddpm import DDPM_PROCESS
from .mnist_vpsde import vpsde_process
from .mnist_noisy_classifier import CleanClassifierOnNoisy, noise_digits, noisy_accuracy
from .mnist_cfg import drop_labels
from .ebm import build_latent_ebm
from . import ebm_grid  # noqa: F401  (registers ebm-2d-mle, ebm-2d-exact and ebm-2d-exact-mle)
from . import ebm_diffusion  # noqa: F401  (registers the DDPM priors: ebm-2d-ddpm ... ebm-mnist-pang-ddpm)
from .ebm_anomaly import HELD_OUT_DIGITS, PAPER_AUPRC, is_anomaly_model, score_test_set

MNIST_DDPM_SAMPLERS = tuple(get("mnist-ddpm").samplers)
MNIST_VPSDE_SAMPLERS = tuple(get("mnist-vpsde").samplers)

__all__ = ["CleanClassifierOnNoisy", "DDPM_PROCESS", "HELD_OUT_DIGITS", "MNIST_DDPM_SAMPLERS", "MNIST_VPSDE_SAMPLERS",
           "PAPER_AUPRC", "is_anomaly_model", "score_test_set", "MOONS_NOISE", "REGISTRY", "ModelSpec", "augment_digits", "build_latent_ebm", "compatible", "evaluation_classifier",
           "ddpm_schedule", "draw_samples", "drop_labels", "expected_training_minutes", "get", "load", "load_or_train",
           "load_required", "mnist_train_images", "moons_quality", "moons_reference", "ncsn_sigmas",
           "noise_digits", "noisy_accuracy", "profile_training", "register", "sample", "sde1d_process", "sde1d_quality",
           "sde1d_score", "sde1d_score_error", "time_steps", "train_model", "vpsde_process"]

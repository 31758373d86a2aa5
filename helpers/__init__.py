"""Helpers of the course book on score-based generative models.

One module per concept, found by its file name:
    config        the one place that reads the environment (mode, data root, checkpoints, device, seed)
    errors        CourseError and its family: what a learner can fix, with a message saying how
    data          moons, 1D Gaussian mixtures, MNIST
    nets          MLPs with time embeddings, the U-Net, the MNIST classifier
    schedules     the DDPM schedule and NCSN's noise levels
    sde           the VP-SDE and its exact results for Gaussian mixtures
    scores        every model-output -> score conversion
    samplers/     every generative sampler behind one contract, (x, Trajectory); kernels.py holds the steps
    langevin      the Langevin step and chapter 3's MCMC chains (ULA, MALA)
    latent_ebm    chapter 4's latent-space EBM prior: its densities, short-run chains and learning step
    anomaly       chapter 4's anomaly score (minus the log-joint at posterior latents) and AUPRC
    losses        DDPM, NCSN and VP-SDE training losses
    likelihood    bits/dim through the probability-flow ODE
    vlb           the DDPM's variational bound in bits/dim (chapter 6)
    training      the one training loop (seeded, resumable); checkpoints: atomic files and the manifest
    tblog         TensorBoard logs of a training (`train --log-dir`) and `train --profile`
    accel         the fast path of training on a GPU: bf16 autocast, channels_last, TF32
    distributed   data-parallel training under torchrun (DistributedDataParallel, NCCL or gloo)
    bench         `python -m helpers bench`: eager loop against the faster paths, as ratios
    schedule_study `python -m helpers schedules`: a few-step solver's FD under each time-step schedule
    notebooks     `python -m helpers notebooks`: re-execute the book's chapters in fast or full mode
    models/       the named models: registry, lifecycle (train, load, sample), one file per model family
    metrics/      distances, MCMC diagnostics, the MNIST evaluation protocol, check-cell verdicts
    graders       the chapters' exercises and their graders (exact checks, named common mistakes)
    student       `python -m helpers student`: the student edition, solutions stubbed by nbgrader
    plotting, cli, assignment (the assignment's names for chapters 6-7, as thin wrappers of the others)
Import what you need, e.g. `from helpers import data, models`.
"""

__version__ = "0.1.0"

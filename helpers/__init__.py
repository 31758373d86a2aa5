"""Helpers of the course book on score-based generative models.

One module per concept: config (environment), data, nets, schedules (DDPM, NCSN), losses, samplers,
langevin, sde (the VP-SDE and its integrators), likelihood (bits/dim through the probability-flow ODE),
training, checkpoints, models (the named models and load_or_train), metrics, plotting, cli, and
assignment (the assignment's names for chapters 6-7, as thin wrappers of the others).
Import what you need, e.g. `from helpers import data, models`.
"""

__version__ = "0.1.0"

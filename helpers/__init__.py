"""Helpers of the course book on score-based generative models.

One module per concept: config (environment), data, nets, schedules (DDPM, NCSN), losses, samplers,
langevin, training, checkpoints, models (the named models and load_or_train), metrics, plotting, cli.
Import what you need, e.g. `from helpers import data, models`.
"""

__version__ = "0.1.0"

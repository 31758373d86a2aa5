"""The assignment's interface (Parts 2 and 3), as thin wrappers of the course's own functions. Chapters 6, 7.

The assignment names its objects `DDPM_SDE`, `UnifiedLoss`, `get_score_model`, `get_score_model_continuous`,
`train_sde`, `AncestralSamplingContinuous` and `sample_images`. Each is defined here, once, on top of the
house-style function that does the work (named in its docstring), so the maths is written only in
`sde.py`, `scores.py`, `samplers/`, `losses.py`, `training.py` and `plotting.py`, and both vocabularies
give the same numbers.

The assignment's SDE is the VP-SDE whose beta(t) = T beta_{tT} continues a discrete DDPM schedule with
beta_1 = 1e-4 ... beta_T = 0.02, T = 1000 (`sde.discrete_beta_range`: exactly linear, from 0.0800801 at
t = 0 to 20 at t = 1, passing through T beta_i at t = i / T).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from . import checkpoints, losses, plotting, training
from .schedules import expand_like
from .samplers import vpsde_ancestral
from .scores import ScoreFn, ddpm_score, eps_score
from .sde import EPS, VPSDE, discrete_beta_range

EpsModel = Callable[[Tensor, Tensor], Tensor]  # eps_theta(x (B, ...), t (B,)) -> (B, ...)


class DDPM_SDE(VPSDE):  # noqa: N801 (the assignment's name)
    """The assignment's VP-SDE: a `sde.VPSDE` with beta(t) = T_discrete beta_{t T_discrete}. Chapter 7.

    beta_0, beta_1: the DDPM's first and last discrete betas (1e-4 and 0.02; the assignment's names, not the
    continuous beta(0) and beta(1)); T_discrete: the DDPM's number of steps (1000); device: where
    `prior_sample` puts its draws by default (every other method works on its inputs' device).
    Everything else (alpha, marginal_std, marginal, drift, reverse_drift, ode_drift, prior) is VPSDE's.
    """

    def __init__(self, beta_0: float = 1e-4, beta_1: float = 0.02, T_discrete: int = 1000,  # noqa: N803
                 device: torch.device | str = "cpu"):
        super().__init__(*discrete_beta_range(T_discrete, beta_0, beta_1))
        self.beta_0, self.beta_1, self.T_discrete = float(beta_0), float(beta_1), T_discrete
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return (f"DDPM_SDE(beta_0={self.beta_0}, beta_1={self.beta_1}, T_discrete={self.T_discrete}; "
                f"beta(t) from {self.beta_min:.6g} to {self.beta_max:.6g})")

    # beta(t) is VPSDE.beta: beta_min + (beta_max - beta_min) t = T beta_{tT} at t = i / T.

    def drift_diffusion(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(f(x_t, t) = -1/2 beta(t) x_t, g(t) = sqrt(beta(t))): `VPSDE.drift` and `VPSDE.diffusion`.

        x_t: (B, ...), t: (B,) in [0, 1]. Returns drift (B, ...) and diffusion (B, 1, ..., 1).
        """
        return self.drift(x_t, t), expand_like(self.diffusion(t.to(x_t)), x_t)

    def distribution(self, x_0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean alpha(t) x_0 (B, ...) and std sigma(t) (B, 1, ..., 1) of x_t given x_0: `VPSDE.marginal`."""
        return self.marginal(x_0, t)

    def reverse_drift_diffusion(self, score_fn: ScoreFn, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(f - g^2 score, g) of the reverse-time SDE (run with dt < 0): `VPSDE.reverse_drift`, `VPSDE.diffusion`.

        score_fn(x (B, ...), t (B,)) -> (B, ...). Returns drift (B, ...) and diffusion (B, 1, ..., 1).
        """
        return self.reverse_drift(x_t, t, score_fn), expand_like(self.diffusion(t.to(x_t)), x_t)

    def prior_sample(self, shape: tuple, generator: torch.Generator, device: torch.device | str | None = None) -> Tensor:
        """x_1 ~ N(0, I) of `shape` on `device` (default: this SDE's device): `VPSDE.prior_sample`."""
        return super().prior_sample(shape, generator, self.device if device is None else device)


class UnifiedLoss(nn.Module):
    """Noise matching for a VP-SDE: `losses.vpsde_loss` with t ~ U(t_min, 1). Chapter 7.

    loss = mean |eps_theta(alpha(t) x_0 + sigma(t) z, t) - z|^2. Drawing t >= t_min is the small std floor
    near t = 0: sigma(t) >= sigma(t_min) (0.0095 for DDPM_SDE() and t_min = 1e-3), where the target score
    -z / sigma would blow up. model: the noise predictor (a submodule, so `.parameters()` are its own).
    forward(x_0 (B, ...), generator=None) -> scalar; generator None means torch's global RNG.
    """

    def __init__(self, sde: VPSDE, model: nn.Module, t_min: float = EPS):
        super().__init__()
        if not 0.0 < t_min < 1.0:
            raise ValueError(f"t_min must be in (0, 1), got {t_min}")
        self.sde, self.model, self.t_min = sde, model, float(t_min)

    @property
    def std_floor(self) -> float:
        """sigma(t_min), the smallest noise std the loss trains on."""
        return float(self.sde.marginal_std(self.t_min))

    def forward(self, x_0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return losses.vpsde_loss(self.model, x_0, self.sde, generator, eps=self.t_min)


def get_score_model(ddpm_model: EpsModel, ddpm_sqrt_1m_alpha: Tensor) -> ScoreFn:
    """Chapter 6: score(x_t, t) = -eps(x_t, i / T) / sqrt(1 - alpha_bar_i), i = round(t T) in 1..T:
    `scores.ddpm_score`. ddpm_sqrt_1m_alpha: (T,) the DDPM's sqrt(1 - alpha_bar_i), i = 1..T."""
    return ddpm_score(ddpm_model, ddpm_sqrt_1m_alpha)


def get_score_model_continuous(model: EpsModel, sde: VPSDE) -> ScoreFn:
    """Chapter 7: score(x_t, t) = -eps_theta(x_t, t) / sigma(t) for t in (0, 1]: `scores.eps_score`."""
    return eps_score(model, sde)


def train_sde(model: nn.Module, sde: VPSDE, data: Tensor | Callable[[torch.Generator], Tensor], *, steps: int,
              batch_size: int = 128, lr: float = 2e-4, grad_clip: float | None = 1.0,
              ema_decay: float | None = 0.999, checkpoint: str | Path | None = None, t_min: float = EPS,
              generator: torch.Generator | None = None, device: torch.device | str = "cpu",
              progress: bool = True) -> training.TrainResult:
    """Train a noise predictor with `UnifiedLoss` through `training.train` (Adam). Chapter 7.

    data: training images (N, ...) in model coordinates (batches of `batch_size` drawn with replacement),
    or a function draw(generator) -> batch. grad_clip: global gradient-norm clip; ema_decay: EMA of the
    weights, loaded into `model` at the end. checkpoint: a .pt file that receives {"model": EMA weights,
    "losses", "steps"} at the end, while `checkpoint + ".resume"` holds a resumable state during the run
    (`training.train`), so a killed run continues. generator: default seeded 0. Returns the TrainResult.
    """
    if isinstance(data, Tensor):
        images = data

        def draw(g: torch.Generator) -> Tensor:
            return images[torch.randint(0, len(images), (batch_size,), generator=g)]
    else:
        draw = data
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    path = Path(checkpoint) if checkpoint is not None else None
    result = training.train(
        model, lambda m, x0, g: losses.vpsde_loss(m, x0, sde, g, eps=t_min), draw, steps=steps, lr=lr,
        generator=generator, device=device, grad_clip=grad_clip, ema_decay=ema_decay,
        resume_path=path.with_name(path.name + ".resume") if path is not None else None,
        run_config={"sde": repr(sde), "steps": steps, "batch": batch_size, "lr": lr, "grad_clip": grad_clip,
                    "ema_decay": ema_decay, "t_min": t_min}, progress=progress, desc="train_sde")
    if result.ema_state is not None:
        model.load_state_dict(result.ema_state)
    model.eval()
    if path is not None:
        checkpoints.save_torch({"model": model.state_dict(), "losses": result.losses, "steps": result.steps}, path)
    return result


class AncestralSamplingContinuous(nn.Module):
    """Ancestral sampling of a continuous VP-SDE noise predictor in T_discrete steps: `samplers.vpsde_ancestral`.

    forward(x_T (B, ...), generator=None) runs `steps` (default sde.T_discrete) steps from t = 1 to 0 with
    score -eps_theta / sigma(t), adding no noise on the last step, and returns the list of the images
    after every `every` steps (the last one, the sample, always included): 10 images for 1000 steps.
    generator None means torch's global RNG. Chapter 7.
    """

    def __init__(self, sde: VPSDE, model: nn.Module, steps: int | None = None, every: int = 100):
        super().__init__()
        self.sde, self.model, self.every = sde, model, every
        self.steps = steps if steps is not None else getattr(sde, "T_discrete", 1000)

    @torch.no_grad()
    def forward(self, x_T: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:  # noqa: N803
        g = generator if generator is not None else torch.default_generator
        x, traj = vpsde_ancestral(eps_score(self.model, self.sde), self.sde, x_T, self.steps, g,
                                  keep_every=self.every)
        return [s.to(x.device) for s in traj.states[1:]]


def sample_images(images_or_sampler, x_T: Tensor | None = None, path: str | Path | None = None, nrow: int = 8,
                  title: str = "samples", generator: torch.Generator | None = None):
    """Show a grid of images and save it as a PNG: `plotting.image_grid`. Chapters 6, 7.

    images_or_sampler: images (n, 1, H, W) in the models' range [-1, 1], or a sampler such as
    `AncestralSamplingContinuous` called on x_T (and `generator`) whose last returned image is drawn.
    path: the PNG file (None: not saved). Returns the images drawn, in [0, 1], (n, 1, H, W) on the CPU.
    """
    from .data import from_model_range

    if isinstance(images_or_sampler, Tensor):
        images = images_or_sampler
    else:
        if x_T is None:
            raise ValueError("x_T is needed when images_or_sampler is a sampler")
        out = images_or_sampler(x_T, generator)
        images = out[-1] if isinstance(out, (list, tuple)) else out
    images01 = from_model_range(images.detach().cpu())
    ax = plotting.image_grid(images01, nrow=nrow, title=title)
    if path is not None:
        ax.figure.savefig(path, format="png", bbox_inches="tight")
    return images01

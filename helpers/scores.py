"""Every conversion of a network's output into a score s(x, t) = grad_x log p_t(x), in one place.

    eps_score     VP-SDE noise predictor:   s(x, t) = -eps_theta(x, t) / sigma(t)            chapters 5, 7
    ddpm_score    DDPM noise predictor:     s(x, t) = -eps_theta(x, i / T) / sqrt(1 - alpha_bar_i)    ch. 6
    ncsn_score    NCSN network at level j:  s(x, sigma_j) = net(x, j / (L - 1)) / sigma_j               ch. 2
    guided_score  classifier guidance:      s(x, t) + gamma grad_x log p_t(y | x)                       ch. 8

All three rest on one fact (Vincent 2011): for x_t = a x_0 + s z, z ~ N(0, I), the conditional score is
grad log q(x_t | x_0) = -z / s, and the minimiser of the noise-matching loss E|eps_theta(x_t) - z|^2 is
E[z | x_t], so -eps_theta / s is the score of the marginal q(x_t) (Song et al. 2021, appendix B).
A score function takes x (B, ...) and t (B,) and returns (B, ...); the samplers in `samplers/` take one.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .schedules import expand_like

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # score(x (B, ...), t (B,)) -> (B, ...)
LevelScoreFn = Callable[[Tensor, int], Tensor]  # score(x (B, ...), level j) -> (B, ...), NCSN's annealing


def eps_score(model: Callable[[Tensor, Tensor], Tensor], sde) -> ScoreFn:
    """Score of a VP-SDE noise-prediction network: s_theta(x, t) = -eps_theta(x, t) / sigma(t). Chapters 5, 7.

    sde: a `sde.VPSDE` (its `marginal_std` is sigma(t)). The model sees x (B, ...) and t (B,); valid for
    t > 0 only (sigma(0) = 0), hence the samplers' end time `sde.EPS`.
    """
    return lambda x, t: -model(x, t) / expand_like(sde.marginal_std(t.to(x)), x)


def ddpm_score(eps_model, sqrt_one_minus_alpha_bar: Tensor) -> ScoreFn:
    """Score of a DDPM noise predictor at times t in [0, 1]: s(x, t) = -eps_theta(x, i / T) / sqrt(1 - alpha_bar_i).

    i = round(t T) clamped to 1..T, with T = len(sqrt_one_minus_alpha_bar) ((T,), entry i - 1 for step i,
    e.g. `(1 - schedule.alpha_bars).sqrt()`); the network sees its training time i / T. Since x_i =
    sqrt(alpha_bar_i) x_0 + sqrt(1 - alpha_bar_i) eps, grad log q(x_i | x_0) = -eps / sqrt(1 - alpha_bar_i),
    and the minimiser of the noise-prediction loss is E[eps | x_i], so this is the score of q(x_i)
    (Vincent 2011; Song et al. 2021, appendix B). Returns score(x (B, ...), t (B,)) -> (B, ...). Chapter 6.
    """
    table = torch.as_tensor(sqrt_one_minus_alpha_bar)
    if table.ndim != 1 or len(table) < 1 or not bool((table > 0).all()):
        raise ValueError(f"sqrt_one_minus_alpha_bar must be a positive (T,) tensor, got shape {tuple(table.shape)}")
    T = len(table)

    def score(x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if t.shape != (x.shape[0],) or bool(t.min() < 0) or bool(t.max() > 1):
            raise ValueError(f"t must be (B,) = ({x.shape[0]},) in [0, 1], got shape {tuple(t.shape)}")
        i = torch.round(t.double().cpu() * T).long().clamp(1, T)
        sigma = table[i - 1].to(x)
        return -eps_model(x, (i.double() / T).to(x)) / expand_like(sigma, x)

    return score


def ncsn_score(model: nn.Module, x: Tensor, level: Tensor, sigmas: Tensor) -> Tensor:
    """Noise-conditional score s_theta(x, sigma_j) = net(x, j / (L - 1)) / sigma_j.

    x: (B, ...); level: (B,) integer indices j in 0..L-1 into sigmas (L,). Dividing by sigma builds in the
    known scale |score| ~ 1/sigma (Song & Ermon 2020, technique 3), so the net's output is O(1). Chapter 2.
    """
    L = len(sigmas)
    sigma = sigmas.to(x.device)[level]
    return model(x, level.float().to(x.device) / (L - 1)) / expand_like(sigma, x)


def ncsn_level_score(model: nn.Module, sigmas: Tensor) -> LevelScoreFn:
    """`ncsn_score` as a function of (x (B, ...), level j) -> (B, ...), what annealed Langevin asks. Chapter 2."""
    return lambda x, j: ncsn_score(model, x, torch.full((len(x),), j), sigmas)


def check_guidance(label, scale, classes: int | None = None) -> tuple[Tensor, float]:
    """(label as a long tensor, scale as a float) when label is a class index (or (B,) indices) in
    [0, classes) and scale a finite number >= 0; ValueError naming the argument otherwise."""
    scale = float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {scale}")
    label = torch.as_tensor(label)
    if label.is_floating_point() or label.dtype == torch.bool or label.ndim > 1:
        raise ValueError(f"label must be an integer class index (or (B,) indices), got {label.tolist()}")
    if bool((label < 0).any()) or (classes is not None and bool((label >= classes).any())):
        top = f" and below {classes}" if classes is not None else ""
        raise ValueError(f"label must be >= 0{top}, got {label.tolist()}")
    return label.long(), scale


def cfg_eps(model: Callable[..., Tensor], label: int | Tensor, w: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Classifier-free guidance: eps_w(x, t) = (1 + w) eps(x, t, y) - w eps(x, t, null). Chapter 8.

    Ho and Salimans (2022, eq. 6). model(x (B, ...), t (B,), y (B,) or None) -> (B, ...): a label-conditional
    noise predictor trained with the label dropped now and then (`nets.ConditionalUNet`, y = None for the
    null label). Since eps = -sigma score, eps(x, t, y) - eps(x, t, null) = -sigma grad_x log p_t(y | x) of
    the classifier implicit in the model, so eps_w is classifier guidance (`guided_score`) with that
    classifier at gamma = 1 + w. label: a class index or (B,) indices; w >= -1 (w = -1: the unconditional
    model, w = 0: the conditional one; both one network call). Otherwise the two predictions are one call
    on a batch of 2B. Returns eps(x (B, ...), t (B,)) -> (B, ...), for `eps_score`.
    """
    label, _ = check_guidance(label, 0.0, getattr(model, "classes", None))
    w = float(w)
    if not math.isfinite(w) or w < -1:
        raise ValueError(f"w must be a finite number >= -1 (gamma = 1 + w >= 0), got {w}")

    def eps(x: Tensor, t: Tensor) -> Tensor:
        y = label.to(x.device).expand(len(x))
        if w == -1:
            return model(x, t, None)
        if w == 0:
            return model(x, t, y)
        null = torch.full_like(y, model.classes)
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = both.chunk(2)
        return (1 + w) * cond - w * uncond

    return eps


def guided_score(score: ScoreFn, classifier: Callable[[Tensor, Tensor], Tensor], label: int | Tensor,
                 scale: float) -> ScoreFn:
    """Classifier guidance: s_gamma(x, t) = s(x, t) + gamma grad_x log p_t(y | x). Chapter 8.

    By Bayes' rule grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x) (Song et al. 2021, eq. 14 and
    appendix I); gamma scales the second term, which samples the tilted law p_t(x) p_t(y | x)^gamma
    (Dhariwal and Nichol 2021, section 4). classifier(x (B, ...), t (B,)) -> logits (B, classes) must be
    trained on noised x_t (a clean classifier's gradient at large t points anywhere: chapter 8).
    label: a class index, or (B,) indices; scale: gamma >= 0 (0 gives `score` itself).
    The gradient is taken with autograd even inside the samplers' torch.no_grad. Returns a ScoreFn that
    plugs unchanged into every sampler of chapter 7.
    """
    label, scale = check_guidance(label, scale)
    if scale == 0:
        return score

    def guided(x: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = classifier(xg, t)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 or fp16 -> fp32
            if bool((label >= logits.shape[1]).any()):
                raise ValueError(f"label must be below the classifier's {logits.shape[1]} classes, got {label.tolist()}")
            y = label.to(x.device).expand(len(x))
            log_p = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).sum()
            grad = torch.autograd.grad(log_p, xg)[0]
        return score(x, t) + scale * grad

    return guided


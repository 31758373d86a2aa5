"""Networks of the course: time-conditioned MLPs, the U-Net, the MNIST classifiers (clean, and noise-aware
for guidance), and the latent EBM's prior and generators.

The score networks take x of shape (B, ...) and a time or noise-level code t of shape (B,) in [0, 1] and
return a tensor shaped like x: what the output means (noise, score) is the loss's business, not the
network's. The latent EBM's networks take a latent z (B, latent_dim) (chapter 4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """t (B,) in [0, 1] -> (B, dim) features [sin(s t w_k), cos(s t w_k)], w_k = 10000^(-k / (dim/2)).

    The scale s = 1000 makes t = i / T of a T = 1000-step DDPM the familiar integer step i (Ho et al. 2020,
    following the Transformer's position encoding). Chapters 1, 2, 5, 6 and 7.
    """

    def __init__(self, dim: int, scale: float = 1000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 2, got {dim}")
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half), persistent=False)
        self.scale = scale

    def forward(self, t: Tensor) -> Tensor:
        angles = self.scale * t.reshape(-1, 1).float() * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeMLP(nn.Module):
    """Residual MLP conditioned on t: (B, dim), (B,) -> (B, dim). Chapters 1, 2 and 5.

    h = W_in x + e(t); then `depth` blocks h <- h + W2 SiLU(W1 SiLU(h) + P_k e(t)); out = W_out SiLU(h),
    where e(t) is a sinusoidal embedding passed through a small MLP. The output layer starts at zero, so a
    fresh model predicts 0 (a neutral start for both noise and score outputs).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, time_dim: int = 64,
                 time_scale: float = 1000.0):
        super().__init__()
        self.embed = nn.Sequential(SinusoidalEmbedding(time_dim, time_scale), nn.Linear(time_dim, hidden),
                                   nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"w1": nn.Linear(hidden, hidden), "pt": nn.Linear(hidden, hidden),
                           "w2": nn.Linear(hidden, hidden)}) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if x.ndim != 2 or t.shape != (x.shape[0],):
            raise ValueError(f"TimeMLP expects x (B, D) and t (B,), got {tuple(x.shape)} and {tuple(t.shape)}")
        e = self.embed(t)
        h = self.inp(x) + e
        for b in self.blocks:
            h = h + b["w2"](self.act(b["w1"](self.act(h)) + b["pt"](e)))
        return self.out(self.act(h))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------ images (ch. 6-8)


def _groups(channels: int) -> int:
    """GroupNorm groups: 8, or fewer when `channels` is not a multiple of 8."""
    return math.gcd(8, channels)


class ResBlock(nn.Module):
    """Residual conv block conditioned on a time embedding (Ho et al. 2020, appendix B; Wide ResNet style).

    h = Conv(SiLU(GN(x))) + P e(t);  out = skip(x) + Conv(Dropout(SiLU(GN(h)))).
    x: (B, c_in, H, W), emb: (B, emb_dim) -> (B, c_out, H, W). skip is a 1x1 conv when c_in != c_out.
    The second conv starts at zero, so every block starts as its skip connection.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.drop(self.act(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Single-head self-attention over the H W positions, residual: (B, C, H, W) -> (B, C, H, W).

    Used once at the U-Net's lowest resolution (7 x 7 = 49 positions for MNIST), where it is cheap.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)  # each (B, C, HW)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(C), dim=-1)  # (B, HW, HW)
        h = (v @ attn.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.out(h)


class UNet(nn.Module):
    """A small time-conditioned U-Net for MNIST-sized images: (B, C, H, W), (B,) -> (B, C, H, W).

    x: images in the models' range [-1, 1], H and W divisible by 2^(levels - 1) (28 x 28 with 3 levels);
    t: (B,) times in [0, 1]. With the defaults (channels 32, 64, 128 at 28, 14 and 7 pixels, `blocks`
    residual blocks per level on the way down and up, one self-attention at 7 x 7) it has 2.5 M
    parameters. The time embedding e(t) (sinusoidal with scale `time_scale` = 1000, so a DDPM's
    t = i / T becomes its step i, then an MLP) is added in every residual block. The output conv starts
    at zero, so a fresh net predicts 0. Chapters 6 and 7 (as a noise predictor eps_theta(x_t, t)).
    Following Ho et al. (2020, appendix B), smaller: PixelCNN++-style levels, GroupNorm, SiLU.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (32, 64, 128), blocks: int = 1,
                 attention: bool = True, time_dim: int = 128, dropout: float = 0.0,
                 time_scale: float = 1000.0):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1 or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positive integers, got {channels}")
        if not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"blocks must be a positive integer, got {blocks!r}")
        self.in_channels, self.levels = in_channels, len(channels)
        self.embed = nn.Sequential(SinusoidalEmbedding(time_dim, time_scale), nn.Linear(time_dim, time_dim),
                                   nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [channels[0]], channels[0]
        for level, c_level in enumerate(channels):
            for _ in range(blocks):
                self.down.append(ResBlock(c, c_level, time_dim, dropout))
                c = c_level
                skips.append(c)
            if level < self.levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, time_dim, dropout)
        self.attn = SelfAttention2d(c) if attention else nn.Identity()
        self.mid2 = ResBlock(c, c, time_dim, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(self.levels)):
            for _ in range(blocks + 1):  # one more than on the way down: the downsampler's skip too
                self.up.append(ResBlock(c + skips.pop(), channels[level], time_dim, dropout))
                c = channels[level]
            if level > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                   nn.Conv2d(c, c, 3, padding=1)))
        self.blocks = blocks
        self.out = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        factor = 2 ** (self.levels - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels or t.shape != (x.shape[0],):
            raise ValueError(f"UNet expects x (B, {self.in_channels}, H, W) and t (B,), "
                             f"got {tuple(x.shape)} and {tuple(t.shape)}")
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"UNet needs H and W divisible by {factor}, got {tuple(x.shape[2:])}")
        return self._run(x, self.embed(t))

    def _run(self, x: Tensor, e: Tensor) -> Tensor:
        """The U-Net on x (B, C, H, W) with the conditioning embedding e (B, time_dim) added in every block."""
        h = self.inp(x)
        hs, blocks = [h], iter(self.down)
        for level in range(self.levels):
            for _ in range(self.blocks):
                h = next(blocks)(h, e)
                hs.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)
                hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        blocks = iter(self.up)
        for k, level in enumerate(reversed(range(self.levels))):
            for _ in range(self.blocks + 1):
                h = next(blocks)(torch.cat([h, hs.pop()], dim=1), e)
            if level > 0:
                h = self.upsample[k](h)
        return self.out(h)


class ConditionalUNet(UNet):
    """The U-Net conditioned on a class label too: (B, C, H, W), (B,) times, (B,) labels -> (B, C, H, W).

    The label y in {0, ..., classes - 1}, or `classes` itself for "no label" (the null class of
    classifier-free guidance, Ho and Salimans 2022), has a learned embedding of size time_dim that is added to
    the time embedding e(t), so it reaches every residual block as t does (as Dhariwal and Nichol's class
    embedding). y = None means the null label for the whole batch. The other arguments are `UNet`'s.
    Chapter 8 (`mnist-cfg`).
    """

    def __init__(self, classes: int = 10, **unet_args):
        super().__init__(**unet_args)
        if not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classes must be a positive integer, got {classes!r}")
        self.classes = classes
        self.label_embed = nn.Embedding(classes + 1, self.embed[-1].out_features)

    def start_from(self, unet: "UNet") -> "ConditionalUNet":
        """Copy an unconditional `UNet`'s weights (same arguments) and zero the label embedding, so that
        eps(x, t, y) = unet(x, t) for every label y, the null label included: a warm start from which label
        dropout trains the labels in while the null label keeps the unconditional model (`mnist-cfg`, where
        `mnist_cfg.teacher_target` holds it there).
        Returns self. Raises ValueError when the two networks' weights do not match."""
        mine = self.state_dict()
        theirs = unet.state_dict()
        wrong = sorted(k for k in set(mine) ^ set(theirs) if k != "label_embed.weight")
        wrong += sorted(k for k in set(mine) & set(theirs) if mine[k].shape != theirs[k].shape)
        if wrong:
            raise ValueError(f"start_from needs a UNet built with this network's arguments; these weights differ "
                             f"in name or shape: {', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}")
        self.load_state_dict(theirs, strict=False)
        with torch.no_grad():
            self.label_embed.weight.zero_()
        return self

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            y = torch.full((x.shape[0],), self.classes, dtype=torch.long, device=x.device)
        if y.shape != (x.shape[0],) or y.dtype != torch.long or bool((y < 0).any()) or bool((y > self.classes).any()):
            raise ValueError(f"ConditionalUNet expects y (B,) = ({x.shape[0]},) integer labels in 0..{self.classes} "
                             f"({self.classes}: no label), got shape {tuple(y.shape)}, dtype {y.dtype}")
        if x.ndim != 4 or x.shape[1] != self.in_channels or t.shape != (x.shape[0],):
            raise ValueError(f"ConditionalUNet expects x (B, {self.in_channels}, H, W) and t (B,), "
                             f"got {tuple(x.shape)} and {tuple(t.shape)}")
        return self._run(x, self.embed(t) + self.label_embed(y))


class MNISTClassifier(nn.Module):
    """A CNN classifier of clean MNIST digits, and the feature map of the course's Frechet distance.

    x: (B, 1, 28, 28) pixels in [0, 1] -> logits (B, 10); `features(x)` -> (B, feature_dim) penultimate
    features (after the last hidden layer's ReLU), which `metrics.mnist_quality` compares.
    Layers: [conv3x3 - BN - ReLU] x 2 at 28, 14 and 7 pixels (32, 64, 128 channels) with max pooling
    between, global average pooling, a `feature_dim` hidden layer, dropout, and the linear classifier.
    Dropout draws its masks from torch's global RNG, which the training loop's generator does not drive:
    the default 0 keeps a seeded training run reproducible. Chapter 6 (and 7, 8 through their checks).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), feature_dim: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        layers, c = [], 1
        for k, c_out in enumerate(channels):
            if k > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                c = c_out
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(c, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, 10))

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"MNISTClassifier expects x (B, 1, 28, 28) in [0, 1], got {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (B, feature_dim) of images x (B, 1, 28, 28) in [0, 1]."""
        self._check(x)
        return self.hidden(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class NoisyClassifier(nn.Module):
    """p_t(y | x_t): a classifier of noised digits, told the time t. Chapter 8 (classifier guidance).

    x: (B, 1, 28, 28) noised images x_t = alpha(t) x_0 + sigma(t) z in the generators' range (x_0 in
    [-1, 1]); t: (B,) times in [0, 1] -> logits (B, classes). It is the U-Net's encoder: an input conv,
    one time-conditioned ResBlock per level (`channels`, at 28, 14 and 7 pixels, strided convs between),
    GroupNorm, SiLU, global average pooling and a linear head; the time embedding is the U-Net's.
    Its input gradient grad_x log p_t(y | x_t) is what guidance adds to the score (`scores.guided_score`).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 64), time_dim: int = 64, classes: int = 10,
                 time_scale: float = 1000.0):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1 or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positive integers, got {channels}")
        self.embed = nn.Sequential(SinusoidalEmbedding(time_dim, time_scale), nn.Linear(time_dim, time_dim),
                                   nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.inp = nn.Conv2d(1, channels[0], 3, padding=1)
        self.blocks, self.downsample = nn.ModuleList(), nn.ModuleList()
        c = channels[0]
        for level, c_level in enumerate(channels):
            self.blocks.append(ResBlock(c, c_level, time_dim))
            c = c_level
            if level < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.head = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c, classes))
        self.classes = classes

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28) or t.shape != (x.shape[0],):
            raise ValueError(f"NoisyClassifier expects x (B, 1, 28, 28) and t (B,), got {tuple(x.shape)} "
                             f"and {tuple(t.shape)}")
        e = self.embed(t)
        h = self.inp(x)
        for level, block in enumerate(self.blocks):
            h = block(h, e)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        return self.head(h)


# ------------------------------------------------------------------ latent-space EBM prior model (ch. 4)


def _check_latent(z: Tensor, dim: int, who: str) -> None:
    if z.ndim != 2 or z.shape[1] != dim:
        raise ValueError(f"{who} expects z of shape (B, {dim}), got {tuple(z.shape)}")


class EBMPrior(nn.Module):
    """f_alpha(z): an MLP from a latent z (B, latent_dim) to one number per row (B,). Chapter 4.

    The prior is p_alpha(z) ∝ exp(f_alpha(z)) p_0(z) (Pang et al. 2020, eq. 1): f is a correction of the
    Gaussian p_0, so the output layer starts at zero and a fresh prior is exactly p_0. Smooth activations
    (GELU) keep grad_z f continuous for the Langevin chains.
    """

    def __init__(self, latent_dim: int = 2, hidden: int = 128, depth: int = 2):
        super().__init__()
        layers, d = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.GELU()]
            d = hidden
        self.body, self.out, self.latent_dim = nn.Sequential(*layers), nn.Linear(d, 1), latent_dim
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: Tensor) -> Tensor:
        _check_latent(z, self.latent_dim, "EBMPrior")
        return self.out(self.body(z)).squeeze(1)


class MLPGenerator(nn.Module):
    """g_beta(z): an MLP from a latent z (B, latent_dim) to data (B, data_dim), the 2D generator of chapter 4."""

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        layers, d = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.GELU()]
            d = hidden
        self.net, self.latent_dim = nn.Sequential(*layers, nn.Linear(d, data_dim)), latent_dim

    def forward(self, z: Tensor) -> Tensor:
        _check_latent(z, self.latent_dim, "MLPGenerator")
        return self.net(z)


class ConvGenerator(nn.Module):
    """g_beta(z): latent (B, latent_dim) -> image (B, 1, 28, 28) in (-1, 1), the MNIST generator of chapter 4.

    A linear layer to 7 x 7 x 2c, then two transposed convolutions (4 x 4, stride 2) to 14 x 14 x c and
    28 x 28 x c with LeakyReLU, a 3 x 3 convolution to one channel and tanh (as in Pang et al.'s generators).
    """

    def __init__(self, latent_dim: int = 32, channels: int = 32):
        super().__init__()
        c = channels
        self.fc = nn.Sequential(nn.Linear(latent_dim, 7 * 7 * 2 * c), nn.LeakyReLU(0.2))
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.LeakyReLU(0.2),
                                nn.ConvTranspose2d(c, c, 4, 2, 1), nn.LeakyReLU(0.2),
                                nn.Conv2d(c, 1, 3, padding=1), nn.Tanh())
        self.latent_dim, self.channels = latent_dim, c

    def forward(self, z: Tensor) -> Tensor:
        _check_latent(z, self.latent_dim, "ConvGenerator")
        return self.up(self.fc(z).reshape(len(z), 2 * self.channels, 7, 7))


class DeconvGenerator(nn.Module):
    """g_beta(z): latent (B, latent_dim) -> image (B, 1, 28, 28) in (-1, 1), Pang et al.'s deconvolution
    generator (their SVHN script, ngf = 64) cut to MNIST's 28 x 28. Chapter 4.

    z as a 1 x 1 image, then four transposed convolutions with LeakyReLU(0.2): to 4 x 4 x 8 ngf (kernel 4),
    7 x 7 x 4 ngf (kernel 3, stride 2), 14 x 14 x 2 ngf and 28 x 28 x 1 (kernel 4, stride 2), and tanh. With
    ngf = 64: 1.84 M parameters, against `ConvGenerator(16, 16)`'s 39 k.
    """

    def __init__(self, latent_dim: int = 16, ngf: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(latent_dim, 8 * ngf, 4, 1, 0), nn.LeakyReLU(0.2),
                                 nn.ConvTranspose2d(8 * ngf, 4 * ngf, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1), nn.LeakyReLU(0.2),
                                 nn.ConvTranspose2d(2 * ngf, 1, 4, 2, 1), nn.Tanh())
        self.latent_dim, self.ngf = latent_dim, ngf

    def forward(self, z: Tensor) -> Tensor:
        _check_latent(z, self.latent_dim, "DeconvGenerator")
        return self.net(z[:, :, None, None])

"""Plots shared by the chapters. Each function draws on a given or new matplotlib Axes and returns it.

Figures are titled, their axes labelled, and sized for a book page (at most 10 inches wide).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def style() -> None:
    """The book's matplotlib defaults: PNG figures at 90 dpi inline, readable fonts, light grid."""
    plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90, "font.size": 10, "axes.grid": True,
                         "grid.alpha": 0.3, "figure.figsize": (6, 4)})
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("png")
    except ImportError:  # outside IPython
        pass


def scatter2d(points, ax=None, title: str = "", color: str = "C0", s: float = 2.0, label: str | None = None,
              lims: tuple = ((-1.5, 2.5), (-1.0, 1.5))):
    """Scatter plot of (n, 2) points with equal aspect. Chapters 1, 2 and 4."""
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    p = np.asarray(points)
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=0.5, color=color, label=label, linewidths=0)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", xlim=lims[0], ylim=lims[1], aspect="equal")
    return ax


def loss_curve(losses, ax=None, title: str = "training loss", window: int = 100):
    """Loss per step with a running mean over `window` steps, log-scaled y axis."""
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    y = np.asarray(losses, dtype=float)
    ax.plot(y, lw=0.5, alpha=0.4, label="per step")
    if len(y) >= window:
        ax.plot(np.arange(window - 1, len(y)), np.convolve(y, np.ones(window) / window, "valid"),
                lw=1.5, label=f"mean of {window}")
    ax.set(title=title, xlabel="step", ylabel="loss", yscale="log")
    ax.legend()
    return ax


def hist_vs_density(samples, densities, ax=None, title: str = "", bins: int = 80, xlim: tuple | None = None,
                    label: str = "samples"):
    """Normalised histogram of a 1D sample against one or more densities. Chapters 3 and 4.

    samples: any shape, flattened. densities: a callable p(x) on a numpy grid, or a dict
    {label: callable} to draw several curves (e.g. the target and ULA's biased stationary law).
    xlim: the plotted range (default: the 0.1 % and 99.9 % quantiles of the sample, widened by 10 %).
    """
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    x = np.ravel(np.asarray(samples, dtype=float))
    if xlim is None:
        lo, hi = np.quantile(x, [0.001, 0.999])
        xlim = (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.hist(x, bins=bins, range=xlim, density=True, alpha=0.45, color="C0", label=label)
    grid = np.linspace(xlim[0], xlim[1], 400)
    curves = densities if isinstance(densities, dict) else {"density": densities}
    for i, (name, density) in enumerate(curves.items()):
        ax.plot(grid, density(grid), lw=1.8, color=f"C{i + 1}", label=name)
    ax.set(title=title, xlabel="$x$", ylabel="density", xlim=xlim)
    ax.legend(fontsize=8)
    return ax


def chain_traces(chains, ax=None, n_show: int = 4, title: str = "chain traces", step: int = 1,
                 ylabel: str = "$x_k$"):
    """Trace plot of the first `n_show` of C parallel 1D chains. Chapters 3 and 4.

    chains: (n, C) history, time first (what `langevin.ula` returns for (C,) starts).
    step: steps between two kept states (the sampler's keep_every), so the x axis counts sampler steps.
    """
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    c = np.asarray(chains, dtype=float)
    c = c.reshape(len(c), -1)[:, :n_show]
    ax.plot(np.arange(1, len(c) + 1) * step, c, lw=0.8, alpha=0.8)
    ax.set(title=title, xlabel="step $k$", ylabel=ylabel)
    return ax


def autocorrelation_plot(rho, ax=None, title: str = "autocorrelation", step: int = 1,
                         label: str | None = None, **plot_kwargs):
    """Autocorrelation rho_t against the lag t (in sampler steps: t * step). Chapters 3 and 4."""
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    r = np.asarray(rho, dtype=float)
    ax.plot(np.arange(len(r)) * step, r, label=label, **plot_kwargs)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set(title=title, xlabel="lag (steps)", ylabel=r"$\rho_t$")
    if label is not None:
        ax.legend(fontsize=8)
    return ax


def score_field(score_fn, ax=None, title: str = "", lims: tuple = ((-1.5, 2.5), (-1.0, 1.5)), n: int = 21,
                colorbar: bool = False):
    """Directions of a 2D vector field score_fn((m, 2) numpy) -> (m, 2) on an n x n grid. Chapter 2.

    Arrows have unit length (a score's size spans orders of magnitude); their colour is log10 |score|
    (viridis: dark is small, yellow is large), with a colour bar when `colorbar`.
    """
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    gx, gy = np.meshgrid(np.linspace(*lims[0], n), np.linspace(*lims[1], n))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    v = np.asarray(score_fn(pts))
    norm = np.linalg.norm(v, axis=1)
    u = v / (norm[:, None] + 1e-12)
    q = ax.quiver(pts[:, 0], pts[:, 1], u[:, 0], u[:, 1], np.log10(norm + 1e-12), cmap="viridis",
                  angles="xy", scale=n * 1.1, width=0.004)
    if colorbar:
        ax.figure.colorbar(q, ax=ax, shrink=0.8, label="log10 |score|")
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", xlim=lims[0], ylim=lims[1], aspect="equal")
    return ax


def time_density(states, bins) -> np.ndarray:
    """Histogram density of each row of `states` (K, B, ...) over the bin edges `bins` (M + 1,): (K, M).

    Points outside the bins count in the normalisation, so a row's mass inside them can be below 1.
    Chapter 5 (heat maps of 1D trajectories).
    """
    s = np.asarray(states, dtype=float).reshape(len(states), -1)
    edges = np.asarray(bins, dtype=float)
    counts = np.stack([np.histogram(row, bins=edges)[0] for row in s])
    return counts / (s.shape[1] * np.diff(edges))


def heatmap(times, x, density, ax=None, title: str = "", vmax: float | None = None, cmap: str = "viridis",
            colorbar: bool = True):
    """pcolormesh of density (K, M) at times (K,) (x axis) and points x (M,) (y axis). Chapter 5."""
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    mesh = ax.pcolormesh(np.asarray(times), np.asarray(x), np.asarray(density).T, shading="nearest",
                         cmap=cmap, vmin=0.0, vmax=vmax, rasterized=True)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="density", pad=0.02)
    ax.set(title=title, xlabel="time $t$", ylabel="$x$")
    ax.grid(False)
    return ax


def sde_heatmaps(times, states, exact_density, bins, title: str = "", paths=None, vmax: float = 0.45,
                 reverse: bool = False):
    """Two heat maps side by side: the samples' density over time, and the exact p_t(x). Chapter 5.

    times: (K,); states: (K, B) or (K, B, 1) kept states of a run; exact_density(t, x) -> (M,) numpy for
    a float t and the bin centres x; bins: (M + 1,) edges. paths: (K, P) trajectories drawn over the left
    map. reverse: the run went from t = 1 to 0 (the time axis is drawn the same way, increasing).
    Returns the figure.
    """
    times = np.asarray(times, dtype=float)
    order = np.argsort(times)  # reverse runs are stored from t = 1 down; draw time increasing
    times, states = times[order], np.asarray(states)[order]
    paths = None if paths is None else np.asarray(paths)[order]
    centres = 0.5 * (np.asarray(bins)[1:] + np.asarray(bins)[:-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, constrained_layout=True)
    heatmap(times, centres, time_density(states, bins), axes[0], "samples", vmax, colorbar=False)
    exact = np.stack([np.asarray(exact_density(float(t), centres)) for t in times])
    heatmap(times, centres, exact, axes[1], "exact $p_t(x)$", vmax)
    if paths is not None:
        p = np.asarray(paths, dtype=float).reshape(len(times), -1)
        axes[0].plot(times, p, color="w", lw=1.0, alpha=0.9)
    axes[1].set_ylabel("")
    fig.suptitle(title + ("  (run from t = 1 down to t = eps)" if reverse else ""))
    return fig


def image_grid(images, nrow: int = 8, ax=None, title: str = "", pad: int = 2, cmap: str = "gray"):
    """Grayscale images tiled in a grid, `nrow` per row, separated by `pad` white pixels. Chapters 6-8.

    images: (n, H, W) or (n, 1, H, W) pixels in [0, 1] (array or tensor; values are clipped, no rescaling,
    so model outputs in [-1, 1] go through `data.from_model_range` first). Rows are filled left to right;
    a short last row is padded with white. Returns the Axes (axis lines off).
    """
    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=float)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"images must be (n, H, W) or (n, 1, H, W) with n >= 1, got shape {x.shape}")
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive integer, got {nrow!r}")
    n, H, W = x.shape
    cols, rows = min(nrow, n), -(-n // nrow)
    grid = np.ones((rows * (H + pad) + pad, cols * (W + pad) + pad))
    for k in range(n):
        r, c = divmod(k, cols)
        grid[pad + r * (H + pad):pad + r * (H + pad) + H, pad + c * (W + pad):pad + c * (W + pad) + W] = x[k]
    ax = ax or plt.subplots(figsize=(min(10.0, 0.75 * cols + 0.5), min(10.0, 0.75 * rows + 0.6)))[1]
    ax.imshow(np.clip(grid, 0.0, 1.0), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set(title=title, xticks=[], yticks=[])
    ax.grid(False)
    ax.axis("off")
    return ax

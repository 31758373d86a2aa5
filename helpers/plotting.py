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

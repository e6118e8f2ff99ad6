"""One figure style for the whole book: a seaborn theme plus a few figure helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

__all__ = [
    "set_style",
    "attention_heatmap",
    "line_plot",
    "image_grid",
    "sample_grids",
    "embedding_scatter",
]


def set_style() -> None:
    """Apply the book's theme (call once at the top of a notebook).

    It also makes NumPy scalars display as plain numbers (``0.91``, not
    ``np.float64(0.91)``), so glued values can be formatted in the text.
    """
    np.set_printoptions(legacy="1.25")
    sns.set_theme(context="notebook", style="whitegrid", palette="deep")
    plt.rcParams.update({"figure.figsize": (6.4, 4.0), "figure.dpi": 100,
                         "axes.titleweight": "bold", "image.cmap": "viridis"})


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def attention_heatmap(weights, x_labels: Sequence[str] | None = None,
                      y_labels: Sequence[str] | None = None, *, ax=None, title: str = "attention",
                      annotate: bool = False):
    """Draw a ``(L_q, L_k)`` attention matrix: rows are queries, columns are keys."""
    w = _np(weights)
    if w.ndim != 2:
        raise ValueError(f"attention weights must be 2-D (L_q, L_k), got shape {w.shape}")
    ax = ax or plt.subplots(figsize=(0.45 * w.shape[1] + 2, 0.4 * w.shape[0] + 1.2))[1]
    sns.heatmap(w, ax=ax, cmap="rocket_r", vmin=0, vmax=max(1e-9, float(w.max())), square=True,
                annot=annotate, fmt=".2f", cbar_kws={"label": "weight", "shrink": 0.8},
                xticklabels=x_labels if x_labels is not None else "auto",
                yticklabels=y_labels if y_labels is not None else "auto")
    ax.set(xlabel="key", ylabel="query", title=title)
    return ax


def line_plot(x, ys: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str, title: str,
              ax=None, logx: bool = False, logy: bool = False, marker: str = "o"):
    """Several named series against one x axis (timings, training curves)."""
    if not ys:
        raise ValueError("ys must hold at least one named series")
    ax = ax or plt.subplots()[1]
    for name, y in ys.items():
        if len(y) != len(x):
            raise ValueError(f"series {name!r} has {len(y)} values for {len(x)} x values")
        ax.plot(x, y, marker=marker, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return ax


def image_grid(images, *, ncols: int = 10, ax=None, title: str | None = None, vmin: float = 0.0,
               vmax: float = 1.0):
    """Tile ``(N, H, W)`` images into one picture with a 1-pixel gap."""
    imgs = _np(images)
    if imgs.ndim != 3 or len(imgs) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W) array, got shape {imgs.shape}")
    n, h, w = imgs.shape
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = img
    ax = ax or plt.subplots(figsize=(ncols * 0.6, nrows * 0.6 + 0.4))[1]
    ax.imshow(canvas, cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def sample_grids(panels: Mapping[str, object], *, n: int = 40, ncols: int = 10,
                 suptitle: str | None = None):
    """Side-by-side grids with one layout everywhere: e.g. ``{"real": x, "generated": g}``.

    The figure is as tall as its tallest grid plus its titles, so no empty band is
    left between a title and its images.
    """
    if not panels:
        raise ValueError("panels must hold at least one named set of images")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    grids = {name: _np(imgs)[:n] for name, imgs in panels.items()}
    panel_width = max(3.6, *(0.09 * len(name) for name in grids))  # room for the longest title
    grid_height = 0.0
    for name, imgs in grids.items():
        if imgs.ndim != 3 or len(imgs) == 0:
            raise ValueError(f"panel {name!r} must be a non-empty (N, H, W) array, got shape {imgs.shape}")
        _, h, w = imgs.shape
        rows = -(-len(imgs) // ncols)
        grid_height = max(grid_height, panel_width * (rows * (h + 1) - 1) / (ncols * (w + 1) - 1))
    height = grid_height + 0.45 + (0.4 if suptitle else 0.0)
    fig, axes = plt.subplots(1, len(grids), figsize=(panel_width * len(grids), height), layout="constrained")
    for ax, (name, imgs) in zip(np.atleast_1d(axes), grids.items(), strict=True):
        image_grid(imgs, ncols=ncols, ax=ax, title=name)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def embedding_scatter(points, labels=None, *, label_names: Sequence[str] | None = None, ax=None,
                      title: str = "", s: float = 6.0):
    """A 2-D scatter of an embedding, coloured by (hidden) labels if given."""
    p = _np(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got shape {p.shape}")
    ax = ax or plt.subplots(figsize=(5.5, 5))[1]
    if labels is None:
        ax.scatter(p[:, 0], p[:, 1], s=s, alpha=0.7)
    else:
        lab = _np(labels)
        if len(lab) != len(p):
            raise ValueError(f"{len(lab)} labels for {len(p)} points")
        names = label_names if label_names is not None else [str(u) for u in np.unique(lab)]
        palette = sns.color_palette("tab10" if len(names) <= 10 else "tab20", len(names))
        for i, u in enumerate(np.unique(lab)):
            sel = lab == u
            ax.scatter(p[sel, 0], p[sel, 1], s=s, alpha=0.75, color=palette[i % len(palette)],
                       label=names[i] if i < len(names) else str(u))
        ax.legend(markerscale=2.5, fontsize=7, loc="best", frameon=True)
    ax.set(title=title, xticks=[], yticks=[])
    return ax

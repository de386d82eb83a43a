"""Figures of the vicinal losses (Eqs. 6-8): where the gradient lands, the cosine readings, gradient flow.

Every figure function returns its :class:`matplotlib.figure.Figure`; nothing is shown or saved here.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..data.tasks import UNANNOTATED, TaskSpec
from ..errors import DataError
from ..probes import cosine_reduction_frame, gradient_share
from .style import _crop_window, _spec, class_colors, class_legend, overlay


GRADIENT_FLOOR = 1e-4
""":func:`plot_gradient_maps` draws gradients below this fraction of the largest one white."""


def plot_gradient_maps(
    maps: Mapping[str, torch.Tensor | np.ndarray],
    image2d: np.ndarray,
    scribble2d: np.ndarray,
    task: str | TaskSpec,
    margin: float | None = 0.5,
) -> Figure:
    """The slice with its scribbles, then one gradient map per loss on a shared log colour scale.

    Args:
        maps: title -> ``(H, W)`` gradient magnitude (a row of :func:`~modelmix_lite.probes.pixel_gradient_norm`).
        image2d, scribble2d: the slice ``(H, W)`` (network tensors are ``(X, Y)``, drawn like :func:`~modelmix_lite.viz.style.overlay`).
        task: for the class colours.
        margin: every panel shows the scribbles' bounding box grown by ``margin`` × its size on each side;
            ``None``: the whole slice.
    Each title gives the share of the gradient on unannotated pixels of the whole slice (:func:`~modelmix_lite.probes.gradient_share`);
    values below :data:`GRADIENT_FLOOR` of the largest (exact zeros included) are white; scribbles are outlined.

    Raises:
        DataError: when a map's shape differs from the slice's.
    """
    scribble2d = np.asarray(scribble2d)
    arrays = {title: np.asarray(m, dtype=float) for title, m in maps.items()}
    for title, array in arrays.items():
        if array.shape != scribble2d.shape:
            raise DataError(f"maps[{title!r}]: shape {array.shape} does not match the slice {scribble2d.shape}")
    annotated = scribble2d != UNANNOTATED
    window = (slice(None), slice(None)) if margin is None else _crop_window(annotated, margin)
    vmax = max((a.max() for a in arrays.values()), default=1.0) or 1.0
    norm = LogNorm(vmin=vmax * GRADIENT_FLOOR, vmax=vmax)
    cmap = plt.get_cmap("magma").with_extremes(under="white")
    fig, axes = plt.subplots(
        1, len(arrays) + 1, figsize=(2.6 * (len(arrays) + 1) + 0.8, 3.4), squeeze=False, layout="constrained"
    )
    overlay(axes[0, 0], np.asarray(image2d)[window], scribble2d=scribble2d[window], task=task)
    axes[0, 0].set_title("slice and scribbles", fontsize=9)
    for ax, (title, array) in zip(axes[0, 1:], arrays.items()):
        image = ax.imshow(array[window].T, cmap=cmap, norm=norm, origin="lower", interpolation="nearest")
        ax.contour(annotated[window].T, levels=[0.5], colors="0.3", linewidths=0.4)
        share = gradient_share(torch.as_tensor(array), torch.as_tensor(scribble2d.astype(np.int64)))
        ax.set_title(f"{title}\n{100 * share:.0f} % on unannotated pixels", fontsize=8)
        ax.set_axis_off()
    fig.colorbar(image, ax=axes[0, 1:].tolist(), shrink=0.8, label="‖∂L/∂logits‖ per pixel")
    return fig


def plot_cosine_examples(
    examples: Mapping[str, tuple[torch.Tensor, torch.Tensor]], task: str | TaskSpec, margin: float | None = 0.5
) -> Figure:
    """Host segmentation, then each example's virtual segmentation (argmax of sample 0), titled with its cosines.

    ``margin``: every panel shows the host's foreground bounding box grown by ``margin`` × its size on each
    side; ``None``: the whole slice.
    """
    spec = _spec(task)
    frame = cosine_reduction_frame(examples)
    host = next(iter(examples.values()))[0]
    foreground = host[0].argmax(0).numpy() > 0
    window = (slice(None), slice(None)) if margin is None else _crop_window(foreground, margin)
    panels = {"host f_i": host, **{name: q for name, (_, q) in examples.items()}}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 3.6), squeeze=False)
    for ax, (name, probs) in zip(axes[0], panels.items()):
        seg = probs[0].argmax(0).numpy()[window]
        ax.imshow(class_colors(spec)[seg.T], origin="lower", interpolation="nearest")
        ax.set_axis_off()
        if name in frame.index:
            row = frame.loc[name]
            name = f"{name}\npixel {row['pixel']:.3f} · spatial {row['spatial']:.3f} · flat {row['flat']:.3f}"
        ax.set_title(name, fontsize=8)
    fig.legend(handles=class_legend(spec), loc="lower center", ncol=spec.n_classes, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_gradient_flow(frames: Mapping[str, pd.DataFrame]) -> Figure:
    """One heat map per frame of :func:`~modelmix_lite.probes.gradient_norms_by_group`: log₁₀ of each norm, exact zeros grey and marked 0.

    Args:
        frames: title (e.g. the core preset) -> frame; all share one colour scale.
    Raises:
        DataError: when there is no frame or a frame has no rows.
    """
    if not frames or any(frame.empty for frame in frames.values()):
        raise DataError("frames: expected at least one non-empty gradient-norm frame")
    positive = np.concatenate([f.to_numpy().ravel() for f in frames.values()])
    positive = positive[positive > 0]
    lo, hi = (np.log10(positive.min()), np.log10(positive.max())) if positive.size else (-1.0, 0.0)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    fig, axes = plt.subplots(
        1,
        len(frames),
        figsize=(0.75 * sum(f.shape[1] for f in frames.values()) + 4, 0.45 * max(len(f) for f in frames.values()) + 2),
        squeeze=False,
        layout="constrained",
    )
    for ax, (title, frame) in zip(axes[0], frames.items()):
        values = frame.to_numpy(dtype=float)
        logs = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
        image = ax.imshow(logs, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, aspect="auto")
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.0e}" if v > 0 else "0", ha="center", va="center", fontsize=7,
                    color="k" if v <= 0 or logs[r, c] > (lo + hi) / 2 else "w")
        ax.set_xticks(range(frame.shape[1]), [" ".join(map(str, c)) if isinstance(c, tuple) else str(c)
                                              for c in frame.columns], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(frame)), list(map(str, frame.index)), fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="log₁₀ ‖∂L/∂θ‖")
    return fig

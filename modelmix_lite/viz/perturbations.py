"""Figures of the perturbations (§2.1): cutout, mixup, the λ densities, invariance, augmentation, dropout.

Every figure function returns its :class:`matplotlib.figure.Figure`; nothing is shown or saved here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from scipy.stats import beta as beta_distribution
from torch import Tensor

from ..errors import ConfigError, DataError
from ..perturb import apply_cutout, scribbled_pixels_cut
from ..probes import pixel_cosine
from .style import CUTOUT_EDGE, PADDING_COLOR, _check_rows, _gray, _numpy, _rgb, _row_label, _spec, class_legend, overlay, probability_rgb


def _cutout_box(ax: Axes, mask2d: np.ndarray) -> None:
    """Outline the zero region of an ``(X, Y)`` cutout mask."""
    xs, ys = np.nonzero(mask2d == 0)
    if len(xs):
        ax.add_patch(Rectangle((xs.min() - 0.5, ys.min() - 0.5), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1,
                               fill=False, edgecolor=CUTOUT_EDGE, linestyle="--", linewidth=1.2))


def plot_cutout(
    images: Sequence[Tensor],
    scribbles: Sequence[Tensor],
    masks: Sequence[Tensor],
    tasks: Sequence[str],
    channel: int = 0,
) -> Figure:
    """Cutout ``x^c = 1_c ⊙ x`` (§2.1) and the two ways of labelling the cut pixels, one row per sample.

    Columns: the image with its scribble; the mask ``1_c``; ``x^c`` with the cut scribble pixels
    ``UNANNOTATED`` (the library's default, nothing drawn there); ``x^c`` with them background (the
    released code's ``label_fill=0``: the square fills with the background colour). Both relabellings
    are computed by :func:`~modelmix_lite.perturb.apply_cutout`.

    Args:
        images: per row ``(C, H, W)``.
        scribbles: per row ``(H, W)`` canonical scribble.
        masks: per row ``(1, H, W)`` cutout mask.
        tasks: per row the task name, for the colours and the row label.
        channel: image channel drawn (the cutout hides every channel).
    """
    n = len(tasks)
    for name, rows in (("images", images), ("scribbles", scribbles), ("masks", masks)):
        _check_rows(name, rows, n)
    fig, axes = plt.subplots(n, 4, figsize=(9.2, 2.35 * n + 0.9), squeeze=False)
    titles = ("$x$ and its scribble $y$", "cutout mask $1_c$", "$x^c$; cut $y$ → unannotated\n(library default)",
              "$x^c$; cut $y$ → background\n(released ACDC/MSCMR code)")
    for row, (image, scribble, mask, task) in enumerate(zip(images, scribbles, masks, tasks)):
        spec = _spec(task)
        y = scribble[None].long()
        cut, unannotated = apply_cutout(image[None], mask[None], y)
        _, background = apply_cutout(image[None], mask[None], y, label_fill=0)
        hits = int(scribbled_pixels_cut(y, mask[None])[0])
        mask2d = _numpy(mask[0])
        overlay(axes[row, 0], _numpy(image[channel]), scribble2d=_numpy(scribble), task=spec)
        _gray(axes[row, 1], mask2d).set_axis_on()  # a frame: the mask is white (1) outside the square
        axes[row, 1].set(xticks=[], yticks=[])
        overlay(axes[row, 2], _numpy(cut[0, channel]), scribble2d=_numpy(unannotated[0]), task=spec)
        overlay(axes[row, 3], _numpy(cut[0, channel]), scribble2d=_numpy(background[0]), task=spec)
        for ax in axes[row, 1:]:
            _cutout_box(ax, mask2d)
        axes[row, 3].text(0.5, -0.02, f"{hits} scribbled foreground px → background",
                          transform=axes[row, 3].transAxes, ha="center", va="top", fontsize=8)
        _row_label(axes[row, 0], f"{spec.name.upper()} · {spec.sequences[channel]}")
    for col, title in enumerate(titles):
        axes[0, col].set_title(title, fontsize=9)
    handles = class_legend(*tasks) + [Patch(fill=False, edgecolor=CUTOUT_EDGE, linestyle="--", label="cutout square")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_mixup_grid(
    x1: Sequence[Tensor],
    x2: Sequence[Tensor],
    tasks: Sequence[str],
    alphas: Sequence[float] = (1.0, 0.75, 0.5, 0.25, 0.0),
    channel: int = 0,
) -> Figure:
    """Intra-dataset mixup ``x' = α x1 + (1 − α) x2`` (§2.1) over a grid of fixed ``α``, one row per pair.

    Args:
        x1, x2: per row ``(C, H, W)`` images of the same task, intensities in [0, 1] (drawn on that fixed scale).
        tasks: per row the task name.
        alphas: the columns; ``α = 1`` shows ``x1``, ``α = 0`` shows ``x2``.
    """
    n = len(tasks)
    _check_rows("x1", x1, n)
    _check_rows("x2", x2, n)
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ConfigError(f"alphas: expected mix ratios in [0, 1], got {list(alphas)}")
    fig, axes = plt.subplots(n, len(alphas), figsize=(1.9 * len(alphas), 1.95 * n + 0.4), squeeze=False)
    for row, (a, b, task) in enumerate(zip(x1, x2, tasks)):
        if a.shape != b.shape:
            raise DataError(f"x2[{row}]: shape {tuple(b.shape)} does not match x1[{row}] {tuple(a.shape)}")
        for col, alpha in enumerate(alphas):
            _gray(axes[row, col], alpha * a[channel] + (1 - alpha) * b[channel])
        spec = _spec(task)
        _row_label(axes[row, 0], f"{spec.name.upper()} · {spec.sequences[channel]}")
    for col, alpha in enumerate(alphas):
        axes[0, col].set_title(f"α = {alpha:g}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_beta_densities(
    concentrations: Sequence[float] = (0.2, 0.5, 1.0, 2.0), samples: Mapping[float, Any] | None = None
) -> Figure:
    """Densities of the mix ratio ``α ~ Beta(a, a)`` for a few concentrations ``a``, optionally with draws.

    Args:
        concentrations: values of ``a`` (the released code uses 0.5).
        samples: ``a`` -> 1-D draws (e.g. :func:`~modelmix_lite.draws.sample_beta`), drawn as a histogram
            in the colour of that ``a``'s curve.
    """
    samples = dict(samples or {})
    values = list(concentrations) + [a for a in samples if a not in concentrations]
    bad = [a for a in values if not a > 0]
    if not values or bad:
        raise ConfigError(f"concentrations: Beta concentrations must be > 0, got {values}")
    grid = np.linspace(0.001, 0.999, 500)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for a, color in zip(values, sns.color_palette("viridis", len(values))):
        ax.plot(grid, beta_distribution.pdf(grid, a, a), color=color, lw=1.8, label=f"Beta({a:g}, {a:g})")
        if a in samples:
            draws = _numpy(samples[a]).ravel()
            ax.hist(draws, bins=40, range=(0, 1), density=True, color=color, alpha=0.3,
                    label=f"{len(draws)} draws, a = {a:g}")
    ax.set(xlim=(0, 1), ylim=(0, 4), xlabel="mix ratio α", ylabel="density")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_invariance(
    x1: Tensor,
    x2: Tensor,
    x_mix: Tensor,
    p1: Tensor,
    p2: Tensor,
    p_mix: Tensor,
    alpha: float,
    task: str,
    loss: float | None = None,
    channel: int = 0,
) -> Figure:
    """What L_inv (Eq. 1) compares, for one sample: ``f(x')`` against ``α f(x1^c) + (1 − α) f(x2^c)``.

    Top row: the inputs ``x1^c``, ``x2^c``, ``x'`` and the per-pixel cosine of the two compared maps;
    bottom row: ``f(x1^c)``, ``f(x2^c)``, ``f(x')`` and the target ``α f(x1^c) + (1 − α) f(x2^c)``,
    coloured by :func:`~modelmix_lite.viz.style.probability_rgb`.

    Args:
        x1, x2, x_mix: ``(C, H, W)`` the two cut-out images and their mixup.
        p1, p2, p_mix: ``(n_classes, H, W)`` class probabilities of the model on each.
        alpha: the mix ratio of this sample.
        loss: the batch's ``L_inv`` (:func:`~modelmix_lite.losses.invariance_loss`), printed in the title.
    """
    if not (p1.shape == p2.shape == p_mix.shape) or p1.shape[1:] != x1.shape[1:]:
        raise DataError(f"p_mix: probabilities {tuple(p1.shape)}, {tuple(p2.shape)}, {tuple(p_mix.shape)} "
                        f"must share one shape (n_classes, H, W) matching x1 {tuple(x1.shape)}")
    target = alpha * p1 + (1 - alpha) * p2
    cos = _numpy(pixel_cosine(p_mix[None], target[None])[0])
    spec = _spec(task)
    fig, axes = plt.subplots(2, 4, figsize=(10, 5.6), layout="constrained")
    x_title = f"$x' = {alpha:.2f}\\,x_1^c + {1 - alpha:.2f}\\,x_2^c$"
    for ax, x, title in zip(axes[0], (x1, x2, x_mix), ("$x_1^c$", "$x_2^c$", x_title)):
        _gray(ax, x[channel]).set_title(title, fontsize=9)
    titles = ("$f(x_1^c)$", "$f(x_2^c)$", "$f(x')$", f"${alpha:.2f}\\,f(x_1^c) + {1 - alpha:.2f}\\,f(x_2^c)$")
    for ax, p, title in zip(axes[1], (p1, p2, p_mix, target), titles):
        _rgb(ax, probability_rgb(p, spec)).set_title(title, fontsize=9)
    image = axes[0, 3].imshow(cos.T, cmap="viridis", origin="lower", interpolation="nearest")
    axes[0, 3].set_axis_off()
    axes[0, 3].set_title(f"cos per pixel (mean {cos.mean():.4f})", fontsize=9)
    fig.colorbar(image, ax=axes[0, 3], fraction=0.046, pad=0.04)
    fig.suptitle(spec.title + ("" if loss is None else f": $L_{{inv}}$ = {loss:.4f} on the batch"), fontsize=10)
    fig.legend(handles=class_legend(spec), loc="outside lower center", ncol=spec.n_classes, frameon=False, fontsize=8)
    return fig


def plot_augmentations(
    images: Tensor,
    scribbles: Tensor,
    padding: Tensor,
    task: str,
    labels: Tensor | None = None,
    titles: Sequence[str] | None = None,
    channel: int = 0,
) -> Figure:
    """Geometrically augmented slices in a row, with their scribbles, ground truth and padding.

    Padding — pixels a warp brought in from outside the image — is filled orange: it is ``UNANNOTATED``
    in every label map (:func:`~modelmix_lite.perturb.augment`), not background.

    Args:
        images: ``(B, C, H, W)``.
        scribbles: ``(B, H, W)`` canonical scribbles.
        padding: ``(B, H, W)`` bool, True where a pixel came from outside the image.
        labels: optional ``(B, H, W)`` ground truth, drawn filled (its padding is drawn as padding).
        titles: one title per panel.
    """
    batch = images.shape[0]
    for name, array in (("scribbles", scribbles), ("padding", padding), ("labels", labels)):
        if array is not None and array.shape != (batch, *images.shape[2:]):
            raise DataError(f"{name}: shape {tuple(array.shape)} does not match images {tuple(images.shape)}")
    if titles is not None:
        _check_rows("titles", titles, batch)
    spec = _spec(task)
    fig, axes = plt.subplots(1, batch, figsize=(2.2 * batch, 2.9), squeeze=False)
    fill = np.zeros((*padding.shape[1:], 4))
    fill[:] = to_rgba(PADDING_COLOR, 0.75)
    padding_np = _numpy(padding)
    for b, ax in enumerate(axes[0]):
        label2d = None if labels is None else np.where(padding_np[b], 0, _numpy(labels[b]))  # padding: orange
        overlay(ax, _numpy(images[b, channel]), label2d, _numpy(scribbles[b]), spec)
        _rgb(ax, fill * padding_np[b][..., None])
        if titles is not None:
            ax.set_title(titles[b], fontsize=9)
    handles = class_legend(spec) + [Patch(color=PADDING_COLOR, alpha=0.75, label="padding (unannotated)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_domain_gap(
    images: Mapping[str, Tensor], pair: tuple[int, int] = (0, 0), alpha: float = 0.5, channel: int = 0, bins: int = 50
) -> Figure:
    """Why two tasks' images are not mixed: a cross-task blend and the intensity histograms of both datasets.

    Args:
        images: exactly two tasks -> ``(N, C, H, W)`` slice stacks with intensities in [0, 1].
        pair: the slice of each stack to show and blend.
        alpha: weight of the first task's slice in the blend.
        channel: channel of each stack (``0`` is cine / LGE / C0).
        bins: histogram bins over [0, 1]; exact zeros (padding, air) are left out.
    """
    if len(images) != 2:
        raise ConfigError(f"images: expected exactly two tasks, got {list(images)}")
    (task_a, a), (task_b, b) = images.items()
    if a.shape[2:] != b.shape[2:]:
        raise DataError(
            f"images[{task_b!r}]: slice size {tuple(b.shape[2:])} differs from {task_a!r} {tuple(a.shape[2:])}"
        )
    slice_a, slice_b = a[pair[0], channel], b[pair[1], channel]
    n = min(len(a), len(b))
    stacks = {
        task_a.upper(): a[:, channel],
        task_b.upper(): b[:, channel],
        f"blend, α = {alpha:g}": alpha * a[:n, channel] + (1 - alpha) * b[:n, channel],
    }
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    blend_title = f"{alpha:g} · {task_a.upper()} + {1 - alpha:g} · {task_b.upper()}"
    for ax, x, title in zip(axes, (slice_a, slice_b, alpha * slice_a + (1 - alpha) * slice_b),
                            (_spec(task_a).title, _spec(task_b).title, blend_title)):
        _gray(ax, x).set_title(title, fontsize=9)
    for (name, stack), color in zip(stacks.items(), ("#1565c0", "#c62828", "0.3")):
        values = _numpy(stack).ravel()
        axes[3].hist(values[values > 0], bins=bins, range=(0, 1), density=True, histtype="step", lw=1.5, color=color,
                     label=name)
    axes[3].set(xlabel="normalised intensity (non-zero pixels)", ylabel="density", yscale="log")
    axes[3].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_dropout_variance(image: Tensor, samples: Mapping[str, Tensor], task: str, channel: int = 0) -> Figure:
    """Mean prediction and per-pixel spread of dropout samples, one row per dropout setting.

    Columns: the image; the mean probability (:func:`~modelmix_lite.viz.style.probability_rgb`); the standard deviation over the
    samples, averaged over classes, on one colour scale for all rows.

    Args:
        image: ``(C, H, W)`` the input slice.
        samples: setting name -> ``(n, n_classes, H, W)`` probabilities of one slice (from :func:`~modelmix_lite.probes.dropout_predictions`).
    """
    if not samples:
        raise ConfigError("samples: no dropout setting to plot")
    spec = _spec(task)
    spread = {name: _numpy(s.std(dim=0, correction=0).mean(dim=0)) for name, s in samples.items()}
    vmax = max(float(s.max()) for s in spread.values()) or 1.0
    fig, axes = plt.subplots(len(samples), 3, figsize=(7.4, 2.4 * len(samples) + 0.5), squeeze=False)
    for row, (name, s) in enumerate(samples.items()):
        _gray(axes[row, 0], image[channel])
        _rgb(axes[row, 1], probability_rgb(s.mean(dim=0), spec))
        shown = axes[row, 2].imshow(spread[name].T, cmap="magma", vmin=0, vmax=vmax, origin="lower",
                                    interpolation="nearest")
        axes[row, 2].set_axis_off()
        fig.colorbar(shown, ax=axes[row, 2], fraction=0.046, pad=0.04)
        _row_label(axes[row, 0], f"dropout = {name}")
        axes[row, 2].set_title(f"std over {len(s)} passes (mean {spread[name].mean():.3f})", fontsize=9)
    axes[0, 0].set_title("input", fontsize=9)
    axes[0, 1].set_title("mean prediction", fontsize=9)
    fig.tight_layout()
    return fig

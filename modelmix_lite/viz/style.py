"""Shared style of the figures: class colours, legends, label overlays and small drawing helpers.

Every figure function returns its :class:`matplotlib.figure.Figure`; nothing is shown or saved here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.patches import Patch
from torch import Tensor

from ..data.tasks import UNANNOTATED, TaskSpec, get_task
from ..errors import DataError


CLASS_COLORS: dict[str, str] = {
    "background": "#00bcd4",
    "RV": "#2962ff",
    "MYO": "#00c853",
    "LV": "#d50000",
    "edema": "#ffab00",
    "scar": "#d500f9",
}
"""One colour per class name, shared by all tasks (MYO is the same green in ACDC and MyoPS)."""


LABEL_ALPHA = 0.3
"""Opacity of the ground-truth fill; its contour is drawn opaque."""


def _spec(task: str | TaskSpec) -> TaskSpec:
    return task if isinstance(task, TaskSpec) else get_task(task)


def class_colors(task: str | TaskSpec) -> np.ndarray:
    """RGBA colour of each class of ``task``, ``(n_classes, 4)`` float in [0, 1], indexed by class id."""
    return np.array([to_rgba(CLASS_COLORS[name]) for name in _spec(task).classes])


def class_legend(*tasks: str | TaskSpec) -> list[Patch]:
    """Legend handles, one coloured patch per class of the ``tasks`` (each class once, in first-seen order)."""
    names = dict.fromkeys(name for task in tasks for name in _spec(task).classes)
    return [Patch(color=CLASS_COLORS[name], label=name) for name in names]


def _rgba(labels: np.ndarray, spec: TaskSpec, alpha: float, what: str) -> np.ndarray:
    """Colour a class map ``(X, Y)`` -> ``(Y, X, 4)`` for ``imshow``.

    Ground truth (``what="label2d"``) leaves background transparent; scribbles leave ``UNANNOTATED`` transparent.
    """
    allowed = set(range(spec.n_classes)) | ({UNANNOTATED} if what == "scribble2d" else set())
    bad = sorted(int(v) for v in np.unique(labels) if int(v) not in allowed)
    if bad:
        raise DataError(f"{what}: values {bad} are not classes of {spec.name} (allowed: {sorted(allowed)})")
    lut = np.zeros((256, 4))
    lut[: spec.n_classes] = class_colors(spec)
    lut[: spec.n_classes, 3] = alpha
    lut[0 if what == "label2d" else UNANNOTATED, 3] = 0.0
    return lut[np.asarray(labels, dtype=np.uint8).T]


def overlay(
    ax: Axes,
    image2d: np.ndarray,
    label2d: np.ndarray | None = None,
    scribble2d: np.ndarray | None = None,
    task: str | TaskSpec = "acdc",
    window: tuple[float, float] | None = None,
) -> Axes:
    """Draw one slice: the image in grey, the ground truth as a filled contour, the scribbles as strokes.

    Args:
        ax: axes to draw on (its ticks are switched off).
        image2d: ``(X, Y)`` intensities.
        label2d: ``(X, Y)`` canonical classes; background is left transparent.
        scribble2d: ``(X, Y)`` canonical classes or ``UNANNOTATED`` (transparent); background strokes are drawn.
        task: task name or spec, for the class colours.
        window: intensities mapped to black and white; default the slice's 1st and 99th percentiles.

    Raises:
        DataError: when the arrays are not 2-D of one shape, or hold values that are not classes of ``task``.
    """
    spec = _spec(task)
    image2d = np.asarray(image2d)
    if image2d.ndim != 2 or not image2d.size:
        raise DataError(f"image2d: expected a non-empty 2-D slice, got shape {image2d.shape}")
    for name, array in (("label2d", label2d), ("scribble2d", scribble2d)):
        if array is not None and np.shape(array) != image2d.shape:
            raise DataError(f"{name}: shape {np.shape(array)} differs from the image slice's {image2d.shape}")
    lo, hi = window if window is not None else np.percentile(image2d, [1, 99])
    ax.imshow(image2d.T, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6), origin="lower", interpolation="nearest")
    if label2d is not None:
        ax.imshow(_rgba(label2d, spec, LABEL_ALPHA, "label2d"), origin="lower", interpolation="nearest")
        for c in range(1, spec.n_classes):
            if np.any(label2d == c):
                ax.contour((label2d == c).T, levels=[0.5], colors=[CLASS_COLORS[spec.classes[c]]], linewidths=0.8)
    if scribble2d is not None:
        ax.imshow(_rgba(scribble2d, spec, 1.0, "scribble2d"), origin="lower", interpolation="nearest")
    ax.set_axis_off()
    return ax


def _row_label(ax: Axes, text: str) -> None:
    """Write ``text`` vertically left of ``ax`` (a row title that survives ``set_axis_off``)."""
    ax.text(-0.06, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center")


PADDING_COLOR = "#ff6d00"
"""Fill of the pixels a geometric warp brings in from outside the image (unannotated padding)."""


CUTOUT_EDGE = "#ffd600"
"""Outline of the cutout square."""


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _gray(ax: Axes, image2d: Tensor | np.ndarray) -> Axes:
    """Draw an ``(X, Y)`` network-input slice on the fixed grey scale [0, 1], so panels compare in brightness."""
    ax.imshow(_numpy(image2d).T, cmap="gray", vmin=0.0, vmax=1.0, origin="lower", interpolation="nearest")
    ax.set_axis_off()
    return ax


def _rgb(ax: Axes, rgb: np.ndarray) -> Axes:
    """Draw an ``(X, Y, 3|4)`` colour slice in the orientation of :func:`overlay`."""
    ax.imshow(np.clip(rgb, 0, 1).transpose(1, 0, 2), origin="lower", interpolation="nearest")
    ax.set_axis_off()
    return ax


def _check_rows(name: str, rows: Sequence[Any], n: int) -> None:
    if len(rows) != n:
        raise DataError(f"{name}: expected one entry per row ({n}), got {len(rows)}")


def probability_rgb(prob: Tensor | np.ndarray, task: str | TaskSpec) -> np.ndarray:
    """Colour a class-probability map: each pixel is ``Σ_c p_c · colour_c``.

    A confident pixel shows its class colour, an undecided one a blend, so mixtures of predictions
    (as in Eq. 1) stay visible.

    Args:
        prob: ``(n_classes, X, Y)`` probabilities of ``task``'s classes.
    Returns:
        ``(X, Y, 3)`` float RGB in [0, 1].
    """
    spec, prob = _spec(task), _numpy(prob)
    if prob.ndim != 3 or prob.shape[0] != spec.n_classes:
        raise DataError(f"prob: expected ({spec.n_classes}, X, Y) probabilities of {spec.name}, got {prob.shape}")
    return np.einsum("cxy,cr->xyr", prob, class_colors(spec)[:, :3])


def _crop_window(mask2d: np.ndarray, margin: float = 0.5) -> tuple[slice, slice]:
    """Slices of the bounding box of ``mask2d``, grown by ``margin`` × its size on every side (all if empty)."""
    if not mask2d.any():
        return slice(None), slice(None)
    window = []
    for axis in (1, 0):
        hit = np.flatnonzero(mask2d.any(axis=axis))
        pad = int(np.ceil(margin * (hit[-1] - hit[0] + 1)))
        window.append(slice(max(hit[0] - pad, 0), min(hit[-1] + 1 + pad, mask2d.shape[1 - axis])))
    return window[0], window[1]


def _method_colors(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per method, in the given order (seaborn's colour-blind palette)."""
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))

"""Slice geometry: resample a 2-D slice to a physical pixel size, cut a centred window, and undo both.

Medical images come at the scanner's resolution (ACDC 0.7-1.9 mm, MSCMRseg 0.75 mm per pixel) and field of
view. :func:`fit_slice` resamples a slice to ``spacing_mm`` per pixel and cuts (or pads) the centred
``size × size`` window, so a heart spans the same number of pixels on every scanner;
:func:`restore_probabilities` maps network outputs back onto the slice's own grid. Labels are resampled by
:func:`resample_labels`, which keeps 1-px scribble strokes that nearest-neighbour resampling would break up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .tasks import UNANNOTATED

__all__ = ["SliceGeometry", "fit_slice", "resample_labels", "restore_probabilities", "slice_geometry"]


@dataclass(frozen=True)
class SliceGeometry:
    """How :func:`fit_slice` mapped an ``(h, w)`` slice to ``size × size``.

    The slice is resampled to ``resampled = (rh, rw)`` pixels (its native spacing → the target spacing);
    the ``size × size`` window then starts at ``(top, left)`` of the resampled slice: a positive offset
    crops, a negative one pads. The window is centred, so it covers ``size × target spacing`` mm around the
    image centre.
    """

    height: int
    width: int
    resampled: tuple[int, int]
    top: int
    left: int
    size: int

    @property
    def scale(self) -> tuple[float, float]:
        """Resampled pixels per original pixel along each axis (``> 1``: upsampled)."""
        return self.resampled[0] / self.height, self.resampled[1] / self.width


def _resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of the last two dims of ``(..., H, W)`` to ``shape`` (anti-aliased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x.float()
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:]).float()
    out = F.interpolate(flat, size=shape, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, *shape)


def resample_labels(label: np.ndarray, shape: tuple[int, int], fill: int = UNANNOTATED) -> np.ndarray:
    """Resample an ``(h, w)`` label map to ``shape`` so that thin strokes survive.

    Each output pixel covers a window of input pixels (adaptive average pooling). It takes the class that
    covers most of its window among the annotated pixels there, and ``fill`` only when none of them is
    annotated: a 1-px scribble that touches a coarser pixel keeps it (an any-hit rule), where nearest
    neighbour would keep only the strokes that happen to lie on the sampling grid. On a complete ground
    truth (``fill`` never present) this is a majority vote.

    Args:
        label: ``(h, w)`` integer classes; ``fill`` marks unannotated pixels.
        shape: ``(H, W)`` of the output.

    Returns:
        ``(H, W)`` of the input's dtype.
    """
    if tuple(label.shape) == tuple(shape):
        return label.copy()
    classes = [int(c) for c in np.unique(label) if c != fill]
    if not classes:
        return np.full(shape, fill, label.dtype)
    one_hot = torch.from_numpy(np.stack([label == c for c in classes]).astype(np.float32))
    cover = F.adaptive_avg_pool2d(one_hot[None], shape)[0]  # (K, H, W): share of each class in the window
    best = cover.max(0)
    out = np.asarray(classes, label.dtype)[best.indices.numpy()]
    return np.where(best.values.numpy() > 0, out, np.asarray(fill, label.dtype))


def _window(x: np.ndarray | torch.Tensor, top: int, left: int, shape: tuple[int, int], fill: float):
    """``out[..., i, j] = x[..., top + i, left + j]`` where that lies in ``x``, else ``fill``; ``out`` is ``shape``."""
    h, w = x.shape[-2:]
    new = torch.full if isinstance(x, torch.Tensor) else np.full
    kwargs = {"device": x.device} if isinstance(x, torch.Tensor) else {}
    out = new((*x.shape[:-2], *shape), fill, dtype=x.dtype, **kwargs)
    y0, y1 = max(0, top), min(h, top + shape[0])
    x0, x1 = max(0, left), min(w, left + shape[1])
    if y0 < y1 and x0 < x1:
        out[..., y0 - top : y1 - top, x0 - left : x1 - left] = x[..., y0:y1, x0:x1]
    return out


def slice_geometry(
    height: int, width: int, size: int, spacing: Sequence[float] | None = None, spacing_mm: float = 0.0
) -> SliceGeometry:
    """The :class:`SliceGeometry` of an ``(height, width)`` slice of pixel ``spacing`` (mm) for ``size × size``.

    ``spacing_mm > 0`` resamples to that spacing (``spacing`` is then required); ``0`` keeps the native
    resolution, as the authors' code does (centre crop or pad only).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size: expected a positive int, got {size!r}")
    if not (spacing_mm >= 0 and math.isfinite(spacing_mm)):
        raise ConfigError(f"spacing_mm: must be a finite number >= 0, got {spacing_mm!r}")
    resampled = (height, width)
    if spacing_mm > 0:
        if spacing is None or len(spacing) < 2 or not all(math.isfinite(s) and s > 0 for s in spacing[:2]):
            raise DataError(f"spacing: need two positive in-plane voxel sizes to resample, got {spacing!r}")
        resampled = (max(1, round(height * spacing[0] / spacing_mm)), max(1, round(width * spacing[1] / spacing_mm)))
    return SliceGeometry(height, width, resampled, (resampled[0] - size) // 2, (resampled[1] - size) // 2, size)


def fit_slice(
    image: np.ndarray,
    size: int,
    labels: Sequence[np.ndarray] = (),
    label_fill: int = 0,
    spacing: Sequence[float] | None = None,
    spacing_mm: float = 0.0,
) -> tuple[np.ndarray, list[np.ndarray], SliceGeometry]:
    """Resample a slice to ``spacing_mm`` and take the centred ``size × size`` window (crop or pad).

    The image is resampled bilinearly (anti-aliased when shrinking) and padded with 0; labels are
    resampled by :func:`resample_labels` (strokes survive) and padded with ``label_fill``. Use
    ``label_fill=0`` for complete ground truth (padding is background) and ``UNANNOTATED`` for scribbles
    (padding is not annotated). The field of view is ``size × spacing_mm`` mm, whatever the scanner's.

    Args:
        image: ``(C, h, w)``.
        size: network input side ``S``.
        labels: ``(h, w)`` integer maps fitted with the same geometry.
        spacing: the slice's in-plane voxel size ``(mm, mm)`` along ``(h, w)``.
        spacing_mm: target pixel size; ``0`` keeps the native resolution.

    Returns:
        ``(C, S, S)`` float32 image, the ``(S, S)`` labels (input dtype), and the :class:`SliceGeometry`.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise DataError(f"image: expected shape (C, h, w), got {image.shape}")
    h, w = image.shape[1:]
    for label in labels:
        if label.shape != (h, w):
            raise DataError(f"labels: shape {label.shape} does not match the image slice {(h, w)}")
    geometry = slice_geometry(h, w, size, spacing, spacing_mm)
    resampled = _resize(torch.from_numpy(image), geometry.resampled).numpy()
    square = (size, size)
    fitted_image = _window(resampled, geometry.top, geometry.left, square, 0.0).astype(np.float32)
    fitted_labels = [
        _window(resample_labels(label, geometry.resampled, label_fill), geometry.top, geometry.left, square, label_fill)
        for label in labels
    ]
    return fitted_image, fitted_labels, geometry


def restore_probabilities(prob: torch.Tensor | np.ndarray, geometry: SliceGeometry) -> torch.Tensor | np.ndarray:
    """Invert :func:`fit_slice` on class probabilities: undo the crop/pad, resample back to ``(h, w)``.

    What the window cropped away gets probability 0 for every class, so its argmax is background (class 0).

    Args:
        prob: ``(..., S, S)``, e.g. ``(K, S, S)`` or ``(B, K, S, S)``; a tensor or an array.

    Returns:
        ``(..., h, w)`` of the same kind (tensor stays on its device; arrays come back float32).
    """
    if tuple(prob.shape[-2:]) != (geometry.size, geometry.size):
        raise DataError(f"prob: expected trailing dims {(geometry.size, geometry.size)}, got {tuple(prob.shape)}")
    as_tensor = torch.as_tensor(prob).float()
    resampled = _window(as_tensor, -geometry.top, -geometry.left, geometry.resampled, 0.0)
    out = _resize(resampled, (geometry.height, geometry.width))
    return out if isinstance(prob, torch.Tensor) else out.numpy()


def annotated_slices(case: Any) -> np.ndarray:
    """Indices of the Z slices holding any foreground in the ground truth (or, without one, the scribbles)."""
    labels = case.label if case.label is not None else case.scribble
    if labels is None:
        return np.arange(case.image.shape[-1])
    foreground = (labels > 0) & (labels != UNANNOTATED)
    return np.flatnonzero(foreground.any(axis=(0, 1)))


def middle_slice(case: Any) -> int:
    """The middle of the annotated slices (the middle of the volume if nothing is annotated)."""
    z = annotated_slices(case)
    return int(z[len(z) // 2]) if len(z) else case.image.shape[-1] // 2


def heart_window(case: Any, margin: float = 0.5) -> tuple[slice, slice]:
    """An in-plane ``(X, Y)`` window around every annotated voxel of ``case``, for zooming in on the heart.

    The box of the ground-truth foreground (or, without ground truth, of all scribbled voxels) is made
    square and widened by ``margin`` times its side on each side, then clipped to the image. Without any
    annotation the window is the whole slice.
    """
    labels = case.label if case.label is not None else case.scribble
    if labels is None:
        return slice(None), slice(None)
    marked = labels > 0 if case.label is not None else labels != UNANNOTATED
    xs, ys = np.flatnonzero(marked.any(axis=(1, 2))), np.flatnonzero(marked.any(axis=(0, 2)))
    if not len(xs):
        return slice(None), slice(None)
    half = (1 + 2 * margin) * max(xs[-1] - xs[0], ys[-1] - ys[0], 1) / 2
    window = []
    for lo, hi, size in ((xs[0], xs[-1], marked.shape[0]), (ys[0], ys[-1], marked.shape[1])):
        centre = (lo + hi) / 2
        window.append(slice(max(0, int(centre - half)), min(size, int(np.ceil(centre + half)) + 1)))
    return window[0], window[1]

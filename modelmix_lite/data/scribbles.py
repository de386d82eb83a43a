"""Synthetic scribbles drawn from a ground truth, and scribble coverage statistics.

A scribble annotator draws, on every slice that shows the heart, one thin stroke inside each structure
and one background stroke around the heart. :func:`synthesize_scribbles` imitates that from a
canonical ground truth alone, so it works for the phantom and for any real labels:

* thin structures (myocardium ring, RV crescent, pathology bands) get a stroke along their medial
  axis (skeleton); blob-like ones (LV cavity) a closed curve at a fraction of their depth;
* each stroke is cut to a partial arc (sometimes broken once) and drawn 1-3 px wide, sized so that it
  covers a random target fraction of the structure (measured on real ACDC scribbles: 6-18 %);
* the background stroke runs at a few pixels' distance around all foreground (about 0.5 % of background).

Every stroke is intersected with its structure, so a scribble never marks a pixel with a wrong class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.morphology import skeletonize

from ..errors import ConfigError, DataError
from .tasks import UNANNOTATED, TaskSpec, get_task

_PEN = {  # stroke width in px -> footprint that widens a 1-px curve to it
    1: np.ones((1, 1), bool),
    2: np.ones((2, 2), bool),
    3: ndimage.generate_binary_structure(2, 1),
}
_BACKGROUND_BUDGET = 0.015
"""At most about this fraction of a slice's background is scribbled (real ACDC: ~0.6 %, always < 3 %)."""
_BLOB = 12.0
"""A component with ``area / depth**2`` below this is blob-like (a disk scores pi, a ring far more)."""


def synthesize_scribbles(
    label: np.ndarray,
    task: TaskSpec | str,
    rng: np.random.Generator,
    target: tuple[float, float] = (0.07, 0.16),
    margin: tuple[int, int] = (3, 8),
) -> np.ndarray:
    """Draw synthetic scribbles for a canonical ground truth.

    Args:
        label: canonical ground truth ``(X, Y, Z)``, values ``0 .. task.n_classes - 1``; slices along Z.
        task: the task (or its name) the classes belong to.
        rng: the only source of randomness.
        target: range of the fraction of each structure (per connected component and slice) to scribble.
        margin: range, in px, of the background stroke's distance from the foreground.

    Returns:
        canonical scribble ``(X, Y, Z)`` ``uint8``: class indices on strokes, ``UNANNOTATED`` elsewhere.
        Slices without foreground stay unannotated.

    Raises:
        DataError: ``label`` is not a 3-D integer volume of the task's classes, has no foreground, or
            no slice could be scribbled.
        ConfigError: ``target`` or ``margin`` is not an increasing range of valid values.
    """
    spec = get_task(task) if isinstance(task, str) else task
    label = _check_label(label, spec.n_classes)
    if not 0 < target[0] <= target[1] <= 1:
        raise ConfigError(f"target: expected 0 < low <= high <= 1, got {target}")
    if not 1 <= margin[0] <= margin[1]:
        raise ConfigError(f"margin: expected 1 <= low <= high pixels, got {margin}")
    if not label.any():
        raise DataError("label: the volume has no foreground, so there is nothing to scribble")
    scribble = np.full(label.shape, UNANNOTATED, dtype=np.uint8)
    for z in range(label.shape[2]):
        if label[..., z].any():
            scribble[..., z] = _slice_scribble(label[..., z], rng, target, margin)
    if np.all(scribble == UNANNOTATED):
        raise DataError("label: no slice could be scribbled (foreground only in specks and no room around it)")
    return scribble


def scribble_coverage(scribble: np.ndarray, label: np.ndarray, n_classes: int) -> dict[int | str, float]:
    """Fraction of each class's ground-truth pixels that carry a scribble of that class.

    Args:
        scribble: canonical scribble (``UNANNOTATED`` where unannotated), any shape.
        label: canonical ground truth of the same shape.
        n_classes: number of classes.

    Returns:
        ``{c: scribbled pixels of class c / ground-truth pixels of class c}`` for ``c < n_classes``
        (NaN for a class absent from ``label``), and ``"all"``: annotated pixels / all pixels.

    Raises:
        DataError: the shapes differ.
    """
    scribble, label = np.asarray(scribble), np.asarray(label)
    if scribble.shape != label.shape:
        raise DataError(f"scribble: shape {scribble.shape} differs from the label's {label.shape}")
    coverage: dict[int | str, float] = {}
    for c in range(n_classes):
        n = np.count_nonzero(label == c)
        coverage[c] = float(np.count_nonzero((label == c) & (scribble == c)) / n) if n else float("nan")
    coverage["all"] = float(np.count_nonzero(scribble != UNANNOTATED) / scribble.size)
    return coverage


def _check_label(label: np.ndarray, n_classes: int) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 3:
        raise DataError(f"label: expected a 3-D (X, Y, Z) volume, got shape {label.shape}")
    if label.dtype.kind not in "iub":
        raise DataError(f"label: expected integer class indices, got dtype {label.dtype}")
    bad = np.unique(label[(label < 0) | (label >= n_classes)])
    if bad.size:
        raise DataError(f"label: values {bad.tolist()} are not classes 0..{n_classes - 1}")
    return label.astype(np.uint8)


def _slice_scribble(
    label: np.ndarray, rng: np.random.Generator, target: tuple[float, float], margin: tuple[int, int]
) -> np.ndarray:
    """Scribble one 2-D slice ``(X, Y)`` that has foreground."""
    out = np.full(label.shape, UNANNOTATED, dtype=np.uint8)
    for c in np.unique(label[label > 0]):
        components, _ = ndimage.label(label == c)
        for k, box in enumerate(ndimage.find_objects(components), 1):  # work in each component's box (speed)
            box = _grow(box, 1, label.shape)
            mask = components[box] == k
            if mask.sum() * target[1] >= 1:  # specks where one pixel would exceed the target stay unannotated
                out[box][_stroke(mask, rng, rng.uniform(*target))] = c
    box = _grow(ndimage.find_objects((label > 0).astype(np.uint8))[0], margin[1] + 2, label.shape)
    budget = _BACKGROUND_BUDGET * np.count_nonzero(label == 0)
    out[box][_background_stroke(label[box] > 0, rng, margin, budget)] = 0
    return out


def _grow(box: tuple[slice, ...], pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A bounding box widened by ``pad`` pixels, clipped to ``shape``."""
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape))


def _stroke(mask: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """A thin partial stroke inside ``mask`` covering about ``fraction`` of it."""
    depth = ndimage.distance_transform_edt(mask)
    if mask.sum() < _BLOB * depth.max() ** 2:  # blob: a closed curve part-way in
        inner = depth >= max(1.0, rng.uniform(0.4, 0.6) * depth.max())
        curve = inner & ~ndimage.binary_erosion(inner)
    else:  # thin structure: its medial axis
        curve = skeletonize(mask)
    widths = range(1, int(np.clip(depth.max(), 1, 3)) + 1)  # a pen no wider than the structure's half-width
    width = next((w for w in widths if _widen(curve, mask, w).sum() >= fraction * mask.sum()), widths[-1])
    per_px = _widen(curve, mask, width).sum() / curve.sum()
    keep = min(1.0, fraction * mask.sum() / (per_px * curve.sum()))
    return _widen(_partial_arc(curve, keep, rng), mask, width)


def _background_stroke(
    foreground: np.ndarray, rng: np.random.Generator, margin: tuple[int, int], budget: float
) -> np.ndarray:
    """A partial ring of background at ``margin`` px around all foreground, of at most about ``budget`` px.

    The stroke keeps at least 1 px of background between itself and the foreground (empty if none fits).
    """
    distance = ndimage.distance_transform_edt(~foreground)
    for d in range(int(rng.integers(margin[0], margin[1] + 1)), 1, -1):
        near = distance < d
        ring = ~near & ndimage.binary_dilation(near)
        if ring.any():
            width = 1 + int(rng.integers(2))
            keep = min(rng.uniform(0.5, 0.9), budget / (width * ring.sum()))
            return _widen(_partial_arc(ring, keep, rng), distance >= 2, width)
    return np.zeros_like(foreground)


def _partial_arc(curve: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Keep a contiguous angular run of ``keep`` of the curve's pixels, sometimes with one gap."""
    x, y = np.nonzero(curve)
    order = np.argsort(np.arctan2(y - y.mean(), x - x.mean()))
    n_keep = max(1, int(round(keep * x.size)))
    run = (int(rng.integers(x.size)) + np.arange(n_keep)) % x.size
    if n_keep >= 20 and rng.random() < 0.5:  # a break in the stroke
        gap = int(rng.integers(n_keep // 4, 3 * n_keep // 4))
        run = np.delete(run, np.arange(gap, gap + max(2, n_keep // 12)))
    arc = np.zeros_like(curve)
    arc[x[order[run]], y[order[run]]] = True
    return arc


def _widen(curve: np.ndarray, inside: np.ndarray, width: int) -> np.ndarray:
    """Draw ``curve`` with a pen ``width`` px wide, clipped to ``inside``."""
    return ndimage.binary_dilation(curve, _PEN[width]) & inside


def scribble_stats_frame(cases: Iterable[Any]) -> pd.DataFrame:
    """Scribble coverage of every class of every case: columns ``task, case, class, coverage`` (a fraction).

    Raises:
        DataError: when a case lacks its ground truth or its scribble (coverage needs both).
    """
    rows = []
    for case in cases:
        spec = get_task(case.task)
        if case.label is None or case.scribble is None:
            missing = "ground truth" if case.label is None else "scribble"
            raise DataError(f"{case.task}/{case.subject}: no {missing}, so no scribble coverage")
        coverage = scribble_coverage(case.scribble, case.label, spec.n_classes)
        for c, name in enumerate(spec.classes):
            rows.append({"task": spec.name, "case": case.subject, "class": name, "coverage": coverage[c]})
    return pd.DataFrame(rows, columns=["task", "case", "class", "coverage"])

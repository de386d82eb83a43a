"""3-D evaluation metrics per volume and per structure: Dice, Hausdorff distance and HD95 in mm.

Conventions follow the released evaluation script (``inference.py``, which wraps medpy):
Dice is computed per 3-D volume and per structure, and tables report mean ± std over volumes
(pandas' sample std, ``ddof=1``), with "Avg" pooled over every (volume, structure) pair.
The released code never computes HD; ours is medpy's ``hd`` / ``hd95`` (surface voxels,
face connectivity, both directions pooled) in millimetres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from .data.tasks import TaskSpec, get_task
from .errors import ConfigError, DataError

METRICS: tuple[str, ...] = ("dice", "hd", "hd95")
"""The per-structure metrics of :func:`evaluate_volume`, in table order."""


def _check_masks(pred: np.ndarray, gt: np.ndarray) -> None:
    """Raise :class:`DataError` unless ``pred`` and ``gt`` are boolean arrays of one shape."""
    for name, mask in (("pred", pred), ("gt", gt)):
        if np.asarray(mask).dtype != bool:
            raise DataError(f"{name}: expected a boolean mask, got dtype {np.asarray(mask).dtype}")
    if pred.shape != gt.shape:
        raise DataError(f"pred/gt: shapes differ, {pred.shape} vs {gt.shape}")


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice overlap ``2|P∩G| / (|P| + |G|)`` of two boolean volumes.

    Empty conventions (as the released evaluation applies around medpy's ``dc``):
    both empty → 1.0, exactly one empty → 0.0.
    """
    _check_masks(pred, gt)
    n_pred, n_gt = int(pred.sum()), int(gt.sum())
    if n_pred + n_gt == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / (n_pred + n_gt)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: the mask minus its erosion by the face-connected structuring element."""
    footprint = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=footprint)


def surface_distances(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Pooled symmetric surface distances in mm (medpy's ``__surface_distances`` both ways).

    Every surface voxel of ``pred`` contributes its distance to the nearest surface voxel of ``gt``
    and vice versa. Empty conventions are encoded so that any percentile follows them:
    both empty → ``[0.0]``; exactly one empty → ``[nan]``.

    Args:
        pred, gt: boolean volumes of one shape, e.g. ``(X, Y, Z)``.
        spacing: voxel size in mm along each axis.
    """
    _check_masks(pred, gt)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise DataError(f"spacing: expected {pred.ndim} positive finite values, got {spacing}")
    if not pred.any() and not gt.any():
        return np.zeros(1)
    if not pred.any() or not gt.any():
        return np.full(1, np.nan)
    pred_surface, gt_surface = _surface(pred), _surface(gt)
    to_gt = ndimage.distance_transform_edt(~gt_surface, sampling=spacing)[pred_surface]
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)[gt_surface]
    return np.concatenate([to_gt, to_pred])


def _percentile(distances: np.ndarray, percentile: float) -> float:
    if not 0.0 <= percentile <= 100.0:
        raise ConfigError(f"percentile: must lie in [0, 100], got {percentile}")
    return float(np.percentile(distances, percentile))


def hausdorff(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], percentile: float = 100.0
) -> float:
    """Symmetric Hausdorff distance in mm; ``percentile=95`` gives HD95.

    HD is the largest pooled surface distance (:func:`surface_distances`); HD95 is the 95th
    percentile of the distances of both directions pooled, as medpy's ``hd95``.
    Both masks empty → 0.0; exactly one empty → NaN (tables report NaN-aware means and counts).
    """
    return _percentile(surface_distances(pred, gt, spacing), percentile)


def structure_mask(label: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of the union of ``classes`` in a canonical label volume (e.g. Edema = edema ∪ scar)."""
    return np.isin(label, classes)


UNDEFINED_HD: tuple[str, ...] = ("nan", "diagonal")
"""What HD and HD95 are when exactly one side is empty: ``"nan"`` (undefined: left out of the means, and the
tables show over how many volumes each HD is) or ``"diagonal"`` (the usual penalty: the diagonal of the volume
in mm, :func:`volume_diagonal_mm`)."""


def volume_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The diagonal of a volume of ``shape`` voxels of ``spacing`` mm: the largest distance two voxels can have."""
    return float(np.linalg.norm(np.asarray(shape, dtype=float) * np.asarray(spacing, dtype=float)))


def evaluate_volume(
    pred: np.ndarray, gt: np.ndarray, task: TaskSpec | str, spacing: Sequence[float], undefined_hd: str = "nan"
) -> dict[str, dict[str, float]]:
    """Dice, HD and HD95 of every evaluation structure of ``task``.

    Args:
        pred, gt: canonical label volumes ``(X, Y, Z)`` with values in ``0 .. n_classes-1``.
        task: the task (or its name) whose ``structures`` are evaluated, in table order.
        spacing: voxel size in mm.
        undefined_hd: HD/HD95 where exactly one of prediction and ground truth is empty (:data:`UNDEFINED_HD`).

    Returns:
        ``{structure: {"dice": ..., "hd": ..., "hd95": ...}}``.
    """
    if undefined_hd not in UNDEFINED_HD:
        raise ConfigError(f"undefined_hd: {undefined_hd!r} is not one of {', '.join(UNDEFINED_HD)}")
    spec = get_task(task)
    if pred.shape != gt.shape:
        raise DataError(f"pred/gt: shapes differ, {pred.shape} vs {gt.shape}")
    for name, volume in (("pred", pred), ("gt", gt)):
        values = np.unique(volume)
        if values.size and (values.min() < 0 or values.max() >= spec.n_classes):
            raise DataError(
                f"{name}: label values {values.tolist()} outside 0..{spec.n_classes - 1} of task {spec.name}"
            )
    results = {}
    for structure, classes in spec.structures.items():
        p, g = structure_mask(pred, classes), structure_mask(gt, classes)
        distances = surface_distances(p, g, spacing)
        if undefined_hd == "diagonal" and np.isnan(distances).any():
            distances = np.full(1, volume_diagonal_mm(pred.shape, spacing))
        results[structure] = {
            "dice": dice(p, g),
            "hd": _percentile(distances, 100.0),
            "hd95": _percentile(distances, 95.0),
        }
    return results


def _mean_std(values: pd.DataFrame) -> dict[str, float]:
    """NaN-aware mean, sample std and count of each metric column."""
    out: dict[str, float] = {}
    for metric in METRICS:
        column = values[metric].astype(float)
        out[f"{metric}_mean"] = column.mean()
        out[f"{metric}_std"] = column.std(ddof=1)
        out[f"{metric}_n"] = int(column.notna().sum())
    return out


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over volumes per structure, plus "Avg", in the layout of the paper's tables.

    Args:
        rows: one row per (case, structure) with columns ``case, structure, dice, hd, hd95``;
            any other column (``method``, ``task``, ...) is a key that is grouped by.

    Returns:
        One row per (keys..., structure) with ``{metric}_mean``, ``{metric}_std`` (sample std,
        ``ddof=1``, NaN for one volume) and ``{metric}_n`` (number of non-NaN values). Structures keep
        their order of first appearance and "Avg" pools every (case, structure) row of the group,
        as the released script's ``df['dice'].mean(), df['dice'].std()`` (the tables' Avg column).
    """
    missing = [c for c in ("case", "structure", *METRICS) if c not in rows.columns]
    if missing:
        raise DataError(f"rows: missing columns {missing}")
    keys = [c for c in rows.columns if c not in ("case", "structure", *METRICS)]
    duplicated = rows.duplicated([*keys, "case", "structure"])
    if duplicated.any():
        raise DataError(f"rows: repeated (keys, case, structure) rows, e.g. {rows[duplicated].iloc[0].to_dict()}")
    groups = rows.groupby(keys, sort=False) if keys else [((), rows)]
    out = []
    for key, group in groups:
        key_values = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for structure, part in group.groupby("structure", sort=False):
            out.append({**key_values, "structure": structure, **_mean_std(part)})
        out.append({**key_values, "structure": "Avg", **_mean_std(group)})
    return pd.DataFrame(out)


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """Format like the paper's tables: ``format_mean_std(0.805, 0.181) == ".805±.181"``.

    A leading zero is dropped (``0.805`` → ``.805``); HD in mm uses ``digits=2`` (``78.05±16.11``).
    A NaN std (a single value) prints as ``±—``, a NaN mean (no value) as ``—``.
    """

    def number(x: float) -> str:
        if math.isnan(x):
            return "—"
        text = f"{x:.{digits}f}"
        return text.replace("0.", ".", 1) if text.lstrip("-").startswith("0.") else text

    return "—" if math.isnan(mean) else f"{number(mean)}±{number(std)}"


def format_distance(mean: float, std: float, n: int, total: int, digits: int = 2) -> str:
    """An HD cell: :func:`format_mean_std`, followed by ``(n/total)`` when the mean is over ``n`` of ``total``
    volumes (HD is undefined where exactly one side is empty), e.g. ``"12.30±4.50 (7/10)"``."""
    cell = format_mean_std(mean, std, digits)
    return cell if n == total else f"{cell} ({n}/{total})"


def largest_connected_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected component of a boolean mask (full connectivity); empty stays empty."""
    if np.asarray(mask).dtype != bool:
        raise DataError(f"mask: expected a boolean mask, got dtype {np.asarray(mask).dtype}")
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(components.ravel())[1:]
    return components == 1 + int(np.argmax(sizes))


def errors_by_distance(
    pred: np.ndarray, gt: np.ndarray, task: TaskSpec | str, spacing: Sequence[float], distance_mm: float = 20.0
) -> dict[str, dict[str, float]]:
    """Where a prediction's errors lie: far from the heart, or at it (a diagnostic, not a paper metric).

    "Near" is every voxel within ``distance_mm`` (3-D, in mm) of the ground truth's foreground, all classes
    together: the heart and a margin around it. A scribble-supervised model that has learned the heart but not
    the rest of the image (which no scribble may cover) predicts structures far from it; such predictions cost
    Dice, yet they say nothing about how well the heart itself is segmented.

    Args:
        pred, gt: canonical label volumes ``(X, Y, Z)`` of ``task``.
        spacing: voxel size in mm.

    Returns:
        ``{structure: {"remote": share of the structure's predicted voxels that are not near (NaN when it
        predicts none), "dice_near": Dice of the prediction cut to the near region}}``.

    Raises:
        DataError: shapes differ, or ``gt`` has no foreground (nothing to measure the distance to).
        ConfigError: ``distance_mm`` is negative.
    """
    spec = get_task(task)
    if pred.shape != gt.shape:
        raise DataError(f"pred/gt: shapes differ, {pred.shape} vs {gt.shape}")
    if distance_mm < 0:
        raise ConfigError(f"distance_mm: must be >= 0, got {distance_mm}")
    if not np.any(gt > 0):
        raise DataError("gt: no foreground, so no distance to the heart")
    near = ndimage.distance_transform_edt(gt == 0, sampling=spacing) <= distance_mm
    out = {}
    for structure, classes in spec.structures.items():
        p, g = structure_mask(pred, classes), structure_mask(gt, classes)
        predicted = np.count_nonzero(p)
        remote = np.count_nonzero(p & ~near) / predicted if predicted else float("nan")
        out[structure] = {"remote": remote, "dice_near": dice(p & near, g)}
    return out

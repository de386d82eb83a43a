"""Read cases: images stacked as channels, labels and scribbles mapped to the canonical encoding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from .layout import CaseFiles, list_cases
from .nifti import NiftiVolume, load_nifti
from .tasks import UNANNOTATED, get_task, map_labels

UNIT_SPACING = (1.0, 1.0, 1.0)
"""Header spacing of files that lost it (released MyoPS GT/scribbles); such files are checked on shape only."""
SPACING_RTOL = 1e-3
DIRECTION_ATOL = 1e-3
"""Largest difference between the unit direction vectors of two files' affines on one grid."""
ORIGIN_ATOL_MM = 0.1
"""Largest distance (mm, per axis) between the origins of two files' affines on one grid."""


def _carries_orientation(affine: np.ndarray) -> bool:
    """Whether an affine says anything about orientation and position (a scaling with origin 0 does not: the
    header lost them, as one released MSCMRseg label did)."""
    linear = affine[:3, :3]
    return not (np.allclose(linear, np.diag(np.diag(linear))) and np.allclose(affine[:3, 3], 0))


@dataclass
class Case:
    """One loaded case.

    Attributes:
        image: ``(C, X, Y, Z)`` float32, channels in ``TaskSpec.sequences`` order.
        spacing: voxel size in mm, from the (first) image header.
        affine: ``(4, 4)`` voxel-to-world of the (first) image.
        label: ``(X, Y, Z)`` uint8 canonical ground truth, or ``None``.
        scribble: ``(X, Y, Z)`` uint8 canonical scribble (``UNANNOTATED`` elsewhere), or ``None``.
        files: the files it was read from.
    """

    task: str
    subject: str
    split: str
    image: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    label: np.ndarray | None
    scribble: np.ndarray | None
    files: CaseFiles


def check_same_grid(reference: NiftiVolume, other: NiftiVolume) -> None:
    """Raise if ``other`` does not share ``reference``'s shape, its spacing (unless it is ``(1, 1, 1)``) or its
    orientation and origin (unless ``other``'s header carries none: :func:`_carries_orientation`).

    Raises:
        DataError: naming both files.
    """
    if other.array.shape != reference.array.shape:
        raise DataError(
            f"{other.path}: shape {other.array.shape} differs from {reference.path} shape {reference.array.shape}"
        )
    unit = np.allclose(other.spacing, UNIT_SPACING, rtol=0, atol=1e-6)
    if not unit and not np.allclose(other.spacing, reference.spacing, rtol=SPACING_RTOL, atol=0):
        raise DataError(
            f"{other.path}: spacing {other.spacing} differs from {reference.path} spacing {reference.spacing}"
        )
    if not unit and _carries_orientation(other.affine) and _carries_orientation(reference.affine):
        directions = [a[:3, :3] / np.linalg.norm(a[:3, :3], axis=0) for a in (reference.affine, other.affine)]
        if np.abs(directions[0] - directions[1]).max() > DIRECTION_ATOL:
            raise DataError(f"{other.path}: orientation differs from {reference.path} (direction cosines "
                            f"{np.round(directions[1], 3).tolist()} vs {np.round(directions[0], 3).tolist()})")
        shift = np.abs(other.affine[:3, 3] - reference.affine[:3, 3]).max()
        if shift > ORIGIN_ATOL_MM:
            origins = [np.round(a[:3, 3], 2).tolist() for a in (other.affine, reference.affine)]
            raise DataError(f"{other.path}: origin differs from {reference.path} by {shift:.2f} mm "
                            f"({origins[0]} vs {origins[1]})")


def _load_mapped(path: Path | None, reference: NiftiVolume, mapping: dict[int, int]) -> np.ndarray | None:
    if path is None:
        return None
    volume = load_nifti(path)
    check_same_grid(reference, volume)
    return map_labels(volume.array, mapping, path)


def load_case(files: CaseFiles) -> Case:
    """Load and validate one case.

    Spacing and affine come from the first image. Sequences must share a shape (and spacing);
    label and scribble must match the image shape, and its spacing unless theirs is ``(1, 1, 1)``.

    Raises:
        DataError: on any unreadable file, mismatch, unknown label value or empty scribble.
    """
    spec = get_task(files.task)
    volumes = [load_nifti(path) for path in files.images]
    for volume in volumes[1:]:
        check_same_grid(volumes[0], volume)
    label = _load_mapped(files.label, volumes[0], spec.gt_map)
    scribble = _load_mapped(files.scribble, volumes[0], spec.scribble_map)
    if scribble is not None and np.all(scribble == UNANNOTATED):
        raise DataError(f"{files.scribble}: scribble volume has no annotated voxel")
    return Case(
        task=files.task,
        subject=files.subject,
        split=files.split,
        image=np.stack([v.array.astype(np.float32) for v in volumes]),
        spacing=volumes[0].spacing,
        affine=volumes[0].affine,
        label=label,
        scribble=scribble,
        files=files,
    )


def load_split(task: str, root: str | Path, split: str, progress: bool = False) -> list[Case]:
    """Load every case of a split (see :func:`layout.list_cases` for pairing and its errors)."""
    files = list_cases(task, root, split)
    return [load_case(f) for f in tqdm(files, desc=f"{task} {split}", disable=not progress)]

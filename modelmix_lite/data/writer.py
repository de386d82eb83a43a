"""Writing cases in the official layouts: what the phantom uses to lay out a data root like the real releases.

:func:`write_case` saves one case's image(s), ground truth and scribble as NIfTI under the file names
:mod:`.layout` reads back, with the dataset's raw label values; :func:`write_index` writes MyoPS's split lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..files import write_text_atomic
from .layout import IMAGE_DTYPES, MYOPS_LISTS, MYOPS_TEST_CSV, SPLITS, check_split, expected_files, subject_pattern
from .nifti import load_nifti, save_nifti
from .tasks import UNANNOTATED, TaskSpec, get_task, unmap_labels


def _raw_scribble_lut(spec: TaskSpec) -> dict[int, int]:
    """Canonical scribble value -> raw value written (the first raw value listed for it)."""
    inverse: dict[int, int] = {}
    for raw, canonical in spec.scribble_map.items():
        inverse.setdefault(canonical, raw)
    return inverse


def _check_labels(values: np.ndarray, allowed: set[int], what: str, subject: str) -> None:
    found = set(np.unique(values).tolist())
    if not found <= allowed:
        raise DataError(f"{subject}: {what} has values {sorted(found - allowed)} outside {sorted(allowed)}")


def _to_raw_image(channel: np.ndarray, dtype: type, path: Path) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return channel.astype(dtype)
    info = np.iinfo(dtype)
    rounded = np.rint(channel)
    if rounded.min() < info.min or rounded.max() > info.max:
        raise DataError(
            f"{path}: image values [{channel.min():g}, {channel.max():g}] do not fit the stored {np.dtype(dtype)}"
        )
    return rounded.astype(dtype)


def write_case(
    task: str,
    root: str | Path,
    split: str,
    subject: str,
    image: np.ndarray,
    spacing: tuple[float, float, float],
    label: np.ndarray | None = None,
    scribble: np.ndarray | None = None,
    affine: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write one case in the official layout and raw encodings; the inverse of reading it.

    Images are stored per :data:`IMAGE_DTYPES` (integer types are rounded); ground truth via
    :func:`tasks.unmap_labels`; scribbles with ``UNANNOTATED`` as 4 (ACDC/MSCMR) or 0 (MyoPS, whose
    background scribble is 3000). MyoPS scribbles are written as released: float-stored, spacing
    ``(1, 1, 1)``. MyoPS val subjects go to ``train/``/``train_gd/`` like train subjects; their split
    comes from the list files (:func:`write_index`).

    Args:
        root: data root (or the dataset folder itself); folders are created.
        subject: case id, e.g. ``patient001_frame01``, ``subject13_DE``, ``myops_training_102``.
        image: ``(C, X, Y, Z)`` float, channels in ``TaskSpec.sequences`` order.
        spacing: voxel size in mm.
        label: ``(X, Y, Z)`` canonical uint8 ground truth.
        scribble: ``(X, Y, Z)`` canonical uint8, ``UNANNOTATED`` where unannotated.
        affine: ``(4, 4)``; default ``diag(*spacing, 1)``.

    Returns:
        the written paths, keyed by sequence name, ``"label"`` and ``"scribble"``.
    """
    spec = get_task(task)
    check_split(split)
    pattern = subject_pattern(spec, split)
    if not pattern.fullmatch(subject):
        raise DataError(f"{subject}: not a {spec.name} {split} subject id (expected like {pattern.pattern})")
    image = np.asarray(image)
    if image.ndim != 4 or image.shape[0] != spec.n_channels:
        raise DataError(f"{subject}: image must be (C={spec.n_channels}, X, Y, Z), got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise DataError(f"{subject}: image contains NaN or Inf values")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise DataError(f"{subject}: spacing must be 3 positive numbers, got {spacing}")
    for name, volume in (("label", label), ("scribble", scribble)):
        if volume is not None and np.shape(volume) != image.shape[1:]:
            raise DataError(f"{subject}: {name} shape {np.shape(volume)} differs from image shape {image.shape[1:]}")
    files = expected_files(spec, _dataset_dir_for_write(spec, root), split, subject)
    images = [_to_raw_image(c, IMAGE_DTYPES[seq], p) for seq, p, c in zip(spec.sequences, files.images, image)]
    if label is not None:
        _check_labels(label, set(range(spec.n_classes)), "label", subject)
    if scribble is not None:
        if files.scribble is None:
            raise DataError(f"{subject}: MyoPS test subjects have no scribble file in the layout")
        inverse = _raw_scribble_lut(spec)
        _check_labels(scribble, set(inverse), "scribble", subject)
        lut = np.zeros(UNANNOTATED + 1, dtype=np.int64)
        lut[list(inverse)] = list(inverse.values())
    written = {seq: save_nifti(p, raw, affine, spacing) for seq, p, raw in zip(spec.sequences, files.images, images)}
    if label is not None:
        dtype = np.uint8 if max(spec.gt_map) <= np.iinfo(np.uint8).max else np.uint16
        written["label"] = save_nifti(files.label, unmap_labels(label, spec), affine, spacing, dtype=dtype)
    if scribble is not None:
        raw = lut[np.asarray(scribble, dtype=np.uint8)]
        if spec.name == "myops":  # as released: float-stored, header spacing lost
            written["scribble"] = save_nifti(files.scribble, raw, np.eye(4), (1.0, 1.0, 1.0), dtype=np.float32)
        else:
            written["scribble"] = save_nifti(files.scribble, raw, affine, spacing, dtype=np.uint8)
    return written


def write_index(task: str, root: str | Path, splits: dict[str, list[str]]) -> None:
    """Write the MyoPS split lists for the written subjects; a no-op for ACDC and MSCMR.

    ``train20.txt``/``validation5.txt`` get one line ``subject subject_gd z`` per slice, and ``test.csv``
    one row ``subject,test,dx,dy,dz`` (the volume size), read from the written C0 headers.
    A split missing from ``splits`` gets an empty list.
    """
    spec = get_task(task)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ConfigError(f"splits: unknown split names {unknown}; expected {', '.join(SPLITS)}")
    if spec.name != "myops":
        return
    dataset = _dataset_dir_for_write(spec, root)

    def shape(split: str, subject: str) -> tuple[int, ...]:
        return load_nifti(expected_files(spec, dataset, split, subject).images[0]).array.shape

    for split, name in MYOPS_LISTS.items():
        lines = [f"{s} {s}_gd {z}\n" for s in splits.get(split, []) for z in range(shape(split, s)[2])]
        write_text_atomic(dataset / name, "".join(lines))
    rows = ["file_name,stage,dx,dy,dz\n"]
    rows += [f"{s},test,{','.join(map(str, shape('test', s)))}\n" for s in splits.get("test", [])]
    write_text_atomic(dataset / MYOPS_TEST_CSV, "".join(rows))


def _dataset_dir_for_write(spec: TaskSpec, root: str | Path) -> Path:
    root = Path(root)
    return root if root.name == spec.folder else root / spec.folder

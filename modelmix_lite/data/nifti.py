"""Load and save one NIfTI file, with the checks every reader needs.

Arrays keep the file's voxel order (no reorientation to a canonical frame): a volume is ``(X, Y, Z)``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError
from ..files import atomic_write

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class NiftiVolume:
    """One NIfTI volume as stored.

    Attributes:
        array: voxel values ``(X, Y, Z)`` in the stored dtype (scaled to float if the header has a slope).
        affine: voxel-to-world matrix ``(4, 4)``.
        spacing: header voxel sizes (the first three zooms), in mm.
        path: the file it came from.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    path: Path


def load_nifti(path: str | Path) -> NiftiVolume:
    """Read a 3-D NIfTI volume; a 4-D volume with a singleton last axis is squeezed to 3-D.

    Raises:
        DataError: the file is missing, unreadable or truncated, not 3-D, or holds NaN/Inf voxels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        image = nib.load(path)
        array = np.asanyarray(image.dataobj)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError) as err:
        raise DataError(f"{path}: unreadable or truncated NIfTI file ({err})") from err
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError(f"{path}: expected a 3-D volume, found shape {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise DataError(f"{path}: volume contains NaN or Inf voxels")
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    return NiftiVolume(array=array, affine=np.asarray(image.affine, dtype=np.float64), spacing=spacing, path=path)


def save_nifti(
    path: str | Path,
    array: np.ndarray,
    affine: np.ndarray | None = None,
    spacing: tuple[float, float, float] | None = None,
    dtype: np.dtype | type | None = None,
) -> Path:
    """Write ``array`` ``(X, Y, Z)`` atomically (temporary file, then ``os.replace``), creating folders.

    Args:
        path: target ending in ``.nii.gz`` or ``.nii``.
        array: voxel values; cast with ``astype(dtype)`` when ``dtype`` is given (round integers first).
        affine: voxel-to-world ``(4, 4)``; default ``diag(*spacing, 1)`` (identity without ``spacing``).
        spacing: header voxel sizes; when given they are written as the header zooms even if the
            affine says otherwise (this is how released files with spacing ``(1, 1, 1)`` look).
        dtype: stored data type; default the array's own.
    """
    path = Path(path)
    suffix = next((s for s in NIFTI_SUFFIXES if path.name.endswith(s)), None)
    if suffix is None:
        raise DataError(f"{path}: a NIfTI file name must end in .nii.gz or .nii")
    array = np.asarray(array if dtype is None else np.asarray(array).astype(dtype))
    if array.ndim != 3:
        raise DataError(f"{path}: expected a 3-D volume to save, got shape {array.shape}")
    if affine is None:
        affine = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
    image = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64), dtype=array.dtype)
    if spacing is not None:
        image.header.set_zooms(tuple(float(s) for s in spacing))
    with atomic_write(path, suffix=suffix) as tmp:
        nib.save(image, tmp)
    return path

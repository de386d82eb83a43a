"""The 2-D training data: intensity normalisation, fit-to-network-size and its inverse, the slice dataset.

Paper §3.1: slices are resized to ``256 × 256`` and "the intensity of each slice is scaled to a range
of 0-1". The authors' code instead centre-crops or pads at native resolution (reference notes §4). Here a
slice is resampled in-plane to a target spacing (``spacing_mm``, mm per pixel; ``0`` keeps the native
resolution, as the code does) and a centred ``size × size`` window is cut or padded from it, so the network
sees the same physical field of view (``size × spacing_mm`` mm) on every scanner. Scribbles are resampled
so that their thin strokes survive (:func:`resample_labels`); :func:`restore_probabilities` undoes
both steps, so predictions land on the original voxel grid.

Building a :class:`SliceDataset` decodes every NIfTI volume of a split; :func:`cached_slice_dataset`
keeps the result in a cache folder (:func:`default_cache_dir`), so only the first run on a split decodes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from ..files import atomic_write
from .geometry import SliceGeometry, fit_slice, restore_probabilities  # noqa: F401 (re-exported)
from .layout import CaseFiles
from .readers import load_case
from .tasks import UNANNOTATED, get_task

CACHE_ENV = "MODELMIX_LITE_CACHE"
"""Environment variable naming the slice cache folder (see :func:`default_cache_dir`)."""

TARGETS: tuple[str, ...] = ("scribble", "label", "none")
"""What :class:`SliceDataset` trains on: scribbles, full ground truth (FullSup) or nothing."""


class CaseLike(Protocol):
    """What the slice path needs from a ``readers.Case``."""

    task: str
    subject: str
    image: np.ndarray  # (C, X, Y, Z) float32
    spacing: tuple[float, float, float]  # voxel size in mm
    label: np.ndarray | None  # (X, Y, Z) uint8
    scribble: np.ndarray | None  # (X, Y, Z) uint8, UNANNOTATED where unannotated


def normalize_intensity(volume: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Robust per-channel clipping, then min-max scaling of every slice to ``[0, 1]``.

    Each channel is clipped at its ``low``/``high`` volume percentiles; each ``(X, Y)`` slice of each
    channel is then scaled to ``[0, 1]`` (paper §3.1). Constant slices become 0.

    Args:
        volume: ``(C, X, Y, Z)`` image.

    Returns:
        ``(C, X, Y, Z)`` float32 in ``[0, 1]``.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ConfigError(f"low/high: need 0 <= low < high <= 100, got low={low}, high={high}")
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 4:
        raise DataError(f"volume: expected shape (C, X, Y, Z), got {volume.shape}")
    if not np.all(np.isfinite(volume)):
        raise DataError("volume: contains NaN or Inf values")
    lo, hi = np.percentile(volume.reshape(volume.shape[0], -1), [low, high], axis=1)
    clipped = np.clip(volume, lo[:, None, None, None], hi[:, None, None, None])
    vmin = clipped.min(axis=(1, 2), keepdims=True)
    span = clipped.max(axis=(1, 2), keepdims=True) - vmin
    scaled = (clipped - vmin) / np.where(span > 0, span, 1.0)
    return np.where(span > 0, scaled, 0.0).astype(np.float32)


def few_scribble_split(subjects: Sequence[str], n_scribbled: int = 5, seed: int = 0) -> tuple[list[str], list[str]]:
    """Pick the scribble-annotated subjects; the rest of the training set is used unlabeled.

    Paper §3.1: "five randomly selected scribble-annotated volumes in conjunction with other unlabeled
    images from the training set". The input is sorted first, so the choice depends only on the set of
    subjects and the seed.

    Returns:
        ``(scribbled, unlabeled)``, both sorted.
    """
    ordered = sorted(subjects)
    if len(set(ordered)) != len(ordered):
        raise DataError(f"subjects: repeated subject names {sorted({s for s in ordered if ordered.count(s) > 1})}")
    if n_scribbled < 0 or n_scribbled > len(ordered):
        raise ConfigError(
            f"n_scribbled: need 0 <= n_scribbled <= {len(ordered)} (the number of subjects), got {n_scribbled}"
        )
    chosen = set(np.random.default_rng(seed).choice(len(ordered), size=n_scribbled, replace=False).tolist())
    scribbled = [s for i, s in enumerate(ordered) if i in chosen]
    unlabeled = [s for i, s in enumerate(ordered) if i not in chosen]
    return scribbled, unlabeled


def _volume_target(case: CaseLike, target: str, annotated: bool) -> tuple[np.ndarray, int]:
    """The ``(X, Y, Z)`` uint8 target of one case and the value that pads it."""
    shape = case.image.shape[1:]
    if target == "none" or not annotated:
        return np.full(shape, UNANNOTATED, np.uint8), UNANNOTATED
    volume = case.scribble if target == "scribble" else case.label
    if volume is None:
        raise DataError(f"{case.subject}: target={target!r} needs a {target} volume, but the case has none")
    if volume.shape != shape:
        raise DataError(f"{case.subject}: {target} shape {volume.shape} does not match the image {shape}")
    return np.asarray(volume, np.uint8), UNANNOTATED if target == "scribble" else 0


def _settings(
    task: str, subjects: Sequence[str], size: int, target: str, scribbled_subjects: Sequence[str] | None,
    low: float, high: float, spacing_mm: float,
) -> dict:
    """What a :class:`SliceDataset` is built from besides the volumes (its ``meta`` without ``shapes``)."""
    scribbled = subjects if scribbled_subjects is None else scribbled_subjects
    return {"task": task, "subjects": list(subjects), "size": size, "spacing_mm": float(spacing_mm),
            "target": target, "scribbled_subjects": sorted(set(scribbled)), "low": low, "high": high}


class SliceDataset(Dataset):
    """All Z-slices of a list of cases, normalised and fitted to ``size × size`` (:func:`fit_slice`) once, in memory.

    Attributes:
        images: ``(N, C, S, S)`` float32 in ``[0, 1]``.
        targets: ``(N, S, S)`` uint8 class indices, ``UNANNOTATED`` where unannotated (every pixel of
            a subject outside ``scribbled_subjects``, and everything when ``target="none"``).
        case_index, z: ``(N,)`` int64, the source of each slice (``subjects[case_index]``).
        annotated: ``(N,)`` bool, whether the slice has at least one annotated pixel. Slices without
            are kept: they feed the unsupervised terms.

    Items are ``{"image": (C, S, S) float32, "target": (S, S) int64, "case": int, "z": int,
    "annotated": bool}``.
    """

    def __init__(
        self,
        cases: Sequence[CaseLike],
        size: int = 256,
        target: str = "scribble",
        scribbled_subjects: Sequence[str] | None = None,
        low: float = 0.5,
        high: float = 99.5,
        spacing_mm: float = 0.0,
    ) -> None:
        """Build from loaded cases of one task.

        Args:
            cases: objects with ``task, subject, image (C, X, Y, Z), spacing, label, scribble``
                (``readers.Case``).
            size: network input side ``S``.
            spacing_mm: in-plane pixel size the slices are resampled to (``0``: native resolution).
            target: ``"scribble"``, ``"label"`` (full ground truth, FullSup) or ``"none"``.
            scribbled_subjects: subjects whose annotation is used (:func:`few_scribble_split`);
                ``None`` uses every case's.
            low, high: clipping percentiles of :func:`normalize_intensity`.
        """
        if target not in TARGETS:
            raise ConfigError(f"target: expected one of {TARGETS}, got {target!r}")
        if not cases:
            raise DataError("cases: empty list")
        subjects = [c.subject for c in cases]
        tasks = sorted({c.task for c in cases})
        if len(tasks) != 1:
            raise DataError(f"cases: mixed tasks {tasks}")
        if len(set(subjects)) != len(subjects):
            raise DataError(f"cases: repeated subjects {sorted({s for s in subjects if subjects.count(s) > 1})}")
        settings = _settings(tasks[0], subjects, size, target, scribbled_subjects, low, high, spacing_mm)
        annotated_subjects = set(settings["scribbled_subjects"])
        unknown = sorted(annotated_subjects - set(subjects))
        if unknown:
            raise ConfigError(f"scribbled_subjects: not among the cases: {unknown}")
        n_channels = get_task(tasks[0]).n_channels

        images, targets, case_index, zs = [], [], [], []
        for index, case in enumerate(cases):
            if case.image.ndim != 4 or case.image.shape[0] != n_channels:
                raise DataError(f"{case.subject}: expected image shape ({n_channels}, X, Y, Z), got {case.image.shape}")
            volume = normalize_intensity(case.image, low, high)
            labels, fill = _volume_target(case, target, case.subject in annotated_subjects)
            for z in range(volume.shape[-1]):
                image, (label,), _ = fit_slice(volume[..., z], size, [labels[..., z]], fill,
                                               getattr(case, "spacing", None), spacing_mm)
                images.append(image)
                targets.append(label)
                case_index.append(index)
                zs.append(z)
        self._set(
            images=np.stack(images),
            targets=np.stack(targets),
            case_index=np.asarray(case_index, np.int64),
            z=np.asarray(zs, np.int64),
            meta={**settings, "shapes": [list(c.image.shape) for c in cases]},
        )

    def _set(self, images: np.ndarray, targets: np.ndarray, case_index: np.ndarray, z: np.ndarray, meta: dict) -> None:
        self.images, self.targets, self.case_index, self.z, self.meta = images, targets, case_index, z, meta
        self.annotated = (targets != UNANNOTATED).any(axis=(1, 2))
        self.task: str = meta["task"]
        self.subjects: list[str] = meta["subjects"]
        self.size: int = meta["size"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": torch.from_numpy(self.images[i]),
            "target": torch.from_numpy(self.targets[i].astype(np.int64)),
            "case": int(self.case_index[i]),
            "z": int(self.z[i]),
            "annotated": bool(self.annotated[i]),
        }

    def fingerprint(self) -> str:
        """A hash of the task, subjects, volume shapes and settings: the cache key of this dataset."""
        text = json.dumps({"version": 2, **self.meta}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save_cache(self, path: str | Path) -> None:
        """Write the fitted arrays and settings to one uncompressed ``.npz`` file."""
        arrays = {"images": self.images, "targets": self.targets, "case_index": self.case_index, "z": self.z}
        with open(path, "wb") as f:  # a file object keeps np.savez from appending ".npz"
            np.savez(f, meta=np.array(json.dumps(self.meta)), **arrays)

    @classmethod
    def from_cache(cls, path: str | Path, fingerprint: str | None = None) -> SliceDataset:
        """Load a dataset written by :meth:`save_cache`; with ``fingerprint``, insist that it matches."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: slice cache not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in ("images", "targets", "case_index", "z")}
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{path}: not a readable slice cache ({err})") from None
        n_slices = sum(shape[-1] for shape in meta["shapes"])
        expected = (n_slices, meta["shapes"][0][0], meta["size"], meta["size"])
        if arrays["images"].shape != expected or len(arrays["targets"]) != n_slices:
            raise DataError(f"{path}: images {arrays['images'].shape} do not match the cached settings {expected}")
        dataset = cls.__new__(cls)
        dataset._set(meta=meta, **arrays)
        if fingerprint is not None and dataset.fingerprint() != fingerprint:
            raise DataError(f"{path}: slice cache has fingerprint {dataset.fingerprint()}, expected {fingerprint}")
        return dataset


def default_cache_dir() -> Path:
    """``$MODELMIX_LITE_CACHE`` if set, else ``$XDG_CACHE_HOME/modelmix_lite/slices`` (``~/.cache/...``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelmix_lite" / "slices"


def _source_key(files: Sequence[CaseFiles], settings: dict) -> str:
    """Hash of ``settings`` and each source file's subject, absolute path, size and modification time (no decoding)."""
    sources = [
        [f.subject, str(path.resolve()), (stat := path.stat()).st_size, stat.st_mtime_ns]
        for f in files
        for path in (*f.images, f.label, f.scribble)
        if path is not None
    ]
    text = json.dumps({"version": 2, **settings, "sources": sources}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_slice_dataset(
    files: Sequence[CaseFiles],
    cache_dir: str | Path | None = None,
    size: int = 256,
    target: str = "scribble",
    scribbled_subjects: Sequence[str] | None = None,
    low: float = 0.5,
    high: float = 99.5,
    spacing_mm: float = 0.0,
) -> SliceDataset:
    """The :class:`SliceDataset` of the cases ``files``, from ``cache_dir`` if it is there, else built and saved there.

    The cache file is ``cache_dir/{task}-{key}.npz``, ``key`` a hash of the settings and of every source
    file's subject, absolute path, size and modification time: finding it decodes no NIfTI, and a
    changed, moved, added or removed file or another setting gives another key, so a stale cache is
    never read. A file is written whole under a temporary name and then renamed (safe with several
    processes); if it cannot be written, a warning is issued and the dataset is used uncached. Entries
    are never deleted: remove the folder to reclaim the space.

    Args:
        files: the cases of one task (``layout.list_cases``), read with ``readers.load_case`` on a miss.
        cache_dir: the cache folder, created when needed (None: :func:`default_cache_dir`).
        size, target, scribbled_subjects, low, high, spacing_mm: as for :class:`SliceDataset`.

    Raises:
        DataError: no files, an unreadable cache file, or one whose settings differ from its key's.
    """
    if not files:
        raise DataError("files: no cases to build a slice dataset from")
    settings = _settings(files[0].task, [f.subject for f in files], size, target, scribbled_subjects, low, high,
                         spacing_mm)
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path = folder / f"{settings['task']}-{_source_key(files, settings)}.npz"
    if path.is_file():
        dataset = SliceDataset.from_cache(path)
        if {k: dataset.meta.get(k) for k in settings} != settings:
            raise DataError(f"{path}: slice cache holds other settings than its name says; delete it")
        return dataset
    dataset = SliceDataset([load_case(f) for f in files], size, target, scribbled_subjects, low, high, spacing_mm)
    try:
        with atomic_write(path) as tmp:
            dataset.save_cache(tmp)
    except OSError as err:
        warnings.warn(f"{path}: could not write the slice cache ({err}); continuing without it", stacklevel=2)
    return dataset

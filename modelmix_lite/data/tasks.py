"""The three segmentation tasks: their classes, sequences and raw-to-canonical label mappings.

This is the one place that says what a label value means. Every reader, the phantom, the scribble
code and the evaluation take their class lists and mappings from :data:`TASKS`.

Canonical encoding (what the library computes with):

* ground truth: ``uint8`` class indices ``0 .. n_classes-1``;
* scribbles: the same indices for annotated pixels and :data:`UNANNOTATED` (255) elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

UNANNOTATED: int = 255
"""Canonical value of an unannotated scribble pixel (the ``ignore_index`` of the losses)."""


@dataclass(frozen=True)
class TaskSpec:
    """What one dataset/task is.

    Attributes:
        name: short id used everywhere (``acdc``, ``mscmr``, ``myops``).
        title: display name.
        classes: canonical class names; the index is the class id.
        sequences: input MR sequences, in channel order.
        gt_map: raw ground-truth value -> canonical class.
        scribble_map: raw scribble value -> canonical class or :data:`UNANNOTATED`.
        structures: evaluation structure -> canonical classes whose union it is (paper table order).
        folder: the dataset's folder name under a data root.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    sequences: tuple[str, ...]
    gt_map: dict[int, int] = field(hash=False)
    scribble_map: dict[int, int] = field(hash=False)
    structures: dict[str, tuple[int, ...]] = field(hash=False)
    folder: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_channels(self) -> int:
        return len(self.sequences)


TASKS: dict[str, TaskSpec] = {
    "acdc": TaskSpec(
        name="acdc",
        title="ACDC (cine bSSFP)",
        classes=("background", "RV", "MYO", "LV"),
        sequences=("cine",),
        gt_map={0: 0, 1: 1, 2: 2, 3: 3},
        scribble_map={0: 0, 1: 1, 2: 2, 3: 3, 4: UNANNOTATED},
        structures={"LV": (3,), "MYO": (2,), "RV": (1,)},
        folder="ACDC_dataset",
    ),
    "mscmr": TaskSpec(
        name="mscmr",
        title="MSCMRseg (LGE)",
        classes=("background", "RV", "MYO", "LV"),
        sequences=("LGE",),
        # The released files are remapped to 0-3; the challenge's originals use 600/200/500.
        gt_map={0: 0, 1: 1, 2: 2, 3: 3, 600: 1, 200: 2, 500: 3},
        scribble_map={0: 0, 1: 1, 2: 2, 3: 3, 4: UNANNOTATED},
        structures={"LV": (3,), "MYO": (2,), "RV": (1,)},
        folder="MSCMR_dataset",
    ),
    "myops": TaskSpec(
        name="myops",
        title="MyoPS 2020 (bSSFP + LGE + T2)",
        # RV is not a MyoPS target: it is folded into background, as in the released code.
        classes=("background", "MYO", "LV", "edema", "scar"),
        sequences=("C0", "DE", "T2"),
        gt_map={0: 0, 600: 0, 200: 1, 500: 2, 1220: 3, 2221: 4},
        scribble_map={0: UNANNOTATED, 3000: 0, 600: 0, 200: 1, 500: 2, 1220: 3, 2221: 4},
        # Paper Table 3: Edema is evaluated as edema ∪ scar.
        structures={"Scar": (4,), "Edema": (3, 4)},
        folder="MyoPS",
    ),
}


def get_task(task: str | TaskSpec) -> TaskSpec:
    """Return the :class:`TaskSpec` called ``task`` (a spec passes through), or raise a
    :class:`ConfigError` listing the known tasks."""
    if isinstance(task, TaskSpec):
        return task
    try:
        return TASKS[task.lower()]
    except KeyError:
        raise ConfigError(f"task: unknown task {task!r}; known tasks: {', '.join(TASKS)}") from None


LABEL_TOLERANCE: float = 1e-3
"""How far a float-stored label may lie from an integer, relative to the largest raw label value of the task."""


def map_labels(raw: np.ndarray, mapping: dict[int, int], path: str | Path = "<array>") -> np.ndarray:
    """Map raw label values to canonical ``uint8`` values.

    Float-stored labels are rounded to the nearest integer when they lie within :data:`LABEL_TOLERANCE` of the
    label scale (the largest raw value) of it: ``499.977`` in some MyoPS files reads as ``500``, but ``1.5`` in
    an ACDC file is an error, never RV turned into MYO.

    Args:
        raw: label volume of any numeric dtype.
        mapping: raw value -> canonical value (a ``TaskSpec.gt_map`` or ``scribble_map``).
        path: the file the labels came from, named in errors.

    Raises:
        DataError: on NaN/Inf, a value further than the tolerance from an integer, or a value that is not in
            ``mapping`` (listing the values found).
    """
    raw = np.asarray(raw)
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)):
            raise DataError(f"{path}: label volume contains NaN or Inf values")
        rounded = np.rint(raw)
        tolerance = LABEL_TOLERANCE * max(1, max(abs(k) for k in mapping))
        off = np.abs(raw - rounded) > tolerance
        if off.any():
            examples = np.unique(raw[off])[:5].tolist()
            raise DataError(f"{path}: label values {examples} are not integers (more than {tolerance:g} from one); "
                            "a label file holds class values")
        raw = rounded
    values = np.unique(raw).astype(np.int64)
    unknown = [int(v) for v in values if int(v) not in mapping]
    if unknown:
        raise DataError(
            f"{path}: unknown label values {unknown}; expected a subset of {sorted(mapping)}"
        )
    lut_keys = np.array(sorted(mapping), dtype=np.int64)
    lut_vals = np.array([mapping[k] for k in lut_keys], dtype=np.uint8)
    return lut_vals[np.searchsorted(lut_keys, raw.astype(np.int64))]


def unmap_labels(canonical: np.ndarray, task: TaskSpec) -> np.ndarray:
    """Inverse of :func:`map_labels` for ground truth: canonical classes -> the dataset's raw values.

    Where several raw values map to one class, the first listed in ``task.gt_map`` wins
    (e.g. MSCMR writes 0-3, MyoPS writes 0/200/500/1220/2221).
    """
    canonical = np.asarray(canonical)
    if canonical.size and int(canonical.max()) >= task.n_classes:
        raise DataError(
            f"{task.name}: canonical labels must be < {task.n_classes}; found {int(canonical.max())}"
        )
    inverse: dict[int, int] = {}
    for raw, canon in task.gt_map.items():
        inverse.setdefault(canon, raw)
    lut = np.zeros(256, dtype=np.int32)
    for canon, raw in inverse.items():
        lut[canon] = raw
    return lut[canonical.astype(np.uint8)]

"""The label class ratio: the share of each class among a split's ground-truth voxels (the prior π that the
paper gives the PU baselines nnPU and CVIR, §3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .readers import Case
from .tasks import TaskSpec, get_task


def class_prior(cases: Sequence[Case], task: TaskSpec | str, split: str = "train") -> Tensor:
    """``(C,)`` float32: the share of each class among all voxels of the cases' ground truth.

    This is the "label class ratio" the paper gives nnPU and CVIR: the class prior π of the unlabeled pixels,
    taken from the ground truth of ``split`` (``TrainConfig.prior_split``; ``"val"`` where the training split
    has scribbles only). ShapePU is not given it: it estimates the ratio by EM
    (:func:`~modelmix_lite.baselines.em_class_prior`).

    Raises:
        DataError: no cases, or a case without ground truth.
    """
    spec = get_task(task)
    if not cases:
        raise DataError(f"{spec.name}: no {split} cases to compute the class ratio from")
    counts = np.zeros(spec.n_classes, dtype=np.int64)
    for case in cases:
        if case.label is None:
            hint = "; set prior_split=val to take it from the validation labels" if split == "train" else ""
            raise DataError(f"{case.subject}: no ground truth in the {split} split, and nnPU/CVIR need the class "
                            f"ratio of its labels{hint}")
        counts_case = np.bincount(case.label.ravel(), minlength=spec.n_classes)
        if len(counts_case) > spec.n_classes:
            raise DataError(f"{case.subject}: ground truth has class {len(counts_case) - 1}, not a {spec.name} class")
        counts += counts_case
    return torch.from_numpy(counts / counts.sum()).float()

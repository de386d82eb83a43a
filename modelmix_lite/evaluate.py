"""Whole-volume inference, per-case evaluation tables, case selection and prediction export.

Inference mirrors training's slice path (:mod:`modelmix_lite.data.slices`): every Z-slice is normalised,
centre-padded and resized to ``size × size``; the class probabilities are mapped back to the slice's own
grid before the argmax, so metrics are computed on the original voxels (as the released ``inference.py``
does, with its per-slice zoom in place of our pad-and-resize).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .data.nifti import save_nifti
from .data.readers import Case
from .data.slices import fit_slice, normalize_intensity, restore_probabilities
from .data.tasks import TaskSpec, get_task, unmap_labels
from .errors import ConfigError, DataError
from .metrics import evaluate_volume, largest_connected_component
from .models import as_model_input


def _keep_largest_components(pred: np.ndarray) -> np.ndarray:
    """Keep the largest connected component of every foreground class; the rest becomes background."""
    out = np.zeros_like(pred)
    for c in np.unique(pred[pred > 0]):
        out[largest_connected_component(pred == c)] = c
    return out


def predict_volume(
    model: nn.Module,
    case: Case,
    size: int = 256,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    largest_cc: bool = False,
) -> np.ndarray:
    """Segment a whole volume slice by slice.

    Each slice of ``normalize_intensity(case.image)`` goes through :func:`fit_slice`,
    :func:`as_model_input` and the model (eval mode, ``torch.inference_mode``); the softmax is mapped
    back with :func:`restore_probabilities` and the argmax taken on the original grid. The model must
    already be on ``device``; its train/eval mode is restored afterwards.

    Args:
        model: returns logits ``(B, K, S, S)`` for ``(B, 3, S, S)``.
        case: ``image`` ``(C, X, Y, Z)``.
        largest_cc: keep only the largest connected component of each foreground class.

    Returns:
        ``(X, Y, Z)`` uint8 canonical labels.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive int, got {batch_size!r}")
    if case.image.ndim != 4 or case.image.shape[-1] == 0:
        raise DataError(f"{case.subject}: expected a (C, X, Y, Z) image with Z > 0, got {case.image.shape}")
    volume = normalize_intensity(case.image)
    fitted = [fit_slice(volume[..., z], size) for z in range(volume.shape[-1])]
    geometry = fitted[0][2]  # every slice of a volume shares its (h, w), hence its geometry
    slices = torch.from_numpy(np.stack([image for image, _, _ in fitted]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            labels = []
            for batch in slices.split(batch_size):
                prob = model(as_model_input(batch.to(device), 3)).softmax(dim=1)
                labels.append(restore_probabilities(prob, geometry).argmax(dim=1).to("cpu", torch.uint8))
    finally:
        model.train(was_training)
    pred = torch.cat(labels).permute(1, 2, 0).numpy()  # (Z, X, Y) -> (X, Y, Z)
    return _keep_largest_components(pred) if largest_cc else pred


def evaluate_cases(
    model: nn.Module,
    cases: Sequence[Case],
    task: TaskSpec | str,
    size: int = 256,
    device: str | torch.device = "cpu",
    largest_cc: bool = False,
    progress: bool = True,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Predict and score every case against its ground truth.

    Returns:
        One row per (case, structure): ``case, structure, dice, hd, hd95`` (see :func:`metrics.summarize`).
    """
    spec = get_task(task)
    rows = []
    for case in tqdm(cases, desc=f"evaluate {spec.name}", disable=not progress):
        if case.task != spec.name:
            raise DataError(f"{case.subject}: a {case.task} case cannot be evaluated as task {spec.name}")
        if case.label is None:
            raise DataError(f"{case.subject}: no ground-truth label to evaluate against")
        pred = predict_volume(model, case, size, batch_size, device, largest_cc)
        for structure, values in evaluate_volume(pred, case.label, spec, case.spacing).items():
            rows.append({"case": case.subject, "structure": structure, **values})
    return pd.DataFrame(rows, columns=["case", "structure", "dice", "hd", "hd95"])


def select_cases(rows: pd.DataFrame) -> dict[str, str]:
    """The worst, median and best case by average Dice (paper Figs. 2–3).

    A case's score is the mean Dice of all its rows: every structure, and every method when ``rows``
    holds several (the figures rank "by the average Dice Scores of all compared methods"). With an
    even number of cases the median is the lower middle one, so it is always a real case.

    Returns:
        ``{"worst": case, "median": case, "best": case}``.
    """
    if rows.empty or not {"case", "dice"} <= set(rows.columns):
        raise DataError("rows: expected a non-empty table with columns 'case' and 'dice'")
    scores = rows.groupby("case")["dice"].mean().reset_index().sort_values(["dice", "case"], kind="stable")
    ranked = scores["case"].tolist()
    return {"worst": ranked[0], "median": ranked[(len(ranked) - 1) // 2], "best": ranked[-1]}


def write_prediction(case: Case, pred: np.ndarray, path: str | Path) -> Path:
    """Save a canonical prediction ``(X, Y, Z)`` as NIfTI with the case's affine, spacing and raw label values.

    The raw values are those of the dataset's ground-truth files (``tasks.unmap_labels``), e.g.
    MyoPS scar is written as 2221.
    """
    spec = get_task(case.task)
    pred = np.asarray(pred)
    if pred.shape != case.image.shape[1:]:
        raise DataError(f"{path}: prediction shape {pred.shape} does not match the image {case.image.shape[1:]}")
    if pred.size and (pred.min() < 0 or pred.max() >= spec.n_classes):
        raise DataError(f"{path}: prediction values outside 0..{spec.n_classes - 1} of task {spec.name}")
    return save_nifti(path, unmap_labels(pred, spec), affine=case.affine, spacing=case.spacing, dtype=np.int16)

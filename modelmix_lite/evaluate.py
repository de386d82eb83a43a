"""Whole-volume inference, per-case evaluation tables, case selection and prediction export.

Inference mirrors training's slice path (:mod:`modelmix_lite.data.geometry`): every Z-slice is normalised,
resampled to the run's ``spacing_mm`` and cut to its centred ``size × size`` window; the class probabilities
are mapped back to the slice's own grid before the argmax, so metrics are computed on the original voxels
(as the released ``inference.py`` does, with its per-slice zoom in place of our resample-and-crop).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .data.layout import CaseFiles
from .data.nifti import save_nifti
from .data.readers import Case, load_case, load_split
from .data.slices import fit_slice, normalize_intensity, restore_probabilities
from .data.tasks import TaskSpec, get_task, unmap_labels
from .errors import ConfigError, DataError
from .metrics import (
    METRICS, evaluate_volume, format_distance, format_mean_std, largest_connected_component, summarize,
)
from .models import as_model_input
from .rundir import DATA_RECORD, Run, check_trained_data, run_geometry


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
    spacing_mm: float = 0.0,
) -> np.ndarray:
    """Segment a whole volume slice by slice.

    Each slice of ``normalize_intensity(case.image)`` goes through :func:`fit_slice` (``size``,
    ``spacing_mm``: as the model was trained),
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
    fitted = [fit_slice(volume[..., z], size, spacing=case.spacing, spacing_mm=spacing_mm)
              for z in range(volume.shape[-1])]
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
    spacing_mm: float = 0.0,
    undefined_hd: str = "nan",
) -> pd.DataFrame:
    """Predict and score every case against its ground truth (``size``, ``spacing_mm``: :func:`predict_volume`;
    ``undefined_hd``: :data:`~modelmix_lite.metrics.UNDEFINED_HD`).

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
        pred = predict_volume(model, case, size, batch_size, device, largest_cc, spacing_mm)
        for structure, values in evaluate_volume(pred, case.label, spec, case.spacing, undefined_hd).items():
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


def qualitative_cases(
    models: Mapping[str, nn.Module],
    rows: pd.DataFrame,
    cases: Sequence[Case],
    size: int,
    spacing_mm: float = 0.0,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, Case], dict[str, dict[str, np.ndarray]], dict[str, dict[str, float]]]:
    """What :func:`~modelmix_lite.viz.results.plot_qualitative` draws for a Fig. 2/3-style figure of one task.

    Args:
        models: method label -> its model of the task (e.g. ``Run(run).models().models[task]``).
        rows: the task's per-(case, structure) scores with a ``method`` column (:func:`evaluate_run` rows).
        cases: the scored volumes (at least the ones :func:`select_cases` picks).
    Returns:
        ``(picks, predictions, dice)``: ``{"worst"|"median"|"best": Case}``, ``{label: {case: (X, Y, Z)}}``
        (:func:`predict_volume`) and ``{label: {case: average Dice}}``.
    """
    by_subject = {case.subject: case for case in cases}
    picks = {rank: by_subject[subject] for rank, subject in select_cases(rows).items()}
    predictions = {label: {case.subject: predict_volume(model, case, size, device=device, spacing_mm=spacing_mm)
                           for case in picks.values()} for label, model in models.items()}
    dice = {label: part.groupby("case")["dice"].mean().to_dict() for label, part in rows.groupby("method")}
    return picks, predictions, dice


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


# --- finished runs: evaluation and tables ---
def _recorded_root(run: Path) -> Path:
    """The data root a run was trained on; ConfigError for a run recorded before :data:`DATA_RECORD`."""
    root = Run(run).data_root
    if root is None:
        raise ConfigError(f"{run}: records no data root (trained before {DATA_RECORD} existed); pass --data")
    return root


def evaluate_run(
    run_dir: str | Path,
    data_root: str | Path | None = None,
    split: str = "test",
    checkpoint: str = "best.pt",
    device: str | torch.device = "cpu",
    largest_cc: bool = False,
    progress: bool = True,
    undefined_hd: str = "nan",
) -> pd.DataFrame:
    """Evaluate every task model of a training run on ``split`` of its task (:func:`evaluate_cases`).

    Slices are fitted to the run's input size (``config.json``); the weights are ``checkpoint``'s. ``data_root``
    None: the one the run was trained on (:attr:`~modelmix_lite.rundir.Run.data_root`); another one than that
    (:func:`check_trained_data`) is a warning naming both.

    Returns:
        One row per (task, case, structure): ``method, task, case, structure, dice, hd, hd95``.

    Raises:
        DataError: a task's split has no cases, or a case without ground truth (e.g. the real MyoPS test
            set, whose labels the organisers withheld: evaluate ``"val"`` there).
    """
    run = Path(run_dir)
    record = Run(run).record
    data_root = _recorded_root(run) if data_root is None else data_root
    models = Run(run).models(checkpoint, device)
    mismatch = check_trained_data(run, data_root, record["tasks"])
    if mismatch:
        warnings.warn(mismatch, stacklevel=2)
    frames = []
    for task in record["tasks"]:
        cases = load_split(task, data_root, split)
        unlabeled = [case.subject for case in cases if case.label is None]
        if not cases or unlabeled:
            problem = f"{len(unlabeled)} of {len(cases)} cases lack ground truth (e.g. {unlabeled[0]})" if cases \
                else "no cases"
            raise DataError(f"{data_root}: {task} {split} split: {problem}; evaluate another split")
        rows = evaluate_cases(models.models[task], cases, task, device=device, largest_cc=largest_cc,
                              progress=progress, undefined_hd=undefined_hd, **run_geometry(run, record))
        frames.append(rows.assign(method=record["method"], task=task))
    return pd.concat(frames, ignore_index=True)[["method", "task", "case", "structure", *METRICS]]


def paper_table(rows: pd.DataFrame, metric: str = "dice", digits: int | None = None) -> pd.DataFrame:
    """Mean ± std over volumes in the layout of the paper's tables (e.g. Table 1).

    One row per method; one column per (task, structure) with each task's "Avg" last, all in order of first
    appearance; cells as :func:`~modelmix_lite.metrics.format_mean_std` writes them (``.805±.181``). An HD cell
    whose mean is over fewer volumes than its Dice (HD undefined where one side is empty) ends with the count,
    ``12.30±4.50 (7/10)`` (:func:`~modelmix_lite.metrics.format_distance`).

    Args:
        rows: per-volume rows with columns ``method, task, case, structure`` and the metrics (:func:`evaluate_run`).
        metric: ``"dice"``, ``"hd"`` or ``"hd95"``.
        digits: decimals; default 3 for Dice, 2 for distances in mm.

    Raises:
        ConfigError: an unknown ``metric``. DataError: ``rows`` lacks a ``method`` or ``task`` column.
    """
    if metric not in METRICS:
        raise ConfigError(f"metric: {metric!r} is not one of {', '.join(METRICS)}")
    missing = [c for c in ("method", "task") if c not in rows.columns]
    if missing:
        raise DataError(f"rows: missing columns {missing}")
    summary = summarize(rows[["method", "task", "case", "structure", *METRICS]])
    digits = (3 if metric == "dice" else 2) if digits is None else digits
    if metric == "dice":
        cells = [format_mean_std(m, s, digits) for m, s in zip(summary["dice_mean"], summary["dice_std"])]
    else:  # Dice is defined on every volume: its count is the total an HD mean may fall short of
        cells = [format_distance(m, s, n, total, digits) for m, s, n, total in
                 zip(summary[f"{metric}_mean"], summary[f"{metric}_std"], summary[f"{metric}_n"], summary["dice_n"])]
    table = summary.assign(cell=cells).pivot(index="method", columns=["task", "structure"], values="cell")
    columns = pd.MultiIndex.from_tuples(dict.fromkeys(zip(summary["task"], summary["structure"])))
    return table.reindex(index=list(dict.fromkeys(summary["method"])), columns=columns)


PREDICTION_SUFFIX = "_pred.nii.gz"
"""File name ending of the predictions :func:`predict_run` writes (``<subject>_pred.nii.gz``)."""


def predict_run(
    run_dir: str | Path,
    out_dir: str | Path,
    task: str | None = None,
    images: Sequence[str | Path] | None = None,
    data_root: str | Path | None = None,
    split: str = "test",
    checkpoint: str = "best.pt",
    device: str | torch.device = "cpu",
    largest_cc: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Segment volumes with a trained run and write NIfTI predictions in the dataset's raw label values.

    Either ``images`` (one NIfTI file per sequence of ``task``, in ``TaskSpec.sequences`` order, e.g. MyoPS
    C0, DE, T2) or ``data_root`` + ``split`` (every case of that split) is given; neither: ``split`` of the data
    root the run was trained on (:attr:`~modelmix_lite.rundir.Run.data_root`). Each prediction keeps its
    input's affine and spacing and is written to ``out_dir/<subject>_pred.nii.gz``. An ``out_dir`` that already
    holds predictions is refused unless ``overwrite``, which first removes those ``*_pred.nii.gz`` files (and
    nothing else), so old and new predictions never mix.

    Raises:
        ConfigError: both inputs given (or neither, for a run that records no data root), ``task`` not trained
            in the run, wrong number of images,
            or ``out_dir`` holds predictions and ``overwrite`` is off.
    """
    run = Path(run_dir)
    record = Run(run).record
    task = task or record["tasks"][0]
    if task not in record["tasks"]:
        raise ConfigError(f"--task: {task!r} was not trained in {run} (tasks: {', '.join(record['tasks'])})")
    if images is not None and data_root is not None:
        raise ConfigError("give either --input (image files) or --data (a data root), not both")
    if images is None and data_root is None:
        data_root = _recorded_root(run)
    spec = get_task(task)
    if images is not None:
        paths = tuple(Path(p) for p in images)
        if len(paths) != spec.n_channels:
            raise ConfigError(
                f"--input: task {task} takes {spec.n_channels} image(s) ({', '.join(spec.sequences)}), got {len(paths)}"
            )
        if len(paths) > 1:  # several sequences: check each file is the one its place says (MyoPS C0, DE, T2)
            for k, (path, sequence) in enumerate(zip(paths, spec.sequences)):
                if f"_{sequence}" not in path.name:
                    raise ConfigError(f"--input: image {k + 1} must be the {sequence} sequence (order "
                                      f"{', '.join(spec.sequences)}), got {path.name}")
        subject = paths[0].name.removesuffix(".gz").removesuffix(".nii")
        if len(paths) > 1:
            subject = subject.removesuffix(f"_{spec.sequences[0]}")
        cases = [load_case(CaseFiles(task, subject, "test", paths, None, None))]
    else:
        cases = load_split(task, data_root, split)
    model = Run(run).models(checkpoint, device).models[task]
    geometry = run_geometry(run, record)
    stale = sorted(Path(out_dir).glob(f"*{PREDICTION_SUFFIX}")) if Path(out_dir).is_dir() else []
    if stale and not overwrite:
        raise ConfigError(f"{out_dir}: already holds {len(stale)} prediction(s) (e.g. {stale[0].name}); "
                          "pass --overwrite to replace them or choose another --out")
    for path in stale:
        path.unlink()
    return [
        write_prediction(case, predict_volume(model, case, device=device, largest_cc=largest_cc, **geometry),
                         Path(out_dir) / f"{case.subject}{PREDICTION_SUFFIX}")
        for case in cases
    ]

"""Diagnostics of recorded runs: qualitative inputs, provenance, time to a Dice, training diagnostics, where the
errors are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.readers import Case, load_split
from ..errors import DataError
from ..evaluate import select_cases
from ..metrics import errors_by_distance
from ..rundir import Run
from .compare import annotate
from .specs import MISSING, get_table, sweep_folder
from .sweep import _check_same_data, load_predictions, run_dir


def qualitative_inputs(
    rows: pd.DataFrame, out_dir: str | Path, data_root: str | Path, table: int, target: str, half: str = "",
    seed: int | None = None,
) -> tuple[dict[str, Case], dict[str, dict[str, np.ndarray]], dict[str, dict[str, float]]]:
    """What :func:`~modelmix_lite.viz.results.plot_qualitative` needs for a Fig. 2/3-style figure of one table and target.

    The worst, median and best cases by average Dice over every row run
    (:func:`~modelmix_lite.evaluate.select_cases`), their volumes from ``data_root``, and each row's prediction
    (``predictions.npz`` of its run under ``out_dir``) and average Dice on them.

    Args:
        seed: the runs shown (default the smallest seed in ``rows``).

    Returns:
        ``(cases, predictions, dice)``: ``{"worst"|"median"|"best": Case}``, ``{row: {case: (X, Y, Z)}}`` and
        ``{row: {case: average Dice}}``.

    Raises:
        DataError: no rows for this table and target, rows made from other data than ``data_root`` (its
            images would not match the predictions), or a missing predictions file.
    """
    spec = get_table(table)
    rows = annotate(rows[rows["table"] == spec.number]) if len(rows) else rows
    if len(rows):
        rows = rows[(rows["target"] == target) & (rows["half"] == half)]
    if not len(rows):
        raise DataError(f"rows: no results of Table {spec.number} on {target} {half}".rstrip())
    seed = int(rows["seed"].min()) if seed is None else seed
    rows = rows[rows["seed"] == seed]
    if not len(rows):
        raise DataError(f"rows: no results of Table {spec.number} on {target} with seed {seed}")
    _check_same_data(rows, data_root)
    selection = select_cases(rows)
    by_subject = {c.subject: c for c in load_split(target, data_root, spec.split) if c.subject in selection.values()}
    predictions, dice = {}, {}
    for (row, method, tasks), part in rows.groupby(["row", "method", "tasks"], sort=False):
        run = load_predictions(run_dir(out_dir, part["profile"].iloc[0], spec.number, method, tasks, seed))
        predictions[row] = {subject: run[subject] for subject in by_subject}
        dice[row] = part.groupby("case")["dice"].mean().to_dict()
    return {title: by_subject[subject] for title, subject in selection.items()}, predictions, dice


def provenance(rows: pd.DataFrame) -> dict[str, str]:
    """Where results come from: profile, device, commit, seeds, data fingerprint, runs and training time."""
    if not len(rows):
        return {key: MISSING for key in ("profile", "device", "commit", "seeds", "data_fingerprint", "runs", "wall")}

    def values(column: str) -> str:
        return ", ".join(str(v) for v in sorted(set(rows[column].fillna("unknown"))))

    runs = rows.drop_duplicates(["table", "method", "tasks", "seed"])
    return {
        "profile": values("profile"), "device": values("device"), "commit": values("commit"),
        "seeds": values("seed"), "data_fingerprint": values("data_fingerprint"), "runs": str(len(runs)),
        "wall": f"{runs['wall_s'].sum() / 60:.1f} min",
    }


def minutes_to_dice(log_rows: Sequence[Mapping], key: str, threshold: float) -> float | None:
    """Training minutes until the validation score ``key`` (``"val_acdc"``, ``"val_dice"``) first reaches ``threshold``.

    From a run's ``log.jsonl`` rows: each training row covers the steps since the previous one at its
    ``steps_per_s``, so the sum is the time spent in optimizer steps (validation passes are not counted).

    Returns:
        The minutes, or None when the score never reaches ``threshold``.
    """
    minutes, last_step = 0.0, 0
    for row in log_rows:
        if "steps_per_s" in row:
            minutes += (row["step"] - last_step) / row["steps_per_s"] / 60
            last_step = row["step"]
        elif row.get(key, -math.inf) >= threshold:
            return round(minutes, 2)
    return None


def run_diagnostics(out_dir: str | Path, profile: str, table: int) -> pd.DataFrame:
    """What each run of a sweep did: its batch and input size, steps, best and final validation Dice, final loss.

    Reads ``config.json`` and ``log.jsonl`` of every run directory under ``out_dir/<profile>/runs/table<N>/``
    (none: an empty frame, e.g. for results committed without their runs).

    Returns:
        Columns ``method, tasks, seed, batch_size, size, steps, best_step, best_val_dice, final_val_dice,
        final_loss``.
    """
    columns = ["method", "tasks", "seed", "batch_size", "size", "steps", "best_step", "best_val_dice",
               "final_val_dice", "final_loss"]
    folder = Path(out_dir) / profile / "runs" / f"table{get_table(table).number}"
    out = []
    for path in sorted(folder.glob("*/config.json")):
        run = Run(path.parent)
        record, lines = run.record, run.log
        val = [r for r in lines if "val_dice" in r]
        losses = [r for r in lines if "loss" in r]
        best = max(val, key=lambda r: r["val_dice"]) if val else {}
        out.append({
            "method": record["method"], "tasks": "+".join(record["tasks"]), "seed": record["config"]["seed"],
            "batch_size": record["config"]["batch_size"], "size": record["config"]["size"],
            "steps": lines[-1]["step"] if lines else 0, "best_step": best.get("step", np.nan),
            "best_val_dice": best.get("val_dice", np.nan),
            "final_val_dice": val[-1]["val_dice"] if val else np.nan,
            "final_loss": losses[-1]["loss"] if losses else np.nan,
        })
    return pd.DataFrame(out, columns=columns)


def error_breakdown(
    rows: pd.DataFrame, out_dir: str | Path, data_root: str | Path, table: int, distance_mm: float = 20.0,
    real: bool = False,
) -> pd.DataFrame:
    """Every scored volume's Dice next to where its errors lie (:func:`~modelmix_lite.metrics.errors_by_distance`).

    Reads each run's ``predictions.npz`` under ``out_dir`` (``real``: a sweep of :data:`~modelmix_lite.reproduce.specs.REAL_TABLES`) and the
    scored volumes from ``data_root``.

    Returns:
        Columns ``row, half, method, tasks, seed, target, case, structure, dice`` (as recorded), ``dice_near``
        (the prediction cut to within ``distance_mm`` of the heart) and ``remote`` (share of the predicted
        structure farther away).

    Raises:
        DataError: rows made from other data than ``data_root``, or a run without its predictions file.
    """
    spec = get_table(table, real)
    columns = ["row", "half", "method", "tasks", "seed", "target", "case", "structure", "dice", "dice_near",
               "remote"]
    rows = annotate(rows[rows["table"] == spec.number]) if len(rows) else rows
    if not len(rows):
        return pd.DataFrame(columns=columns)
    _check_same_data(rows, data_root)
    cases: dict[str, dict[str, Case]] = {}
    out = []
    keys = ["row", "half", "method", "tasks", "seed", "profile"]
    for (row, half, method, tasks, seed, profile), part in rows.groupby(keys, sort=False):
        predictions = load_predictions(run_dir(out_dir, sweep_folder(profile, real), spec.number, method, tasks, seed))
        for (target, subject), scored in part.groupby(["target", "case"], sort=False):
            if target not in cases:
                cases[target] = {c.subject: c for c in load_split(target, data_root, spec.split)}
            case, recorded = cases[target][subject], scored.set_index("structure")["dice"]
            split = errors_by_distance(predictions[subject], case.label, target, case.spacing, distance_mm)
            out.extend({"row": row, "half": half, "method": method, "tasks": tasks, "seed": seed, "target": target,
                        "case": subject, "structure": structure, "dice": recorded[structure], **values}
                       for structure, values in split.items())
    return pd.DataFrame(out, columns=columns)

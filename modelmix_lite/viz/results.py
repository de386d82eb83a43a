"""Figures of training and results: loss terms, validation curves, Dice strips, qualitative cases, paper comparisons.

Every figure function returns its :class:`matplotlib.figure.Figure`; nothing is shown or saved here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..data.geometry import heart_window, middle_slice
from ..data.tasks import get_task
from ..errors import DataError
from .style import _method_colors, _row_label, class_legend, overlay


def plot_loss_terms(log: pd.DataFrame | Sequence[Mapping]) -> Figure:
    """Each loss term of a training run against the step: one panel per term, one line per task.

    Args:
        log: a run's log rows (:attr:`~modelmix_lite.rundir.Run.log`) or a frame of them; rows without
            ``"loss"`` (validation) are skipped.
            Terms are the ``"{term}/{task}"`` columns; ``loss`` (Eq. 9, the total) gets its own panel.
    Raises:
        DataError: when the log has no training rows.
    """
    frame = pd.DataFrame(log)
    if "loss" not in frame:
        raise DataError("log: no training rows (no 'loss' column)")
    frame = frame[frame["loss"].notna()]
    terms = _loss_terms(frame)
    fig, axes = plt.subplots(1, len(terms) + 1, figsize=(3.2 * (len(terms) + 1), 3.0), squeeze=False)
    _draw_loss_terms(axes[0], frame, terms)
    fig.tight_layout()
    return fig


def _loss_terms(frame: pd.DataFrame) -> list[str]:
    """The loss terms of a log's training rows: the ``term`` of every ``"term/task"`` column, in order."""
    return list(dict.fromkeys(c.split("/")[0] for c in frame.columns if "/" in c))


def _draw_loss_terms(axes: Sequence[Axes], frame: pd.DataFrame, terms: Sequence[str]) -> None:
    """The total on ``axes[0]``, then one panel per term with a line per task."""
    axes[0].plot(frame["step"], frame["loss"], color="k", lw=2)
    axes[0].set(title="total (Eq. 9)", xlabel="step")
    for ax, term in zip(axes[1:], terms):
        for column in [c for c in frame.columns if c.startswith(f"{term}/")]:
            ax.plot(frame["step"], frame[column], marker=".", label=column.split("/", 1)[1])
        ax.set(title=term, xlabel="step")
        ax.legend(fontsize=7, frameon=False)


def _validation_keys(frames: Mapping[str, pd.DataFrame]) -> list[str]:
    """The ``val_{task}`` columns of the validation rows, then ``val_dice`` (their mean)."""
    tasks = [c for f in frames.values() for c in f.columns if c.startswith("val_") and c != "val_dice"]
    return [*dict.fromkeys(tasks), "val_dice"]


def _draw_validation(axes: Sequence[Axes], frames: Mapping[str, pd.DataFrame], keys: Sequence[str]) -> None:
    """One panel per key (a task's validation Dice, then the mean), one line per run."""
    colors = _method_colors(list(frames))
    for ax, key in zip(axes, keys):
        for name, frame in frames.items():
            if key in frame:
                ax.plot(frame["step"], frame[key], "o-", color=colors[name], label=name)
        title = "mean over tasks" if key == "val_dice" else get_task(key.removeprefix("val_")).title
        ax.set(title=title, xlabel="step", ylim=(0, 1))
    axes[0].set_ylabel("validation Dice (3-D, mean)")
    axes[len(keys) - 1].legend(frameon=False, fontsize=8)


def plot_training_curves(log: Sequence[Mapping] | pd.DataFrame) -> Figure:
    """One run's log as ``train`` saves it (``training_curves.png``): its loss terms (:func:`plot_loss_terms`'s
    panels) and, when it validated, its validation Dice (:func:`plot_validation_curves`'s panels) below.

    Args:
        log: the rows of a run's log (:func:`~modelmix_lite.rundir.read_log`) or a frame of them.
    Returns:
        A :class:`~matplotlib.figure.Figure` made without pyplot, so a training process keeps no figure state.
    """
    frame = pd.DataFrame(list(log)) if not isinstance(log, pd.DataFrame) else log
    train_rows = frame[frame["loss"].notna()] if "loss" in frame else frame.iloc[:0]
    val_rows = frame[frame["val_dice"].notna()] if "val_dice" in frame else frame.iloc[:0]
    terms = _loss_terms(train_rows)
    keys = _validation_keys({"run": val_rows}) if len(val_rows) else []
    n = max(len(terms) + 1, len(keys), 1)
    fig = Figure(figsize=(3.2 * n, 3.2 * (1 + bool(keys))))
    axes = fig.subplots(1 + bool(keys), n, squeeze=False)
    if len(train_rows):
        _draw_loss_terms(axes[0], train_rows, terms)
    if keys:
        _draw_validation(axes[1], {"run": val_rows}, keys)
    for ax in [*axes[0][len(terms) + 1:], *(axes[1][len(keys):] if keys else [])]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


QUALITATIVE_SEQUENCES: tuple[str, ...] = ("DE", "LGE")
""":func:`plot_qualitative` shows the first of these a task has (LGE, as the paper's Figs. 2–3), else its first."""


def plot_validation_curves(logs: Mapping[str, pd.DataFrame | Sequence[Mapping]]) -> Figure:
    """Validation Dice of several runs against the step: a panel per task and one for their mean (``val_dice``).

    Args:
        logs: method label -> its run's log rows (:attr:`~modelmix_lite.rundir.Run.log`) or a frame of them;
            the validation rows are those
            with ``val_dice``, their ``val_{task}`` columns the tasks' mean 3-D Dice.

    Raises:
        DataError: no logs, or a log without validation rows.
    """
    if not logs:
        raise DataError("logs: no runs to plot")
    frames = {}
    for name, log in logs.items():
        frame = pd.DataFrame(log)
        if "val_dice" not in frame or frame["val_dice"].isna().all():
            raise DataError(f"{name}: no validation rows (no 'val_dice')")
        frames[name] = frame[frame["val_dice"].notna()]
    keys = _validation_keys(frames)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.2), sharey=True, squeeze=False)
    _draw_validation(axes[0], frames, keys)
    fig.tight_layout()
    return fig


def plot_dice_strip(rows: pd.DataFrame, metric: str = "dice") -> Figure:
    """Per-volume scores by structure and method, a panel per task: one dot per volume, a bar at the mean.

    Args:
        rows: per-volume rows with columns ``method, task, case, structure`` and ``metric``
            (:func:`~modelmix_lite.evaluate.evaluate_run`); structures keep their order of appearance.
        metric: the column to plot (``dice``, ``hd`` or ``hd95``).

    Raises:
        DataError: ``rows`` is empty or lacks a column.
    """
    missing = [c for c in ("method", "task", "structure", metric) if c not in rows.columns]
    if missing or rows.empty:
        raise DataError(f"rows: expected a non-empty table; missing columns {missing}")
    methods, tasks = list(dict.fromkeys(rows["method"])), list(dict.fromkeys(rows["task"]))
    colors, width = _method_colors(methods), 0.8 / len(methods)
    n_structures = [rows.loc[rows["task"] == t, "structure"].nunique() for t in tasks]
    fig, axes = plt.subplots(1, len(tasks), figsize=(1.2 * sum(n_structures) + 1.5 * len(tasks), 3.4),
                             sharey=metric == "dice", squeeze=False, width_ratios=n_structures)
    for ax, task in zip(axes[0], tasks):
        data = rows[rows["task"] == task]
        structures = list(dict.fromkeys(data["structure"]))
        for x, structure in enumerate(structures):
            for k, method in enumerate(methods):
                values = data.loc[(data["structure"] == structure) & (data["method"] == method), metric].to_numpy(float)
                if not len(values):
                    continue
                centre = x - 0.4 + width * (k + 0.5)
                spread = np.linspace(-0.25, 0.25, len(values)) * width if len(values) > 1 else np.zeros(1)
                ax.scatter(centre + spread, values, s=16, color=colors[method], alpha=0.75, edgecolor="none",
                           label=method if x == 0 else None)
                ax.hlines(np.nanmean(values), centre - 0.4 * width, centre + 0.4 * width, color=colors[method], lw=2.5)
        ax.set_xticks(range(len(structures)), structures)
        ax.set(title=get_task(task).title, xlim=(-0.5, len(structures) - 0.5))
        if metric == "dice":
            ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel("Dice per volume" if metric == "dice" else f"{metric.upper()} per volume (mm)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), frameon=False, fontsize=8, markerscale=2)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_qualitative(
    cases: Mapping[str, Any],
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    dice: Mapping[str, Mapping[str, float]] | None = None,
    channel: int | None = None,
) -> Figure:
    """Image, scribble, ground truth and every method's prediction for a few cases, as the paper's Figs. 2–3.

    One row per distinct case (titles of the same case are merged, ``worst = median``), at its middle annotated
    slice (:func:`~modelmix_lite.data.geometry.middle_slice`), zoomed to the heart (:func:`~modelmix_lite.data.geometry.heart_window`).

    Args:
        cases: row title -> case, all of one task and with ground truth (e.g. the cases named by
            :func:`~modelmix_lite.evaluate.select_cases`).
        predictions: method -> subject -> ``(X, Y, Z)`` canonical labels
            (:func:`~modelmix_lite.evaluate.predict_volume`).
        dice: method -> subject -> average Dice, printed under the prediction as in the paper.
        channel: the sequence shown; default the first of :data:`QUALITATIVE_SEQUENCES` the task has, else 0.

    Raises:
        DataError: no cases, cases of several tasks or without ground truth, or a prediction that is missing
            or of another shape than its case.
    """
    rows: dict[str, tuple[list[str], Any]] = {}
    for title, case in cases.items():
        rows.setdefault(case.subject, ([], case))[0].append(title)
    tasks = sorted({case.task for _, case in rows.values()})
    if len(tasks) != 1:
        raise DataError(f"cases: expected cases of one task, got {tasks or 'none'}")
    spec = get_task(tasks[0])
    if channel is None:
        channel = next((spec.sequences.index(s) for s in QUALITATIVE_SEQUENCES if s in spec.sequences), 0)
    methods = list(predictions)
    columns = [f"image ({spec.sequences[channel]})", "scribble", "ground truth", *methods]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.9 * len(columns), 2.0 * len(rows) + 0.8),
                             squeeze=False)
    for r, (subject, (titles, case)) in enumerate(rows.items()):
        if case.label is None:
            raise DataError(f"{subject}: no ground truth to compare the predictions with")
        z, (wx, wy) = middle_slice(case), heart_window(case)
        image = case.image[channel, wx, wy, z]
        overlay(axes[r, 0], image, task=spec)
        overlay(axes[r, 1], image, scribble2d=None if case.scribble is None else case.scribble[wx, wy, z], task=spec)
        if case.scribble is None:
            axes[r, 1].text(0.5, 0.06, "no scribble", transform=axes[r, 1].transAxes, ha="center", color="w",
                            fontsize=8, bbox={"facecolor": "k", "alpha": 0.6, "edgecolor": "none"})
        overlay(axes[r, 2], image, label2d=case.label[wx, wy, z], task=spec)
        for ax, method in zip(axes[r, 3:], methods):
            pred = predictions[method].get(subject)
            if pred is None or np.shape(pred) != case.label.shape:
                found = "none" if pred is None else f"shape {np.shape(pred)}"
                raise DataError(f"predictions: {method} on {subject}: expected shape {case.label.shape}, got {found}")
            overlay(ax, image, label2d=np.asarray(pred)[wx, wy, z], task=spec)
            if dice is not None:
                ax.text(0.5, -0.03, f"Dice(avg) {dice[method][subject]:.3f}", transform=ax.transAxes, ha="center",
                        va="top", fontsize=8)
        _row_label(axes[r, 0], f"{' = '.join(titles)}\n{subject}, z = {z}")
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=9)
    fig.suptitle(spec.title, fontsize=11)
    fig.legend(handles=class_legend(spec), loc="lower center", ncol=spec.n_classes, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_dice_by_method(rows: pd.DataFrame) -> Figure:
    """Per-volume Dice (mean over the structures of a volume) by table row: a box and the volumes' dots.

    One panel per (task combination, target) in order of appearance; one colour per row, the same in every panel.

    Args:
        rows: result rows with the paper's row labels (:func:`~modelmix_lite.reproduce.compare.annotate`): columns
            ``half, target, row, case, seed, structure, dice``. A volume is one (case, seed).

    Raises:
        DataError: ``rows`` is empty or lacks a column.
    """
    missing = [c for c in ("half", "target", "row", "case", "seed", "dice") if c not in rows.columns]
    if missing or rows.empty:
        raise DataError(f"rows: expected a non-empty table; missing columns {missing}")
    volumes = rows.groupby(["half", "target", "row", "case", "seed"], sort=False)["dice"].mean().reset_index()
    panels = list(dict.fromkeys(zip(volumes["half"], volumes["target"])))
    colors = _method_colors(list(dict.fromkeys(volumes["row"])))
    widths = [volumes.loc[(volumes["half"] == h) & (volumes["target"] == t), "row"].nunique() for h, t in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(0.8 * sum(widths) + 1.4 * len(panels), 3.8), sharey=True,
                             squeeze=False, width_ratios=widths)
    for ax, (half, target) in zip(axes[0], panels):
        data = volumes[(volumes["half"] == half) & (volumes["target"] == target)]
        order = list(dict.fromkeys(data["row"]))
        common = dict(data=data, x="row", y="dice", hue="row", order=order, palette=colors, ax=ax, legend=False)
        with warnings.catch_warnings():  # seaborn 0.13 passes Matplotlib 3.11's deprecated `vert`
            warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
            sns.boxplot(**common, fliersize=0, boxprops={"alpha": 0.45})
        sns.stripplot(**common, size=4, edgecolor="k", linewidth=0.5)
        title = get_task(target).title + (f"\ntrained on {half}" if half else "")
        ax.set(title=title, xlabel="", ylim=(-0.02, 1.02))
        ax.tick_params(axis="x", labelrotation=35)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    axes[0, 0].set_ylabel("Dice per volume (mean over structures)")
    fig.tight_layout()
    return fig


def plot_ours_vs_paper(pairs: pd.DataFrame) -> Figure:
    """Our average Dice of each table row against the paper's: a panel per table, the diagonal ours = paper.

    Args:
        pairs: columns ``table, half, target, row, ours, paper`` (:func:`~modelmix_lite.reproduce.compare.ours_vs_paper`);
            rows without a paper number are left out. Colour: target; marker: Table 1's task combination.

    Raises:
        DataError: no row has both numbers, or a column is missing.
    """
    missing = [c for c in ("table", "half", "target", "row", "ours", "paper") if c not in pairs.columns]
    both = pairs.dropna(subset=["ours", "paper"]) if not missing else pairs
    if missing or both.empty:
        raise DataError(f"pairs: expected rows with both 'ours' and 'paper'; missing columns {missing}")
    tables = sorted(set(both["table"]))
    fig, axes = plt.subplots(1, len(tables), figsize=(3.9 * len(tables), 3.9), squeeze=False)
    for ax, table in zip(axes[0], tables):
        data = both[both["table"] == table]
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, zorder=0)
        halves, colors = list(dict.fromkeys(data["half"])), _method_colors(list(dict.fromkeys(data["target"])))
        for (half, target), part in data.groupby(["half", "target"], sort=False):
            label = get_task(target).title.split(" (")[0] + (f", trained on {half}" if half else "")
            ax.scatter(part["paper"], part["ours"], s=30, label=label, marker="os^"[halves.index(half) % 3],
                       color=colors[target], edgecolor="k", linewidth=0.5)
            for item in part.itertuples():
                ax.annotate(item.row, (item.paper, item.ours), xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.set(title=f"Table {table}", xlabel="paper: average Dice", xlim=(0, 1), ylim=(0, 1), aspect="equal")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    axes[0, 0].set_ylabel("ours: average Dice")
    fig.tight_layout()
    return fig

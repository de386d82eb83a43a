"""Figures of the data: case montages, the dataset overview, scribble statistics, network inputs, a slice viewer.

Every figure function returns its :class:`matplotlib.figure.Figure`; nothing is shown or saved here.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.figure import Figure

from ..data.geometry import annotated_slices, heart_window, middle_slice
from ..data.tasks import UNANNOTATED, get_task
from ..errors import ConfigError, DataError
from .style import CLASS_COLORS, _row_label, class_legend, overlay


ACDC_SCRIBBLE_BAND = (6.0, 18.0)
"""Coverage (%) of each structure by the real ACDC expert scribbles; background is about 0.6 %."""


ACDC_BACKGROUND_COVERAGE = 0.6


MONTAGE_LAYERS = ("image", "label", "scribble")


def _layers(case: Any, z: int, channel: int, show: Iterable[str], zoom: bool) -> dict[str, np.ndarray | None]:
    """The 2-D arrays :func:`~modelmix_lite.viz.style.overlay` draws for slice ``z`` of ``case`` (cut to :func:`~modelmix_lite.data.geometry.heart_window` if ``zoom``)."""
    window = heart_window(case) if zoom else (slice(None), slice(None))
    image = case.image[channel, window[0], window[1], z]
    return {
        "image2d": image if "image" in show else np.zeros_like(image),
        "label2d": case.label[window[0], window[1], z] if "label" in show and case.label is not None else None,
        "scribble2d": (
            case.scribble[window[0], window[1], z] if "scribble" in show and case.scribble is not None else None
        ),
    }


def case_montage(
    case: Any,
    slices: Sequence[int] | None = None,
    show: Sequence[str] = MONTAGE_LAYERS,
    n_slices: int = 6,
    zoom: bool = True,
) -> Figure:
    """One case as a grid: a row per sequence, a column per slice in Z order (base to apex in ACDC's layout).

    Args:
        case: a :class:`~modelmix_lite.data.readers.Case`: image ``(C, X, Y, Z)``, label/scribble ``(X, Y, Z)``/None.
        slices: Z indices to show; default ``n_slices`` evenly spaced over the annotated slices.
        show: which layers to draw, a subset of ``("image", "label", "scribble")``.
        n_slices: number of columns when ``slices`` is None.
        zoom: show only the :func:`~modelmix_lite.data.geometry.heart_window`, the same for every slice.

    Raises:
        ConfigError: on an unknown layer in ``show`` or a slice index outside the volume.
    """
    spec = get_task(case.task)
    unknown = sorted(set(show) - set(MONTAGE_LAYERS))
    if unknown:
        raise ConfigError(f"show: unknown layers {unknown}; expected a subset of {MONTAGE_LAYERS}")
    depth = case.image.shape[-1]
    if slices is None:
        z = annotated_slices(case)
        z = z if len(z) else np.arange(depth)
        slices = z[np.unique(np.linspace(0, len(z) - 1, min(n_slices, len(z))).round().astype(int))]
    outside = [int(z) for z in slices if not 0 <= z < depth]
    if outside:
        raise ConfigError(f"slices: {outside} not in the {depth} slices of {case.subject}")
    if len(slices) == 0:
        raise ConfigError("slices: empty; give at least one Z index")
    fig, axes = plt.subplots(
        spec.n_channels, len(slices), figsize=(1.9 * len(slices), 1.9 * spec.n_channels + 0.8), squeeze=False
    )
    for row, sequence in enumerate(spec.sequences):
        for col, z in enumerate(slices):
            ax = overlay(axes[row, col], **_layers(case, int(z), row, show, zoom), task=spec)
            if row == 0:
                ax.set_title(f"z = {int(z)}", fontsize=9)
            if col == 0:
                _row_label(ax, sequence)
    fig.suptitle(f"{spec.title}: {case.subject} ({case.split})", fontsize=11)
    fig.legend(handles=class_legend(spec), loc="lower center", ncol=spec.n_classes, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def dataset_overview(cases_by_task: Mapping[str, Any], zoom: bool = True) -> Figure:
    """A mid slice of one case per task, a column per sequence: ground truth on top, scribbles below.

    Args:
        cases_by_task: task name -> a representative case of that task.
        zoom: show only the :func:`~modelmix_lite.data.geometry.heart_window` of each case.
    """
    columns = [(case, c) for case in cases_by_task.values() for c in range(get_task(case.task).n_channels)]
    fig, axes = plt.subplots(2, len(columns), figsize=(2.3 * len(columns), 5.2), squeeze=False)
    for col, (case, channel) in enumerate(columns):
        spec, z = get_task(case.task), middle_slice(case)
        layers = _layers(case, z, channel, MONTAGE_LAYERS, zoom)
        overlay(axes[0, col], layers["image2d"], label2d=layers["label2d"], task=spec)
        overlay(axes[1, col], layers["image2d"], scribble2d=layers["scribble2d"], task=spec)
        axes[0, col].set_title(f"{spec.name.upper()} · {spec.sequences[channel]}\n{case.subject}, z = {z}", fontsize=9)
    for row, name in enumerate(("ground truth", "scribbles")):
        _row_label(axes[row, 0], name)
    handles = class_legend(*(case.task for case in cases_by_task.values()))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_scribble_stats(frame: pd.DataFrame) -> Figure:
    """Box and strip plot of coverage (%) per class, one panel per task, over the real-ACDC reference band.

    Args:
        frame: output of :func:`~modelmix_lite.data.scribbles.scribble_stats_frame`.
    """
    tasks = list(dict.fromkeys(frame["task"]))
    if not tasks:
        raise DataError("frame: no rows to plot")
    frame = frame.assign(percent=100 * frame["coverage"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.6), sharey=True, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        spec, data = get_task(task), frame[frame["task"] == task]
        order = [name for name in spec.classes if name in set(data["class"])]
        palette = {name: CLASS_COLORS[name] for name in order}
        ax.axhspan(*ACDC_SCRIBBLE_BAND, color="0.85", zorder=0, label="real ACDC, structures (6–18 %)")
        ax.axhline(ACDC_BACKGROUND_COVERAGE, color="0.4", ls="--", lw=1, label="real ACDC, background (0.6 %)")
        common = dict(data=data, x="class", y="percent", hue="class", order=order, palette=palette, ax=ax)
        with warnings.catch_warnings():  # seaborn 0.13 passes Matplotlib 3.11's deprecated `vert`
            warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
            sns.boxplot(**common, fliersize=0, boxprops={"alpha": 0.5}, legend=False)
        sns.stripplot(**common, size=3, color="k", legend=False)
        ax.set(title=spec.title, xlabel="", ylabel="scribbled pixels of the class (%)")
        ax.tick_params(axis="x", labelrotation=30)
    axes[0, 0].legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def network_inputs(dataset: Any, n: int = 6) -> Figure:
    """Slices as the network receives them: a row per input channel, the training target drawn on top.

    Up to half the columns are slices without any annotated pixel (unlabeled subjects, slices beyond the
    heart), the rest annotated slices, each group evenly spaced through the dataset. Scribble targets are
    drawn as strokes, full ground-truth targets (``target="label"``) as filled contours.

    Args:
        dataset: a :class:`~modelmix_lite.data.slices.SliceDataset` (``images (N, C, S, S)``, ``targets (N, S, S)``).
        n: largest number of columns.
    """
    annotated, empty = np.flatnonzero(dataset.annotated), np.flatnonzero(~dataset.annotated)
    n_empty = min(len(empty), n // 2 if len(annotated) else n)
    n_annotated = min(len(annotated), n - n_empty)
    picks = [group[np.linspace(0, len(group) - 1, k).round().astype(int)]
             for group, k in ((annotated, n_annotated), (empty, n_empty)) if k]
    if not picks:
        raise DataError("dataset: no slices to show")
    indices = np.concatenate(picks)
    spec, full = get_task(dataset.task), dataset.meta["target"] == "label"
    fig, axes = plt.subplots(
        spec.n_channels, len(indices), figsize=(1.9 * len(indices), 1.9 * spec.n_channels + 0.9), squeeze=False
    )
    for col, i in enumerate(indices):
        item, target = dataset[int(i)], dataset.targets[i]
        layers = {"label2d": np.where(target == UNANNOTATED, 0, target)} if full else {"scribble2d": target}
        for row in range(spec.n_channels):
            overlay(axes[row, col], item["image"][row].numpy(), **layers, task=spec, window=(0.0, 1.0))
        kind = "annotated" if item["annotated"] else "no target"
        axes[0, col].set_title(f"{dataset.subjects[item['case']]}\nz = {item['z']} ({kind})", fontsize=8)
    for row, sequence in enumerate(spec.sequences):
        _row_label(axes[row, 0], sequence)
    size = dataset.images.shape[-1]
    fig.suptitle(f"{spec.title}: network inputs ({spec.n_channels} × {size} × {size}, intensities in [0, 1])",
                 fontsize=10)
    fig.legend(handles=class_legend(spec), loc="lower center", ncol=spec.n_classes, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def slice_viewer(case: Any) -> Any:
    """Interactive viewer of one case: slice slider, sequence menu, ground-truth, scribble and zoom toggles.

    Returns an ``ipywidgets.VBox``; needs a live kernel (in a static book page the slider does nothing).
    """
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError as err:
        raise ImportError("slice_viewer needs ipywidgets: pip install ipywidgets") from err
    spec = get_task(case.task)
    controls = {
        "z": widgets.IntSlider(middle_slice(case), min=0, max=case.image.shape[-1] - 1, description="slice"),
        "channel": widgets.Dropdown(options=[(s, c) for c, s in enumerate(spec.sequences)], description="sequence"),
        "label": widgets.Checkbox(case.label is not None, description="ground truth", disabled=case.label is None),
        "scribble": widgets.Checkbox(
            case.scribble is not None, description="scribbles", disabled=case.scribble is None
        ),
        "zoom": widgets.Checkbox(True, description="zoom to heart"),
    }

    def draw(z: int, channel: int, label: bool, scribble: bool, zoom: bool) -> None:
        show = ["image"] + ["label"] * label + ["scribble"] * scribble
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        overlay(ax, **_layers(case, z, channel, show, zoom), task=spec)
        ax.set_title(f"{case.subject}: {spec.sequences[channel]}, z = {z}", fontsize=10)
        display(fig)
        plt.close(fig)

    output = widgets.interactive_output(draw, controls)
    boxes = list(controls.values())
    return widgets.VBox([widgets.HBox(boxes[:2]), widgets.HBox(boxes[2:]), output])

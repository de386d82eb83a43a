"""Figures for the tutorials: image overlays, case montages, dataset overview, scribble statistics.

Every figure function returns its :class:`matplotlib.figure.Figure`; nothing is shown or saved here.
Volumes follow the readers' conventions: images ``(C, X, Y, Z)``, labels and scribbles ``(X, Y, Z)``,
slices taken along Z. A 2-D slice ``(X, Y)`` is drawn with X to the right and Y upwards.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
import torch
import torch.nn.functional as F
from matplotlib.colors import LogNorm, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from scipy.stats import beta as beta_distribution
from torch import Tensor, nn

from .data.readers import load_split
from .data.scribbles import scribble_coverage
from .data.slices import SliceDataset, few_scribble_split
from .data.tasks import UNANNOTATED, TaskSpec, get_task
from .errors import ConfigError, DataError
from .losses import cosine_loss
from .mixing import DRIFT_POINTS, MixableLayer, virtual_forward
from .models import TaskModelSet, UNet, as_model_input
from .perturb import apply_cutout

CLASS_COLORS: dict[str, str] = {
    "background": "#00bcd4",
    "RV": "#2962ff",
    "MYO": "#00c853",
    "LV": "#d50000",
    "edema": "#ffab00",
    "scar": "#d500f9",
}
"""One colour per class name, shared by all tasks (MYO is the same green in ACDC and MyoPS)."""

LABEL_ALPHA = 0.3
"""Opacity of the ground-truth fill; its contour is drawn opaque."""

ACDC_SCRIBBLE_BAND = (6.0, 18.0)
"""Coverage (%) of each structure by the real ACDC expert scribbles; background is about 0.6 %."""

ACDC_BACKGROUND_COVERAGE = 0.6

MONTAGE_LAYERS = ("image", "label", "scribble")


def _spec(task: str | TaskSpec) -> TaskSpec:
    return task if isinstance(task, TaskSpec) else get_task(task)


def class_colors(task: str | TaskSpec) -> np.ndarray:
    """RGBA colour of each class of ``task``, ``(n_classes, 4)`` float in [0, 1], indexed by class id."""
    return np.array([to_rgba(CLASS_COLORS[name]) for name in _spec(task).classes])


def class_legend(*tasks: str | TaskSpec) -> list[Patch]:
    """Legend handles, one coloured patch per class of the ``tasks`` (each class once, in first-seen order)."""
    names = dict.fromkeys(name for task in tasks for name in _spec(task).classes)
    return [Patch(color=CLASS_COLORS[name], label=name) for name in names]


def _rgba(labels: np.ndarray, spec: TaskSpec, alpha: float, what: str) -> np.ndarray:
    """Colour a class map ``(X, Y)`` -> ``(Y, X, 4)`` for ``imshow``.

    Ground truth (``what="label2d"``) leaves background transparent; scribbles leave ``UNANNOTATED`` transparent.
    """
    allowed = set(range(spec.n_classes)) | ({UNANNOTATED} if what == "scribble2d" else set())
    bad = sorted(int(v) for v in np.unique(labels) if int(v) not in allowed)
    if bad:
        raise DataError(f"{what}: values {bad} are not classes of {spec.name} (allowed: {sorted(allowed)})")
    lut = np.zeros((256, 4))
    lut[: spec.n_classes] = class_colors(spec)
    lut[: spec.n_classes, 3] = alpha
    lut[0 if what == "label2d" else UNANNOTATED, 3] = 0.0
    return lut[np.asarray(labels, dtype=np.uint8).T]


def overlay(
    ax: Axes,
    image2d: np.ndarray,
    label2d: np.ndarray | None = None,
    scribble2d: np.ndarray | None = None,
    task: str | TaskSpec = "acdc",
    window: tuple[float, float] | None = None,
) -> Axes:
    """Draw one slice: the image in grey, the ground truth as a filled contour, the scribbles as strokes.

    Args:
        ax: axes to draw on (its ticks are switched off).
        image2d: ``(X, Y)`` intensities.
        label2d: ``(X, Y)`` canonical classes; background is left transparent.
        scribble2d: ``(X, Y)`` canonical classes or ``UNANNOTATED`` (transparent); background strokes are drawn.
        task: task name or spec, for the class colours.
        window: intensities mapped to black and white; default the slice's 1st and 99th percentiles.

    Raises:
        DataError: when the arrays are not 2-D of one shape, or hold values that are not classes of ``task``.
    """
    spec = _spec(task)
    image2d = np.asarray(image2d)
    if image2d.ndim != 2 or not image2d.size:
        raise DataError(f"image2d: expected a non-empty 2-D slice, got shape {image2d.shape}")
    for name, array in (("label2d", label2d), ("scribble2d", scribble2d)):
        if array is not None and np.shape(array) != image2d.shape:
            raise DataError(f"{name}: shape {np.shape(array)} differs from the image slice's {image2d.shape}")
    lo, hi = window if window is not None else np.percentile(image2d, [1, 99])
    ax.imshow(image2d.T, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6), origin="lower", interpolation="nearest")
    if label2d is not None:
        ax.imshow(_rgba(label2d, spec, LABEL_ALPHA, "label2d"), origin="lower", interpolation="nearest")
        for c in range(1, spec.n_classes):
            if np.any(label2d == c):
                ax.contour((label2d == c).T, levels=[0.5], colors=[CLASS_COLORS[spec.classes[c]]], linewidths=0.8)
    if scribble2d is not None:
        ax.imshow(_rgba(scribble2d, spec, 1.0, "scribble2d"), origin="lower", interpolation="nearest")
    ax.set_axis_off()
    return ax


def _row_label(ax: Axes, text: str) -> None:
    """Write ``text`` vertically left of ``ax`` (a row title that survives ``set_axis_off``)."""
    ax.text(-0.06, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center")


def annotated_slices(case: Any) -> np.ndarray:
    """Indices of the Z slices holding any foreground in the ground truth (or, without one, the scribbles)."""
    labels = case.label if case.label is not None else case.scribble
    if labels is None:
        return np.arange(case.image.shape[-1])
    foreground = (labels > 0) & (labels != UNANNOTATED)
    return np.flatnonzero(foreground.any(axis=(0, 1)))


def middle_slice(case: Any) -> int:
    """The middle of the annotated slices (the middle of the volume if nothing is annotated)."""
    z = annotated_slices(case)
    return int(z[len(z) // 2]) if len(z) else case.image.shape[-1] // 2


def heart_window(case: Any, margin: float = 0.5) -> tuple[slice, slice]:
    """An in-plane ``(X, Y)`` window around every annotated voxel of ``case``, for zooming in on the heart.

    The box of the ground-truth foreground (or, without ground truth, of all scribbled voxels) is made
    square and widened by ``margin`` times its side on each side, then clipped to the image. Without any
    annotation the window is the whole slice.
    """
    labels = case.label if case.label is not None else case.scribble
    if labels is None:
        return slice(None), slice(None)
    marked = labels > 0 if case.label is not None else labels != UNANNOTATED
    xs, ys = np.flatnonzero(marked.any(axis=(1, 2))), np.flatnonzero(marked.any(axis=(0, 2)))
    if not len(xs):
        return slice(None), slice(None)
    half = (1 + 2 * margin) * max(xs[-1] - xs[0], ys[-1] - ys[0], 1) / 2
    window = []
    for lo, hi, size in ((xs[0], xs[-1], marked.shape[0]), (ys[0], ys[-1], marked.shape[1])):
        centre = (lo + hi) / 2
        window.append(slice(max(0, int(centre - half)), min(size, int(np.ceil(centre + half)) + 1)))
    return window[0], window[1]


def _layers(case: Any, z: int, channel: int, show: Iterable[str], zoom: bool) -> dict[str, np.ndarray | None]:
    """The 2-D arrays :func:`overlay` draws for slice ``z`` of ``case`` (cut to :func:`heart_window` if ``zoom``)."""
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
        zoom: show only the :func:`heart_window`, the same for every slice.

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
        zoom: show only the :func:`heart_window` of each case.
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


def scribble_stats_frame(cases: Iterable[Any]) -> pd.DataFrame:
    """Scribble coverage of every class of every case: columns ``task, case, class, coverage`` (a fraction).

    Raises:
        DataError: when a case lacks its ground truth or its scribble (coverage needs both).
    """
    rows = []
    for case in cases:
        spec = get_task(case.task)
        if case.label is None or case.scribble is None:
            missing = "ground truth" if case.label is None else "scribble"
            raise DataError(f"{case.task}/{case.subject}: no {missing}, so no scribble coverage")
        coverage = scribble_coverage(case.scribble, case.label, spec.n_classes)
        for c, name in enumerate(spec.classes):
            rows.append({"task": spec.name, "case": case.subject, "class": name, "coverage": coverage[c]})
    return pd.DataFrame(rows, columns=["task", "case", "class", "coverage"])


def plot_scribble_stats(frame: pd.DataFrame) -> Figure:
    """Box and strip plot of coverage (%) per class, one panel per task, over the real-ACDC reference band.

    Args:
        frame: output of :func:`scribble_stats_frame`.
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


# --- perturbation and mixup ---
PADDING_COLOR = "#ff6d00"
"""Fill of the pixels a geometric warp brings in from outside the image (unannotated padding)."""

CUTOUT_EDGE = "#ffd600"
"""Outline of the cutout square."""


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _gray(ax: Axes, image2d: Tensor | np.ndarray) -> Axes:
    """Draw an ``(X, Y)`` network-input slice on the fixed grey scale [0, 1], so panels compare in brightness."""
    ax.imshow(_numpy(image2d).T, cmap="gray", vmin=0.0, vmax=1.0, origin="lower", interpolation="nearest")
    ax.set_axis_off()
    return ax


def _rgb(ax: Axes, rgb: np.ndarray) -> Axes:
    """Draw an ``(X, Y, 3|4)`` colour slice in the orientation of :func:`overlay`."""
    ax.imshow(np.clip(rgb, 0, 1).transpose(1, 0, 2), origin="lower", interpolation="nearest")
    ax.set_axis_off()
    return ax


def _check_rows(name: str, rows: Sequence[Any], n: int) -> None:
    if len(rows) != n:
        raise DataError(f"{name}: expected one entry per row ({n}), got {len(rows)}")


def scribbled_pixels_cut(labels: Tensor, mask: Tensor) -> Tensor:
    """Scribbled foreground pixels under each cutout square: what the released code relabels as background.

    Args:
        labels: ``(B, H, W)`` canonical scribbles (``UNANNOTATED`` where not annotated).
        mask: ``(B, 1, H, W)`` cutout mask ``1_c`` (0 inside the square), from
            :func:`~modelmix_lite.perturb.cutout_mask`.
    Returns:
        ``(B,)`` int64 counts of pixels with a class ``> 0`` (not background, not unannotated) where ``mask == 0``.
    """
    if labels.ndim != 3 or mask.shape != (labels.shape[0], 1, *labels.shape[1:]):
        raise DataError(f"mask: shape {tuple(mask.shape)} does not match labels {tuple(labels.shape)}; "
                        "expected labels (B, H, W) and mask (B, 1, H, W)")
    foreground = (labels > 0) & (labels != UNANNOTATED)
    return (foreground & (mask[:, 0] == 0)).sum(dim=(1, 2))


def _cutout_box(ax: Axes, mask2d: np.ndarray) -> None:
    """Outline the zero region of an ``(X, Y)`` cutout mask."""
    xs, ys = np.nonzero(mask2d == 0)
    if len(xs):
        ax.add_patch(Rectangle((xs.min() - 0.5, ys.min() - 0.5), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1,
                               fill=False, edgecolor=CUTOUT_EDGE, linestyle="--", linewidth=1.2))


def plot_cutout(
    images: Sequence[Tensor],
    scribbles: Sequence[Tensor],
    masks: Sequence[Tensor],
    tasks: Sequence[str],
    channel: int = 0,
) -> Figure:
    """Cutout ``x^c = 1_c ⊙ x`` (§2.1) and the two ways of labelling the cut pixels, one row per sample.

    Columns: the image with its scribble; the mask ``1_c``; ``x^c`` with the cut scribble pixels
    ``UNANNOTATED`` (the library's default, nothing drawn there); ``x^c`` with them background (the
    released code's ``label_fill=0``: the square fills with the background colour). Both relabellings
    are computed by :func:`~modelmix_lite.perturb.apply_cutout`.

    Args:
        images: per row ``(C, H, W)``.
        scribbles: per row ``(H, W)`` canonical scribble.
        masks: per row ``(1, H, W)`` cutout mask.
        tasks: per row the task name, for the colours and the row label.
        channel: image channel drawn (the cutout hides every channel).
    """
    n = len(tasks)
    for name, rows in (("images", images), ("scribbles", scribbles), ("masks", masks)):
        _check_rows(name, rows, n)
    fig, axes = plt.subplots(n, 4, figsize=(9.2, 2.35 * n + 0.9), squeeze=False)
    titles = ("$x$ and its scribble $y$", "cutout mask $1_c$", "$x^c$; cut $y$ → unannotated\n(library default)",
              "$x^c$; cut $y$ → background\n(released ACDC/MSCMR code)")
    for row, (image, scribble, mask, task) in enumerate(zip(images, scribbles, masks, tasks)):
        spec = _spec(task)
        y = scribble[None].long()
        cut, unannotated = apply_cutout(image[None], mask[None], y)
        _, background = apply_cutout(image[None], mask[None], y, label_fill=0)
        hits = int(scribbled_pixels_cut(y, mask[None])[0])
        mask2d = _numpy(mask[0])
        overlay(axes[row, 0], _numpy(image[channel]), scribble2d=_numpy(scribble), task=spec)
        _gray(axes[row, 1], mask2d).set_axis_on()  # a frame: the mask is white (1) outside the square
        axes[row, 1].set(xticks=[], yticks=[])
        overlay(axes[row, 2], _numpy(cut[0, channel]), scribble2d=_numpy(unannotated[0]), task=spec)
        overlay(axes[row, 3], _numpy(cut[0, channel]), scribble2d=_numpy(background[0]), task=spec)
        for ax in axes[row, 1:]:
            _cutout_box(ax, mask2d)
        axes[row, 3].text(0.5, -0.02, f"{hits} scribbled foreground px → background",
                          transform=axes[row, 3].transAxes, ha="center", va="top", fontsize=8)
        _row_label(axes[row, 0], f"{spec.name.upper()} · {spec.sequences[channel]}")
    for col, title in enumerate(titles):
        axes[0, col].set_title(title, fontsize=9)
    handles = class_legend(*tasks) + [Patch(fill=False, edgecolor=CUTOUT_EDGE, linestyle="--", label="cutout square")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_mixup_grid(
    x1: Sequence[Tensor],
    x2: Sequence[Tensor],
    tasks: Sequence[str],
    alphas: Sequence[float] = (1.0, 0.75, 0.5, 0.25, 0.0),
    channel: int = 0,
) -> Figure:
    """Intra-dataset mixup ``x' = α x1 + (1 − α) x2`` (§2.1) over a grid of fixed ``α``, one row per pair.

    Args:
        x1, x2: per row ``(C, H, W)`` images of the same task, intensities in [0, 1] (drawn on that fixed scale).
        tasks: per row the task name.
        alphas: the columns; ``α = 1`` shows ``x1``, ``α = 0`` shows ``x2``.
    """
    n = len(tasks)
    _check_rows("x1", x1, n)
    _check_rows("x2", x2, n)
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ConfigError(f"alphas: expected mix ratios in [0, 1], got {list(alphas)}")
    fig, axes = plt.subplots(n, len(alphas), figsize=(1.9 * len(alphas), 1.95 * n + 0.4), squeeze=False)
    for row, (a, b, task) in enumerate(zip(x1, x2, tasks)):
        if a.shape != b.shape:
            raise DataError(f"x2[{row}]: shape {tuple(b.shape)} does not match x1[{row}] {tuple(a.shape)}")
        for col, alpha in enumerate(alphas):
            _gray(axes[row, col], alpha * a[channel] + (1 - alpha) * b[channel])
        spec = _spec(task)
        _row_label(axes[row, 0], f"{spec.name.upper()} · {spec.sequences[channel]}")
    for col, alpha in enumerate(alphas):
        axes[0, col].set_title(f"α = {alpha:g}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_beta_densities(
    concentrations: Sequence[float] = (0.2, 0.5, 1.0, 2.0), samples: Mapping[float, Any] | None = None
) -> Figure:
    """Densities of the mix ratio ``α ~ Beta(a, a)`` for a few concentrations ``a``, optionally with draws.

    Args:
        concentrations: values of ``a`` (the released code uses 0.5).
        samples: ``a`` -> 1-D draws (e.g. :func:`~modelmix_lite.perturb.sample_beta`), drawn as a histogram
            in the colour of that ``a``'s curve.
    """
    samples = dict(samples or {})
    values = list(concentrations) + [a for a in samples if a not in concentrations]
    bad = [a for a in values if not a > 0]
    if not values or bad:
        raise ConfigError(f"concentrations: Beta concentrations must be > 0, got {values}")
    grid = np.linspace(0.001, 0.999, 500)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for a, color in zip(values, sns.color_palette("viridis", len(values))):
        ax.plot(grid, beta_distribution.pdf(grid, a, a), color=color, lw=1.8, label=f"Beta({a:g}, {a:g})")
        if a in samples:
            draws = _numpy(samples[a]).ravel()
            ax.hist(draws, bins=40, range=(0, 1), density=True, color=color, alpha=0.3,
                    label=f"{len(draws)} draws, a = {a:g}")
    ax.set(xlim=(0, 1), ylim=(0, 4), xlabel="mix ratio α", ylabel="density")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def probability_rgb(prob: Tensor | np.ndarray, task: str | TaskSpec) -> np.ndarray:
    """Colour a class-probability map: each pixel is ``Σ_c p_c · colour_c``.

    A confident pixel shows its class colour, an undecided one a blend, so mixtures of predictions
    (as in Eq. 1) stay visible.

    Args:
        prob: ``(n_classes, X, Y)`` probabilities of ``task``'s classes.
    Returns:
        ``(X, Y, 3)`` float RGB in [0, 1].
    """
    spec, prob = _spec(task), _numpy(prob)
    if prob.ndim != 3 or prob.shape[0] != spec.n_classes:
        raise DataError(f"prob: expected ({spec.n_classes}, X, Y) probabilities of {spec.name}, got {prob.shape}")
    return np.einsum("cxy,cr->xyr", prob, class_colors(spec)[:, :3])


def pixel_cosine(p: Tensor, q: Tensor) -> Tensor:
    """Cosine of the class vectors of two ``(B, C, H, W)`` maps at each pixel, ``(B, H, W)``.

    Its mean is ``−cosine_loss(p, q, reduce="pixel")`` (:func:`~modelmix_lite.losses.cosine_loss`).
    """
    if p.ndim != 4 or p.shape != q.shape:
        raise DataError(f"q: shape {tuple(q.shape)} does not match p {tuple(p.shape)}; expected (B, C, H, W)")
    return F.cosine_similarity(p, q, dim=1, eps=1e-8)


def plot_invariance(
    x1: Tensor,
    x2: Tensor,
    x_mix: Tensor,
    p1: Tensor,
    p2: Tensor,
    p_mix: Tensor,
    alpha: float,
    task: str,
    loss: float | None = None,
    channel: int = 0,
) -> Figure:
    """What L_inv (Eq. 1) compares, for one sample: ``f(x')`` against ``α f(x1^c) + (1 − α) f(x2^c)``.

    Top row: the inputs ``x1^c``, ``x2^c``, ``x'`` and the per-pixel cosine of the two compared maps;
    bottom row: ``f(x1^c)``, ``f(x2^c)``, ``f(x')`` and the target ``α f(x1^c) + (1 − α) f(x2^c)``,
    coloured by :func:`probability_rgb`.

    Args:
        x1, x2, x_mix: ``(C, H, W)`` the two cut-out images and their mixup.
        p1, p2, p_mix: ``(n_classes, H, W)`` class probabilities of the model on each.
        alpha: the mix ratio of this sample.
        loss: the batch's ``L_inv`` (:func:`~modelmix_lite.losses.invariance_loss`), printed in the title.
    """
    if not (p1.shape == p2.shape == p_mix.shape) or p1.shape[1:] != x1.shape[1:]:
        raise DataError(f"p_mix: probabilities {tuple(p1.shape)}, {tuple(p2.shape)}, {tuple(p_mix.shape)} "
                        f"must share one shape (n_classes, H, W) matching x1 {tuple(x1.shape)}")
    target = alpha * p1 + (1 - alpha) * p2
    cos = _numpy(pixel_cosine(p_mix[None], target[None])[0])
    spec = _spec(task)
    fig, axes = plt.subplots(2, 4, figsize=(10, 5.6), layout="constrained")
    x_title = f"$x' = {alpha:.2f}\\,x_1^c + {1 - alpha:.2f}\\,x_2^c$"
    for ax, x, title in zip(axes[0], (x1, x2, x_mix), ("$x_1^c$", "$x_2^c$", x_title)):
        _gray(ax, x[channel]).set_title(title, fontsize=9)
    titles = ("$f(x_1^c)$", "$f(x_2^c)$", "$f(x')$", f"${alpha:.2f}\\,f(x_1^c) + {1 - alpha:.2f}\\,f(x_2^c)$")
    for ax, p, title in zip(axes[1], (p1, p2, p_mix, target), titles):
        _rgb(ax, probability_rgb(p, spec)).set_title(title, fontsize=9)
    image = axes[0, 3].imshow(cos.T, cmap="viridis", origin="lower", interpolation="nearest")
    axes[0, 3].set_axis_off()
    axes[0, 3].set_title(f"cos per pixel (mean {cos.mean():.4f})", fontsize=9)
    fig.colorbar(image, ax=axes[0, 3], fraction=0.046, pad=0.04)
    fig.suptitle(spec.title + ("" if loss is None else f": $L_{{inv}}$ = {loss:.4f} on the batch"), fontsize=10)
    fig.legend(handles=class_legend(spec), loc="outside lower center", ncol=spec.n_classes, frameon=False, fontsize=8)
    return fig


def plot_augmentations(
    images: Tensor,
    scribbles: Tensor,
    padding: Tensor,
    task: str,
    labels: Tensor | None = None,
    titles: Sequence[str] | None = None,
    channel: int = 0,
) -> Figure:
    """Geometrically augmented slices in a row, with their scribbles, ground truth and padding.

    Padding — pixels a warp brought in from outside the image — is filled orange: it is ``UNANNOTATED``
    in every label map (:func:`~modelmix_lite.perturb.augment`), not background.

    Args:
        images: ``(B, C, H, W)``.
        scribbles: ``(B, H, W)`` canonical scribbles.
        padding: ``(B, H, W)`` bool, True where a pixel came from outside the image.
        labels: optional ``(B, H, W)`` ground truth, drawn filled (its padding is drawn as padding).
        titles: one title per panel.
    """
    batch = images.shape[0]
    for name, array in (("scribbles", scribbles), ("padding", padding), ("labels", labels)):
        if array is not None and array.shape != (batch, *images.shape[2:]):
            raise DataError(f"{name}: shape {tuple(array.shape)} does not match images {tuple(images.shape)}")
    if titles is not None:
        _check_rows("titles", titles, batch)
    spec = _spec(task)
    fig, axes = plt.subplots(1, batch, figsize=(2.2 * batch, 2.9), squeeze=False)
    fill = np.zeros((*padding.shape[1:], 4))
    fill[:] = to_rgba(PADDING_COLOR, 0.75)
    padding_np = _numpy(padding)
    for b, ax in enumerate(axes[0]):
        label2d = None if labels is None else np.where(padding_np[b], 0, _numpy(labels[b]))  # padding: orange
        overlay(ax, _numpy(images[b, channel]), label2d, _numpy(scribbles[b]), spec)
        _rgb(ax, fill * padding_np[b][..., None])
        if titles is not None:
            ax.set_title(titles[b], fontsize=9)
    handles = class_legend(spec) + [Patch(color=PADDING_COLOR, alpha=0.75, label="padding (unannotated)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_domain_gap(
    images: Mapping[str, Tensor], pair: tuple[int, int] = (0, 0), alpha: float = 0.5, channel: int = 0, bins: int = 50
) -> Figure:
    """Why two tasks' images are not mixed: a cross-task blend and the intensity histograms of both datasets.

    Args:
        images: exactly two tasks -> ``(N, C, H, W)`` slice stacks with intensities in [0, 1].
        pair: the slice of each stack to show and blend.
        alpha: weight of the first task's slice in the blend.
        channel: channel of each stack (``0`` is cine / LGE / C0).
        bins: histogram bins over [0, 1]; exact zeros (padding, air) are left out.
    """
    if len(images) != 2:
        raise ConfigError(f"images: expected exactly two tasks, got {list(images)}")
    (task_a, a), (task_b, b) = images.items()
    if a.shape[2:] != b.shape[2:]:
        raise DataError(
            f"images[{task_b!r}]: slice size {tuple(b.shape[2:])} differs from {task_a!r} {tuple(a.shape[2:])}"
        )
    slice_a, slice_b = a[pair[0], channel], b[pair[1], channel]
    n = min(len(a), len(b))
    stacks = {
        task_a.upper(): a[:, channel],
        task_b.upper(): b[:, channel],
        f"blend, α = {alpha:g}": alpha * a[:n, channel] + (1 - alpha) * b[:n, channel],
    }
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    blend_title = f"{alpha:g} · {task_a.upper()} + {1 - alpha:g} · {task_b.upper()}"
    for ax, x, title in zip(axes, (slice_a, slice_b, alpha * slice_a + (1 - alpha) * slice_b),
                            (_spec(task_a).title, _spec(task_b).title, blend_title)):
        _gray(ax, x).set_title(title, fontsize=9)
    for (name, stack), color in zip(stacks.items(), ("#1565c0", "#c62828", "0.3")):
        values = _numpy(stack).ravel()
        axes[3].hist(values[values > 0], bins=bins, range=(0, 1), density=True, histtype="step", lw=1.5, color=color,
                     label=name)
    axes[3].set(xlabel="normalised intensity (non-zero pixels)", ylabel="density", yscale="log")
    axes[3].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def dropout_predictions(model: nn.Module, x: Tensor, n: int = 8) -> Tensor:
    """``n`` stochastic forward passes with only the dropout layers active (model-level perturbation, §2.1).

    BatchNorm stays in eval mode, so every sample is processed independently and the spread comes from
    dropout alone; the ``n`` passes therefore run as one batch of ``n`` copies. Every module's mode is
    restored afterwards. Draws come from torch's global RNG (seed it for reproducible figures).

    Args:
        model: returns logits ``(B, C, H, W)`` for ``x`` ``(B, in_channels, H, W)``.
    Returns:
        ``(n, B, C, H, W)`` softmax probabilities.
    """
    if n < 1:
        raise ConfigError(f"n: number of dropout samples must be >= 1, got {n}")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    try:
        with torch.no_grad():
            logits = model(x.repeat(n, *[1] * (x.ndim - 1)))
        return logits.softmax(dim=1).view(n, -1, *logits.shape[1:])
    finally:
        for m, training in modes.items():
            m.training = training


def plot_dropout_variance(image: Tensor, samples: Mapping[str, Tensor], task: str, channel: int = 0) -> Figure:
    """Mean prediction and per-pixel spread of dropout samples, one row per dropout setting.

    Columns: the image; the mean probability (:func:`probability_rgb`); the standard deviation over the
    samples, averaged over classes, on one colour scale for all rows.

    Args:
        image: ``(C, H, W)`` the input slice.
        samples: setting name -> ``(n, n_classes, H, W)`` probabilities of one slice (from :func:`dropout_predictions`).
    """
    if not samples:
        raise ConfigError("samples: no dropout setting to plot")
    spec = _spec(task)
    spread = {name: _numpy(s.std(dim=0, correction=0).mean(dim=0)) for name, s in samples.items()}
    vmax = max(float(s.max()) for s in spread.values()) or 1.0
    fig, axes = plt.subplots(len(samples), 3, figsize=(7.4, 2.4 * len(samples) + 0.5), squeeze=False)
    for row, (name, s) in enumerate(samples.items()):
        _gray(axes[row, 0], image[channel])
        _rgb(axes[row, 1], probability_rgb(s.mean(dim=0), spec))
        shown = axes[row, 2].imshow(spread[name].T, cmap="magma", vmin=0, vmax=vmax, origin="lower",
                                    interpolation="nearest")
        axes[row, 2].set_axis_off()
        fig.colorbar(shown, ax=axes[row, 2], fraction=0.046, pad=0.04)
        _row_label(axes[row, 0], f"dropout = {name}")
        axes[row, 2].set_title(f"std over {len(s)} passes (mean {spread[name].mean():.3f})", fontsize=9)
    axes[0, 0].set_title("input", fontsize=9)
    axes[0, 1].set_title("mean prediction", fontsize=9)
    fig.tight_layout()
    return fig


# --- vicinal losses ---
MODEL_PARTS: tuple[str, ...] = ("encoder", "decoder", "head")
"""Parameter groups of a task model in :func:`gradient_norms_by_group`: ``e_i``, and ``h_i`` split into the
U-Net decoder and the 1×1 head (the released code trains only the head through the virtual model)."""

GRADIENT_FLOOR = 1e-4
""":func:`plot_gradient_maps` draws gradients below this fraction of the largest one white."""


def _crop_window(mask2d: np.ndarray, margin: float = 0.5) -> tuple[slice, slice]:
    """Slices of the bounding box of ``mask2d``, grown by ``margin`` × its size on every side (all if empty)."""
    if not mask2d.any():
        return slice(None), slice(None)
    window = []
    for axis in (1, 0):
        hit = np.flatnonzero(mask2d.any(axis=axis))
        pad = int(np.ceil(margin * (hit[-1] - hit[0] + 1)))
        window.append(slice(max(hit[0] - pad, 0), min(hit[-1] + 1 + pad, mask2d.shape[1 - axis])))
    return window[0], window[1]


def example_batch(
    task: str,
    root: str | Path,
    size: int,
    n_scribbled: int = 2,
    n_unlabeled: int = 2,
    n_subjects: int = 5,
    seed: int = 0,
    spacing_mm: float = 0.0,
) -> dict[str, Any]:
    """A fixed batch of ``task``'s training slices, in the form :class:`~modelmix_lite.objective.ModelMixObjective` takes.

    The ``n_subjects`` scribbled subjects are :func:`~modelmix_lite.data.slices.few_scribble_split`'s choice for
    ``seed``, as in training. The first ``n_scribbled`` rows are their slices with the most scribbled classes (ties broken at
    random), the next ``n_unlabeled`` rows random slices of the other subjects (all ``UNANNOTATED``).

    Returns:
        ``{"image": (B, 3, size, size) float32, "target": (B, size, size) int64, "n_scribbled": int}``.

    Raises:
        DataError: when there are fewer scribbled or unlabeled slices than asked for.
    """
    cases = load_split(task, root, "train")
    scribbled, _ = few_scribble_split([c.subject for c in cases], n_subjects, seed)
    data = SliceDataset(cases, size, "scribble", scribbled, spacing_mm=spacing_mm)
    rng = np.random.default_rng(seed)
    pools = {"scribbled": np.flatnonzero(data.annotated), "unlabeled": np.flatnonzero(~data.annotated)}
    for (kind, pool), n in zip(pools.items(), (n_scribbled, n_unlabeled)):
        if len(pool) < n:
            raise DataError(f"{root}: {task} has {len(pool)} {kind} training slices, {n} asked for")
    shuffled = rng.permutation(pools["scribbled"])
    n_classes = [len(np.setdiff1d(data.targets[i], [UNANNOTATED])) for i in shuffled]
    index = [*shuffled[np.argsort(n_classes, kind="stable")[::-1][:n_scribbled]],
             *rng.choice(pools["unlabeled"], n_unlabeled, replace=False)]
    return {
        "image": as_model_input(torch.from_numpy(data.images[index])),
        "target": torch.from_numpy(data.targets[index].astype(np.int64)),
        "n_scribbled": n_scribbled,
    }


def pixel_gradient_norm(loss_fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    """Where a loss sends its gradient: ``‖∂L/∂z‖₂`` over the classes at every pixel, ``(B, H, W)``.

    Args:
        loss_fn: maps logits ``z`` ``(B, C, H, W)`` to a scalar loss ``L``.
        logits: the point ``z`` at which to differentiate (detached first; not modified).
    A loss that does not depend on ``z`` gives zeros.
    """
    z = logits.detach().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn(z), z, allow_unused=True)
    return torch.zeros(z.shape[:1] + z.shape[2:], device=z.device) if grad is None else grad.norm(dim=1)


def gradient_share(grad: torch.Tensor, target: torch.Tensor) -> float:
    """Share of ``Σ grad`` that lands on ``UNANNOTATED`` pixels of ``target`` (both ``(B, H, W)``); 0 for no gradient.

    Raises:
        DataError: when the shapes differ.
    """
    if grad.shape != target.shape:
        raise DataError(f"grad: shape {tuple(grad.shape)} does not match target {tuple(target.shape)}")
    total = float(grad.sum())
    return float(grad[target == UNANNOTATED].sum()) / total if total > 0 else 0.0


def plot_gradient_maps(
    maps: Mapping[str, torch.Tensor | np.ndarray],
    image2d: np.ndarray,
    scribble2d: np.ndarray,
    task: str | TaskSpec,
    margin: float | None = 0.5,
) -> Figure:
    """The slice with its scribbles, then one gradient map per loss on a shared log colour scale.

    Args:
        maps: title -> ``(H, W)`` gradient magnitude (a row of :func:`pixel_gradient_norm`).
        image2d, scribble2d: the slice ``(H, W)`` (network tensors are ``(X, Y)``, drawn like :func:`overlay`).
        task: for the class colours.
        margin: every panel shows the scribbles' bounding box grown by ``margin`` × its size on each side;
            ``None``: the whole slice.
    Each title gives the share of the gradient on unannotated pixels of the whole slice (:func:`gradient_share`);
    values below :data:`GRADIENT_FLOOR` of the largest (exact zeros included) are white; scribbles are outlined.

    Raises:
        DataError: when a map's shape differs from the slice's.
    """
    scribble2d = np.asarray(scribble2d)
    arrays = {title: np.asarray(m, dtype=float) for title, m in maps.items()}
    for title, array in arrays.items():
        if array.shape != scribble2d.shape:
            raise DataError(f"maps[{title!r}]: shape {array.shape} does not match the slice {scribble2d.shape}")
    annotated = scribble2d != UNANNOTATED
    window = (slice(None), slice(None)) if margin is None else _crop_window(annotated, margin)
    vmax = max((a.max() for a in arrays.values()), default=1.0) or 1.0
    norm = LogNorm(vmin=vmax * GRADIENT_FLOOR, vmax=vmax)
    cmap = plt.get_cmap("magma").with_extremes(under="white")
    fig, axes = plt.subplots(
        1, len(arrays) + 1, figsize=(2.6 * (len(arrays) + 1) + 0.8, 3.4), squeeze=False, layout="constrained"
    )
    overlay(axes[0, 0], np.asarray(image2d)[window], scribble2d=scribble2d[window], task=task)
    axes[0, 0].set_title("slice and scribbles", fontsize=9)
    for ax, (title, array) in zip(axes[0, 1:], arrays.items()):
        image = ax.imshow(array[window].T, cmap=cmap, norm=norm, origin="lower", interpolation="nearest")
        ax.contour(annotated[window].T, levels=[0.5], colors="0.3", linewidths=0.4)
        share = gradient_share(torch.as_tensor(array), torch.as_tensor(scribble2d.astype(np.int64)))
        ax.set_title(f"{title}\n{100 * share:.0f} % on unannotated pixels", fontsize=8)
        ax.set_axis_off()
    fig.colorbar(image, ax=axes[0, 1:].tolist(), shrink=0.8, label="‖∂L/∂logits‖ per pixel")
    return fig


def cosine_examples(
    label: np.ndarray,
    n_classes: int,
    small: int,
    neighbour: int,
    confidence: float = 4.0,
    noise: float = 0.5,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Host and virtual class probabilities ``(1, C, H, W)`` that the cosine reductions judge differently.

    The host is ``softmax(confidence · onehot(label) + noise · N(0, 1))``. The virtual model:

    * ``"less confident"``: the host logits at temperature 2 — every pixel keeps its class;
    * ``"small class lost"``: at the pixels of class ``small`` the probabilities of ``small`` and ``neighbour``
      swap — the structure disappears into its neighbour;
    * ``"small class everywhere"``: ``confidence + 1`` added to the ``small`` logit at every pixel — most of
      the slice turns into that class.

    Args:
        label: ``(H, W)`` class map holding class ``small``.
    Raises:
        DataError: when ``label`` is not 2-D, has values outside ``0 .. n_classes-1`` or lacks class ``small``.
    """
    label = np.asarray(label)
    if label.ndim != 2 or label.min() < 0 or label.max() >= n_classes or not np.any(label == small):
        raise DataError(f"label: expected a 2-D map of classes 0..{n_classes - 1} holding class {small}")
    onehot = torch.nn.functional.one_hot(torch.as_tensor(label, dtype=torch.long), n_classes).permute(2, 0, 1)[None]
    generator = torch.Generator().manual_seed(seed)
    logits = confidence * onehot.float() + noise * torch.randn(onehot.shape, generator=generator)
    host = logits.softmax(1)
    swapped = host.clone()
    where = onehot[:, small : small + 1].bool()
    swapped[:, [small, neighbour]] = torch.where(where, host[:, [neighbour, small]], host[:, [small, neighbour]])
    shift = torch.zeros(1, n_classes, 1, 1)
    shift[0, small] = confidence + 1
    virtual = {
        "less confident": (logits / 2).softmax(1),
        "small class lost": swapped,
        "small class everywhere": (logits + shift).softmax(1),
    }
    return {name: (host, q) for name, q in virtual.items()}


def cosine_reduction_frame(examples: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> pd.DataFrame:
    """Cosine similarity (``−cosine_loss``) of each example under each reduction, and the pixels whose class changes.

    Args:
        examples: name -> ``(host, virtual)`` probabilities ``(B, C, H, W)`` (e.g. :func:`cosine_examples`).
    Returns:
        One row per example: ``pixel``, ``spatial``, ``flat`` and ``argmax changed (%)``.
    """
    rows = {}
    for name, (p, q) in examples.items():
        row = {reduce: -float(cosine_loss(q, p, reduce)) for reduce in ("pixel", "spatial", "flat")}
        row["argmax changed (%)"] = 100 * float((q.argmax(1) != p.argmax(1)).float().mean())
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_cosine_examples(
    examples: Mapping[str, tuple[torch.Tensor, torch.Tensor]], task: str | TaskSpec, margin: float | None = 0.5
) -> Figure:
    """Host segmentation, then each example's virtual segmentation (argmax of sample 0), titled with its cosines.

    ``margin``: every panel shows the host's foreground bounding box grown by ``margin`` × its size on each
    side; ``None``: the whole slice.
    """
    spec = _spec(task)
    frame = cosine_reduction_frame(examples)
    host = next(iter(examples.values()))[0]
    foreground = host[0].argmax(0).numpy() > 0
    window = (slice(None), slice(None)) if margin is None else _crop_window(foreground, margin)
    panels = {"host f_i": host, **{name: q for name, (_, q) in examples.items()}}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 3.6), squeeze=False)
    for ax, (name, probs) in zip(axes[0], panels.items()):
        seg = probs[0].argmax(0).numpy()[window]
        ax.imshow(class_colors(spec)[seg.T], origin="lower", interpolation="nearest")
        ax.set_axis_off()
        if name in frame.index:
            row = frame.loc[name]
            name = f"{name}\npixel {row['pixel']:.3f} · spatial {row['spatial']:.3f} · flat {row['flat']:.3f}"
        ax.set_title(name, fontsize=8)
    fig.legend(handles=class_legend(spec), loc="lower center", ncol=spec.n_classes, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def gradient_norms_by_group(model_set: TaskModelSet, losses: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Which parameters each loss trains: ``‖∂L/∂θ‖₂`` over each task's encoder, decoder and head.

    Args:
        model_set: the task models the losses were computed with.
        losses: name -> scalar loss still in its graph (e.g. the ``terms`` of a ModelMixObjective forward).
    Returns:
        One row per loss, columns ``(task, part)`` for part in :data:`MODEL_PARTS`; 0.0 where no gradient
        path exists. A shared encoder (Table 1 #5) appears under every task.

    Raises:
        DataError: when a loss is not a scalar in an autograd graph.
    """
    groups = {
        (task, part): list(getattr(model, part).parameters())
        for task, model in model_set.models.items()
        for part in MODEL_PARTS
    }
    params = list({id(p): p for group in groups.values() for p in group}.values())
    rows = {}
    for name, loss in losses.items():
        if loss.ndim != 0 or not loss.requires_grad:
            raise DataError(f"losses[{name!r}]: expected a scalar that requires grad, got shape {tuple(loss.shape)}")
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        squared = {id(p): 0.0 if g is None else float(g.double().square().sum()) for p, g in zip(params, grads)}
        rows[name] = {key: sum(squared[id(p)] for p in group) ** 0.5 for key, group in groups.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["task", "part"])
    return frame


def plot_gradient_flow(frames: Mapping[str, pd.DataFrame]) -> Figure:
    """One heat map per frame of :func:`gradient_norms_by_group`: log₁₀ of each norm, exact zeros grey and marked 0.

    Args:
        frames: title (e.g. the core preset) -> frame; all share one colour scale.
    Raises:
        DataError: when there is no frame or a frame has no rows.
    """
    if not frames or any(frame.empty for frame in frames.values()):
        raise DataError("frames: expected at least one non-empty gradient-norm frame")
    positive = np.concatenate([f.to_numpy().ravel() for f in frames.values()])
    positive = positive[positive > 0]
    lo, hi = (np.log10(positive.min()), np.log10(positive.max())) if positive.size else (-1.0, 0.0)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    fig, axes = plt.subplots(
        1,
        len(frames),
        figsize=(0.75 * sum(f.shape[1] for f in frames.values()) + 4, 0.45 * max(len(f) for f in frames.values()) + 2),
        squeeze=False,
        layout="constrained",
    )
    for ax, (title, frame) in zip(axes[0], frames.items()):
        values = frame.to_numpy(dtype=float)
        logs = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
        image = ax.imshow(logs, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, aspect="auto")
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.0e}" if v > 0 else "0", ha="center", va="center", fontsize=7,
                    color="k" if v <= 0 or logs[r, c] > (lo + hi) / 2 else "w")
        ax.set_xticks(range(frame.shape[1]), [" ".join(map(str, c)) if isinstance(c, tuple) else str(c)
                                              for c in frame.columns], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(frame)), list(map(str, frame.index)), fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="log₁₀ ‖∂L/∂θ‖")
    return fig


def plot_loss_terms(log: str | Path | pd.DataFrame) -> Figure:
    """Each loss term of a training run against the step: one panel per term, one line per task.

    Args:
        log: a run's ``log.jsonl`` (or its rows as a frame); rows without ``"loss"`` (validation) are skipped.
            Terms are the ``"{term}/{task}"`` columns; ``loss`` (Eq. 9, the total) gets its own panel.
    Raises:
        DataError: when the log has no training rows.
    """
    frame = log if isinstance(log, pd.DataFrame) else pd.read_json(Path(log), lines=True)
    if "loss" not in frame:
        raise DataError(f"{log if not isinstance(log, pd.DataFrame) else 'log'}: no training rows (no 'loss' column)")
    frame = frame[frame["loss"].notna()]
    terms = list(dict.fromkeys(c.split("/")[0] for c in frame.columns if "/" in c))
    fig, axes = plt.subplots(1, len(terms) + 1, figsize=(3.2 * (len(terms) + 1), 3.0), squeeze=False)
    axes[0, 0].plot(frame["step"], frame["loss"], color="k", lw=2)
    axes[0, 0].set(title="total (Eq. 9)", xlabel="step")
    for ax, term in zip(axes[0, 1:], terms):
        for column in [c for c in frame.columns if c.startswith(f"{term}/")]:
            ax.plot(frame["step"], frame[column], marker=".", label=column.split("/", 1)[1])
        ax.set(title=term, xlabel="step")
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


# --- parameter interpolation ---
FEATURE_POINTS: tuple[str, ...] = ("layer", "block")
"""Where :func:`mixed_feature_maps` reads the encoders: the mixed layer's output and the end of its block."""

DRIFT_FLOOR = 1e-17
"""Log-scale drift plots draw errors below this value (the exact zeros at λ = 0 and 1) at this value."""

_DRIFT_COLUMNS = ("layer", "depth", "mode", "lam", "point", "rel_err")


def mixed_feature_maps(
    model_i: UNet, model_j: UNet, layer: MixableLayer, lam: float, x: Tensor, index: int = 0
) -> dict[str, dict[str, Tensor]]:
    """Feature maps of ``e_i``, ``e_j`` and the virtual encoder ``ẽ`` (``layer`` mixed at λ, Eq. 5) for one input.

    All three run in eval mode on copies (the models are left as they are). Each encoder is read at
    :data:`FEATURE_POINTS`: the output of ``layer`` and of the encoder block holding it. ``e_j``'s maps come
    from ``e_j``'s own forward pass; only for the first layer of the encoder does ``layer`` see the same
    input in ``e_i`` and ``e_j``, so only there is ``ẽ = λ e_i + (1 − λ) e_j`` at the layer exactly.

    Args:
        x: ``(B, 3, H, W)`` input; sample ``index`` is kept.
    Returns:
        ``{point: {"e_i", "e_j", "e_mix"}}``, each ``(C, H', W')`` float on the CPU.
    """
    if not 0 <= index < len(x):
        raise ConfigError(f"index: sample {index} is not in a batch of {len(x)}")
    model_i, model_j = copy.deepcopy(model_i).eval(), copy.deepcopy(model_j).eval()
    names = {"layer": layer.name, "block": layer.name.rsplit(".", 1)[0]}

    def read(model: UNet, forward: Callable[[], Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        hooks = [
            model.get_submodule(name).register_forward_hook(
                lambda _m, _args, y, point=point: out.__setitem__(point, y[index].detach().cpu())
            )
            for point, name in names.items()
        ]
        try:
            with torch.no_grad():
                forward()
        finally:
            for hook in hooks:
                hook.remove()
        return out

    maps = {
        "e_i": read(model_i, lambda: model_i.encode(x)),
        "e_j": read(model_j, lambda: model_j.encode(x)),
        "e_mix": read(model_i, lambda: virtual_forward(model_i, model_j, layer, lam, x)),
    }
    return {point: {key: maps[key][point] for key in maps} for point in FEATURE_POINTS}


def _feature_row_label(point: str, layer: MixableLayer, channel: int) -> str:
    where = layer.name.removeprefix("encoder.") if point == "layer" else f"end of block{layer.depth}"
    return f"{where}, ch {channel}"


def _check_channels(channels: Sequence[int], n: int) -> None:
    if not channels or any(not 0 <= c < n for c in channels):
        raise ConfigError(f"channels: expected indices in [0, {n}), got {list(channels)}")


def _feature(ax: Axes, map2d: Tensor, vmax: float) -> None:
    """Draw an ``(H, W)`` feature map (H = X, W = Y of the slice) on a symmetric diverging scale."""
    ax.imshow(_numpy(map2d).T, cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower", interpolation="nearest")
    ax.set_axis_off()


def plot_feature_mix(
    maps: Mapping[str, Mapping[str, Tensor]], lam: float, layer: MixableLayer, channels: Sequence[int] = (0, 1)
) -> Figure:
    """``e_i``, ``ẽ``, ``e_j`` and the residual ``ẽ − [λ e_i + (1 − λ) e_j]`` side by side.

    One row per (point, channel): first the mixed layer's output, then the end of its block. A row shares
    one symmetric colour scale, so an exact interpolation leaves the residual panel blank.

    Args:
        maps: output of :func:`mixed_feature_maps` at ``lam``.
        lam: the mixing ratio λ the maps were computed with.
        layer: the mixed layer (for the row labels).
        channels: feature channels to show.
    """
    _check_channels(channels, min(len(maps[p]["e_i"]) for p in FEATURE_POINTS))
    rows = [(point, c) for point in FEATURE_POINTS for c in channels]
    fig, axes = plt.subplots(len(rows), 4, figsize=(8.4, 2.05 * len(rows) + 0.4), squeeze=False)
    for row, (point, c) in enumerate(rows):
        e_i, e_j, e_mix = (maps[point][key][c] for key in ("e_i", "e_j", "e_mix"))
        residual = e_mix - (lam * e_i + (1 - lam) * e_j)
        vmax = max(float(m.abs().max()) for m in (e_i, e_j, e_mix)) or 1.0
        for ax, map2d in zip(axes[row], (e_i, e_mix, e_j, residual)):
            _feature(ax, map2d, vmax)
        axes[row, 3].text(0.5, -0.02, f"max |·| = {float(residual.abs().max()):.1e}", transform=axes[row, 3].transAxes,
                          ha="center", va="top", fontsize=8)
        _row_label(axes[row, 0], _feature_row_label(point, layer, c))
    titles = ("$e_i$", f"$\\tilde e$, λ = {lam:.2f}", "$e_j$", "$\\tilde e - [\\lambda e_i + (1-\\lambda) e_j]$")
    for col, title in enumerate(titles):
        axes[0, col].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_lambda_sweep(
    model_i: UNet, model_j: UNet, layer: MixableLayer, x: Tensor, lams: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    channel: int = 0,
) -> Figure:
    """One channel of the virtual encoder ``ẽ`` over a grid of λ: the mixed layer's output on top, its block's below.

    λ = 1 is ``e_i`` itself; λ = 0 is ``e_i`` with ``layer`` replaced by ``e_j``'s. Each row shares one colour scale.

    Args:
        x: ``(B, 3, H, W)``; the first sample is drawn.
    """
    if not lams or any(not 0.0 <= lam <= 1.0 for lam in lams):
        raise ConfigError(f"lams: expected mixing ratios in [0, 1], got {list(lams)}")
    sweep = [mixed_feature_maps(model_i, model_j, layer, lam, x) for lam in lams]
    _check_channels([channel], len(sweep[0]["layer"]["e_mix"]))
    fig, axes = plt.subplots(2, len(lams), figsize=(1.9 * len(lams) + 0.4, 4.3), squeeze=False)
    for row, point in enumerate(FEATURE_POINTS):
        vmax = max(float(maps[point]["e_mix"][channel].abs().max()) for maps in sweep) or 1.0
        for ax, maps in zip(axes[row], sweep):
            _feature(ax, maps[point]["e_mix"][channel], vmax)
        _row_label(axes[row, 0], _feature_row_label(point, layer, channel))
    for ax, lam in zip(axes[0], lams):
        ax.set_title(f"λ = {lam:g}" + (" ($e_i$)" if lam == 1 else ""), fontsize=9)
    fig.tight_layout()
    return fig


def lambda_slider(
    model_i: UNet, model_j: UNet, layer: MixableLayer, x: Tensor, channels: Sequence[int] = (0, 1)
) -> Any:
    """Interactive :func:`plot_feature_mix`: a λ slider redraws ``e_i``, ``ẽ``, ``e_j`` and the residual.

    Returns an ``ipywidgets.VBox``; needs a live kernel (in a static book page the slider does nothing).
    """
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError as err:
        raise ImportError("lambda_slider needs ipywidgets: pip install ipywidgets") from err
    slider = widgets.FloatSlider(0.5, min=0.0, max=1.0, step=0.05, description="λ", continuous_update=False)

    def draw(lam: float) -> None:
        fig = plot_feature_mix(mixed_feature_maps(model_i, model_j, layer, lam, x), lam, layer, channels)
        display(fig)
        plt.close(fig)

    return widgets.VBox([slider, widgets.interactive_output(draw, {"lam": slider})])


def _drift_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a :func:`~modelmix_lite.mixing.linearity_drift` frame; shorten its layer names, floor its errors."""
    missing = [c for c in _DRIFT_COLUMNS if c not in frame]
    if missing or frame.empty:
        raise DataError(
            f"frame: expected rows of linearity_drift with columns {_DRIFT_COLUMNS}; missing {missing or 'rows'}"
        )
    modes = sorted(set(frame["mode"]) - {"train", "eval"})
    if modes:
        raise DataError(f"frame: unknown BN modes {modes}; expected 'train' and/or 'eval'")
    return frame.assign(layer=frame["layer"].str.removeprefix("encoder."),
                        rel_err=frame["rel_err"].clip(lower=DRIFT_FLOOR))


def _drift_modes(frame: pd.DataFrame) -> list[str]:
    return [m for m in ("train", "eval") if m in set(frame["mode"])]


def plot_drift_curves(frame: pd.DataFrame) -> Figure:
    """Drift from ``λ f_i + (1 − λ) f_j`` against λ: a line per point after the mixed conv, a panel per BN mode.

    A line is the median over the mixed layers (taken in log space), its band their range. The log axis draws
    exact zeros (λ = 0 and 1) at :data:`DRIFT_FLOOR`; the dotted line is float64's machine epsilon.

    Args:
        frame: output of :func:`~modelmix_lite.mixing.linearity_drift`.
    """
    frame = _drift_frame(frame)
    modes = _drift_modes(frame)
    points = [p for p in DRIFT_POINTS if p in set(frame["point"])]
    fig, axes = plt.subplots(1, len(modes), figsize=(4.4 * len(modes) + 1.4, 3.5), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        ax.set_yscale("log")  # before plotting: seaborn then takes the median and range in log space
        sns.lineplot(data=frame[frame["mode"] == mode], x="lam", y="rel_err", hue="point", hue_order=points,
                     palette="viridis", estimator="median", errorbar=("pi", 100), marker="o", ax=ax,
                     legend="brief" if ax is axes[0, -1] else False)
        ax.axhline(np.finfo(np.float64).eps, color="0.5", ls=":", lw=1)
        ax.set(ylim=(DRIFT_FLOOR / 3, 3), xlabel="λ", ylabel="relative drift (dotted: float64 ε)",
               title=f"BN in {mode} mode")
    sns.move_legend(axes[0, -1], "center left", bbox_to_anchor=(1.02, 0.5), frameon=False, title="measured at")
    fig.tight_layout()
    return fig


def plot_drift_heatmap(frame: pd.DataFrame) -> Figure:
    """Largest drift over λ for each mixed layer (rows, by depth) and measuring point (columns), one panel per BN mode.

    Args:
        frame: output of :func:`~modelmix_lite.mixing.linearity_drift`; colours are log-scaled, annotations
            give the value (errors below :data:`DRIFT_FLOOR` are shown at it).
    """
    frame = _drift_frame(frame)
    modes = _drift_modes(frame)
    points = [p for p in DRIFT_POINTS if p in set(frame["point"])]
    order = list(dict.fromkeys(frame.sort_values("depth", kind="stable")["layer"]))
    norm = LogNorm(vmin=DRIFT_FLOOR, vmax=max(1.0, float(frame["rel_err"].max())))
    fig, axes = plt.subplots(1, len(modes), figsize=(4.3 * len(modes) + 1.2, 0.33 * len(order) + 1.6), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        table = frame[frame["mode"] == mode].pivot_table("rel_err", index="layer", columns="point", aggfunc="max")
        sns.heatmap(table.reindex(index=order, columns=points), norm=norm, cmap="magma", annot=True, fmt=".0e",
                    annot_kws={"fontsize": 7}, cbar=ax is axes[0, -1], cbar_kws={"label": "max over λ of the drift"},
                    ax=ax)
        ax.set(title=f"BN in {mode} mode", xlabel="measured at", ylabel="mixed conv" if ax is axes[0, 0] else "")
        ax.tick_params(axis="x", labelrotation=30)
        ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return fig


# --- training and evaluation ---
QUALITATIVE_SEQUENCES: tuple[str, ...] = ("DE", "LGE")
""":func:`plot_qualitative` shows the first of these a task has (LGE, as the paper's Figs. 2–3), else its first."""


def _method_colors(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per method, in the given order (seaborn's colour-blind palette)."""
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


def plot_validation_curves(logs: Mapping[str, str | Path | pd.DataFrame]) -> Figure:
    """Validation Dice of several runs against the step: a panel per task and one for their mean (``val_dice``).

    Args:
        logs: method label -> its run's ``log.jsonl`` (or its rows as a frame); the validation rows are those
            with ``val_dice``, their ``val_{task}`` columns the tasks' mean 3-D Dice.

    Raises:
        DataError: no logs, or a log without validation rows.
    """
    if not logs:
        raise DataError("logs: no runs to plot")
    frames = {}
    for name, log in logs.items():
        frame = log if isinstance(log, pd.DataFrame) else pd.read_json(Path(log), lines=True)
        if "val_dice" not in frame or frame["val_dice"].isna().all():
            raise DataError(f"{name if isinstance(log, pd.DataFrame) else log}: no validation rows (no 'val_dice')")
        frames[name] = frame[frame["val_dice"].notna()]
    tasks = [c for f in frames.values() for c in f.columns if c.startswith("val_") and c != "val_dice"]
    keys, colors = [*dict.fromkeys(tasks), "val_dice"], _method_colors(list(frames))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.2), sharey=True, squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, frame in frames.items():
            if key in frame:
                ax.plot(frame["step"], frame[key], "o-", color=colors[name], label=name)
        title = "mean over tasks" if key == "val_dice" else get_task(key.removeprefix("val_")).title
        ax.set(title=title, xlabel="step", ylim=(0, 1))
    axes[0, 0].set_ylabel("validation Dice (3-D, mean)")
    axes[0, -1].legend(frameon=False, fontsize=8)
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
    slice (:func:`middle_slice`), zoomed to the heart (:func:`heart_window`).

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


# --- paper comparisons ---


def plot_dice_by_method(rows: pd.DataFrame) -> Figure:
    """Per-volume Dice (mean over the structures of a volume) by table row: a box and the volumes' dots.

    One panel per (task combination, target) in order of appearance; one colour per row, the same in every panel.

    Args:
        rows: result rows with the paper's row labels (:func:`~modelmix_lite.reproduce.annotate`): columns
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
        pairs: columns ``table, half, target, row, ours, paper`` (:func:`~modelmix_lite.reproduce.ours_vs_paper`);
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

"""Figures of parameter interpolation (Eq. 5): feature maps over λ, the λ slider, linearity drift.

Every figure function returns its :class:`matplotlib.figure.Figure`; nothing is shown or saved here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import Tensor

from ..errors import ConfigError, DataError
from ..mixing import DRIFT_POINTS, MixableLayer
from ..probes import FEATURE_POINTS
from .style import _numpy, _row_label


DRIFT_FLOOR = 1e-17
"""Log-scale drift plots draw errors below this value (the exact zeros at λ = 0 and 1) at this value."""


_DRIFT_COLUMNS = ("layer", "depth", "mode", "lam", "point", "rel_err")


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
        maps: output of :func:`~modelmix_lite.probes.mixed_feature_maps` at ``lam``.
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


def plot_lambda_sweep(sweep: Mapping[float, Mapping[str, Mapping[str, Tensor]]], layer: MixableLayer,
                      channel: int = 0) -> Figure:
    """One channel of the virtual encoder ``ẽ`` over a grid of λ: the mixed layer's output on top, its block's below.

    λ = 1 is ``e_i`` itself; λ = 0 is ``e_i`` with ``layer`` replaced by ``e_j``'s. Each row shares one colour scale.

    Args:
        sweep: λ -> :func:`~modelmix_lite.probes.mixed_feature_maps` of ``layer`` at that λ.
    """
    lams = list(sweep)
    if not lams or any(not 0.0 <= lam <= 1.0 for lam in lams):
        raise ConfigError(f"lams: expected mixing ratios in [0, 1], got {lams}")
    maps_by_lam = list(sweep.values())
    _check_channels([channel], len(maps_by_lam[0]["layer"]["e_mix"]))
    fig, axes = plt.subplots(2, len(lams), figsize=(1.9 * len(lams) + 0.4, 4.3), squeeze=False)
    for row, point in enumerate(FEATURE_POINTS):
        vmax = max(float(maps[point]["e_mix"][channel].abs().max()) for maps in maps_by_lam) or 1.0
        for ax, maps in zip(axes[row], maps_by_lam):
            _feature(ax, maps[point]["e_mix"][channel], vmax)
        _row_label(axes[row, 0], _feature_row_label(point, layer, channel))
    for ax, lam in zip(axes[0], lams):
        ax.set_title(f"λ = {lam:g}" + (" ($e_i$)" if lam == 1 else ""), fontsize=9)
    fig.tight_layout()
    return fig


def lambda_slider(maps_at: Callable[[float], Mapping[str, Mapping[str, Tensor]]], layer: MixableLayer,
                  channels: Sequence[int] = (0, 1)) -> Any:
    """Interactive :func:`plot_feature_mix`: a λ slider redraws ``e_i``, ``ẽ``, ``e_j`` and the residual.

    Args:
        maps_at: λ -> the feature maps to draw (e.g. ``functools.partial`` of
            :func:`~modelmix_lite.probes.mixed_feature_maps` with the models, layer and input bound).
    Returns an ``ipywidgets.VBox``; needs a live kernel (in a static book page the slider does nothing).
    """
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError as err:
        raise ImportError("lambda_slider needs ipywidgets: pip install ipywidgets") from err
    slider = widgets.FloatSlider(0.5, min=0.0, max=1.0, step=0.05, description="λ", continuous_update=False)

    def draw(lam: float) -> None:
        fig = plot_feature_mix(maps_at(lam), lam, layer, channels)
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

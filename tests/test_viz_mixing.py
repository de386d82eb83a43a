"""The parameter-interpolation figures of notebook 03: feature probes of the virtual encoder and the drift plots."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from modelmix_lite.probes import FEATURE_POINTS, mixed_feature_maps
from modelmix_lite import viz  # noqa: E402
from modelmix_lite.errors import ConfigError, DataError  # noqa: E402
from modelmix_lite.mixing import linearity_drift, mixable_layers  # noqa: E402
from modelmix_lite.models import UNet  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: on a busy machine a second intra-op thread costs far more than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair() -> tuple[UNet, UNet, torch.Tensor]:
    """Two independently initialised tiny UNets with random biases and BN affines, and a (2, 3, 16, 16) input."""
    g = torch.Generator().manual_seed(0)
    models = [UNet(n_classes=n, base=2, generator=g) for n in (5, 4)]
    with torch.no_grad():
        for model in models:
            for p in model.parameters():
                if p.ndim == 1:
                    p.add_(torch.randn(p.shape, generator=g), alpha=0.1)
    return models[0], models[1], torch.rand(2, 3, 16, 16, generator=g)


def first_conv(model: UNet):
    return mixable_layers(model)[0]


def residual_max(ax) -> float:
    """The number printed under a residual panel of :func:`viz.plot_feature_mix`."""
    (text,) = [t.get_text() for t in ax.texts if t.get_text().startswith("max |·|")]
    return float(re.search(r"= (\S+)$", text).group(1))


# --- mixed_feature_maps ---------------------------------------------------------------------------------


def test_feature_maps_are_the_interpolation_at_the_first_conv_and_not_after_its_block(pair):
    mi, mj, x = pair
    maps = mixed_feature_maps(mi, mj, first_conv(mi), 0.3, x)
    assert set(maps) == set(FEATURE_POINTS) and all(set(m) == {"e_i", "e_j", "e_mix"} for m in maps.values())
    assert all(t.shape == (2, 16, 16) for m in maps.values() for t in m.values())  # block 1: base channels, no pooling
    at_layer, at_block = maps["layer"], maps["block"]
    torch.testing.assert_close(at_layer["e_mix"], 0.3 * at_layer["e_i"] + 0.7 * at_layer["e_j"], rtol=0, atol=1e-6)
    assert (at_block["e_mix"] - (0.3 * at_block["e_i"] + 0.7 * at_block["e_j"])).abs().max() > 1e-3


def test_feature_maps_endpoints_are_exact(pair):
    mi, mj, x = pair
    ones = mixed_feature_maps(mi, mj, first_conv(mi), 1.0, x)
    zeros = mixed_feature_maps(mi, mj, first_conv(mi), 0.0, x)
    assert all(torch.equal(ones[p]["e_mix"], ones[p]["e_i"]) for p in FEATURE_POINTS)
    assert torch.equal(zeros["layer"]["e_mix"], zeros["layer"]["e_j"])  # the same conv on the same image
    assert not torch.equal(zeros["block"]["e_mix"], zeros["block"]["e_j"])  # bn1, conv2, bn2 are still e_i's


def test_feature_maps_keep_the_requested_sample_and_leave_the_models_alone(pair):
    mi, mj, x = pair
    mi.train()
    before = {k: v.clone() for k, v in mi.state_dict().items()}
    layer = mixable_layers(mi)[2]  # block2.conv1: its block output is pooled once
    second = mixed_feature_maps(mi, mj, layer, 0.6, x, index=1)
    alone = mixed_feature_maps(mi, mj, layer, 0.6, x[1:])
    assert second["block"]["e_mix"].shape == (4, 8, 8)
    for point in FEATURE_POINTS:
        for key in ("e_i", "e_j", "e_mix"):
            torch.testing.assert_close(second[point][key], alone[point][key])  # eval mode: no batch statistics
    assert mi.training
    assert all(torch.equal(before[k], v) for k, v in mi.state_dict().items())


def test_feature_maps_reject_a_sample_outside_the_batch(pair):
    mi, mj, x = pair
    with pytest.raises(ConfigError, match=r"^index: sample 2 is not in a batch of 2$"):
        mixed_feature_maps(mi, mj, first_conv(mi), 0.5, x, index=2)


# --- plot_feature_mix, plot_lambda_sweep, lambda_slider ----------------------------------------------------


def test_feature_mix_figure_draws_the_maps_and_their_residual(pair):
    mi, mj, x = pair
    layer = first_conv(mi)
    maps = mixed_feature_maps(mi, mj, layer, 0.5, x)
    fig = viz.plot_feature_mix(maps, 0.5, layer, channels=(1, 0))
    axes = np.array(fig.axes).reshape(4, 4)  # rows: (layer, ch 1), (layer, ch 0), (block, ch 1), (block, ch 0)
    np.testing.assert_array_equal(axes[0, 1].images[0].get_array(), maps["layer"]["e_mix"][1].numpy().T)
    np.testing.assert_array_equal(axes[3, 2].images[0].get_array(), maps["block"]["e_j"][0].numpy().T)
    assert residual_max(axes[0, 3]) < 1e-5 and residual_max(axes[1, 3]) < 1e-5
    assert residual_max(axes[2, 3]) > 1e-3 or residual_max(axes[3, 3]) > 1e-3
    assert axes[0, 1].get_title() == r"$\tilde e$, λ = 0.50"
    vmin, vmax = axes[2, 0].images[0].get_clim()
    assert vmin == -vmax
    assert vmax == pytest.approx(max(float(maps["block"][k][1].abs().max()) for k in ("e_i", "e_j", "e_mix")))


def test_feature_mix_figure_rejects_unknown_channels(pair):
    mi, mj, x = pair
    maps = mixed_feature_maps(mi, mj, first_conv(mi), 0.5, x)
    with pytest.raises(ConfigError, match=r"^channels: expected indices in \[0, 2\), got \[0, 2\]$"):
        viz.plot_feature_mix(maps, 0.5, first_conv(mi), channels=(0, 2))


def test_lambda_sweep_columns_run_from_the_partner_layer_to_e_i(pair):
    mi, mj, x = pair
    layer = first_conv(mi)
    fig = viz.plot_lambda_sweep({lam: mixed_feature_maps(mi, mj, layer, lam, x) for lam in (0.0, 0.5, 1.0)}, layer,
                                channel=1)
    axes = np.array(fig.axes).reshape(2, 3)
    ends = {lam: mixed_feature_maps(mi, mj, layer, lam, x) for lam in (0.0, 1.0)}
    np.testing.assert_array_equal(axes[0, 2].images[0].get_array(), ends[1.0]["layer"]["e_i"][1].numpy().T)
    np.testing.assert_array_equal(axes[0, 0].images[0].get_array(), ends[0.0]["layer"]["e_j"][1].numpy().T)
    np.testing.assert_array_equal(axes[1, 2].images[0].get_array(), ends[1.0]["block"]["e_i"][1].numpy().T)
    assert [ax.get_title() for ax in axes[0]] == ["λ = 0", "λ = 0.5", "λ = 1 ($e_i$)"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lams": ()}, r"^lams: expected mixing ratios in \[0, 1\], got \[\]$"),
        ({"lams": (0.5, 1.5)}, r"^lams: expected mixing ratios in \[0, 1\], got \[0.5, 1.5\]$"),
        ({"channel": -1}, r"^channels: expected indices in \[0, 2\), got \[-1\]$"),
    ],
)
def test_lambda_sweep_rejects_bad_options(pair, kwargs, message):
    mi, mj, x = pair
    maps = mixed_feature_maps(mi, mj, first_conv(mi), 0.5, x)
    sweep = {lam: maps for lam in kwargs.get("lams", (0.0, 1.0))}
    with pytest.raises(ConfigError, match=message):
        viz.plot_lambda_sweep(sweep, first_conv(mi), channel=kwargs.get("channel", 0))


def test_lambda_slider_starts_at_one_half(pair):
    widgets = pytest.importorskip("ipywidgets")
    mi, mj, x = pair
    box = viz.lambda_slider(lambda lam: mixed_feature_maps(mi, mj, first_conv(mi), lam, x), first_conv(mi))
    slider = box.children[0]
    assert isinstance(slider, widgets.FloatSlider)
    assert (slider.value, slider.min, slider.max) == (0.5, 0.0, 1.0)


# --- drift plots --------------------------------------------------------------------------------------------


def hand_drift() -> pd.DataFrame:
    """Two mixed layers (listed deep first), two points, two modes, λ in {0, 0.5, 1}; rel_err = 0 at the ends."""
    rows = []
    for layer, depth, scale in (("encoder.block2.conv1", 2, 10.0), ("encoder.block1.conv1", 1, 1.0)):
        for mode in ("train", "eval"):
            for lam in (0.0, 0.5, 1.0):
                for point, base in (("conv", 1e-16), ("logits", 1e-2)):
                    value = 0.0 if lam in (0.0, 1.0) else base * scale * (2 if mode == "train" else 1)
                    rows.append(dict(layer=layer, depth=depth, mode=mode, lam=lam, point=point, rel_err=value))
    return pd.DataFrame(rows)


def test_drift_curves_draw_the_median_over_layers_with_zeros_on_the_floor():
    fig = viz.plot_drift_curves(hand_drift())
    train, evaluation = fig.axes[:2]
    assert (train.get_title(), evaluation.get_title()) == ("BN in train mode", "BN in eval mode")
    lines = {tuple(np.round(np.log10(line.get_ydata()), 6)) for line in evaluation.lines if len(line.get_xdata()) == 3}
    floor = np.log10(viz.DRIFT_FLOOR)
    # the median of two layers in log space: conv 10^-15.5 (of 1e-16, 1e-15), logits 10^-1.5; λ = 0, 1 at the floor
    assert lines == {(floor, -15.5, floor), (floor, -1.5, floor)}
    assert evaluation.get_yscale() == "log"
    assert any(np.allclose(line.get_ydata(), np.finfo(np.float64).eps) for line in evaluation.lines)


def test_drift_heatmap_shows_the_worst_lambda_by_depth():
    fig = viz.plot_drift_heatmap(hand_drift())
    train, evaluation = fig.axes[:2]
    assert [t.get_text() for t in train.get_yticklabels()] == ["block1.conv1", "block2.conv1"]
    assert [t.get_text() for t in train.get_xticklabels()] == ["conv", "logits"]
    cells = [np.asarray(ax.collections[0].get_array()).reshape(2, 2) for ax in (train, evaluation)]
    np.testing.assert_allclose(cells[0], [[2e-16, 2e-2], [2e-15, 2e-1]])  # rows by depth, whatever the frame order
    np.testing.assert_allclose(cells[1], [[1e-16, 1e-2], [1e-15, 1e-1]])
    assert [t.get_text() for t in evaluation.texts] == ["1e-16", "1e-02", "1e-15", "1e-01"]


@pytest.mark.parametrize("plot", [viz.plot_drift_curves, viz.plot_drift_heatmap])
def test_drift_plots_reject_frames_that_are_not_drift_frames(plot):
    with pytest.raises(DataError, match=r"^frame: expected rows of linearity_drift .*; missing \['point'\]$"):
        plot(hand_drift().drop(columns="point"))
    with pytest.raises(DataError, match=r"^frame: expected rows of linearity_drift .*; missing rows$"):
        plot(hand_drift().iloc[:0])
    with pytest.raises(DataError, match=r"^frame: unknown BN modes \['test'\]; expected 'train' and/or 'eval'$"):
        plot(hand_drift().replace({"mode": {"eval": "test"}}))


def test_drift_plots_take_linearity_drift_output(pair):
    mi, mj, x = pair
    drift = linearity_drift(mi, mj, x[:1], lams=(0.0, 0.5, 1.0), modes=("eval",))
    curves, heatmap = viz.plot_drift_curves(drift), viz.plot_drift_heatmap(drift)
    assert curves.axes[0].get_title() == heatmap.axes[0].get_title() == "BN in eval mode"
    cells = np.asarray(heatmap.axes[0].collections[0].get_array()).reshape(10, 6)
    assert cells[:, :2].max() < 1e-12  # conv and BN (eval mode) interpolate exactly
    assert cells[:, 2:].min() > 1e-6  # from the ReLU on they do not

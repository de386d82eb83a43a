"""Figures and helpers of notebook 02 (perturbations): they draw what they claim and reject bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from scipy.stats import beta as beta_distribution  # noqa: E402

from modelmix_lite.perturb import scribbled_pixels_cut
from modelmix_lite.probes import dropout_predictions, pixel_cosine
from modelmix_lite import viz  # noqa: E402
from modelmix_lite.data.tasks import UNANNOTATED  # noqa: E402
from modelmix_lite.errors import ConfigError, DataError  # noqa: E402
from modelmix_lite.losses import cosine_loss  # noqa: E402
from modelmix_lite.models import UNet  # noqa: E402

U = UNANNOTATED


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def square_mask(h: int, w: int, rows: slice, cols: slice) -> torch.Tensor:
    """A ``(1, H, W)`` cutout mask with zeros on ``rows × cols``."""
    mask = torch.ones(1, h, w)
    mask[0, rows, cols] = 0
    return mask


def drawn(ax) -> list[np.ndarray]:
    """The arrays of every image drawn on ``ax``, in drawing order."""
    return [np.asarray(im.get_array()) for im in ax.get_images()]


# ----------------------------------------------------------------------------------------------
# scribbled_pixels_cut
# ----------------------------------------------------------------------------------------------


def test_scribbled_pixels_cut_counts_only_foreground_under_the_square() -> None:
    labels = torch.tensor(
        [
            [[1, 2, U], [0, 3, 3], [U, U, 1]],
            [[0, 0, 0], [U, U, U], [2, 2, 2]],
        ]
    )
    mask = torch.stack([square_mask(3, 3, slice(0, 2), slice(0, 2)), square_mask(3, 3, slice(0, 3), slice(0, 3))])
    # sample 0: the square covers 1, 2, 0, 3 -> three foreground pixels; sample 1: all of it -> the three 2s
    assert scribbled_pixels_cut(labels, mask).tolist() == [3, 3]
    assert scribbled_pixels_cut(labels, torch.ones(2, 1, 3, 3)).tolist() == [0, 0]


def test_scribbled_pixels_cut_rejects_a_mask_of_another_shape() -> None:
    with pytest.raises(DataError, match=r"mask: shape \(2, 3, 3\) does not match labels \(2, 3, 3\)"):
        scribbled_pixels_cut(torch.zeros(2, 3, 3, dtype=torch.long), torch.ones(2, 3, 3))


# ----------------------------------------------------------------------------------------------
# plot_cutout
# ----------------------------------------------------------------------------------------------


def test_plot_cutout_shows_both_label_fills() -> None:
    image = torch.rand(1, 8, 8)
    scribble = torch.full((8, 8), U, dtype=torch.long)
    scribble[2, 1:7] = 3  # an LV stroke at x = 2, y = 1..6: y = 1..3 lie under the square
    mask = square_mask(8, 8, slice(0, 4), slice(0, 4))
    fig = viz.plot_cutout([image], [scribble], [mask], ["acdc"])
    axes = np.array(fig.axes).reshape(1, 4)
    lv, background = to_rgba(viz.CLASS_COLORS["LV"]), to_rgba(viz.CLASS_COLORS["background"])
    # the arrays are drawn transposed: pixel (x, y) is element [y, x]
    image_cut, default = drawn(axes[0, 2])
    _, released = drawn(axes[0, 3])
    np.testing.assert_allclose(image_cut[:4, :4], 0)  # x^c = 1_c ⊙ x
    np.testing.assert_allclose(image_cut[4:, 4:], image[0, 4:, 4:].numpy().T)
    assert default[1, 2, 3] == 0 and tuple(default[5, 2]) == lv  # cut stroke pixel: transparent, the rest: LV
    assert tuple(released[1, 2]) == background and tuple(released[0, 0]) == background  # the square is background
    assert tuple(released[5, 2]) == lv
    assert "3 scribbled foreground px → background" in [t.get_text() for t in axes[0, 3].texts]
    np.testing.assert_array_equal(drawn(axes[0, 1])[0], mask[0].numpy().T)


def test_plot_cutout_rejects_rows_of_different_lengths() -> None:
    with pytest.raises(DataError, match=r"masks: expected one entry per row \(2\), got 1"):
        viz.plot_cutout(
            [torch.rand(1, 8, 8)] * 2, [torch.zeros(8, 8, dtype=torch.long)] * 2, [torch.ones(1, 8, 8)], ["acdc"] * 2
        )


# ----------------------------------------------------------------------------------------------
# Mixup grid and Beta densities
# ----------------------------------------------------------------------------------------------


def test_plot_mixup_grid_draws_the_convex_combination() -> None:
    x1, x2 = torch.rand(3, 6, 6), torch.rand(3, 6, 6)
    fig = viz.plot_mixup_grid([x1], [x2], ["myops"], alphas=(1.0, 0.25, 0.0), channel=1)
    shown = [drawn(ax)[0] for ax in fig.axes]
    np.testing.assert_allclose(shown[0], x1[1].numpy().T)
    np.testing.assert_allclose(shown[1], (0.25 * x1[1] + 0.75 * x2[1]).numpy().T, rtol=1e-6)
    np.testing.assert_allclose(shown[2], x2[1].numpy().T)
    assert [ax.get_title() for ax in fig.axes] == ["α = 1", "α = 0.25", "α = 0"]


def test_plot_mixup_grid_rejects_bad_alphas_and_shapes() -> None:
    with pytest.raises(ConfigError, match=r"alphas: expected mix ratios in \[0, 1\], got \[1.5\]"):
        viz.plot_mixup_grid([torch.rand(1, 4, 4)], [torch.rand(1, 4, 4)], ["acdc"], alphas=(1.5,))
    with pytest.raises(DataError, match=r"x2\[0\]: shape \(1, 4, 5\) does not match x1\[0\] \(1, 4, 4\)"):
        viz.plot_mixup_grid([torch.rand(1, 4, 4)], [torch.rand(1, 4, 5)], ["acdc"])


def test_plot_beta_densities_draws_the_pdf_and_the_samples() -> None:
    draws = np.random.default_rng(0).beta(0.5, 0.5, 1000)
    fig = viz.plot_beta_densities((0.5, 2.0), samples={0.5: draws})
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.patches) == 40  # two densities, one 40-bin histogram
    x, y = ax.lines[1].get_data()
    np.testing.assert_allclose(y, beta_distribution.pdf(x, 2.0, 2.0))
    assert sum(p.get_height() * p.get_width() for p in ax.patches) == pytest.approx(1.0)  # a density


def test_plot_beta_densities_rejects_non_positive_concentrations() -> None:
    with pytest.raises(ConfigError, match=r"concentrations: Beta concentrations must be > 0, got \[0.5, 0.0\]"):
        viz.plot_beta_densities((0.5, 0.0))


# ----------------------------------------------------------------------------------------------
# Probability colours, per-pixel cosine, L_inv figure
# ----------------------------------------------------------------------------------------------


def test_probability_rgb_mixes_class_colours() -> None:
    prob = torch.zeros(4, 2, 1)
    prob[3, 0, 0] = 1.0  # pixel (0, 0): certainly LV
    prob[1, 1, 0] = prob[2, 1, 0] = 0.5  # pixel (1, 0): half RV, half MYO
    rgb = viz.probability_rgb(prob, "acdc")
    colors = viz.class_colors("acdc")[:, :3]
    assert rgb.shape == (2, 1, 3)
    np.testing.assert_allclose(rgb[0, 0], colors[3])
    np.testing.assert_allclose(rgb[1, 0], (colors[1] + colors[2]) / 2)


def test_probability_rgb_rejects_another_tasks_classes() -> None:
    with pytest.raises(DataError, match=r"prob: expected \(5, X, Y\) probabilities of myops, got \(4, 2, 2\)"):
        viz.probability_rgb(torch.rand(4, 2, 2), "myops")


def test_pixel_cosine_averages_to_the_cosine_loss() -> None:
    g = torch.Generator().manual_seed(0)
    p, q = torch.rand(2, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    cos = pixel_cosine(p, q)
    assert cos.shape == (2, 4, 5)
    assert cos.mean().item() == pytest.approx(-cosine_loss(p, q, reduce="pixel").item(), abs=1e-6)
    torch.testing.assert_close(pixel_cosine(p, 3 * p), torch.ones(2, 4, 5))  # scale does not matter
    with pytest.raises(DataError, match=r"q: shape \(3, 4, 5\) does not match p \(2, 3, 4, 5\)"):
        pixel_cosine(p, q[0])


def test_plot_invariance_compares_the_mix_with_the_mixed_predictions() -> None:
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.rand(1, 4, 4, generator=g), torch.rand(1, 4, 4, generator=g)
    p1, p2 = torch.rand(4, 4, 4, generator=g).softmax(0), torch.rand(4, 4, 4, generator=g).softmax(0)
    alpha = 0.3
    p_mix = alpha * p1 + (1 - alpha) * p2  # a perfectly mix-equivariant model
    fig = viz.plot_invariance(x1, x2, alpha * x1 + (1 - alpha) * x2, p1, p2, p_mix, alpha, "acdc", loss=-1.0)
    cos_ax = fig.axes[3]
    np.testing.assert_allclose(drawn(cos_ax)[0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(drawn(fig.axes[7])[0], viz.probability_rgb(p_mix, "acdc").transpose(1, 0, 2), rtol=1e-6)
    assert "-1.0000" in fig._suptitle.get_text()


def test_plot_invariance_rejects_mismatched_maps() -> None:
    x, p = torch.rand(1, 4, 4), torch.rand(4, 4, 4)
    with pytest.raises(DataError, match=r"p_mix: probabilities .* must share one shape"):
        viz.plot_invariance(x, x, x, p, p, torch.rand(4, 4, 5), 0.5, "acdc")


# ----------------------------------------------------------------------------------------------
# Augmentation and domain gap
# ----------------------------------------------------------------------------------------------


def test_plot_augmentations_fills_only_the_padding() -> None:
    images = torch.rand(2, 1, 6, 6)
    scribbles = torch.full((2, 6, 6), U, dtype=torch.long)
    labels = torch.zeros(2, 6, 6, dtype=torch.long)
    labels[1, :2] = U  # the ground truth of a warped slice is UNANNOTATED where it was padded
    padding = torch.zeros(2, 6, 6, dtype=torch.bool)
    padding[1, :2] = True
    fig = viz.plot_augmentations(images, scribbles, padding, "acdc", labels=labels, titles=["a", "b"])
    fills = [drawn(ax)[-1] for ax in fig.axes[:2]]
    assert np.all(fills[0][..., 3] == 0)
    np.testing.assert_allclose(fills[1][:, :2], np.broadcast_to(to_rgba(viz.PADDING_COLOR, 0.75), (6, 2, 4)))
    assert np.all(fills[1][:, 2:, 3] == 0)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]


def test_plot_augmentations_rejects_a_padding_of_another_shape() -> None:
    with pytest.raises(DataError, match=r"padding: shape \(2, 5, 6\) does not match images \(2, 1, 6, 6\)"):
        scribbles, padding = torch.zeros(2, 6, 6, dtype=torch.long), torch.zeros(2, 5, 6, dtype=torch.bool)
        viz.plot_augmentations(torch.rand(2, 1, 6, 6), scribbles, padding, "acdc")


def test_plot_domain_gap_blends_and_histograms_both_tasks() -> None:
    a, b = torch.rand(3, 1, 8, 8), torch.rand(2, 1, 8, 8)
    fig = viz.plot_domain_gap({"acdc": a, "mscmr": b}, pair=(2, 1), alpha=0.25)
    np.testing.assert_allclose(drawn(fig.axes[0])[0], a[2, 0].numpy().T)
    np.testing.assert_allclose(drawn(fig.axes[2])[0], (0.25 * a[2, 0] + 0.75 * b[1, 0]).numpy().T, rtol=1e-6)
    assert [t.get_text() for t in fig.axes[3].get_legend().get_texts()] == ["ACDC", "MSCMR", "blend, α = 0.25"]


def test_plot_domain_gap_needs_exactly_two_tasks() -> None:
    with pytest.raises(ConfigError, match=r"images: expected exactly two tasks, got \['acdc'\]"):
        viz.plot_domain_gap({"acdc": torch.rand(1, 1, 4, 4)})


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------


def tiny_unet(dropout) -> UNet:
    return UNet(3, 4, base=2, dropout=dropout, generator=torch.Generator().manual_seed(0))


def test_dropout_predictions_vary_only_with_dropout_and_restore_modes() -> None:
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(0)
    still = tiny_unet(None).train()
    samples = dropout_predictions(still, x, n=3)
    assert samples.shape == (3, 2, 4, 16, 16)
    expected = still.eval()(x).softmax(dim=1).detach()  # BatchNorm in eval mode, nothing random
    still.train()
    for k in range(3):
        torch.testing.assert_close(samples[k], expected)  # sample k holds the whole batch, in order
    samples = dropout_predictions(still, x, n=3)
    assert all(m.training for m in still.modules())  # train mode restored everywhere
    noisy = tiny_unet(0.5).eval()
    samples = dropout_predictions(noisy, x, n=3)
    torch.testing.assert_close(samples.sum(dim=2), torch.ones(3, 2, 16, 16))  # probabilities
    assert not torch.allclose(samples[0], samples[1])
    assert not any(m.training for m in noisy.modules())  # eval mode restored, dropout included


def test_dropout_predictions_rejects_no_samples() -> None:
    with pytest.raises(ConfigError, match="n: number of dropout samples must be >= 1, got 0"):
        dropout_predictions(tiny_unet(None), torch.rand(1, 3, 16, 16), n=0)


def test_plot_dropout_variance_shows_the_spread_on_one_scale() -> None:
    samples = {"none": torch.full((4, 4, 3, 3), 0.25), "paper": torch.rand(4, 4, 3, 3).softmax(1)}
    fig = viz.plot_dropout_variance(torch.rand(1, 3, 3), samples, "acdc")
    spreads = [ax for ax in fig.axes if ax.get_title().startswith("std over 4 passes")]
    assert len(spreads) == 2
    np.testing.assert_allclose(drawn(spreads[0])[0], 0.0)
    expected = samples["paper"].std(dim=0, correction=0).mean(dim=0).numpy().T
    np.testing.assert_allclose(drawn(spreads[1])[0], expected, rtol=1e-6)
    assert spreads[0].get_images()[0].get_clim() == spreads[1].get_images()[0].get_clim()
    with pytest.raises(ConfigError, match="samples: no dropout setting to plot"):
        viz.plot_dropout_variance(torch.rand(1, 3, 3), {}, "acdc")

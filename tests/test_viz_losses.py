"""The figure and table helpers of notebook 04 (vicinal losses) in ``modelmix_lite.viz``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from modelmix_lite.probes import MODEL_PARTS, cosine_examples, cosine_reduction_frame, gradient_norms_by_group, gradient_share, pixel_gradient_norm
from modelmix_lite.sampling import example_batch
from modelmix_lite.data.tasks import UNANNOTATED
from modelmix_lite.errors import DataError
from modelmix_lite.losses import dice_loss
from modelmix_lite.mixing import mixable_layers, virtual_forward
from modelmix_lite.models import TaskModelSet
from modelmix_lite.rundir import read_log
from modelmix_lite.viz import plot_cosine_examples, plot_gradient_flow, plot_gradient_maps, plot_loss_terms


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _scribble(batch: int = 2, size: int = 8) -> torch.Tensor:
    target = torch.full((batch, size, size), UNANNOTATED)
    target[:, 1, 1:6] = 0
    target[:, 4, 2:5] = 1
    target[0, 6, 3:6] = 2
    return target


# --- pixel_gradient_norm, gradient_share ---------------------------------------------------------


def test_pixel_gradient_norm_of_a_linear_loss_is_the_weight_magnitude() -> None:
    weight = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4) - 10
    logits = torch.randn(2, 3, 4, 4)
    grad = pixel_gradient_norm(lambda z: (z[:, 1] * weight).sum(), logits)
    assert grad.shape == (2, 4, 4)
    torch.testing.assert_close(grad, weight.abs())
    assert not logits.requires_grad  # the input is left alone


def test_pixel_gradient_norm_of_a_constant_loss_is_zero() -> None:
    grad = pixel_gradient_norm(lambda z: torch.tensor(1.0, requires_grad=True), torch.randn(1, 2, 3, 5))
    assert torch.equal(grad, torch.zeros(1, 3, 5))


def test_masked_dice_sends_no_gradient_off_the_scribbles_and_unmasked_per_class_dice_does() -> None:
    logits, target = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)), _scribble()
    unannotated = target == UNANNOTATED
    masked = pixel_gradient_norm(lambda z: dice_loss(z, target, on="annotated"), logits)
    unmasked = pixel_gradient_norm(lambda z: dice_loss(z, target, on="all", average="present"), logits)
    assert torch.all(masked[unannotated] == 0) and torch.all(masked[~unannotated] > 0)
    assert gradient_share(masked, target) == 0.0
    assert 0.0 < gradient_share(unmasked, target) < 1.0


def test_unmasked_pooled_dice_is_a_scaled_mean_probability_of_the_scribbled_class() -> None:
    """The identity notebook 04 states: Σ_c p_c = 1 makes the pooled denominator the constant M + N."""
    logits, target = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)), _scribble()
    annotated = target != UNANNOTATED
    n, m = int(annotated.sum()), target.numel()
    p_y = logits.softmax(1).gather(1, target.masked_fill(~annotated, 0)[:, None])[:, 0][annotated]
    expected = 1 - 2 * n / (m + n) * p_y.mean()
    torch.testing.assert_close(dice_loss(logits, target, on="all", average="pooled", eps=0.0), expected)
    grad = pixel_gradient_norm(lambda z: dice_loss(z, target, on="all", average="pooled"), logits)
    assert float(grad[~annotated].max()) < 1e-6 * float(grad[annotated].max())


def test_gradient_share_hand_computed() -> None:
    grad = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])
    target = torch.tensor([[[0, UNANNOTATED], [UNANNOTATED, 1]]])
    assert gradient_share(grad, target) == pytest.approx(3 / 8)
    assert gradient_share(torch.zeros(1, 2, 2), target) == 0.0
    with pytest.raises(DataError, match=r"grad: shape \(1, 2, 2\) does not match target \(1, 2, 3\)"):
        gradient_share(grad, torch.zeros(1, 2, 3, dtype=torch.long))


def test_plot_gradient_maps_draws_one_panel_per_map_and_checks_shapes() -> None:
    scribble = _scribble(1)[0].numpy()
    maps = {"a": np.ones((8, 8)), "b": np.zeros((8, 8))}
    fig = plot_gradient_maps(maps, np.random.default_rng(0).random((8, 8)), scribble, "mscmr")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    share = 100 * float((scribble == UNANNOTATED).mean())
    assert titles == ["slice and scribbles", f"a\n{share:.0f} % on unannotated pixels", "b\n0 % on unannotated pixels"]
    with pytest.raises(DataError, match=r"maps\['b'\]: shape \(4, 4\) does not match the slice \(8, 8\)"):
        plot_gradient_maps({"b": np.zeros((4, 4))}, np.zeros((8, 8)), scribble, "mscmr")


# --- cosine reductions -----------------------------------------------------------------------------


def test_cosine_reduction_frame_hand_computed_constant_maps() -> None:
    """A constant host and a constant virtual map: the spatial cosine is 1 although every pixel changes class."""
    p = torch.tensor([0.7, 0.3]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
    q = torch.tensor([0.3, 0.7]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
    frame = cosine_reduction_frame({"swap": (p, q)})
    cos = (0.7 * 0.3 + 0.3 * 0.7) / (0.7**2 + 0.3**2)
    assert list(frame.columns) == ["pixel", "spatial", "flat", "argmax changed (%)"]
    assert frame.loc["swap", "pixel"] == pytest.approx(cos, abs=1e-6)
    assert frame.loc["swap", "flat"] == pytest.approx(cos, abs=1e-6)
    assert frame.loc["swap", "spatial"] == pytest.approx(1.0, abs=1e-6)
    assert frame.loc["swap", "argmax changed (%)"] == 100.0


def test_cosine_examples_change_the_pixels_they_say() -> None:
    label = np.zeros((12, 12), dtype=np.uint8)
    label[3:9, 3:9] = 1
    label[5:7, 5:7] = 2
    examples = cosine_examples(label, 3, small=2, neighbour=1, seed=0)
    assert list(examples) == ["less confident", "small class lost", "small class everywhere"]
    host = examples["less confident"][0]
    assert all(p is host for p, _ in examples.values())
    torch.testing.assert_close(host.sum(1), torch.ones(1, 12, 12))
    assert torch.equal(host[0].argmax(0), torch.as_tensor(label, dtype=torch.long))  # confidence 4 ≫ noise 0.5
    frame = cosine_reduction_frame(examples)
    assert frame.loc["less confident", "argmax changed (%)"] == 0.0
    assert frame.loc["small class lost", "argmax changed (%)"] == pytest.approx(100 * 4 / 144)
    lost = examples["small class lost"][1][0].argmax(0)
    assert torch.all(lost[5:7, 5:7] == 1) and torch.equal(lost[label != 2], host[0].argmax(0)[label != 2])
    assert frame.loc["small class everywhere", "argmax changed (%)"] > 50
    assert len(plot_cosine_examples(examples, "acdc").axes) == 4


def test_cosine_examples_rejects_a_label_without_the_small_class() -> None:
    with pytest.raises(DataError, match="label: expected a 2-D map of classes 0..2 holding class 2"):
        cosine_examples(np.zeros((4, 4), dtype=np.uint8), 3, small=2, neighbour=1)


# --- gradient_norms_by_group -----------------------------------------------------------------------


def _models(shared: bool = False, encoder_bn: str = "shared") -> TaskModelSet:
    return TaskModelSet(["myops", "mscmr"], base=4, dropout=None, shared_encoder=shared,
                        generator=torch.Generator().manual_seed(0), encoder_bn=encoder_bn)


def test_gradient_norms_by_group_matches_autograd_and_leaves_other_tasks_at_zero() -> None:
    models, x = _models(), torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    loss = models("myops", x).square().mean()
    frame = gradient_norms_by_group(models, {"myops only": loss})
    assert list(frame.columns) == [(t, part) for t in ("myops", "mscmr") for part in MODEL_PARTS]
    encoder = list(models.models["myops"].encoder.parameters())
    expected = torch.cat([g.flatten() for g in torch.autograd.grad(loss, encoder, retain_graph=True)]).norm()
    assert frame.loc["myops only", ("myops", "encoder")] == pytest.approx(float(expected), rel=1e-5)
    assert (frame.loc["myops only", "myops"] > 0).all()
    assert (frame.loc["myops only", "mscmr"] == 0).all()


def test_gradient_norms_by_group_shows_what_a_detached_virtual_model_trains() -> None:
    models, x = _models(), torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    layer = mixable_layers(models.models["myops"])[2]
    losses = {
        f"detach={d}": virtual_forward(models.models["myops"], models.models["mscmr"], layer, 0.5, x, d).square().mean()
        for d in (False, True)
    }
    frame = gradient_norms_by_group(models, losses)
    assert (frame.loc["detach=False", "myops"] > 0).all()
    assert frame.loc["detach=False", ("mscmr", "encoder")] > 0  # only through the mixed layer
    assert frame.loc["detach=False", [("mscmr", "decoder"), ("mscmr", "head")]].eq(0).all()
    assert frame.loc["detach=True"].drop(("myops", "head")).eq(0).all()
    assert frame.loc["detach=True", ("myops", "head")] > 0


def test_gradient_norms_by_group_shared_encoder_and_bad_loss() -> None:
    models = _models(shared=True)
    frame = gradient_norms_by_group(models, {"l": models("mscmr", torch.randn(2, 3, 16, 16)).mean()})
    assert frame.loc["l", ("myops", "encoder")] == frame.loc["l", ("mscmr", "encoder")] > 0
    per_task = _models(shared=True, encoder_bn="per_task")  # the kernels are shared, MyoPS's BN gets nothing
    frame = gradient_norms_by_group(per_task, {"l": per_task("mscmr", torch.randn(2, 3, 16, 16)).mean()})
    assert 0 < frame.loc["l", ("myops", "encoder")] < frame.loc["l", ("mscmr", "encoder")]
    with pytest.raises(DataError, match=r"losses\['map'\]: expected a scalar that requires grad, got shape \(2,\)"):
        gradient_norms_by_group(models, {"map": torch.ones(2, requires_grad=True)})


def test_plot_gradient_flow_marks_exact_zeros_and_rejects_no_frames() -> None:
    columns = pd.MultiIndex.from_tuples([("a", "encoder"), ("a", "head")])
    frame = pd.DataFrame([[0.5, 0.0]], index=["t"], columns=columns)
    fig = plot_gradient_flow({"paper": frame, "released_code": frame * 2})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["5e-01", "0"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["paper", "released_code"]
    with pytest.raises(DataError, match="frames: expected at least one non-empty gradient-norm frame"):
        plot_gradient_flow({})


# --- example_batch, plot_loss_terms ----------------------------------------------------------------


def test_example_batch_rows_are_scribbled_then_unlabeled(phantom_root: Path) -> None:
    batch = example_batch("mscmr", phantom_root, 32, n_scribbled=2, n_unlabeled=3, seed=0)
    assert batch["image"].shape == (5, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["target"].shape == (5, 32, 32) and batch["target"].dtype == torch.int64
    assert batch["n_scribbled"] == 2
    assert all((batch["target"][k] != UNANNOTATED).any() for k in range(2))
    assert torch.all(batch["target"][2:] == UNANNOTATED)
    again = example_batch("mscmr", phantom_root, 32, n_scribbled=2, n_unlabeled=3, seed=0)
    assert torch.equal(again["image"], batch["image"])


def test_example_batch_refuses_more_slices_than_the_split_has(phantom_root: Path) -> None:
    with pytest.raises(DataError, match=r"myops has \d+ scribbled training slices, 1000 asked for"):
        example_batch("myops", phantom_root, 32, n_scribbled=1000)


def test_plot_loss_terms_plots_the_logged_values(tmp_path: Path) -> None:
    rows = [
        {"step": 1, "loss": 3.0, "inv/myops": -0.9, "inv/mscmr": -0.8, "vsup/myops": 2.0, "vsup/mscmr": 1.5},
        {"step": 2, "loss": 2.0, "inv/myops": -0.95, "inv/mscmr": -0.85, "vsup/myops": 1.5, "vsup/mscmr": 1.0},
        {"step": 2, "val_dice": 0.4},
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = plot_loss_terms(read_log(log))  # viz draws rows; reading the file is the run directory's job
    assert [ax.get_title() for ax in fig.axes] == ["total (Eq. 9)", "inv", "vsup"]
    total, inv = fig.axes[0].lines[0], fig.axes[1].lines
    assert list(total.get_ydata()) == [3.0, 2.0]
    assert [line.get_label() for line in inv] == ["myops", "mscmr"]
    assert list(inv[1].get_ydata()) == [-0.8, -0.85]
    with pytest.raises(DataError, match="no training rows"):
        plot_loss_terms(pd.DataFrame({"step": [1], "val_dice": [0.3]}))


def test_plot_gradient_maps_crops_to_the_scribbles() -> None:
    scribble = np.full((20, 20), UNANNOTATED, dtype=np.uint8)
    scribble[8:12, 6:8] = 1  # a 4 × 2 box (X × Y); margin 0.5 grows it to 8 × 4
    fig = plot_gradient_maps({"g": np.ones((20, 20))}, np.zeros((20, 20)), scribble, "acdc", margin=0.5)
    assert fig.axes[1].images[0].get_array().shape == (4, 8)  # drawn transposed: Y rows, X columns
    full = plot_gradient_maps({"g": np.ones((20, 20))}, np.zeros((20, 20)), scribble, "acdc", margin=None)
    assert full.axes[1].images[0].get_array().shape == (20, 20)

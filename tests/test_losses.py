from __future__ import annotations

import math

import pytest
import torch

from modelmix_lite.data.tasks import UNANNOTATED
from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.losses import (
    check_target_values,
    cosine_loss,
    dice_loss,
    invariance_loss,
    mixup_cross_entropy,
    partial_cross_entropy,
    supervised_loss,
    total_loss,
    vicinal_reg_loss,
    vicinal_sup_loss,
)

U = UNANNOTATED
LN3 = math.log(3)


def two_class_logits(class1: list[float]) -> torch.Tensor:
    """(1, 2, 1, W) logits with class 0 at 0, so p1 = sigmoid(class1)."""
    row = torch.tensor(class1)
    return torch.stack([torch.zeros_like(row), row])[None, :, None].requires_grad_()


def target(*values: int) -> torch.Tensor:
    return torch.tensor(values)[None, None]


# ---------------------------------------------------------------------------- Eq. 8


def test_partial_cross_entropy_by_hand():
    logits = two_class_logits([LN3, 0.0])  # p1 = 0.75, 0.5
    assert partial_cross_entropy(logits, target(1, 0)).item() == pytest.approx((-math.log(0.75) + math.log(2)) / 2)
    assert partial_cross_entropy(logits, target(1, U)).item() == pytest.approx(-math.log(0.75))


@pytest.mark.parametrize(
    "labels, on, average, expected",
    [
        ((0, 0, U), "annotated", "present", 1 - 2 * 1.0 / (1.0 + 2)),
        ((0, 0, U), "all", "present", 1 - 2 * 1.0 / (1.5 + 2)),
        ((0, 0, U), "annotated", "pooled", 1 - 2 * 1.0 / (2 + 2)),
        ((0, 0, U), "all", "pooled", 1 - 2 * 1.0 / (3 + 2)),
        ((0, 1, U), "annotated", "present", 1 - 0.75),
        ((0, 1, U), "all", "present", 1 - 2 * 0.75 / (1.5 + 1)),
    ],
)
def test_dice_by_hand(labels, on, average, expected):
    logits = two_class_logits([-LN3, LN3, 0.0])  # p0 = 0.75, 0.25, 0.5
    assert dice_loss(logits, target(*labels), on=on, average=average).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("labels", [torch.full((2, 4, 4), U), torch.full((2, 4, 4), 2)])
def test_unannotated_and_single_class_batches_are_finite(labels):
    logits = torch.randn(2, 4, 4, 4, requires_grad=True)
    losses = [
        partial_cross_entropy(logits, labels),
        dice_loss(logits, labels, on="all"),
        dice_loss(logits, labels, average="pooled"),
        supervised_loss(logits, labels),
        mixup_cross_entropy(logits, labels, labels, 0.3),
    ]
    total = sum(losses)
    total.backward()
    assert all(torch.isfinite(v) for v in losses)
    assert torch.isfinite(logits.grad).all()
    if (labels == U).all():
        assert all(v.item() == 0 for v in losses) and (logits.grad == 0).all()


def test_no_gradient_at_unannotated_pixels():
    labels = torch.randint(0, 4, (2, 6, 6), generator=torch.Generator().manual_seed(0))
    labels[:, :3] = U
    logits = torch.randn(2, 4, 6, 6, requires_grad=True)
    supervised_loss(logits, labels, dice_on="annotated").backward()
    unannotated = (labels == U)[:, None].expand_as(logits)
    assert (logits.grad[unannotated] == 0).all() and (logits.grad[~unannotated] != 0).any()

    logits.grad = None
    supervised_loss(logits, labels, dice_on="all").backward()  # released code: Σp over every pixel
    assert (logits.grad[unannotated] != 0).any()


def test_target_validation():
    logits = torch.zeros(1, 4, 2, 2)
    with pytest.raises(DataError, match=r"^target: expected int64 \(B, H, W\) = \(1, 2, 2\), got torch.float32"):
        partial_cross_entropy(logits, torch.zeros(1, 2, 2))
    with pytest.raises(DataError, match=r"^target: values \[4, 7\] are neither a class 0\.\.3 nor the unannotated value 255"):
        dice_loss(logits, torch.tensor([[[0, 4], [7, U]]]))
    with pytest.raises(DataError, match=r"^target2: expected int64"):
        mixup_cross_entropy(logits, torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 3, 2, dtype=torch.long), 0.5)
    with pytest.raises(ConfigError, match="^on: expected 'annotated' or 'all', got 'scribbles'"):
        dice_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), on="scribbles")
    with pytest.raises(ConfigError, match="^average: expected 'present' or 'pooled'"):
        dice_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), average="macro")


def test_check_false_skips_only_the_value_check_which_reads_the_data():
    """On the meta device (tensors without data) any read of the values fails: ``check=False`` makes none."""
    logits = torch.zeros(2, 4, 3, 3, device="meta")
    labels = torch.zeros(2, 3, 3, dtype=torch.long, device="meta")
    unchecked = [
        partial_cross_entropy(logits, labels, check=False),
        dice_loss(logits, labels, check=False),
        dice_loss(logits, labels, on="all", average="pooled", check=False),
        supervised_loss(logits, labels, check=False),
        vicinal_sup_loss(logits, logits, labels, check=False),
        mixup_cross_entropy(logits, labels, labels, 0.5, check=False),
    ]
    assert all(v.device.type == "meta" and v.shape == () for v in unchecked)
    with pytest.raises(RuntimeError, match="meta"):
        partial_cross_entropy(logits, labels)  # check=True reads the values
    with pytest.raises(DataError, match=r"^target: expected int64 \(B, H, W\) = \(2, 3, 3\), got torch.int64 "
                                        r"\(2, 3, 2\)"):
        dice_loss(logits, labels[..., :2], check=False)  # shapes are always checked
    with pytest.raises(DataError, match=r"^batch: values \[-1, 4\] are neither a class 0\.\.3 "
                                        r"nor the unannotated value 255$"):
        check_target_values(torch.tensor([[[0, 4], [-1, U]]]), 4, name="batch")
    check_target_values(torch.tensor([[[0, 3], [U, U]]]), 4)


# ---------------------------------------------------------------------------- cosine terms (Eqs. 1, 6)


@pytest.mark.parametrize("reduce", ["pixel", "spatial", "flat"])
def test_cosine_identical_is_minus_one_and_orthogonal_is_zero(reduce):
    p = torch.rand(2, 3, 4, 5).softmax(1)
    assert cosine_loss(p, p.clone(), reduce).item() == pytest.approx(-1)
    a = torch.zeros(2, 3, 4, 5)
    b = torch.zeros(2, 3, 4, 5)
    a[:, 0], b[:, 1] = 1, 1
    assert cosine_loss(a, b, reduce).item() == pytest.approx(0)


def test_cosine_reductions_by_hand():
    p = torch.tensor([[1.0, 1.0], [0.0, 0.0]])[None, :, None]  # (1, 2, 1, 2): class vectors [1,0], [1,0]
    q = torch.tensor([[1.0, 1.0], [1.0, 0.0]])[None, :, None]  # class vectors [1,1], [1,0]
    assert cosine_loss(p, q, "pixel").item() == pytest.approx(-(1 / math.sqrt(2) + 1) / 2)
    # spatial: class 0 maps are equal (cos 1); class 1 of p is all zero (cos 0)
    assert cosine_loss(p, q, "spatial").item() == pytest.approx(-0.5)
    assert cosine_loss(p, q, "flat").item() == pytest.approx(-2 / (math.sqrt(2) * math.sqrt(3)))


@pytest.mark.parametrize("reduce", ["pixel", "spatial", "flat"])
def test_cosine_zero_vectors_and_mask(reduce):
    p = torch.rand(2, 3, 4, 4, requires_grad=True)
    q = p.detach().clone()
    q[:, :, 0, 0] = torch.tensor([5.0, 0.0, 0.0])  # disagree at one pixel
    mask = torch.ones(2, 1, 4, 4)
    mask[:, :, 0, 0] = 0
    assert vicinal_reg_loss(p, q, reduce, mask).item() == pytest.approx(-1)
    assert cosine_loss(p, q, reduce).item() > -0.999
    assert vicinal_reg_loss(p, q, reduce, torch.zeros(2, 1, 4, 4)).item() == 0
    zeros = torch.zeros(2, 3, 4, 4, requires_grad=True)
    value = cosine_loss(zeros, q, reduce)
    value.backward()
    assert value.item() == 0 and torch.isfinite(zeros.grad).all()


def test_cosine_validation():
    with pytest.raises(DataError, match=r"^q: shape \(1, 2, 3, 3\) does not match p \(1, 2, 4, 4\)"):
        cosine_loss(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 3, 3))
    with pytest.raises(ConfigError, match="^reduce: expected one of"):
        cosine_loss(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), reduce="channel")
    with pytest.raises(DataError, match=r"^mask: expected \(B, 1, H, W\)"):
        cosine_loss(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), mask=torch.ones(1, 4, 4))


@pytest.mark.parametrize("reduce", ["pixel", "spatial", "flat"])
def test_invariance_loss_is_minus_one_for_a_mix_equivariant_model(reduce):
    p1, p2 = torch.rand(3, 4, 5, 5).softmax(1), torch.rand(3, 4, 5, 5).softmax(1)
    alpha = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1, 1)
    p_mix = alpha * p1 + (1 - alpha) * p2
    assert invariance_loss(p_mix, p1, p2, alpha, reduce).item() == pytest.approx(-1)
    assert invariance_loss(p_mix, p1, p2, 0.5, reduce).item() > -0.9999


# ---------------------------------------------------------------------------- Eqs. 7, 9 and mixup CE


def test_vicinal_sup_is_the_sum_of_two_supervised_losses():
    gen = torch.Generator().manual_seed(1)
    virtual, host = torch.randn(2, 4, 6, 6, generator=gen), torch.randn(2, 4, 6, 6, generator=gen)
    y = torch.randint(0, 4, (2, 6, 6), generator=gen)
    y_rot = y.flip(-1)
    y_rot[:, 0] = U
    expected = supervised_loss(virtual, y) + supervised_loss(host, y)
    torch.testing.assert_close(vicinal_sup_loss(virtual, host, y), expected)
    expected = supervised_loss(virtual, y_rot, "all") + supervised_loss(host, y, "all")
    torch.testing.assert_close(vicinal_sup_loss(virtual, host, y, "all", target_virtual=y_rot), expected)


def test_total_loss():
    terms = {"inv": torch.tensor(1.0), "vicinal_reg": torch.tensor(-2.0), "vicinal_sup": torch.tensor(4.0)}
    assert total_loss(terms).item() == 3.0
    assert total_loss(terms, {"vicinal_sup": 0.5}).item() == 1.0
    with pytest.raises(ConfigError, match=r"^weights: \['sup'\] are not loss terms"):
        total_loss(terms, {"sup": 1.0})
    with pytest.raises(ConfigError, match="^terms: no loss terms"):
        total_loss({})
    with pytest.raises(DataError, match=r"^terms\['inv'\]: expected a scalar"):
        total_loss({"inv": torch.ones(2)})


def test_mixup_cross_entropy_by_hand():
    logits = two_class_logits([LN3, LN3])  # p = [0.25, 0.75] at both pixels
    value = mixup_cross_entropy(logits, target(0, U), target(1, 0), 0.25)
    # pixel 0: ỹ = [0.25, 0.75]; pixel 1: only image 2 annotated, ỹ = [0.75, 0]
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75) + 0.75 * math.log(0.25)) / 1.75
    assert value.item() == pytest.approx(expected)


def test_mixup_cross_entropy_reduces_to_pce():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 5, 5, generator=gen)
    y1, y2 = torch.randint(0, 4, (2, 5, 5), generator=gen), torch.randint(0, 4, (2, 5, 5), generator=gen)
    y1[0, :2] = U
    torch.testing.assert_close(mixup_cross_entropy(logits, y1, y2, 1.0), partial_cross_entropy(logits, y1))
    alpha = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)
    both = torch.stack([y1[0], y2[1]])
    torch.testing.assert_close(mixup_cross_entropy(logits, y1, y2, alpha), partial_cross_entropy(logits, both))

from __future__ import annotations

import pytest
import torch

from modelmix_lite.data.tasks import UNANNOTATED
from modelmix_lite.draws import sample_beta
from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.perturb import (
    apply_cutout,
    augment,
    cutout_mask,
    mixup,
    partner_index,
    rotate,
    rotate_labels,
    rotation_mask,
    to_device,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def block_labels(batch: int, size: int, block: int, seed: int = 0) -> torch.Tensor:
    """Piecewise-constant labels 0..3 in ``block × block`` squares."""
    coarse = torch.randint(0, 4, (batch, size // block, size // block), generator=gen(seed))
    return coarse.repeat_interleave(block, 1).repeat_interleave(block, 2)


# ---------------------------------------------------------------------------- cutout


def test_cutout_mask_is_one_clipped_square():
    mask = cutout_mask(300, 20, 24, size=5, generator=gen())
    assert mask.shape == (300, 1, 20, 24)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    for hole in (mask[:, 0] == 0):
        rows, cols = hole.nonzero(as_tuple=True)
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        assert hole.sum() == (r1 - r0 + 1) * (c1 - c0 + 1)  # a filled rectangle
        if 0 < r0 and r1 < 19 and 0 < c0 and c1 < 23:
            assert hole.sum() == 25  # full square away from borders
        else:
            assert 0 < hole.sum() <= 25
    touching = [(h.nonzero()[:, 0].min() == 0).item() for h in (mask[:, 0] == 0)]
    assert any(touching) and not all(touching)


def test_cutout_probability_extremes_and_errors():
    assert torch.equal(cutout_mask(8, 6, 6, size=2, p=0.0, generator=gen()), torch.ones(8, 1, 6, 6))
    cut = (cutout_mask(64, 6, 6, size=2, p=0.5, generator=gen()) == 0).flatten(1).any(1)
    assert 0 < cut.sum() < 64
    with pytest.raises(ConfigError, match="^size: cutout side must be >= 1"):
        cutout_mask(1, 4, 4, size=0)
    with pytest.raises(ConfigError, match=r"^p: cutout probability must be in \[0, 1\]"):
        cutout_mask(1, 4, 4, size=2, p=1.5)


def test_apply_cutout_relabels_cut_pixels():
    image = torch.rand(2, 3, 8, 8) + 1
    labels = torch.randint(0, 4, (2, 8, 8), generator=gen())
    mask = cutout_mask(2, 8, 8, size=3, generator=gen(1))
    cut = mask[:, 0] == 0
    out, lab = apply_cutout(image, mask, labels)
    assert (out[cut[:, None].expand_as(out)] == 0).all()
    assert torch.equal(out[~cut[:, None].expand_as(out)], image[~cut[:, None].expand_as(out)])
    assert (lab[cut] == UNANNOTATED).all() and torch.equal(lab[~cut], labels[~cut])
    _, released = apply_cutout(image, mask, labels, label_fill=0)
    assert (released[cut] == 0).all()
    assert apply_cutout(image, mask)[1] is None
    with pytest.raises(DataError, match=r"^mask: shape \(2, 1, 4, 4\) does not match image"):
        apply_cutout(image, torch.ones(2, 1, 4, 4))
    with pytest.raises(DataError, match="^labels: expected an integer tensor"):
        apply_cutout(image, mask, labels.float())


# ---------------------------------------------------------------------------- mixup


@pytest.mark.parametrize("batch", [2, 3, 5, 8])
def test_partner_index_is_a_derangement(batch):
    for seed in range(10):
        partner = partner_index(batch, gen(seed))
        assert sorted(partner.tolist()) == list(range(batch))
        assert (partner != torch.arange(batch)).all()


def test_to_device_moves_without_changing_values_and_keeps_tensors_in_place():
    x = torch.arange(6.0).view(2, 3)
    assert to_device(x, None) is x and to_device(x, "cpu") is x
    moved = to_device(x, "meta")
    assert moved.device.type == "meta" and moved.shape == x.shape and moved.dtype == x.dtype
    if torch.cuda.is_available():
        assert torch.equal(to_device(x, "cuda").cpu(), x)


def test_random_draws_reach_the_device_of_the_data():
    assert cutout_mask(2, 4, 4, size=2, generator=gen(), device="meta").device.type == "meta"
    x = torch.zeros(3, 1, 4, 4, device="meta")
    _, lam = mixup(x, x, 0.5, gen())
    assert lam.device.type == "meta" and lam.shape == (3, 1, 1, 1)
    assert rotate(x, torch.tensor(30.0)).device.type == "meta" and rotate(x, 30.0).shape == x.shape


def test_partner_index_flip_and_errors():
    assert partner_index(5, scheme="flip").tolist() == [4, 3, 2, 1, 0]
    with pytest.raises(DataError, match="^batch: mixup needs at least 2 samples"):
        partner_index(1)
    with pytest.raises(ConfigError, match="^scheme: unknown partner scheme 'ring'"):
        partner_index(4, scheme="ring")


def test_mixup_is_a_per_sample_convex_combination():
    x1, x2 = torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4)
    x, lam = mixup(x1, x2, 0.5, gen())
    assert lam.shape == (6, 1, 1, 1) and ((lam >= 0) & (lam <= 1)).all()
    assert len(lam.unique()) == 6
    torch.testing.assert_close(x, lam * x1 + (1 - lam) * x2)
    x_again, lam_again = mixup(x1, x2, 0.5, gen())
    assert torch.equal(lam, lam_again) and torch.equal(x, x_again)
    with pytest.raises(ConfigError, match=r"^alpha: the Beta\(α, α\) parameter must be >= 0.05"):
        mixup(x1, x2, 0.0)
    with pytest.raises(DataError, match=r"^x2: shape \(6, 3, 2, 2\) does not match x1"):
        mixup(x1, x2[..., :2, :2], 0.5)


@pytest.mark.parametrize("a", [0.5, 4.0])
def test_sample_beta_moments(a):
    draws = sample_beta(a, (20000,), "cpu", gen())
    assert abs(draws.mean() - 0.5) < 0.01
    assert abs(draws.var() - 1 / (4 * (2 * a + 1))) < 0.01  # Var Beta(a, a)


# ---------------------------------------------------------------------------- rotation


def test_rotate_matches_rot90_and_flips():
    x = torch.arange(2 * 36.0).view(2, 1, 6, 6)
    assert torch.equal(rotate(x, 90, "nearest"), torch.rot90(x, 1, (-2, -1)))
    wide = torch.arange(24.0).view(1, 1, 4, 6)
    assert torch.equal(rotate(wide, 180, "nearest"), wide.flip(-1, -2))
    labels = torch.arange(36).view(1, 6, 6)
    assert torch.equal(rotate_labels(labels, torch.tensor([-90.0])), torch.rot90(labels, -1, (-2, -1)))
    with pytest.raises(DataError, match=r"^angle: expected a scalar or \(2,\), got \(3,\)"):
        rotate(x, torch.zeros(3))
    with pytest.raises(ConfigError, match="^mode: expected 'bilinear' or 'nearest', got 'bicubic'"):
        rotate(x, 10.0, "bicubic")


def test_rotation_of_non_square_images_has_no_shear():
    x = torch.arange(1, 33.0).view(1, 1, 4, 8)
    out = rotate(x, 90, "nearest")
    assert torch.equal(out[..., 2:6], torch.rot90(x[..., 2:6], 1, (-2, -1)))  # centred square maps to itself
    assert (out[..., :2] == 0).all() and (out[..., 6:] == 0).all()
    labels = rotate_labels(x[:, 0].long(), 90)
    assert (labels[..., :2] == UNANNOTATED).all() and torch.equal(labels[..., 2:6], out[:, 0, :, 2:6].long())


def test_rotation_mask_keeps_what_survives_there_and_back():
    mask = rotation_mask((3, 2, 64, 64), torch.tensor([0.0, 90.0, 45.0]))
    assert mask.shape == (3, 1, 64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask[0].all() and mask[1].all()  # 0° and 90° lose nothing on a square
    # a square rotated by 45° overlaps the original on 2(√2 − 1) ≈ 82.8 % of its area; the corners are lost
    assert mask[2].mean().item() == pytest.approx(2 * (2**0.5 - 1), abs=0.03)
    assert mask[2, 0, 0, 0] == 0 and mask[2, 0, 32, 32] == 1


def test_rotate_labels_corners_are_unannotated():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    out = rotate_labels(labels, 45.0)
    assert out[0, 0, 0] == UNANNOTATED and out[0, -1, -1] == UNANNOTATED and out[0, 8, 8] == 0
    ones = rotate(torch.ones(1, 1, 16, 16), 45.0, "nearest")
    assert torch.equal(out == UNANNOTATED, ones[:, 0] == 0)


# ---------------------------------------------------------------------------- augment


def test_identity_augmentation_returns_inputs():
    image = torch.rand(3, 2, 10, 12)
    labels = torch.randint(0, 4, (3, 10, 12), generator=gen())
    kw = dict(generator=gen(), max_rotation=0.0, flip=False, scale=(1.0, 1.0))
    out, (lab,) = augment(image, [labels], mode="nearest", **kw)
    assert torch.equal(out, image) and torch.equal(lab, labels)
    out, (lab,) = augment(image, [labels], **kw)
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
    assert torch.equal(lab, labels)


def test_flip_only_gives_one_of_four_mirrors():
    image = torch.rand(16, 1, 6, 8)
    out, _ = augment(image, [], gen(), max_rotation=0.0, flip=True, scale=(1.0, 1.0), mode="nearest")
    seen = set()
    for x, y in zip(image, out):
        mirrors = [x, x.flip(-1), x.flip(-2), x.flip(-1, -2)]
        matches = [i for i, m in enumerate(mirrors) if torch.equal(y, m)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_augmentation_keeps_image_label_alignment():
    labels = block_labels(8, 32, 4)
    image = (labels.float() / 3)[:, None].repeat(1, 3, 1, 1)
    out, (lab, lab_again) = augment(image, [labels, labels], gen())
    assert torch.equal(lab, lab_again) and lab.dtype == torch.long
    assert set(lab.unique().tolist()) <= {0, 1, 2, 3, UNANNOTATED}
    assert (lab == UNANNOTATED).any()  # some rotation corners / padding
    annotated = lab != UNANNOTATED
    agree = (torch.round(out[:, 0] * 3).long() == lab)[annotated].float().mean()
    assert agree > 0.8  # bilinear blurs block edges only

    out, (lab,) = augment(image, [labels], gen(), mode="nearest")
    annotated = lab != UNANNOTATED
    assert torch.equal(torch.round(out[:, 0] * 3).long()[annotated], lab[annotated])


def test_padding_is_unannotated_and_crop_has_none():
    image = torch.ones(4, 1, 16, 16)
    labels = torch.zeros(4, 16, 16, dtype=torch.long)
    out, (lab,) = augment(image, [labels], gen(), max_rotation=0.0, flip=False, scale=(1.5, 1.5), mode="nearest")
    assert (lab == UNANNOTATED).any()
    assert torch.equal(lab == UNANNOTATED, out[:, 0] == 0)
    out, (lab,) = augment(image, [labels], gen(), max_rotation=0.0, flip=False, scale=(0.5, 0.8))
    assert (lab == 0).all()


def test_augment_is_reproducible_and_validates():
    image, labels = torch.rand(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
    a, (la,) = augment(image, [labels], gen(3))
    b, (lb,) = augment(image, [labels], gen(3))
    assert torch.equal(a, b) and torch.equal(la, lb)
    with pytest.raises(DataError, match=r"^labels\[0\]: expected an integer tensor"):
        augment(image, [labels.float()])
    with pytest.raises(DataError, match=r"^labels\[1\]: shape \(2, 4, 4\) does not match image"):
        augment(image, [labels, labels[:, :4, :4]])
    with pytest.raises(ConfigError, match="^scale: expected 0 < low <= high"):
        augment(image, [labels], scale=(1.2, 0.8))
    with pytest.raises(ConfigError, match="^max_rotation: must be >= 0"):
        augment(image, [labels], max_rotation=-1.0)

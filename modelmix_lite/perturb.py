"""Image-level perturbations (paper §2.1): cutout, intra-dataset mixup and geometric augmentation.

Everything works on batches of network tensors on any device: images ``(B, C, H, W)`` float,
labels ``(B, H, W)`` int64 with :data:`~modelmix_lite.data.tasks.UNANNOTATED` for unannotated pixels.
Geometric warps are one affine per sample applied with ``F.affine_grid``/``F.grid_sample``.

Random draws are made on the generator's device (a seeded CPU generator in training) and copied to the
data's device by :func:`to_device`; nothing is read back from the data's device, so a training step on
a GPU never waits for these functions.

Pixels that a perturbation hides or that come from outside the image become ``UNANNOTATED`` in the
labels, not background: the anatomy may be there, we only cannot see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.tasks import UNANNOTATED
from .draws import sample_beta
from .errors import ConfigError, DataError


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """``U(0, 1)`` draws on the generator's device (CPU when there is no generator)."""
    device = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=device)


def to_device(x: Tensor, device: torch.device | str | None) -> Tensor:
    """``x`` on ``device`` (None: where it is) without a host sync.

    A CPU tensor bound for CUDA is pinned first and copied with ``non_blocking=True``: from pageable
    memory the driver may wait for the stream, from pinned memory it never does.
    """
    device = x.device if device is None else torch.device(device)
    if x.device.type == "cpu" and device.type == "cuda":
        x = x.pin_memory()
    return x.to(device, non_blocking=True)


def _uniform_on(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None) -> Tensor:
    """:func:`_uniform` draws moved to ``device`` by :func:`to_device`."""
    return to_device(_uniform(shape, generator), device)


def _check_image(image: Tensor, name: str = "image") -> None:
    if image.ndim != 4 or not image.is_floating_point():
        raise DataError(f"{name}: expected a float tensor (B, C, H, W), got {image.dtype} {tuple(image.shape)}")


def _check_labels(labels: Tensor, image: Tensor, name: str = "labels") -> None:
    if labels.ndim != 3 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise DataError(f"{name}: expected an integer tensor (B, H, W), got {labels.dtype} {tuple(labels.shape)}")
    if labels.shape != (image.shape[0], *image.shape[2:]):
        raise DataError(f"{name}: shape {tuple(labels.shape)} does not match image {tuple(image.shape)}")


# ----------------------------------------------------------------------------------------------
# Cutout
# ----------------------------------------------------------------------------------------------


def cutout_mask(
    batch: int,
    height: int,
    width: int,
    size: int,
    p: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The binary cutout mask ``1_c`` of §2.1: one ``size × size`` square of zeros per sample.

    The square's centre is uniform over the image and the square is clipped at the borders, so it
    covers ``size²`` pixels only away from them. Each sample is cut with probability ``p``.

    Returns:
        ``(B, 1, H, W)`` float mask, 0 inside the square and 1 elsewhere.
    """
    if size < 1:
        raise ConfigError(f"size: cutout side must be >= 1, got {size}")
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"p: cutout probability must be in [0, 1], got {p}")
    u = _uniform_on((batch, 3), generator, device)
    top = (u[:, 0] * height).long() - size // 2
    left = (u[:, 1] * width).long() - size // 2
    cut = u[:, 2] < p
    rows = torch.arange(height, device=u.device)
    cols = torch.arange(width, device=u.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)
    hole = in_rows[:, :, None] & in_cols[:, None, :] & cut[:, None, None]
    return (~hole).float()[:, None]


def apply_cutout(
    image: Tensor, mask: Tensor, labels: Tensor | None = None, label_fill: int = UNANNOTATED
) -> tuple[Tensor, Tensor | None]:
    """Apply a cutout mask: ``x^c = 1_c ⊙ x`` (§2.1) and relabel the cut pixels.

    Cut pixels get ``label_fill`` in ``labels``. The default :data:`UNANNOTATED` says "not seen"
    (the heart may be under the square, so background would be a wrong label); ``label_fill=0``
    reproduces the released code, which labels them background (reference notes §4).

    Args:
        image: ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)`` from :func:`cutout_mask`.
        labels: optional ``(B, H, W)`` integer labels.
    Returns:
        ``(image * mask, relabelled labels or None)``.
    """
    _check_image(image)
    if mask.shape != (image.shape[0], 1, *image.shape[2:]):
        raise DataError(f"mask: shape {tuple(mask.shape)} does not match image {tuple(image.shape)}")
    if labels is None:
        return image * mask, None
    _check_labels(labels, image)
    return image * mask, labels.masked_fill(mask[:, 0] == 0, label_fill)


# ----------------------------------------------------------------------------------------------
# Mixup (intra-dataset)
# ----------------------------------------------------------------------------------------------


def partner_index(batch: int, generator: torch.Generator | None = None, scheme: str = "derangement") -> Tensor:
    """Index of each sample's mixup partner within the same batch.

    ``scheme="derangement"`` (default): a random permutation with no fixed point, so no sample is
    ever mixed with itself. ``scheme="flip"``: the released code's ``flip(batch, 0)`` (sample ``i``
    with ``B-1-i``), which mixes the middle sample of an odd batch with itself.

    Returns:
        ``(B,)`` int64 on the generator's device (CPU when there is no generator).
    """
    device = generator.device if generator is not None else "cpu"
    if scheme == "flip":
        return torch.arange(batch - 1, -1, -1, device=device)
    if scheme != "derangement":
        raise ConfigError(f"scheme: unknown partner scheme {scheme!r}; expected 'derangement' or 'flip'")
    if batch < 2:
        raise DataError(f"batch: mixup needs at least 2 samples to pair, got {batch}")
    order = torch.argsort(_uniform((batch,), generator))
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)  # one cycle through a random order: nobody maps to itself
    return partner


def mixup(
    x1: Tensor, x2: Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Mix two image batches: ``x' = λ x1 + (1 − λ) x2`` (§2.1, the ``α`` of Eq. 1).

    Args:
        x1, x2: ``(B, C, H, W)`` images of the same dataset (e.g. ``x2 = x1[partner_index(B)]``).
        alpha: concentration ``a`` of ``λ ~ Beta(a, a)``, one ``λ`` per sample (0.5 in the released code).
    Returns:
        ``(x', λ)`` with ``λ`` of shape ``(B, 1, 1, 1)`` on ``x1``'s device.
    """
    _check_image(x1, "x1")
    if x2.shape != x1.shape:
        raise DataError(f"x2: shape {tuple(x2.shape)} does not match x1 {tuple(x1.shape)}")
    lam = sample_beta(alpha, (x1.shape[0],), x1.device, generator).to(x1.dtype).view(-1, 1, 1, 1)
    return lam * x1 + (1 - lam) * x2, lam


# ----------------------------------------------------------------------------------------------
# Geometric warps
# ----------------------------------------------------------------------------------------------


def affine_theta(
    angle: Tensor,
    height: int,
    width: int,
    flip: Tensor | None = None,
    scale: Tensor | None = None,
    shift: Tensor | None = None,
) -> Tensor:
    """``affine_grid`` matrices for ``input = R(angle) · diag(flip) · scale · output + shift``.

    The rotation is done in pixel units (no shear on non-square images); ``angle`` is in degrees,
    positive turns the content counter-clockwise on screen (``angle=90`` equals ``torch.rot90(x, 1)``).
    ``scale < 1`` zooms in (a crop of ``scale·size`` resized to the full size).

    Args:
        angle: ``(B,)`` degrees.
        flip: ``(B, 2)`` bool, mirror the ``(x, y)`` axis.
        scale: ``(B,)``.
        shift: ``(B, 2)`` in normalised ``(x, y)`` input coordinates.
    Returns:
        ``(B, 2, 3)`` float32 on ``angle``'s device.
    """
    rad = angle.float() * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    aspect = height / width  # pixel-unit rotation written in normalised coordinates
    a = torch.stack([torch.stack([cos, -sin * aspect], -1), torch.stack([sin / aspect, cos], -1)], -2)
    if flip is not None:
        a = a * torch.where(flip, -1.0, 1.0).to(a)[:, None, :]  # scales the x / y column
    if scale is not None:
        a = a * scale.to(a)[:, None, None]
    t = torch.zeros(len(angle), 2, device=a.device) if shift is None else shift.to(a)
    return torch.cat([a, t[:, :, None]], dim=2)


def warp(image: Tensor, theta: Tensor, mode: str = "bilinear") -> Tensor:
    """Resample ``(B, C, H, W)`` images with ``(B, 2, 3)`` matrices; outside pixels become 0."""
    if mode not in ("bilinear", "nearest"):
        raise ConfigError(f"mode: expected 'bilinear' or 'nearest', got {mode!r}")
    grid = F.affine_grid(theta.to(image), list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=False)


def warp_labels(labels: Tensor, theta: Tensor) -> Tensor:
    """Resample ``(B, H, W)`` integer labels (nearest, values kept exactly); outside -> ``UNANNOTATED``."""
    shifted = (labels.float() + 1)[:, None]  # 0 now means "came from outside the image"
    out = warp(shifted, theta, mode="nearest")[:, 0].round().long() - 1
    return out.masked_fill(out < 0, UNANNOTATED).to(labels.dtype)


def _batch_angle(angle: float | Tensor, batch: int, device: torch.device) -> Tensor:
    """``(B,)`` float32 angles on ``device`` from a number or a 0-d / ``(B,)`` tensor, without a host sync."""
    if not isinstance(angle, Tensor):
        return torch.full((batch,), float(angle), device=device)
    angle = to_device(angle, device).float()
    if angle.ndim == 0:
        return angle.expand(batch)
    if angle.shape != (batch,):
        raise DataError(f"angle: expected a scalar or ({batch},), got {tuple(angle.shape)}")
    return angle


def rotate(x: Tensor, angle: float | Tensor, mode: str = "bilinear") -> Tensor:
    """Rotate ``(B, C, H, W)`` images about the centre by ``angle`` degrees (scalar or ``(B,)``), zero fill.

    ``rotate(rotate(p, a), -a)`` is how the released code maps the mixed model's output back; the
    corners lost on the way are all-zero vectors.
    """
    _check_image(x, "x")
    return warp(x, affine_theta(_batch_angle(angle, x.shape[0], x.device), *x.shape[2:]), mode)


def rotation_mask(
    shape: tuple[int, ...], angle: float | Tensor, device: torch.device | str | None = None
) -> Tensor:
    """``(B, 1, H, W)`` for images of ``shape`` ``(B, C, H, W)``: 1 where a pixel survives :func:`rotate` by
    ``angle`` and back (nearest), 0 in the corners lost on the way."""
    ones = torch.ones(shape[0], 1, *shape[2:], device=device)
    return rotate(rotate(ones, angle, "nearest"), -angle, "nearest")


def rotate_labels(labels: Tensor, angle: float | Tensor) -> Tensor:
    """Rotate ``(B, H, W)`` labels like :func:`rotate` (nearest); the corners become ``UNANNOTATED``."""
    if labels.ndim != 3:
        raise DataError(f"labels: expected (B, H, W), got {tuple(labels.shape)}")
    return warp_labels(labels, affine_theta(_batch_angle(angle, labels.shape[0], labels.device), *labels.shape[1:]))


def augment(
    image: Tensor,
    labels: Sequence[Tensor],
    generator: torch.Generator | None = None,
    max_rotation: float = 180.0,
    flip: bool = True,
    scale: tuple[float, float] = (0.7, 1.3),
    mode: str = "bilinear",
) -> tuple[Tensor, list[Tensor]]:
    """Random rotation, flips and crop/zoom as one affine per sample (§3.1 "rotations, flips, and crop").

    Per sample: angle ``~ U(-max_rotation, max_rotation)``; horizontal and vertical flip with
    probability 0.5 each (if ``flip``); zoom ``s ~ U(*scale)`` — ``s < 1`` crops a window of side
    ``s·size`` that lies inside the image, ``s > 1`` shrinks the whole image into a random place of
    the frame. Images are resampled with ``mode`` (bilinear by default); labels with nearest, so they
    keep their exact integer values. Pixels that come from outside the image are 0 in the image and
    ``UNANNOTATED`` in every label map: padding is not background, so no loss may call it that.

    Args:
        image: ``(B, C, H, W)`` float.
        labels: label maps ``(B, H, W)`` (e.g. scribbles and ground truth), warped identically.
    Returns:
        ``(image', [labels'])``.
    """
    _check_image(image)
    for i, lab in enumerate(labels):
        _check_labels(lab, image, f"labels[{i}]")
    if max_rotation < 0:
        raise ConfigError(f"max_rotation: must be >= 0 degrees, got {max_rotation}")
    if not 0 < scale[0] <= scale[1]:
        raise ConfigError(f"scale: expected 0 < low <= high, got {scale}")
    batch, _, height, width = image.shape
    u = _uniform_on((batch, 6), generator, image.device)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 3]
    shift = (2 * u[:, 4:6] - 1) * (1 - s).abs()[:, None]
    theta = affine_theta(
        angle=(2 * u[:, 0] - 1) * max_rotation,
        height=height,
        width=width,
        flip=(u[:, 1:3] < 0.5) & flip,
        scale=s,
        shift=shift,
    )
    return warp(image, theta, mode), [warp_labels(lab, theta) for lab in labels]


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

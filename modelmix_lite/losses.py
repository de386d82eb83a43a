"""The losses of the paper: Eq. 1 (invariance), Eq. 6 (vicinal-reg), Eq. 7 (vicinal-sup), Eq. 8 (supervised), Eq. 9 (total).

Shapes: logits and probabilities ``(B, C, H, W)``; targets int64 ``(B, H, W)`` with classes
``0 .. C-1`` and :data:`~modelmix_lite.data.tasks.UNANNOTATED` for unannotated pixels. The paper's
``f(x)`` is a probability map, so the cosine terms take probabilities and the supervised terms logits.

Every loss returns a scalar that stays in the autograd graph; a batch with no annotated pixel gives
0 (never NaN), with zero gradient.

Target values are validated (:func:`check_target_values`) unless a loss is called with ``check=False``.
That check reads the target back to the host, a sync on a GPU, so the training step passes
``check=False`` and validates each batch once on the CPU before moving it to the device
(``train._prepare``). Shapes and dtypes are always checked (that needs no sync). Nothing else in these
losses reads a device tensor back to the host.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.tasks import UNANNOTATED
from .errors import ConfigError, DataError

_REDUCTIONS = ("pixel", "spatial", "flat")


def check_target_values(target: Tensor, n_classes: int, ignore_index: int = UNANNOTATED, name: str = "target") -> None:
    """Raise :class:`DataError` unless every value of ``target`` is a class ``0 .. n_classes-1`` or ``ignore_index``.

    Reads ``target`` on the host: call it on CPU tensors (a device tensor costs a sync).
    """
    bad = ((target < 0) | (target >= n_classes)) & (target != ignore_index)
    if bad.any():
        raise DataError(
            f"{name}: values {target[bad].unique().tolist()} are neither a class 0..{n_classes - 1} "
            f"nor the unannotated value {ignore_index}"
        )


def _check_target(logits: Tensor, target: Tensor, ignore_index: int, name: str = "target", check: bool = True) -> None:
    """Raise :class:`DataError` unless ``target`` is int64 ``(B, H, W)`` matching ``logits`` (values: if ``check``)."""
    if logits.ndim != 4:
        raise DataError(f"logits: expected (B, C, H, W), got {tuple(logits.shape)}")
    if target.dtype != torch.long or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise DataError(
            f"{name}: expected int64 (B, H, W) = {(logits.shape[0], *logits.shape[2:])}, "
            f"got {target.dtype} {tuple(target.shape)}"
        )
    if check:
        check_target_values(target, logits.shape[1], ignore_index, name)


def _one_hot(target: Tensor, n_classes: int, ignore_index: int) -> Tensor:
    """``(B, H, W)`` labels -> ``(B, C, H, W)`` float one-hot; unannotated pixels are all-zero vectors."""
    annotated = target != ignore_index
    y = F.one_hot(target.masked_fill(~annotated, 0), n_classes).permute(0, 3, 1, 2).float()
    return y * annotated[:, None]


def partial_cross_entropy(
    logits: Tensor, target: Tensor, ignore_index: int = UNANNOTATED, check: bool = True
) -> Tensor:
    """Partial cross-entropy (pCE), the first term of Eq. 8: mean ``−log f(x)_y`` over annotated pixels.

    ``check=False`` skips the (syncing) target value check; the caller has validated the values.
    """
    _check_target(logits, target, ignore_index, check=check)
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp(min=1)


def dice_loss(
    logits: Tensor,
    target: Tensor,
    on: str = "annotated",
    average: str = "present",
    eps: float = 1e-6,
    ignore_index: int = UNANNOTATED,
    check: bool = True,
) -> Tensor:
    """Soft Dice loss ``1 − 2Σ p·y / (Σp + Σy)``, the second term of Eq. 8.

    Sums run over the whole batch (all samples and pixels together).

    Args:
        logits: ``(B, C, H, W)``; ``p = softmax(logits)``.
        target: ``(B, H, W)`` with ``UNANNOTATED`` pixels.
        on: ``"annotated"`` — sums over annotated pixels only (Eq. 8, "calculated for annotated
            pixels"); unannotated pixels get no gradient. ``"all"`` — ``Σp`` also runs over the
            unannotated pixels (the released code, reference notes §3; their ``y`` is 0).
        average: ``"present"`` — one Dice per class, averaged over the classes that occur in the
            annotated target (a class with no scribble in the batch has no Dice and is skipped).
            ``"pooled"`` — one ratio with the sums taken over classes too (the released ``multiDice``).
        check: validate the target values (a host sync); ``False`` when the caller has.
    Returns:
        scalar; 0 when no pixel is annotated. Computed as a masked mean over the present classes, so
        nothing is read back to the host.
    """
    _check_target(logits, target, ignore_index, check=check)
    if on not in ("annotated", "all"):
        raise ConfigError(f"on: expected 'annotated' or 'all', got {on!r}")
    if average not in ("present", "pooled"):
        raise ConfigError(f"average: expected 'present' or 'pooled', got {average!r}")
    annotated = target != ignore_index
    p = logits.softmax(dim=1)
    if on == "annotated":
        p = p * annotated[:, None]
    y = _one_hot(target, logits.shape[1], ignore_index)
    dims = (0, 2, 3) if average == "present" else (0, 1, 2, 3)
    inter, sum_p, sum_y = (p * y).sum(dims), p.sum(dims), y.sum(dims)
    dice = 2 * inter / (sum_p + sum_y + eps)
    present = (sum_y > 0).to(dice.dtype)  # all 0 when nothing is annotated: the loss is then 0
    return ((1 - dice) * present).sum() / present.sum().clamp_min(1)


def supervised_loss(
    logits: Tensor,
    target: Tensor,
    dice_on: str = "annotated",
    dice_average: str = "present",
    ignore_index: int = UNANNOTATED,
    check: bool = True,
) -> Tensor:
    """Eq. 8: ``L_sup(y, f(x)) = pCE + Dice`` on the scribbled pixels (see :func:`dice_loss` for the options)."""
    _check_target(logits, target, ignore_index, check=check)  # once, not in both terms
    return partial_cross_entropy(logits, target, ignore_index, check=False) + dice_loss(
        logits, target, on=dice_on, average=dice_average, ignore_index=ignore_index, check=False
    )


def cosine_loss(
    p: Tensor, q: Tensor, reduce: str = "pixel", mask: Tensor | None = None, eps: float = 1e-8
) -> Tensor:
    """Negative cosine similarity ``−p·q / (‖p‖ ‖q‖)`` between two ``(B, C, H, W)`` maps (Eqs. 1 and 6).

    Args:
        reduce: which vectors are compared —
            ``"pixel"``: the ``C``-vector at each pixel, averaged over pixels (per-pixel prediction
            consistency, the paper's intent; default);
            ``"spatial"``: each ``(sample, class)`` map over ``H·W``, averaged (released ACDC/MSCMR code);
            ``"flat"``: the whole ``C·H·W`` map of each sample, averaged (released MyoPS mixup term).
        mask: optional ``(B, 1, H, W)``, 1 where the pixel counts (e.g. not a rotation corner).
        eps: lower bound on each norm, so all-zero vectors give cosine 0 and finite gradients.
    Returns:
        scalar in ``[-1, 1]``; 0 when the mask is empty.
    """
    if p.ndim != 4 or p.shape != q.shape:
        raise DataError(f"q: shape {tuple(q.shape)} does not match p {tuple(p.shape)}; expected (B, C, H, W)")
    if reduce not in _REDUCTIONS:
        raise ConfigError(f"reduce: expected one of {_REDUCTIONS}, got {reduce!r}")
    if mask is not None:
        if mask.shape != (p.shape[0], 1, *p.shape[2:]):
            raise DataError(f"mask: expected (B, 1, H, W) = {(p.shape[0], 1, *p.shape[2:])}, got {tuple(mask.shape)}")
        mask = mask.to(p.dtype)
        p, q = p * mask, q * mask
    if reduce == "pixel":
        dim = 1
    else:
        p, q = p.flatten(2 if reduce == "spatial" else 1), q.flatten(2 if reduce == "spatial" else 1)
        dim = -1
    # max(‖v‖, eps) as sqrt(max(Σv², eps²)): the same value, but a plain sum over C is ~10x faster on CPU than
    # linalg.vector_norm over a non-last dimension, and clamping before the sqrt keeps zero vectors' gradient finite.
    norms = (p * p).sum(dim).clamp(min=eps * eps).sqrt() * (q * q).sum(dim).clamp(min=eps * eps).sqrt()
    cos = (p * q).sum(dim) / norms
    if reduce == "pixel" and mask is not None:
        return -(cos * mask[:, 0]).sum() / mask.sum().clamp(min=1)
    return -cos.mean()


def invariance_loss(p_mix: Tensor, p1: Tensor, p2: Tensor, alpha: float | Tensor, reduce: str = "pixel") -> Tensor:
    """Eq. 1: ``L_inv = −cos(f(x'), α f(1_c1 ⊙ x1) + (1 − α) f(1_c2 ⊙ x2))``.

    Args:
        p_mix: ``(B, C, H, W)`` probabilities on the mixed image ``x'``.
        p1, p2: probabilities on the two cut-out images.
        alpha: the mix ratio, a float or ``(B, 1, 1, 1)`` (as returned by :func:`~modelmix_lite.perturb.mixup`).
    Nothing is detached: both sides receive gradient, as in the released code.
    """
    return cosine_loss(p_mix, alpha * p1 + (1 - alpha) * p2, reduce=reduce)


def vicinal_reg_loss(p_virtual: Tensor, p_host: Tensor, reduce: str = "pixel", mask: Tensor | None = None) -> Tensor:
    """Eq. 6, one ``(i, j)`` term: ``L_cos(f̃_ij(x), f_i(x))`` between virtual and host probabilities.

    ``mask`` ``(B, 1, H, W)`` excludes pixels with no virtual prediction (the corners of a rotated-back map).
    The host map is not detached (as in the released code).
    """
    return cosine_loss(p_virtual, p_host, reduce=reduce, mask=mask)


def degenerate_reg_loss(p_virtual: Tensor, p_host: Tensor, mask: Tensor | None = None) -> Tensor:
    """The released code's MyoPS L_vicinal-reg (notes §3, disagreement 5), kept to reproduce it, not Eq. 6.

    The code reshapes both ``(B, C, H, W)`` maps to ``(B, 1, C·H·W)`` and takes the cosine over the size-1
    dimension, i.e. ``a·b / (|a| |b|)`` of single numbers: 1 wherever both probabilities are positive (always,
    after a softmax), 0 where one is 0 (the corners of a rotated-back map, which ``mask`` ``(B, 1, H, W)``
    marks as valid or not). The loss is minus its mean over every element, about −1 with ≈ 0 gradient: the
    term does not regularise anything.
    """
    a, b = p_virtual, p_host
    if mask is not None:
        a, b = a * mask, b * mask
    shape = (a.shape[0], 1, -1)
    return -F.cosine_similarity(a.reshape(shape), b.reshape(shape), dim=1).mean()


def vicinal_sup_loss(
    logits_virtual: Tensor,
    logits_host: Tensor,
    target: Tensor,
    dice_on: str = "annotated",
    target_virtual: Tensor | None = None,
    dice_average: str = "present",
    check: bool = True,
) -> Tensor:
    """Eq. 7, one ``(i, j)`` term: ``L_sup(y, f̃_ij(x)) + L_sup(y, f_i(x))``.

    ``target_virtual`` is the virtual model's target when it saw a different view of ``x`` (the
    released code rotates it); it defaults to ``target``. ``check``: as in :func:`supervised_loss`.
    """
    target_virtual = target if target_virtual is None else target_virtual
    return supervised_loss(logits_virtual, target_virtual, dice_on, dice_average, check=check) + supervised_loss(
        logits_host, target, dice_on, dice_average, check=check
    )


def total_loss(terms: dict[str, Tensor], weights: dict[str, float] | None = None) -> Tensor:
    """Eq. 9: ``L = L_inv + L_vicinal-reg + L_vicinal-sup`` — the weighted sum of the scalar ``terms``.

    Weights default to 1; ``weights`` may name only terms that are present.
    """
    if not terms:
        raise ConfigError("terms: no loss terms to sum")
    weights = weights or {}
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ConfigError(f"weights: {unknown} are not loss terms; terms are {sorted(terms)}")
    for name, value in terms.items():
        if value.ndim != 0:
            raise DataError(f"terms[{name!r}]: expected a scalar, got shape {tuple(value.shape)}")
    return sum(weights.get(name, 1.0) * value for name, value in terms.items())


def mixup_cross_entropy(
    logits_mix: Tensor,
    target1: Tensor,
    target2: Tensor,
    alpha: float | Tensor,
    ignore_index: int = UNANNOTATED,
    check: bool = True,
) -> Tensor:
    """Soft-label cross-entropy of a mixup batch against ``ỹ = α y1 + (1 − α) y2`` (released code; Mixup baseline).

    ``y1``, ``y2`` are one-hot with all-zero vectors at unannotated pixels, so a pixel counts with
    the weight of the images in which it is annotated: fully if in both, ``α`` or ``1 − α`` if in one,
    not at all if in none. The sum is divided by the total label mass ``Σ ỹ`` (0 when it is 0).

    Args:
        logits_mix: ``(B, C, H, W)`` on the mixed image ``α x1 + (1 − α) x2``.
        target1, target2: ``(B, H, W)``.
        alpha: float or ``(B, 1, 1, 1)``.
        check: validate the target values (a host sync); ``False`` when the caller has.
    """
    _check_target(logits_mix, target1, ignore_index, "target1", check)
    _check_target(logits_mix, target2, ignore_index, "target2", check)
    n_classes = logits_mix.shape[1]
    y = alpha * _one_hot(target1, n_classes, ignore_index) + (1 - alpha) * _one_hot(target2, n_classes, ignore_index)
    return -(y * logits_mix.log_softmax(dim=1)).sum() / y.sum().clamp(min=1e-12)

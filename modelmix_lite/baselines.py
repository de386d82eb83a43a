"""The comparison methods of paper §3.3 (Tables 2-3) as the loss terms of one task's batch.

Every baseline trains one :class:`~modelmix_lite.models.UNet` per task, with partial cross-entropy (pCE) on
the scribbles as its supervised base, plus its own terms (weights 1 unless stated; bracketed numbers are
the paper's references):

* ``mixup``: Zhang et al., ICLR 2018 [21]: soft-label CE on intra-batch mixed slices and scribbles;
* ``cutout``: DeVries & Taylor 2017 [5]: pCE on cut-out slices only (cut pixels unannotated);
* ``wsl4``: Luo et al., MICCAI 2022 (DMPLS) [15]: pCE of both branches of a dual-branch UNet +
  0.5 · Dice against the dynamically mixed pseudo label;
* ``cyclemix``: Zhang & Zhuang, CVPR 2022 [22], simplified: pCE on box-mixed slices + 0.1 · unmix consistency;
* ``nnpu``: Kiryo et al., NeurIPS 2017 [12]: one-vs-rest non-negative PU risk;
* ``cvir``: Garg et al., NeurIPS 2021 [7]: PU loss on the unlabeled pixels CVIR keeps;
* ``shapepu``: Zhang & Zhuang, MICCAI 2022 [23]: pCE on the slice and on its rotated / flipped, cut-out view,
  PU marginal loss with an EM-estimated class ratio, and 0.05 · shape consistency outside the hole.

Shapes: logits ``(B, C, H, W)``; targets int64 ``(B, H, W)`` with ``UNANNOTATED`` (255) for unannotated
pixels. A batch holds scribbled and (for the methods with a term on unannotated pixels) unlabeled slices;
an unlabeled slice has no annotated pixel, so pCE over the whole batch is pCE over its scribbled rows.

The ``*_terms`` functions run inside the training step: like the ModelMix objective they read nothing back
to the host, so they do not check target values (``check=False``; :func:`~modelmix_lite.sampling.prepare_batch`
validates each batch on the CPU). The standalone losses check their inputs unless called with ``check=False``.

nnPU and CVIR are "provided with the additional information of label class ratio" (paper §3.3):
:func:`~modelmix_lite.data.class_ratio.class_prior` computes it from the ground truth of ``TrainConfig.prior_split`` (the validation split on real
MSCMRseg, whose training split has scribbles only). ShapePU gets no ratio: it estimates it by EM in every batch
(:func:`em_class_prior`), as its original does, and so trains on data with scribbles only. Each PU term treats a class
``c`` one-vs-rest: its positives P are the scribble pixels of ``c``, the unlabeled set U every unannotated
pixel, and a class with no scribble pixel in the batch is skipped (no positive risk can be estimated).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .data.tasks import UNANNOTATED
from .errors import ConfigError, DataError
from .losses import _check_target, _one_hot, cosine_loss, dice_loss, mixup_cross_entropy, partial_cross_entropy
from .methods import BASELINES, PRIOR_BASELINES, CoreConfig
from .models import UNet
from .perturb import apply_cutout, cutout_mask, mixup, partner_index

DMPLS_WEIGHT: float = 0.5
"""λ of the DMPLS pseudo-label loss: fixed, as the released WSL4MIS script uses it (no ramp)."""

CYCLEMIX_BOX: float = 0.5
"""Side of the square a CycleMix slice takes from its partner, as a fraction of the slice side."""

CYCLEMIX_CONSISTENCY_WEIGHT: float = 0.1
"""Weight of CycleMix's consistency term, as the original weighs its consistency losses."""

SHAPEPU_CONSISTENCY_WEIGHT: float = 0.05
"""Weight of ShapePU's global shape consistency, as in the original."""

EM_ITERATIONS: int = 10
"""EM steps of :func:`em_class_prior` per batch (a fixed count: no host read decides when to stop)."""

# ----------------------------------------------------------------------------------------------
# The class ratio given to the PU methods (computed by data.class_ratio.class_prior)
# ----------------------------------------------------------------------------------------------


def _check_prior(prior: Tensor, n_classes: int, check: bool) -> None:
    """Shape always; values in [0, 1] if ``check`` (a host read)."""
    if prior.shape != (n_classes,):
        raise DataError(f"prior: expected {n_classes} class ratios, got shape {tuple(prior.shape)}")
    if check and not bool(((prior >= 0) & (prior <= 1)).all()):
        raise DataError(f"prior: class ratios must be in [0, 1], got {prior.tolist()}")


# ----------------------------------------------------------------------------------------------
# Mixup and Cutout
# ----------------------------------------------------------------------------------------------


def mixup_terms(model: UNet, x: Tensor, y: Tensor, generator: torch.Generator, core: CoreConfig) -> dict[str, Tensor]:
    """Mixup [21] for segmentation: ``sup`` pCE on the slices, ``mix`` soft-label CE on ``λ x1 + (1 − λ) x2``.

    ``λ ~ Beta(core.mixup_alpha)`` per slice, the partner from ``core.mixup_partner``; the target of the
    mixed slice is ``λ y1 + (1 − λ) y2`` on the annotated pixels
    (:func:`~modelmix_lite.losses.mixup_cross_entropy`).
    Simplified: mixup's paper trains on mixed pairs only; here the clean pCE is kept as every method's base.
    """
    partner = partner_index(x.shape[0], generator, core.mixup_partner).to(x.device, non_blocking=True)
    x_mix, lam = mixup(x, x[partner], core.mixup_alpha, generator)
    return {
        "sup": partial_cross_entropy(model(x), y, check=False),
        "mix": mixup_cross_entropy(model(x_mix), y, y[partner], lam, check=False),
    }


def _cut(x: Tensor, y: Tensor, generator: torch.Generator, core: CoreConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Cutout (``core.cutout_size``, ``core.cutout_p``); cut pixels become ``UNANNOTATED`` in ``y``.

    Returns ``(x_cut, y_cut, keep)``, ``keep`` the ``(B, 1, H, W)`` mask (0 in the hole)."""
    size = max(1, round(core.cutout_size * x.shape[-1]))
    keep = cutout_mask(x.shape[0], *x.shape[2:], size, core.cutout_p, generator, x.device)
    return (*apply_cutout(x, keep, y, UNANNOTATED), keep)


def cutout_terms(model: UNet, x: Tensor, y: Tensor, generator: torch.Generator, core: CoreConfig) -> dict[str, Tensor]:
    """Cutout [5]: ``sup`` pCE on ``1_c ⊙ x``. The classifier of [5] keeps its label; a pixel under the
    square is not seen, so it is unannotated here (the ``core.cutout_label_fill`` of ModelMix is not used)."""
    x_cut, y_cut, _ = _cut(x, y, generator, core)
    return {"sup": partial_cross_entropy(model(x_cut), y_cut, check=False)}


# ----------------------------------------------------------------------------------------------
# WSL4 = DMPLS (dual-branch network, dynamically mixed pseudo labels)
# ----------------------------------------------------------------------------------------------


def dmpls_pseudo_label(p_main: Tensor, p_aux: Tensor, beta: float | Tensor) -> Tensor:
    """DMPLS [15] pseudo label: ``PL = argmax_c (β p_main + (1 − β) p_aux)``, ``(B, H, W)`` int64, no gradient.

    ``p_main``, ``p_aux``: ``(B, C, H, W)`` probabilities of the two branches; ``β ~ U(0, 1)`` per iteration
    (a float or a 0-d tensor).
    """
    return (beta * p_main.detach() + (1 - beta) * p_aux.detach()).argmax(1)


def dmpls_pseudo_label_loss(logits_main: Tensor, logits_aux: Tensor, pseudo: Tensor, check: bool = True) -> Tensor:
    """DMPLS [15] pseudo-label supervision: ``0.5 · (Dice(p_main, PL) + Dice(p_aux, PL))`` on every pixel.

    Simplified: the soft Dice of :func:`~modelmix_lite.losses.dice_loss` (classes present in PL, linear
    sums ``Σp + Σy``) stands in for WSL4MIS's Dice over all classes with squared sums ``Σp² + Σy²``; both are 0
    at a perfect match and differ only in how hard they push uncertain pixels. The original also trains with SGD
    (lr 0.01, momentum 0.9, weight decay 1e-4) and a poly learning-rate decay; here every baseline trains with
    the profile's optimiser and schedule, so that the comparison changes only the loss.
    """
    return 0.5 * (dice_loss(logits_main, pseudo, check=check) + dice_loss(logits_aux, pseudo, check=check))


def wsl4_terms(model: UNet, x: Tensor, y: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
    """WSL4 (DMPLS [15]) with a dual-branch ``model`` (``aux_decoder=True``: shared encoder, main decoder,
    auxiliary decoder on dropped-out features).

    ``sup`` = ``0.5 · (pCE(main) + pCE(aux))`` on the scribbles; ``pl`` = :data:`DMPLS_WEIGHT` ·
    :func:`dmpls_pseudo_label_loss` on every slice of the batch (unlabeled ones too: the pseudo label
    needs no annotation). Evaluation uses the main branch (``model(x)``).
    """
    features = model.encode(x)
    logits, logits_aux = model.decode(features), model.decode_aux(features)
    beta = torch.rand((), generator=generator).to(x.device, non_blocking=True)
    pseudo = dmpls_pseudo_label(logits.softmax(1), logits_aux.softmax(1), beta)
    return {
        "sup": 0.5 * sum(partial_cross_entropy(out, y, check=False) for out in (logits, logits_aux)),
        "pl": DMPLS_WEIGHT * dmpls_pseudo_label_loss(logits, logits_aux, pseudo, check=False),
    }


# ----------------------------------------------------------------------------------------------
# CycleMix (simplified)
# ----------------------------------------------------------------------------------------------


def box_mix(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """``M ⊙ a + (1 − M) ⊙ b`` for ``(B, C, H, W)`` maps and a binary ``(B, 1, H, W)`` mask ``M``."""
    return mask * a + (1 - mask) * b


def cyclemix_consistency(p_mix: Tensor, p1: Tensor, p2: Tensor, mask: Tensor, reduce: str = "pixel") -> Tensor:
    """CycleMix [22] consistency, simplified: unmix ``f(x')`` and compare each part with its source's prediction.

    With a binary mask the mix is undone exactly: the pixels of ``p_mix`` where ``M = 1`` show ``x1``, the
    others ``x2``, so the unmixed predictions must equal ``p1`` and ``p2`` there:
    ``−cos(f(x'), M ⊙ f(x1) + (1 − M) ⊙ f(x2))`` (:func:`~modelmix_lite.losses.cosine_loss`, ``reduce``).
    Left out of CycleMix: its Puzzle Mix is saliency-guided, here the box is random; its integrity loss on the
    largest connected component of the prediction needs a connected-component labelling inside every step (a
    round trip to the host here), and its random occlusion and second mixing pass are not reproduced either.
    """
    return cosine_loss(p_mix, box_mix(p1, p2, mask), reduce=reduce)


def cyclemix_terms(
    model: UNet, x: Tensor, y: Tensor, generator: torch.Generator, core: CoreConfig
) -> dict[str, Tensor]:
    """CycleMix [22], simplified: ``sup`` pCE; ``mix`` pCE of the box-mixed slice against the mixed scribbles;
    ``cycle`` :data:`CYCLEMIX_CONSISTENCY_WEIGHT` · :func:`cyclemix_consistency` (all slices, unlabeled ones too).

    Each slice takes a square of side :data:`CYCLEMIX_BOX` · S at a random place from an intra-batch
    partner (``core.mixup_partner``); its scribbles are mixed with the same mask.
    """
    partner = partner_index(x.shape[0], generator, core.mixup_partner).to(x.device, non_blocking=True)
    side = max(1, round(CYCLEMIX_BOX * x.shape[-1]))
    mask = cutout_mask(x.shape[0], *x.shape[2:], side, 1.0, generator, x.device)  # 0 on the partner's square
    logits, logits_mix = model(x), model(box_mix(x, x[partner], mask))
    y_mix = torch.where(mask[:, 0] > 0, y, y[partner])
    p = logits.softmax(1)
    return {
        "sup": partial_cross_entropy(logits, y, check=False),
        "mix": partial_cross_entropy(logits_mix, y_mix, check=False),
        "cycle": CYCLEMIX_CONSISTENCY_WEIGHT * cyclemix_consistency(logits_mix.softmax(1), p, p[partner], mask,
                                                                   core.cos_reduce),
    }


# ----------------------------------------------------------------------------------------------
# PU learning: nnPU, CVIR, ShapePU
# ----------------------------------------------------------------------------------------------


def _log_complement(logits: Tensor) -> Tensor:
    """``(B, C, H, W)``: ``log(1 − p_c) = log Σ_{j≠c} p_j``, exact (no ``1 − p`` cancellation)."""
    others = [torch.cat([logits[:, :c], logits[:, c + 1 :]], 1).logsumexp(1) for c in range(logits.shape[1])]
    return torch.stack(others, 1) - logits.logsumexp(1, keepdim=True)


def _pu_sets(logits: Tensor, target: Tensor, prior: Tensor, check: bool) -> tuple[Tensor, Tensor]:
    """Validate; return the positives ``(B, C, H, W)`` (one-hot scribbles) and U ``(B, H, W)`` (unannotated)."""
    _check_target(logits, target, UNANNOTATED, check=check)
    _check_prior(prior, logits.shape[1], check)
    return _one_hot(target, logits.shape[1], UNANNOTATED), target == UNANNOTATED


def _mean_over_present(per_class: Tensor, positives: Tensor) -> Tensor:
    """Mean of ``(C,)`` over the classes with a scribble pixel in the batch (0 if none)."""
    present = positives.sum((0, 2, 3)) > 0
    return (per_class * present).sum() / present.sum().clamp(min=1)


def nnpu_risk(
    logits: Tensor, target: Tensor, prior: Tensor, beta: float = 0.0, gamma: float = 1.0, check: bool = True
) -> Tensor:
    """Non-negative PU risk (Kiryo et al. 2017 [12], with its training Algorithm 1), one-vs-rest, log loss.

    For class ``c`` with prior ``π = prior[c]``, ``ℓ+ = −log p_c`` and ``ℓ− = −log(1 − p_c)``:
    ``R+ = π · E_P[ℓ+]`` and the negative risk ``R− = E_U[ℓ−] − π · E_P[ℓ−]``. If ``R− ≥ −β`` the loss
    is ``R+ + R−``; otherwise (the model overfits: the unbiased estimate went negative) it is ``−γ · R−``, whose
    gradient steps back up ("defitting"). Averaged over the classes with scribble pixels in the batch.

    Args:
        logits: ``(B, C, H, W)``. target: ``(B, H, W)``. prior: ``(C,)`` class ratios.
        beta, gamma: Alg. 1's threshold and defitting rate (the paper's experiments: 0 and 1).
        check: validate target and prior values (a host read).
    """
    positives, unlabeled = _pu_sets(logits, target, prior, check)
    unlabeled = unlabeled[:, None].to(logits.dtype)
    prior = prior.to(logits)
    loss_pos, loss_neg = -logits.log_softmax(1), -_log_complement(logits)  # ℓ+, ℓ− per pixel and class
    dims, n_pos = (0, 2, 3), positives.sum((0, 2, 3)).clamp(min=1)
    pos_as_pos = (positives * loss_pos).sum(dims) / n_pos  # E_P[ℓ+]
    pos_as_neg = (positives * loss_neg).sum(dims) / n_pos  # E_P[ℓ−]
    unl_as_neg = (unlabeled * loss_neg).sum(dims) / unlabeled.sum().clamp(min=1)  # E_U[ℓ−]
    risk_neg = unl_as_neg - prior * pos_as_neg
    per_class = torch.where(risk_neg >= -beta, prior * pos_as_pos + risk_neg, -gamma * risk_neg)
    return _mean_over_present(per_class, positives)


def pu_negatives(probs: Tensor, unlabeled: Tensor, prior: Tensor) -> Tensor:
    """``(B, C, H, W)`` bool: the unlabeled pixels taken as negatives of each class.

    Per class ``c``, the ``round(π_c · |U|)`` pixels of U with the highest ``p_c`` (equivalently the highest
    negative loss ``−log(1 − p_c)``) are presumed positives and left out; the rest of U are negatives. This
    is CVIR's selection [7] and ShapePU's [23] thresholding of the unlabeled pixels. No gradient.

    Args:
        probs: ``(B, C, H, W)``. unlabeled: ``(B, H, W)`` bool. prior: ``(C,)``.
    """
    n_classes = probs.shape[1]
    scores = probs.detach().masked_fill(~unlabeled[:, None], -1.0).transpose(0, 1).reshape(n_classes, -1)
    order = scores.sort(dim=1, descending=True, stable=True).indices  # U first (p >= 0 > -1), highest p first
    ranks = torch.arange(order.shape[1], device=order.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, ranks)
    n_drop = (prior.to(probs.device) * unlabeled.sum()).round().long()
    keep = (rank >= n_drop[:, None]).reshape(n_classes, probs.shape[0], *probs.shape[2:]).transpose(0, 1)
    return keep & unlabeled[:, None]


def cvir_loss(logits: Tensor, target: Tensor, prior: Tensor, check: bool = True) -> Tensor:
    """CVIR (Garg et al. 2021 [7]), one-vs-rest per class: ``E_P[−log p_c] + E_N[−log(1 − p_c)]``.

    N = :func:`pu_negatives`: U without the ``π_c`` fraction that has the highest loss as negatives
    ("conditional value ignoring risk"). Averaged over the classes with scribble pixels in the batch.
    Simplified: the prior is given (no BBE mixture-proportion estimation). ``check``: as :func:`nnpu_risk`.
    """
    positives, unlabeled = _pu_sets(logits, target, prior, check)
    negatives = pu_negatives(logits.softmax(1), unlabeled, prior).to(logits.dtype)
    loss_pos, loss_neg = -logits.log_softmax(1), -_log_complement(logits)
    dims = (0, 2, 3)
    pos = (positives * loss_pos).sum(dims) / positives.sum(dims).clamp(min=1)
    neg = (negatives * loss_neg).sum(dims) / negatives.sum(dims).clamp(min=1)
    return _mean_over_present(pos + neg, positives)


def em_class_prior(probs: Tensor, target: Tensor, iterations: int = EM_ITERATIONS, floor: float = 1e-3) -> Tensor:
    """``(C,)``: the class ratio of the unannotated pixels, estimated by EM (Saerens et al. 2002), as ShapePU [23].

    The network's posteriors ``p(c | x)`` were learnt under the class ratio of the scribbles, ``π_s`` (the share
    of each class among the batch's annotated pixels, floored at ``floor`` and renormalised). EM re-weights
    them towards the ratio ``π`` of the unannotated pixels U and re-estimates it:
    E-step ``q_c(x) ∝ (π_c / π_s,c) · p(c | x)``; M-step ``π_c = mean_{x ∈ U} q_c(x)``; from ``π = π_s``, a fixed
    number of ``iterations``. No gradient.

    Args:
        probs: ``(B, C, H, W)`` softmax probabilities. target: ``(B, H, W)`` with ``UNANNOTATED``.
    """
    probs = probs.detach()
    annotated = _one_hot(target, probs.shape[1], UNANNOTATED).sum((0, 2, 3))
    source = (annotated / annotated.sum().clamp(min=1)).clamp(min=floor)
    source = source / source.sum()
    unlabeled = (target == UNANNOTATED)[:, None].to(probs.dtype)
    n_unlabeled = unlabeled.sum().clamp(min=1)
    prior = source
    for _ in range(iterations):
        weighted = probs * (prior / source)[None, :, None, None]
        posterior = weighted / weighted.sum(1, keepdim=True).clamp(min=1e-12)
        prior = (posterior * unlabeled).sum((0, 2, 3)) / n_unlabeled
    return prior


def shapepu_marginal_loss(logits: Tensor, target: Tensor, prior: Tensor, check: bool = True) -> Tensor:
    """ShapePU [23] marginal probability maximisation on the unlabeled pixels.

    An unlabeled pixel that :func:`pu_negatives` calls negative for the foreground classes ``N ≠ ∅``
    should belong to one of the others: loss ``−log Σ_{c ∉ N} p_c``, averaged over those pixels.
    Background is never excluded (as in the released code). ``prior``: the class ratio of U, which ShapePU
    estimates by EM (:func:`em_class_prior`). ``check``: as :func:`nnpu_risk`.
    """
    _, unlabeled = _pu_sets(logits, target, prior, check)
    foreground = torch.arange(logits.shape[1], device=logits.device)[None, :, None, None] > 0
    negatives = pu_negatives(logits.softmax(1), unlabeled, prior) & foreground
    log_marginal = logits.masked_fill(negatives, float("-inf")).logsumexp(1) - logits.logsumexp(1)
    judged = negatives.any(1)
    return -(log_marginal * judged).sum() / judged.sum().clamp(min=1)


def shape_consistency(p_view: Tensor, p: Tensor, keep: Tensor, reduce: str = "pixel") -> Tensor:
    """ShapePU [23] global consistency: ``−cos(f(T(1_c ⊙ x)), T(f(x)))`` outside the cut-out hole.

    ``p_view`` is the prediction on the transformed, cut-out slice and ``p`` the transformed prediction on the
    whole slice; ``keep`` ``(B, 1, H, W)`` is 1 outside the hole (which the original masks out).
    """
    return cosine_loss(p_view, p, reduce=reduce, mask=keep)


def _rotate_flip(z: Tensor, quarter_turns: int, flip: bool) -> Tensor:
    """Rotate the last two axes of ``z`` by ``quarter_turns`` · 90° and optionally flip them left-right (exact)."""
    z = torch.rot90(z, quarter_turns, dims=(-2, -1))
    return z.flip(-1) if flip else z


def shapepu_terms(model: UNet, x: Tensor, y: Tensor, generator: torch.Generator, core: CoreConfig) -> dict[str, Tensor]:
    """ShapePU [23]: ``sup`` pCE on the slice plus pCE on its view ``T(1_c ⊙ x)`` (a random rotation by a multiple
    of 90° and flip ``T`` of the cut-out slice, scribbles moved with it, cut pixels unannotated); ``pu``
    :func:`shapepu_marginal_loss` with the EM ratio of :func:`em_class_prior`; ``shape``
    :data:`SHAPEPU_CONSISTENCY_WEIGHT` · :func:`shape_consistency` between the view's prediction and the
    transformed prediction on the whole slice, outside the hole. Cutout: ``core.cutout_size``, ``core.cutout_p``.
    """
    quarter_turns = int(torch.randint(4, (1,), generator=generator))  # a CPU generator: no device sync
    flip = int(torch.randint(2, (1,), generator=generator)) == 1
    x_cut, y_cut, keep = _cut(x, y, generator, core)
    logits = model(x)
    logits_view = model(_rotate_flip(x_cut, quarter_turns, flip))
    y_view, keep_view = _rotate_flip(y_cut, quarter_turns, flip), _rotate_flip(keep, quarter_turns, flip)
    probs = logits.softmax(1)
    prior = em_class_prior(probs, y)
    return {
        "sup": partial_cross_entropy(logits, y, check=False) + partial_cross_entropy(logits_view, y_view, check=False),
        "pu": shapepu_marginal_loss(logits, y, prior, check=False),
        "shape": SHAPEPU_CONSISTENCY_WEIGHT * shape_consistency(
            logits_view.softmax(1), _rotate_flip(probs, quarter_turns, flip), keep_view, core.cos_reduce),
    }


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------


def baseline_terms(
    name: str,
    model: UNet,
    x: Tensor,
    y: Tensor,
    generator: torch.Generator,
    core: CoreConfig,
    prior: Tensor | None = None,
) -> dict[str, Tensor]:
    """The loss terms of baseline ``name`` (a :data:`~modelmix_lite.methods.BASELINES` entry) for one batch.

    Args:
        model: the task's UNet (with ``aux_decoder`` for ``wsl4``).
        x: ``(B, 3, S, S)``; y: ``(B, S, S)`` scribbles (all ``UNANNOTATED`` on unlabeled slices).
        generator: every random draw (partners, ratios, masks, β).
        core: mixup / cutout / cosine options shared with ModelMix.
        prior: ``(C,)`` class ratios, required by ``nnpu`` and ``cvir`` (ShapePU estimates its own).
    Returns:
        term name -> scalar; the objective sums them.
    """
    if name not in BASELINES:
        raise ConfigError(f"baseline: unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}")
    if name == "shapepu":
        return shapepu_terms(model, x, y, generator, core)
    if name in PRIOR_BASELINES:
        if prior is None:
            raise ConfigError(f"--method {name}: needs the class ratio of the task (class_prior, prior_split)")
        pu = nnpu_risk if name == "nnpu" else cvir_loss
        logits = model(x)
        return {"sup": partial_cross_entropy(logits, y, check=False), "pu": pu(logits, y, prior, check=False)}
    if name == "mixup":
        return mixup_terms(model, x, y, generator, core)
    if name == "cutout":
        return cutout_terms(model, x, y, generator, core)
    if name == "wsl4":
        return wsl4_terms(model, x, y, generator)
    return cyclemix_terms(model, x, y, generator, core)

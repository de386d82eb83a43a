"""Probes: what the tutorials measure inside a model or a loss, for the figures to draw.

Gradients on pixels and parameter groups, cosine readings of Eq. 6, Monte-Carlo dropout samples and the feature
maps of a virtual encoder (Eq. 5). They compute (autograd, forward hooks); :mod:`modelmix_lite.viz` draws what
they return.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.tasks import UNANNOTATED
from .errors import ConfigError, DataError
from .losses import cosine_loss
from .mixing import MixableLayer, virtual_forward
from .models import TaskModelSet, UNet


def pixel_cosine(p: Tensor, q: Tensor) -> Tensor:
    """Cosine of the class vectors of two ``(B, C, H, W)`` maps at each pixel, ``(B, H, W)``.

    Its mean is ``−cosine_loss(p, q, reduce="pixel")`` (:func:`~modelmix_lite.losses.cosine_loss`).
    """
    if p.ndim != 4 or p.shape != q.shape:
        raise DataError(f"q: shape {tuple(q.shape)} does not match p {tuple(p.shape)}; expected (B, C, H, W)")
    return F.cosine_similarity(p, q, dim=1, eps=1e-8)


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


MODEL_PARTS: tuple[str, ...] = ("encoder", "decoder", "head")
"""Parameter groups of a task model in :func:`gradient_norms_by_group`: ``e_i``, and ``h_i`` split into the
U-Net decoder and the 1×1 head (the released code trains only the head through the virtual model)."""


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


FEATURE_POINTS: tuple[str, ...] = ("layer", "block")
"""Where :func:`mixed_feature_maps` reads the encoders: the mixed layer's output and the end of its block."""


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

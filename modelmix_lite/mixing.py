"""ModelMix parameter interpolation (paper §2.2, Eq. 5) and the virtual model ``f̃_ij = h_i(ẽ)``.

A virtual model is never built as a module: :func:`virtual_parameters` returns model ``i``'s own
tensors with one encoder layer replaced by its Eq. 5 mix with model ``j``'s, and
:func:`virtual_forward` runs model ``i`` on them with :func:`torch.func.functional_call`.

Candidate layers (:func:`mixable_layers`): the paper mixes "a convolutional layer from the encoder"
(10 convs in the UNet); the released code also draws BN affine pairs (20 candidates, ``include_bn``).
The linearity checks (:func:`layer_linearity`, :func:`linearity_drift`) show where Eq. 5's premise
("interpolating kernels and biases interpolates the features") holds exactly and how far it drifts
through BN, ReLU and the rest of the network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from .draws import sample_beta
from .errors import ConfigError
from .models import UNet

LAMS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Default λ grid of the linearity checks."""

DRIFT_POINTS: tuple[str, ...] = ("conv", "bn", "relu", "block", "encoder", "logits")
"""Where :func:`linearity_drift` measures, in forward order from the mixed conv."""

@dataclass(frozen=True)
class MixableLayer:
    """One ModelMix candidate: a conv (or BN affine) layer of the encoder.

    Attributes:
        name: module path in the UNet, e.g. ``"encoder.block2.conv1"``.
        kind: ``"conv"`` or ``"bn"``.
        depth: encoder block index, 1..5.
        params: full parameter names in the UNet, ``(name + ".weight", name + ".bias")``.
    """

    name: str
    kind: str
    depth: int
    params: tuple[str, ...]


def mixable_layers(model: UNet, include_bn: bool = False) -> list[MixableLayer]:
    """The encoder's mixable layers in forward order: its 10 convs, or with ``include_bn`` also the BN
    affine pairs (the released code's 20 candidates, ``conv1, bn1, conv2, bn2`` per block).

    A model built with ``norm="none"`` has no BN layers, so ``include_bn`` adds nothing there.
    """
    layers = []
    for depth, (block_name, block) in enumerate(model.encoder.named_children(), start=1):
        for child_name, child in block.named_children():
            kind = "conv" if isinstance(child, nn.Conv2d) else "bn" if isinstance(child, _BatchNorm) else None
            if kind == "conv" or (kind == "bn" and include_bn):
                name = f"encoder.{block_name}.{child_name}"
                layers.append(MixableLayer(name, kind, depth, (f"{name}.weight", f"{name}.bias")))
    return layers


def interpolate(p_i: torch.Tensor, p_j: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Eq. 5, linear form: ``λ·p_i + (1 − λ)·p_j``, for the kernel and the bias alike.

    With ``g(x; k, b) = x * k + b`` this gives ``g(x; k̃, b̃) = λ·g_i(x) + (1 − λ)·g_j(x)`` exactly,
    which is the identity the first line of Eq. 5 states. The second line of Eq. 5 *as printed* mixes
    the bias as ``λ[b_i + (1 − λ)b_j]`` (:func:`printed_bias_mix`); that is not linear in the
    parameters and breaks the identity by ``−(1 − λ)²·b_j`` (zero only for ``b_j = 0`` or ``λ = 1``).
    The released code mixes the bias like the kernel, as here. The endpoints are exact in floating
    point: ``λ = 1`` returns ``p_i`` and ``λ = 0`` returns ``p_j`` bit for bit.
    """
    return lam * p_i + (1 - lam) * p_j


def printed_bias_mix(b_i: torch.Tensor, b_j: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """The bias of Eq. 5 as printed, ``λ[b_i + (1 − λ)b_j]``: a counter-example, not used in training."""
    return lam * (b_i + (1 - lam) * b_j)


def sample_lambda(
    alpha: float, device: torch.device | str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Eq. 5's λ ~ Beta(α, α): one :func:`~modelmix_lite.draws.sample_beta` draw, a 0-d float32 tensor on ``device``.

    Raises:
        ConfigError: unless ``alpha >= draws.MIN_ALPHA``.
    """
    return sample_beta(alpha, (), device, generator)


def random_layer(layers: Sequence[MixableLayer], generator: torch.Generator | None = None) -> MixableLayer:
    """A layer drawn uniformly from ``layers`` on a CPU generator (host side: no device sync).

    Raises:
        ConfigError: if ``layers`` is empty.
    """
    if not layers:
        raise ConfigError("layers: no mixable layers to choose from")
    return layers[int(torch.randint(len(layers), (1,), generator=generator))]


def virtual_parameters(
    model_i: UNet, model_j: UNet, layer: MixableLayer, lam: float | torch.Tensor, detach: bool = False
) -> dict[str, torch.Tensor]:
    """Parameters and buffers of the virtual model ``h_i(ẽ)``, named as in ``model_i``.

    Every entry is ``model_i``'s own tensor (the original ``Parameter``/buffer object, nothing copied)
    except the two tensors of ``layer``, which are ``interpolate(θ_i, θ_j, λ)`` (Eq. 5).

    ``detach=True`` reproduces the released code (a ``deepcopy`` of the host whose chosen layer is set
    through ``.data``): the mixed tensors and every other backbone tensor of ``model_i`` (encoder and
    decoder) are detached views, so no gradient reaches either encoder or ``model_i``'s decoder through
    the virtual model; only the head of ``model_i`` stays in the graph. ``detach=False`` (the paper's
    reading): gradients flow into ``θ_i`` and ``θ_j`` of the chosen layer and into all of ``model_i``.

    Raises:
        ConfigError: if a tensor of ``layer`` is missing from either model or differs in shape.
    """
    params_j = dict(model_j.named_parameters())
    tensors: dict[str, torch.Tensor] = {**dict(model_i.named_parameters()), **dict(model_i.named_buffers())}
    for name in layer.params:
        if name not in tensors or name not in params_j or params_j[name].shape != tensors[name].shape:
            raise ConfigError(f"layer {layer.name}: {name} is missing from a model or differs in shape")
        tensors[name] = interpolate(tensors[name], params_j[name], lam)
    if detach:
        tensors = {n: t if n.startswith("head.") else t.detach() for n, t in tensors.items()}
    return tensors


def _batch_stat_buffers(model: nn.Module) -> dict[str, torch.Tensor | None]:
    """Stand-ins for the running buffers of every BN module of ``model`` that is in train mode.

    ``running_mean``/``running_var`` become ``None``: BN then normalises with the batch statistics,
    exactly as a normal train-mode pass does, but has nowhere to write its running averages (as with
    ``track_running_stats=False``). ``num_batches_tracked`` becomes one throw-away counter, since
    ``SyncBatchNorm`` requires one. Nothing of ``model`` is written.
    """
    names = [
        name for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
    counter = torch.zeros((), dtype=torch.long, device=next(model.parameters()).device)
    return {
        f"{name}.{buffer}": counter if buffer == "num_batches_tracked" else None
        for name in names
        for buffer in ("running_mean", "running_var", "num_batches_tracked")
    }


def virtual_forward(
    model_i: UNet,
    model_j: UNet,
    layer: MixableLayer,
    lam: float | torch.Tensor,
    x: torch.Tensor,
    detach: bool = False,
) -> torch.Tensor:
    """Logits ``(B, n_classes_i, H, W)`` of the virtual model ``f̃_ij(x) = h_i(ẽ(x))`` (Eqs. 4–5).

    ``ẽ`` is ``e_i`` with ``layer`` mixed with ``e_j`` by :func:`interpolate`; decoder and head are
    ``model_i``'s. The pass never changes ``model_i``'s BN running statistics: in train mode its BN
    layers normalise with batch statistics exactly as a normal train-mode pass does (bitwise the same
    output) but their running buffers are swapped for stand-ins (:func:`_batch_stat_buffers`), so
    nothing is written to them; in eval mode the running statistics are read as usual.
    See :func:`virtual_parameters` for ``detach``.
    """
    tensors = {**virtual_parameters(model_i, model_j, layer, lam, detach), **_batch_stat_buffers(model_i)}
    return functional_call(model_i, tensors, (x,))


def _max_abs(t: torch.Tensor) -> float:
    return float(t.abs().max())


def _rel_err(value: torch.Tensor, reference: torch.Tensor) -> float:
    """``max|value − reference| / max|reference|`` (the absolute error where the reference is 0)."""
    scale = _max_abs(reference)
    err = _max_abs(value - reference)
    return err / scale if scale > 0 else err


def _copies(model_i: UNet, model_j: UNet, dtype: torch.dtype) -> tuple[UNet, UNet]:
    """Throw-away ``dtype`` copies of the two models."""
    return copy.deepcopy(model_i).to(dtype), copy.deepcopy(model_j).to(dtype)


def layer_linearity(
    model_i: UNet,
    model_j: UNet,
    x: torch.Tensor,
    lams: Sequence[float] = LAMS,
    dtype: torch.dtype = torch.float64,
) -> pd.DataFrame:
    """Eq. 5 per mixable conv: ``g̃(f) = λ·g_i(f) + (1 − λ)·g_j(f)`` on the conv's own input ``f``.

    ``f`` is the feature map reaching each conv of ``model_i`` (eval mode) for input ``x``
    ``(B, 3, H, W)``. Runs on ``dtype`` copies of the models; the originals are untouched.

    Returns:
        One row per (layer, λ): ``layer, depth, lam, abs_err`` (max abs difference) and
        ``rel_err`` (``abs_err / max|λ·g_i + (1 − λ)·g_j|``). In float64 both are ~1e-16.
    """
    mi, mj = _copies(model_i, model_j, dtype)
    layers = mixable_layers(mi)
    convs_i = {layer.name: mi.get_submodule(layer.name) for layer in layers}
    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        conv.register_forward_pre_hook(lambda _m, args, name=name: inputs.__setitem__(name, args[0]))
        for name, conv in convs_i.items()
    ]
    with torch.no_grad():
        mi.eval()(x.to(dtype))
        for hook in hooks:
            hook.remove()
        rows = []
        for layer in layers:
            conv_i, conv_j, f = convs_i[layer.name], mj.get_submodule(layer.name), inputs[layer.name]
            g_i, g_j = conv_i(f), conv_j(f)
            for lam in lams:
                mixed = {p: interpolate(getattr(conv_i, p), getattr(conv_j, p), lam) for p in ("weight", "bias")}
                g_mix = functional_call(conv_i, mixed, (f,))
                reference = lam * g_i + (1 - lam) * g_j
                rows.append(dict(layer=layer.name, depth=layer.depth, lam=float(lam),
                                 abs_err=_max_abs(g_mix - reference), rel_err=_rel_err(g_mix, reference)))
    return pd.DataFrame(rows)


def _virtual_features(
    model_i: UNet, model_j: UNet, layer: MixableLayer, lam: float, x: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The virtual model's features at :data:`DRIFT_POINTS` (read with forward hooks)."""
    block_name, conv_name = layer.name.rsplit(".", 1)
    block = model_i.get_submodule(block_name)
    out: dict[str, torch.Tensor] = {}

    def keep(point: str) -> Callable:
        return lambda _module, _args, output: out.__setitem__(point, output)

    hooks = [
        block.get_submodule(conv_name).register_forward_hook(keep("conv")),
        block.get_submodule(conv_name.replace("conv", "bn")).register_forward_hook(keep("bn")),  # conv1 -> bn1
        block.register_forward_hook(keep("block")),
        model_i.encoder.block5.register_forward_hook(keep("encoder")),
    ]
    try:
        out["logits"] = virtual_forward(model_i, model_j, layer, lam, x)
    finally:
        for hook in hooks:
            hook.remove()
    out["relu"] = F.relu(out["bn"])
    return {point: out[point] for point in DRIFT_POINTS}


def linearity_drift(
    model_i: UNet,
    model_j: UNet,
    x: torch.Tensor,
    lams: Sequence[float] = LAMS,
    modes: Sequence[str] = ("train", "eval"),
    dtype: torch.dtype = torch.float64,
) -> pd.DataFrame:
    """How far ``f̃ = λ·f_i + (1 − λ)·f_j`` drifts downstream of the mixed conv (the premise of Eq. 5).

    For each mixable conv and BN mode, ``f_i`` is ``model_i`` (the layer taken from ``i``), ``f_j`` is
    ``model_i`` with only that layer taken from ``model_j``, and ``f̃`` the virtual model at λ. The
    features are compared at :data:`DRIFT_POINTS`: the mixed conv's output (exact: Eq. 5), after its
    BN (exact in eval mode, where BN is affine; not in train mode, where the batch statistics depend
    on λ), after the ReLU, at the end of the block, at the encoder output (block 5) and at the logits.
    λ = 1 reproduces ``f_i`` and λ = 0 ``f_j`` exactly, so their drift is 0.

    Dropout is switched off in both modes, so ``"train"``/``"eval"`` differ only in BN statistics.
    Runs on ``dtype`` copies; the originals are untouched.

    Returns:
        One row per (layer, mode, λ, point): ``layer, depth, mode, lam, point, rel_err``
        (``max|f̃ − (λ·f_i + (1 − λ)·f_j)| / max|λ·f_i + (1 − λ)·f_j|``).
    """
    for mode in modes:
        if mode not in ("train", "eval"):
            raise ConfigError(f"modes: expected 'train' or 'eval', got {mode!r}")
    mi, mj = _copies(model_i, model_j, dtype)
    x = x.to(dtype)
    rows = []
    with torch.no_grad():
        for mode in modes:
            mi.train(mode == "train")
            for m in mi.modules():
                if isinstance(m, nn.Dropout):
                    m.eval()
            for layer in mixable_layers(mi):
                f = {lam: _virtual_features(mi, mj, layer, lam, x) for lam in {0.0, 1.0, *map(float, lams)}}
                for lam in map(float, lams):
                    for point in DRIFT_POINTS:
                        reference = lam * f[1.0][point] + (1 - lam) * f[0.0][point]
                        rows.append(dict(layer=layer.name, depth=layer.depth, mode=mode, lam=lam,
                                         point=point, rel_err=_rel_err(f[lam][point], reference)))
    return pd.DataFrame(rows)

"""The 2-D UNet of every task and the multi-task model set (paper §2.1, §3.1; released code §1).

Architecture (as the released ``models/`` code, with ``base`` = 64 there)::

    encoder  block1 .. block5, channels base·[1, 2, 4, 8, 16], MaxPool 2×2 between blocks
             block = [Dropout] → Conv3×3 → BN → ReLU → [Dropout] → Conv3×3 → BN → ReLU
    decoder  for level 4 .. 1: Upsample ×2 (nearest) → Conv3×3 → BN → ReLU, concat skip, conv block
    head     Conv1×1 → logits (no softmax)

The paper writes the model of task ``t_i`` as ``f_i = h_i(e_i(x))``: ``UNet.encoder`` is ``e_i``
(only the five blocks, so its parameters are exactly the ModelMix candidates) and
``UNet.decoder`` + ``UNet.head`` is ``h_i``.

The WSL4 baseline (DMPLS, Luo et al. 2022) adds an auxiliary decoder + head (``aux_decoder=True``) that
reads the encoder features through dropout; ``forward`` always returns the main branch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data.tasks import get_task
from .errors import ConfigError, DataError

N_BLOCKS: int = 5
"""Encoder blocks; four 2×2 poolings, so H and W must be divisible by ``2 ** (N_BLOCKS - 1)``."""

RELEASED_DROPOUT: tuple[float, ...] = tuple(p / 3 for p in (0.05, 0.1, 0.2, 0.3, 0.5))
"""Dropout of encoder blocks 1–5 in the released code, between the block's two convs."""

PAPER_DROPOUT: float = 0.5
"""Paper §3.1: "a dropout layer (with a ratio of 0.5) was incorporated before each convolutional block"."""

AUX_DROPOUT: float = 0.5
"""Dropout of every encoder feature on its way into the auxiliary decoder (DMPLS / WSL4MIS ``UNet_CCT``)."""

DropoutOption = str | float | None


def _dropout_schedule(dropout: DropoutOption) -> tuple[list[float], list[float]]:
    """Per-block dropout ``(before_block, between_convs)`` for the ``dropout`` option of :class:`UNet`.

    ``"paper"`` and a float ``p`` drop the *input* of blocks 2–5 (the pooled features). Block 1 is
    never preceded by dropout: its input is the raw image, and zeroing half of the MR pixels would be
    an image corruption, not the feature-level (model) perturbation the paper describes.
    """
    off = [0.0] * N_BLOCKS
    if dropout == "released":
        return off, list(RELEASED_DROPOUT)
    p = PAPER_DROPOUT if dropout == "paper" else (dropout or 0.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ConfigError(f"dropout: expected 'paper', 'released', None or a float in [0, 1), got {dropout!r}")
    return [0.0] + [float(p)] * (N_BLOCKS - 1), off


def _norm(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ConfigError(f"norm: expected 'batch' or 'none', got {norm!r}")


def _conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    """A Conv2d left uninitialised (``skip_init``): :func:`init_weights` draws its weights."""
    return nn.utils.skip_init(nn.Conv2d, cin, cout, kernel, padding=kernel // 2)


class ConvBlock(nn.Module):
    """Conv block ``(B, cin, H, W) -> (B, cout, H, W)``.

    ``drop_in → conv1 → bn1 → ReLU → drop_mid → conv2 → bn2 → ReLU``; a dropout with ratio 0 is ``nn.Identity``.
    """

    def __init__(self, cin: int, cout: int, norm: str = "batch", p_in: float = 0.0, p_mid: float = 0.0):
        super().__init__()
        self.drop_in = nn.Dropout(p_in) if p_in else nn.Identity()
        self.conv1 = _conv(cin, cout, 3)
        self.bn1 = _norm(norm, cout)
        self.drop_mid = nn.Dropout(p_mid) if p_mid else nn.Identity()
        self.conv2 = _conv(cout, cout, 3)
        self.bn2 = _norm(norm, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(self.drop_in(x))))
        return F.relu(self.bn2(self.conv2(self.drop_mid(x))))


class Encoder(nn.Module):
    """The five encoder blocks ``block1 .. block5`` (and nothing else): ``e_i`` of the paper."""

    def __init__(self, in_channels: int, base: int, norm: str, dropout: DropoutOption):
        super().__init__()
        p_in, p_mid = _dropout_schedule(dropout)
        cin = in_channels
        for k in range(N_BLOCKS):
            self.add_module(f"block{k + 1}", ConvBlock(cin, base * 2**k, norm, p_in[k], p_mid[k]))
            cin = base * 2**k

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, C, H, W)`` -> the five block outputs, ``(B, base·2^k, H/2^k, W/2^k)`` for k = 0..4."""
        features = []
        for k, block in enumerate(self.children()):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features


class Decoder(nn.Module):
    """``up{k}`` (upsample + conv) and ``block{k}`` (conv block on the concatenated skip) for levels 4 .. 1."""

    def __init__(self, base: int, norm: str):
        super().__init__()
        for k in range(N_BLOCKS - 1, 0, -1):
            cout = base * 2 ** (k - 1)
            self.add_module(f"up{k}", nn.Sequential(_conv(2 * cout, cout, 3), _norm(norm, cout), nn.ReLU()))
            self.add_module(f"block{k}", ConvBlock(2 * cout, cout, norm))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Encoder features (deepest last) -> ``(B, base, H, W)``."""
        x = features[-1]
        for k in range(N_BLOCKS - 1, 0, -1):
            up = getattr(self, f"up{k}")(F.interpolate(x, scale_factor=2, mode="nearest"))
            x = getattr(self, f"block{k}")(torch.cat([features[k - 1], up], dim=1))
        return x


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Kaiming-normal (fan_in, ReLU) conv weights, zero biases, BN ``γ = 1, β = 0`` and fresh running stats.

    Every conv, the head included, gets the Kaiming init (the released code leaves one of its heads at
    PyTorch's default; we do not copy that quirk). ``generator=None`` draws from the global RNG.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()


class UNet(nn.Module):
    """2-D UNet returning logits ``(B, n_classes, H, W)`` for input ``(B, in_channels, H, W)``.

    Args:
        in_channels: input channels (3: see :func:`as_model_input`).
        n_classes: output classes of the head.
        base: channels of block 1 (paper / released code: 64).
        dropout: ``"paper"`` Dropout(0.5) before encoder blocks 2–5; ``"released"`` per-block
            ``[.05, .1, .2, .3, .5] / 3`` between the two convs of each encoder block; a float ``p``:
            the paper placement with ratio ``p``; ``None`` or ``0``: no dropout. The decoder has none.
        norm: ``"batch"`` or ``"none"`` (no normalisation: a whole block is then conv/ReLU only).
        generator: RNG of the weight init (``None``: the global RNG).
        aux_decoder: also build ``aux_decoder`` + ``aux_head`` (:meth:`decode_aux`), initialised after
            the main network, so the main branch's init does not change.

    Raises:
        ConfigError: on an unknown ``dropout`` or ``norm``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        n_classes: int = 4,
        base: int = 16,
        dropout: DropoutOption = "paper",
        norm: str = "batch",
        generator: torch.Generator | None = None,
        aux_decoder: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.encoder = Encoder(in_channels, base, norm, dropout)
        self.decoder = Decoder(base, norm)
        self.head = _conv(base, n_classes, 1)
        if aux_decoder:
            self.aux_decoder = Decoder(base, norm)
            self.aux_head = _conv(base, n_classes, 1)
        init_weights(self, generator)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, in_channels, H, W)`` -> the five encoder features (skips, bottleneck last).

        Raises:
            DataError: unless ``x`` is 4-D with ``in_channels`` channels and H, W divisible by 16.
        """
        div = 2 ** (N_BLOCKS - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise DataError(f"UNet input: expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % div or x.shape[3] % div:
            raise DataError(
                f"UNet input: H, W = {tuple(x.shape[2:])} must be divisible by {div} "
                f"({N_BLOCKS} encoder blocks, {N_BLOCKS - 1} poolings); pad or crop the slices"
            )
        return self.encoder(x)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Encoder features -> logits ``(B, n_classes, H, W)``."""
        return self.head(self.decoder(features))

    def decode_aux(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Auxiliary branch: logits ``(B, n_classes, H, W)`` from the features after Dropout(:data:`AUX_DROPOUT`).

        The dropout is active in train mode only. Raises :class:`ConfigError` without ``aux_decoder``.
        """
        if not hasattr(self, "aux_decoder"):
            raise ConfigError("aux_decoder: this UNet was built without an auxiliary decoder")
        dropped = [F.dropout(f, AUX_DROPOUT, self.training) for f in features]
        return self.aux_head(self.aux_decoder(dropped))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def as_model_input(x: torch.Tensor, in_channels: int = 3) -> torch.Tensor:
    """Make ``(B, C, H, W)`` a ``(B, in_channels, H, W)`` model input.

    ``C == in_channels`` passes through unchanged; ``C == 1`` is repeated ``in_channels`` times, as the
    released code does for the single-sequence tasks (ACDC, MSCMR), so that every task's encoder has
    the architecture of the 3-sequence MyoPS encoder (C0, DE, T2) and the encoders can be mixed.

    Raises:
        DataError: on any other shape.
    """
    if x.ndim != 4 or x.shape[1] not in (1, in_channels):
        raise DataError(
            f"model input: expected (B, 1, H, W) or (B, {in_channels}, H, W), got {tuple(x.shape)}"
        )
    return x if x.shape[1] == in_channels else x.repeat(1, in_channels, 1, 1)


def encoder_parameter_names(model: UNet) -> list[str]:
    """Names (as in ``model.named_parameters()``) of the encoder parameters, in forward order."""
    return [f"encoder.{name}" for name, _ in model.encoder.named_parameters()]


class TaskModelSet(nn.Module):
    """One :class:`UNet` per task, ``f_i = h_i(e_i(x))`` (paper §2.1).

    Args:
        tasks: task names (see :data:`modelmix_lite.data.tasks.TASKS`); each model's head has that
            task's ``n_classes``.
        base, dropout, norm: as :class:`UNet`.
        identical_init: start every encoder and decoder from the first model's weights (the
            released code's ``deepcopy``); heads stay independent. ``False``: independent inits.
        shared_encoder: one encoder used by every task (Table 1, #5 "Share Enc"); its parameters
            appear once in ``.parameters()``. Decoders and heads stay separate.
        encoder_bn: with ``shared_encoder``, ``"per_task"`` shares the encoder's convolutions only and keeps
            each task's own BatchNorm layers (affine parameters and running statistics), so the domains'
            intensity statistics never mix; ``"shared"`` shares the whole encoder object, BatchNorm included.
        generator: RNG of the weight init (``None``: the global RNG).
        aux_decoder: give every UNet an auxiliary decoder (the WSL4 baseline); with ``identical_init``
            it is copied from the first model like the main decoder.

    Raises:
        ConfigError: on an empty, duplicated or unknown task list.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        base: int = 16,
        dropout: DropoutOption = "paper",
        norm: str = "batch",
        identical_init: bool = True,
        shared_encoder: bool = False,
        generator: torch.Generator | None = None,
        aux_decoder: bool = False,
        encoder_bn: str = "per_task",
    ):
        super().__init__()
        if encoder_bn not in ("per_task", "shared"):
            raise ConfigError(f"encoder_bn: {encoder_bn!r} is not one of 'per_task', 'shared'")
        tasks = [t.lower() for t in tasks]
        if not tasks or len(set(tasks)) != len(tasks):
            raise ConfigError(f"tasks: expected distinct task names, got {tasks}")
        specs = [get_task(t) for t in tasks]
        self.models = nn.ModuleDict(
            {s.name: UNet(3, s.n_classes, base, dropout, norm, generator, aux_decoder) for s in specs}
        )
        first = self.models[tasks[0]]
        for model in list(self.models.values())[1:]:
            if identical_init:
                model.encoder.load_state_dict(first.encoder.state_dict())
                model.decoder.load_state_dict(first.decoder.state_dict())
                if aux_decoder:
                    model.aux_decoder.load_state_dict(first.aux_decoder.state_dict())
            if shared_encoder and encoder_bn == "shared":
                model.encoder = first.encoder
            elif shared_encoder:  # the same conv modules in every encoder, BatchNorm layers of its own
                for block, first_block in zip(model.encoder.children(), first.encoder.children()):
                    block.conv1, block.conv2 = first_block.conv1, first_block.conv2

    @property
    def tasks(self) -> list[str]:
        return list(self.models)

    def forward(self, task: str, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes(task), H, W)`` of the task's model for ``x`` ``(B, 3, H, W)``."""
        if task not in self.models:
            raise ConfigError(f"task: {task!r} is not in this model set ({', '.join(self.models)})")
        return self.models[task](x)

"""Training configuration: :class:`TrainConfig`, the :data:`PROFILES`, their resolution and (de)serialisation.

A run's configuration is a profile (its budget and geometry), the fields its profile sets on the core preset
(:data:`PROFILE_CORE`), the core preset with its training fields
(:data:`~modelmix_lite.methods.PRESET_TRAINING`), then ``key=value`` overrides: :func:`resolve_config`.
``config.json`` of a run directory holds :func:`config_to_dict` of it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ConfigError
from .methods import CORE_PRESETS, PRESET_TRAINING, CoreConfig, get_core

DEFAULT_DATA = Path("data/phantom")
"""``--data`` default: the default phantom, generated there on first use."""



@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides the method, the tasks and the data. Each field is a ``--set`` key.

    Attributes:
        steps: optimizer steps; each step sees one batch of every task.
        epochs: if > 0, overrides ``steps`` with ``epochs`` passes over the largest task's training slices.
        batch_size: slices per task per step (global: split evenly over DDP ranks; paper: 16).
        unlabeled_fraction: share of each batch drawn from unlabeled slices, for methods with an
            unsupervised term (the paper does not give the ratio).
        size: network input side ``S`` (paper: 256).
        spacing_mm: in-plane pixel size every slice is resampled to before the centred ``size × size``
            window is cut (:func:`~modelmix_lite.data.geometry.fit_slice`); the field of view is
            ``size × spacing_mm`` mm. ``0`` keeps each scanner's native resolution, as the released code.
        base: channels of the first UNet block (paper / released code: 64).
        norm: ``"batch"`` or ``"none"`` (no BatchNorm: DDP then equals one process on the global batch).
        lr, weight_decay: Adam (paper: lr 1e-3; the released code: 1e-4 and 5e-4).
        lr_schedule: ``"constant"`` (paper and released code: no schedule) or ``"cosine"``: linear warm-up
            over ``warmup_steps``, then a cosine decay to ``final_lr_ratio × lr`` at the last step
            (:func:`~modelmix_lite.train.learning_rate`).
        n_scribbled: scribble-annotated subjects per task (paper §3.1: 5).
        prior_split: the split whose ground truth gives nnPU and CVIR the class ratio (paper §3.3 grants it):
            ``"train"``, or ``"val"`` where the training split has scribbles only (real MSCMRseg).
        augment: random rotation / flips / crop-zoom of every training batch (§3.1).
        log_every: steps between log rows (and non-finite checks).
        val_every: steps between validations (and at the end); 0: never validate.
        ckpt_every: steps between ``last.pt`` checkpoints (and at the end).
        seed: seeds the subject split, the model init and every random stream.
        device: ``"auto"`` (cuda, then mps, then cpu) or a torch device string.
        amp: bf16 autocast on CUDA (ignored elsewhere).
        channels_last: channels-last memory format on CUDA (ignored elsewhere).
        compile: ``torch.compile`` the task models' host and mixup passes (see :class:`~modelmix_lite.objective.ModelMixObjective`).
        core: the ModelMix core preset with any overrides (:class:`~modelmix_lite.methods.CoreConfig`).
    """

    steps: int = 300
    epochs: int = 0
    batch_size: int = 8
    unlabeled_fraction: float = 0.5
    size: int = 96
    spacing_mm: float = 0.0
    base: int = 16
    norm: str = "batch"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_ratio: float = 0.01
    n_scribbled: int = 5
    prior_split: str = "train"
    augment: bool = True
    log_every: int = 10
    val_every: int = 100
    ckpt_every: int = 100
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    core: CoreConfig = CORE_PRESETS["paper"]

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "size", "base", "log_every", "ckpt_every", "n_scribbled")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in ("epochs", "val_every", "weight_decay", "spacing_mm", "warmup_steps", "seed"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr: must be a finite number > 0, got {self.lr!r}")
        if self.size % 16:
            raise ConfigError(f"size: must be a multiple of 16 (four 2x2 poolings), got {self.size}")
        if not 0.0 <= self.unlabeled_fraction < 1.0:
            raise ConfigError(f"unlabeled_fraction: must be in [0, 1), got {self.unlabeled_fraction!r}")
        if self.norm not in ("batch", "none"):
            raise ConfigError(f"norm: {self.norm!r} is not one of 'batch', 'none'")
        if self.prior_split not in ("train", "val"):
            raise ConfigError(f"prior_split: {self.prior_split!r} is not one of train, val")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule: {self.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ConfigError(f"final_lr_ratio: must be in [0, 1], got {self.final_lr_ratio!r}")

    @property
    def fov_mm(self) -> float | None:
        """The field of view of a training slice in mm (None at native resolution: it varies by scanner)."""
        return self.size * self.spacing_mm if self.spacing_mm else None


LR_SCHEDULES = ("constant", "cosine")


FOV_MM = 224.0
"""The field of view (mm) of the cpu, cpu_long and gpu profiles, centred on the image: it holds the hearts of the
real ACDC and MSCMRseg validation volumes."""

PROFILES: dict[str, TrainConfig] = {
    # seconds: wiring checks and tests
    "smoke": TrainConfig(steps=6, batch_size=4, size=32, spacing_mm=FOV_MM / 32, base=8, log_every=2, val_every=6,
                         ckpt_every=3),
    # the book's default: cpu_long's recipe at 300 steps, ~8 min per ModelMix run on 2 CPU cores (~1.6 s a step
    # on the phantom); the book trains two runs at it (ModelMix, shared by notebooks 04 and 05, and #2)
    "cpu": TrainConfig(steps=300, batch_size=8, size=96, spacing_mm=FOV_MM / 96, base=16, lr=3e-3,
                       lr_schedule="cosine", warmup_steps=30, log_every=10, val_every=100, ckpt_every=100),
    # recorded real-data results on CPU: at most ~45 min per ModelMix run on 2 cores (two runs side by side)
    "cpu_long": TrainConfig(steps=500, batch_size=8, size=96, spacing_mm=FOV_MM / 96, base=16, lr=3e-3,
                            lr_schedule="cosine", warmup_steps=50, log_every=10, val_every=100, ckpt_every=50),
    # one GPU: ~3k steps of a base-32 UNet at 256² (0.875 mm per pixel), a few minutes per method
    "gpu": TrainConfig(steps=3000, batch_size=16, size=256, spacing_mm=FOV_MM / 256, base=32, lr_schedule="cosine",
                       warmup_steps=150, log_every=50, val_every=500, ckpt_every=500),
    # paper §3.1: Adam 1e-3, batch 16, 256×256, 1000 epochs, a base-64 UNet; native resolution, centre crop
    # or pad to 256 (the released code; the paper's "resized to 256 × 256" is not what the code does)
    "paper": TrainConfig(epochs=1000, batch_size=16, size=256, spacing_mm=0.0, base=64, log_every=100,
                         val_every=2000, ckpt_every=2000),
}

PROFILE_CORE: dict[str, dict[str, object]] = {
    "cpu": {"dropout": "released"},
    "cpu_long": {"dropout": "released"},
}
"""Core-preset fields a profile sets before ``--set`` overrides. The CPU budgets are a few hundred steps: there
the paper's 0.5 dropout before every block slows learning, and the released code's lighter schedule was chosen
on the real ACDC + MSCMRseg validation splits."""

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _parse_value(key: str, text: str, kind: type) -> object:
    """``text`` as a value of ``kind`` (bool, int, float or str); :class:`ConfigError` naming ``key`` otherwise."""
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
    else:
        try:
            return kind(text)
        except ValueError:
            pass
    raise ConfigError(f"--set {key}={text}: expected {kind.__name__}")


def split_overrides(overrides: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(overrides, Mapping):
        return {str(k): str(v) for k, v in overrides.items()}
    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item}: expected key=value")
        pairs[key.strip()] = value.strip()
    return pairs


def resolve_config(
    profile: str, overrides: Mapping[str, str] | Sequence[str] = (), preset: str = "paper"
) -> TrainConfig:
    """The ``profile``'s :class:`TrainConfig` with the core ``preset`` and ``key=value`` overrides applied.

    Precedence, lowest first: the profile, its :data:`PROFILE_CORE` fields, the preset (its core fields and its
    :data:`~modelmix_lite.methods.PRESET_TRAINING` fields, e.g. the released code's optimiser), ``overrides``.
    Keys are :class:`TrainConfig` fields or :class:`~modelmix_lite.methods.CoreConfig` fields (e.g.
    ``steps=50``, ``detach_virtual=true``); values are parsed to the field's type.

    Raises:
        ConfigError: on an unknown profile, preset or key, or a value that does not parse or validate.
    """
    if profile not in PROFILES:
        raise ConfigError(f"--profile: unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}")
    train_types = typing.get_type_hints(TrainConfig)
    core_types = typing.get_type_hints(CoreConfig)
    train_set, core_set = {}, {}
    for key, text in split_overrides(overrides).items():
        if key in train_types and key != "core":
            train_set[key] = _parse_value(key, text, train_types[key])
        elif key in core_types:
            core_set[key] = _parse_value(key, text, core_types[key])
        else:
            known = [k for k in train_types if k != "core"] + list(core_types)
            raise ConfigError(f"--set {key}: unknown option; known options: {', '.join(known)}")
    core = dataclasses.replace(get_core(preset), **{**PROFILE_CORE.get(profile, {}), **core_set})
    return dataclasses.replace(PROFILES[profile], core=core, **{**PRESET_TRAINING.get(preset, {}), **train_set})


def config_to_dict(config: TrainConfig) -> dict:
    """Plain-JSON form of a config (the ``core`` field nested)."""
    return dataclasses.asdict(config)


def config_from_dict(data: Mapping) -> TrainConfig:
    """Inverse of :func:`config_to_dict`."""
    return TrainConfig(**{**data, "core": CoreConfig(**data["core"])})


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``: this process's CUDA device (``LOCAL_RANK`` under torchrun), else mps, else cpu.

    Raises:
        ConfigError: ``name`` is not a torch device, or names a CUDA / MPS device this machine does not have.
    """
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"--device: {name!r} is not a device (auto, cpu, cuda, cuda:1, mps)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine (use auto or cpu)")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ConfigError(f"--device {name}: MPS is not available on this machine (use auto or cpu)")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """What a device is, for records: the GPU's name on CUDA (``"NVIDIA H200"``), else the device type."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type

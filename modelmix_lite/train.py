"""Training: profiles, the ModelMix objective (Eq. 9) as one module, the loop, checkpoints and DDP.

One iteration draws one batch of every task of the run, evaluates :class:`ModelMixObjective` (all
loss terms of all tasks and task pairs), and takes one Adam step over every parameter. Runs are
reproducible: every random draw comes from a seeded generator whose state is checkpointed, so a resumed
CPU run equals the uninterrupted one bit for bit.

Run directory: ``config.json`` (the resolved :class:`TrainConfig`, method and tasks), ``split.json`` (the
scribbled / unlabeled subjects), ``log.jsonl`` (one row per log interval and per validation),
``last.pt`` (every ``ckpt_every`` steps and at the end), ``best.pt`` (best mean validation Dice) and
``training_curves.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .baselines import baseline_terms, class_prior
from .checkpoints import load_checkpoint, save_checkpoint
from .data.layout import find_dataset_root, list_cases
from .data.phantom import ensure_phantom
from .data.readers import load_split
from .data.slices import SliceDataset, cached_slice_dataset, few_scribble_split
from .data.tasks import TASKS
from . import rundir
from .errors import ConfigError, DataError
from .evaluate import DATA_RECORD, check_trained_data, data_fingerprint, evaluate_cases
from .losses import (
    check_target_values,
    degenerate_reg_loss,
    invariance_loss,
    mixup_cross_entropy,
    partial_cross_entropy,
    supervised_loss,
    total_loss,
    vicinal_reg_loss,
    vicinal_sup_loss,
)
from .methods import (
    CORE_PRESETS, METHODS, PRESET_TRAINING, CoreConfig, MethodConfig, check_method_tasks, get_core, get_method,
)
from .mixing import mixable_layers, random_layer, sample_lambda, virtual_forward
from .models import TaskModelSet, as_model_input
from .perturb import apply_cutout, augment, cutout_mask, mixup, partner_index, rotate, rotate_labels, to_device

DEFAULT_DATA = Path("data/phantom")
"""``--data`` default: the default phantom, generated there on first use."""

# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


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
            (:func:`learning_rate`).
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
        compile: ``torch.compile`` the task models' host and mixup passes (see :class:`ModelMixObjective`).
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


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``.

    ``"cosine"``: ``lr · (step + 1) / warmup_steps`` during the warm-up, then
    ``lr · (r + (1 - r) · (1 + cos(π t)) / 2)`` with ``t`` going from 0 to 1 over the remaining steps and
    ``r = final_lr_ratio``. ``"constant"``: ``lr``. A pure function of the step, so a resumed run follows
    the same schedule without any scheduler state.
    """
    if config.lr_schedule == "constant":
        return config.lr
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, total - config.warmup_steps - 1)
    t = min(1.0, (step - config.warmup_steps) / span)
    ratio = config.final_lr_ratio
    return config.lr * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * t)))


FOV_MM = 224.0
"""The field of view (mm) of the cpu, cpu_long and gpu profiles, centred on the image: it holds the hearts of the
real ACDC and MSCMRseg validation volumes."""

PROFILES: dict[str, TrainConfig] = {
    # seconds: wiring checks and tests
    "smoke": TrainConfig(steps=6, batch_size=4, size=32, spacing_mm=FOV_MM / 32, base=8, log_every=2, val_every=6,
                         ckpt_every=3),
    # the book's default: cpu_long's recipe at 150 steps, ~7 min per ModelMix run on 2 CPU cores (a step costs
    # ~2.9 s there), so that `make book` fits its 30 minutes; set by that budget, not chosen for accuracy
    "cpu": TrainConfig(steps=150, batch_size=8, size=96, spacing_mm=FOV_MM / 96, base=16, lr=3e-3,
                       lr_schedule="cosine", warmup_steps=15, log_every=10, val_every=50, ckpt_every=50),
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


def _split_overrides(overrides: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
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
    for key, text in _split_overrides(overrides).items():
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


# ----------------------------------------------------------------------------------------------
# The objective (Eq. 9)
# ----------------------------------------------------------------------------------------------


def task_pairs(tasks: Sequence[str], scheme: str) -> list[tuple[str, str]]:
    """The ordered task pairs Ω of Eqs. 6-7: ``"all"`` (i, j), i ≠ j, or ``"first"``: those with the first task."""
    pairs = [(i, j) for i in tasks for j in tasks if i != j]
    return pairs if scheme == "all" else [(i, j) for i, j in pairs if tasks[0] in (i, j)]


def _rotation_mask(shape: tuple[int, ...], angle: Tensor, device: torch.device) -> Tensor:
    """``(B, 1, H, W)``: 1 where a pixel survives rotating by ``angle`` and back (not a lost corner)."""
    ones = torch.ones(shape[0], 1, *shape[2:], device=device)
    return rotate(rotate(ones, angle, "nearest"), -angle, "nearest")


class ModelMixObjective(nn.Module):
    """The training loss of one iteration over all tasks: Eq. 9 with the method's terms switched on.

    Per task ``i`` (batch ``x``, scribbles ``y``; the first ``n_scribbled`` rows are from scribbled
    subjects, the rest unlabeled):

    * ``x^c = 1_c ⊙ x`` — cutout (§2.1), when the method has L_inv; the host prediction ``f_i(x^c)``
      is shared by all terms below;
    * ``sup``   L_sup (Eq. 8; pCE alone unless ``method.dice``) on the scribbled rows (every row with
      ``core.sup_rows="batch"``), when there is no L_vicinal-sup (which contains it, Eq. 7);
    * ``inv``   Eq. 1 on all rows: mixup with an intra-batch partner, cosine to the mixed predictions
      (``mixce``: the released code's mixup cross-entropy, ``core.mixup_ce``);
    * for every pair ``(i, j)`` in Ω: the virtual model ``f̃_ij`` (one random mixable encoder layer,
      ``λ ~ Beta``, Eq. 5; on a rotated batch if ``core.rotate_virtual``), then
      ``vsup`` Eq. 7 on the rows of ``sup`` and ``vreg`` Eq. 6 on all rows, summed over ``j`` (a MyoPS host
      with ``core.myops_reg="degenerate"``: the released code's degenerate term instead of Eq. 6).

    A method with a ``baseline`` (Tables 2-3) has none of these: its terms per task are
    :func:`~modelmix_lite.baselines.baseline_terms` (eager: ``compile`` does not apply to them).

    ``forward`` returns ``(loss, terms)``, ``terms`` keyed ``"{term}/{task}"`` with a fixed key set,
    ``loss = total_loss(terms)``. All random draws come from :attr:`generator` (a CPU generator) and
    are copied to the device by :func:`~modelmix_lite.perturb.to_device` (pinned, ``non_blocking``);
    nothing is read back to the host, so a step never waits for the GPU. The targets' values are not
    checked here (the losses run with ``check=False``): :meth:`TaskData.next_batch` checks each batch
    on the CPU before it is moved.

    Args:
        models: the task models (``TaskModelSet``).
        method, core: which terms, and how (see :mod:`modelmix_lite.methods`).
        seed: seed of :attr:`generator`.
        compile: run the task models' plain passes (host and mixup) through ``torch.compile``; the
            virtual model (``functional_call`` with swapped tensors) stays eager, so it never recompiles.
        priors: task -> ``(C,)`` class ratio (:func:`~modelmix_lite.baselines.class_prior`), required by the
            PU baselines; kept as non-persistent buffers ``prior_<task>`` (they move with the module and
            stay out of checkpoints).
    """

    def __init__(
        self, models: TaskModelSet, method: MethodConfig, core: CoreConfig, seed: int = 0, compile: bool = False,
        priors: Mapping[str, Tensor] | None = None,
    ):
        super().__init__()
        self.models = models
        # a plain dict, not registered: the compiled wrappers share the models' parameters
        self.forward_fns = {t: torch.compile(m) if compile else m for t, m in models.models.items()}
        self.method = method
        self.core = core
        self.generator = torch.Generator().manual_seed(seed)
        self.pairs = task_pairs(models.tasks, core.pairs) if method.mixes_models else []
        self.layers = {
            task: mixable_layers(model, include_bn=core.mix_bn) for task, model in models.models.items()
        }
        for task in models.tasks if method.needs_prior else ():
            if priors is None or task not in priors:
                raise ConfigError(f"--method {method.name}: needs the class ratio of task {task!r} (priors)")
            self.register_buffer(f"prior_{task}", torch.as_tensor(priors[task]), persistent=False)

    def _sup_rows(self, n: int, batch: int) -> int:
        """How many leading rows the supervised terms see (``core.sup_rows``): the scribbled ones, or all."""
        return n if self.core.sup_rows == "scribbled" else batch

    def _sup(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.method.dice:
            return supervised_loss(logits, target, self.core.dice_on, self.core.dice_average, check=False)
        return partial_cross_entropy(logits, target, check=False)

    def _cutout(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        size = max(1, round(self.core.cutout_size * x.shape[-1]))
        mask = cutout_mask(x.shape[0], *x.shape[2:], size, self.core.cutout_p, self.generator, x.device)
        return apply_cutout(x, mask, y, self.core.cutout_label_fill)

    def _invariance(self, task: str, x: Tensor, y: Tensor, probs: Tensor) -> dict[str, Tensor]:
        partner = to_device(partner_index(x.shape[0], self.generator, self.core.mixup_partner), x.device)
        x_mix, lam = mixup(x, x[partner], self.core.mixup_alpha, self.generator)
        logits_mix = self.forward_fns[task](x_mix)
        terms = {"inv": invariance_loss(logits_mix.softmax(1), probs, probs[partner], lam, self.core.cos_reduce)}
        if self.core.mixup_ce:
            terms["mixce"] = mixup_cross_entropy(logits_mix, y, y[partner], lam, check=False)
        return terms

    def _vicinal(self, i: str, j: str, x: Tensor, y: Tensor, n: int, logits: Tensor) -> dict[str, Tensor]:
        """Eqs. 5-7 for one ordered pair: the virtual model ``f̃_ij = h_i(ẽ)`` against the host ``f_i``."""
        layer = random_layer(self.layers[i], self.generator)
        lam = sample_lambda(self.core.lambda_alpha, x.device, self.generator)
        mask = y_v = None
        if self.core.rotate_virtual:
            angle = to_device(torch.rand((), generator=self.generator) * 360, x.device)
            x, y_v = rotate(x, angle, "nearest"), rotate_labels(y, angle)
            mask = _rotation_mask(x.shape, angle, x.device)
        models = self.models.models
        logits_v = virtual_forward(models[i], models[j], layer, lam, x, self.core.detach_virtual)
        terms = {}
        if self.method.vicinal_sup:
            rows = self._sup_rows(n, len(y))
            target_v = None if y_v is None else y_v[:rows]
            terms["vsup"] = vicinal_sup_loss(
                logits_v[:rows], logits[:rows], y[:rows], self.core.dice_on, target_v, self.core.dice_average,
                check=False,
            )
        if self.method.vicinal_reg:
            probs_v = logits_v.softmax(1)
            if self.core.rotate_virtual:
                probs_v = rotate(probs_v, -angle, "nearest")
            if i == "myops" and self.core.myops_reg == "degenerate":
                terms["vreg"] = degenerate_reg_loss(probs_v, logits.softmax(1), mask)
            else:
                terms["vreg"] = vicinal_reg_loss(probs_v, logits.softmax(1), self.core.cos_reduce, mask)
        return terms

    def forward(self, batches: Mapping[str, Mapping]) -> tuple[Tensor, dict[str, Tensor]]:
        """Eq. 9 for one iteration.

        Args:
            batches: task -> ``{"image": (B, 3, S, S) float, "target": (B, S, S) int64 with 255 =
                unannotated, "n_scribbled": int}`` for every task of the model set.
        Returns:
            ``(loss, terms)``: the scalar total and the scalar terms it sums.
        """
        terms: dict[str, Tensor] = {}
        host: dict[str, tuple[Tensor, Tensor, int, Tensor]] = {}
        for task in self.models.tasks:
            x, y, n = batches[task]["image"], batches[task]["target"], batches[task]["n_scribbled"]
            if self.method.baseline:
                prior = getattr(self, f"prior_{task}", None)
                model = self.models.models[task]
                for name, value in baseline_terms(self.method.baseline, model, x, y, self.generator, self.core,
                                                  prior).items():
                    terms[f"{name}/{task}"] = value
                continue
            if self.method.inv:
                x, y = self._cutout(x, y)
            logits = self.forward_fns[task](x)
            host[task] = (x, y, n, logits)
            if not self.method.vicinal_sup:
                rows = self._sup_rows(n, len(y))
                terms[f"sup/{task}"] = self._sup(logits[:rows], y[:rows])
            if self.method.inv:
                for name, value in self._invariance(task, x, y, logits.softmax(1)).items():
                    terms[f"{name}/{task}"] = value
        for i, j in self.pairs:
            x, y, n, logits = host[i]
            for name, value in self._vicinal(i, j, x, y, n, logits).items():
                key = f"{name}/{i}"
                terms[key] = terms[key] + value if key in terms else value
        return total_loss(terms), terms


# ----------------------------------------------------------------------------------------------
# Data: few-scribble datasets and infinite seeded samplers
# ----------------------------------------------------------------------------------------------


_DROPOUT, _OBJECTIVE, _AUGMENT, _SAMPLER = range(4)
"""Stream ids: the first key after the run seed, so no two random streams share a seed."""


def _derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (stable across processes, unlike ``hash``)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))


class InfiniteSampler:
    """Endless reshuffled passes over a pool of dataset indices, in global batches sharded over ranks.

    Every rank holds the same generator, so all ranks see the same global batch sequence; rank ``r``
    keeps the ``r``-th contiguous shard. Its state (generator, current permutation, position) is
    checkpointed by :meth:`state_dict`.
    """

    def __init__(self, pool: Sequence[int], batch: int, seed: int, rank: int = 0, world: int = 1):
        if batch % world:
            raise ConfigError(f"batch_size: {batch} slices do not split evenly over {world} processes")
        self.pool = torch.as_tensor(list(pool), dtype=torch.long)
        self.batch, self.rank, self.world = batch, rank, world
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(self.pool), generator=self.generator)
        self.pos = 0

    def next(self) -> list[int]:
        """This rank's indices of the next global batch."""
        chunks, need = [], self.batch
        while need:
            if self.pos == len(self.perm):
                self.perm, self.pos = torch.randperm(len(self.pool), generator=self.generator), 0
            take = min(need, len(self.perm) - self.pos)
            chunks.append(self.perm[self.pos : self.pos + take])
            self.pos, need = self.pos + take, need - take
        shard = self.batch // self.world
        return self.pool[torch.cat(chunks)[self.rank * shard : (self.rank + 1) * shard]].tolist()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: Mapping) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])


@dataclass
class TaskData:
    """One task's training slices, its samplers (scribbled, optionally unlabeled) and its validation cases;
    ``prior``: the class ratio of the ``prior_split`` ground truth, for nnPU and CVIR (else None)."""

    dataset: SliceDataset
    samplers: dict[str, InfiniteSampler]
    val_cases: list
    split: dict[str, list[str]]
    prior: Tensor | None = None

    def next_batch(self) -> dict:
        """``{"image": (B, C, S, S), "target": (B, S, S) int64, "n_scribbled": int}`` on the CPU.

        The target values are checked here, once per batch on the CPU, so the step's losses need not
        (they would read the device back); :class:`DataError` names the task and slices.
        """
        parts = [self.samplers[kind].next() for kind in ("scribbled", "unlabeled") if kind in self.samplers]
        index = [i for part in parts for i in part]
        target = torch.from_numpy(self.dataset.targets[index].astype(np.int64))
        task = self.dataset.task
        check_target_values(target, TASKS[task].n_classes, name=f"{task} training slices {index}")
        return {"image": torch.from_numpy(self.dataset.images[index]), "target": target, "n_scribbled": len(parts[0])}


def _load_task_data(
    task: str, root: Path, config: TrainConfig, method: MethodConfig, index: int, rank: int, world: int,
    cache_dir: str | Path | None,
) -> TaskData:
    """Load one task's train/val splits, pick the scribbled subjects and build the slice pools.

    The training slices come from the slice cache in ``cache_dir`` (built on the first run:
    :func:`~modelmix_lite.data.slices.cached_slice_dataset`); the validation cases are read whole.
    """
    train_files = list_cases(task, root, "train")
    if not train_files:
        raise DataError(f"{find_dataset_root(task, root)}: the {task} train split has no cases; "
                        "training needs its scribbled subjects")
    subjects = [f.subject for f in train_files]
    if method.target == "label":
        split = {"labelled": subjects, "unlabeled": []}
        dataset = cached_slice_dataset(train_files, cache_dir, config.size, target="label",
                                       spacing_mm=config.spacing_mm)
    else:
        scribbled, unlabeled = few_scribble_split(subjects, config.n_scribbled, config.seed)
        split = {"scribbled": scribbled, "unlabeled": unlabeled}
        dataset = cached_slice_dataset(train_files, cache_dir, config.size, "scribble", scribbled,
                                       spacing_mm=config.spacing_mm)
    n_unlabeled = round(config.batch_size * config.unlabeled_fraction) if method.uses_unlabeled else 0
    if config.batch_size - n_unlabeled < 1:
        raise ConfigError(f"batch_size: {config.batch_size} leaves no scribbled slice after unlabeled_fraction")
    pools = {"scribbled": np.flatnonzero(dataset.annotated)}
    sizes = {"scribbled": config.batch_size - n_unlabeled}
    if n_unlabeled:
        pools["unlabeled"], sizes["unlabeled"] = np.flatnonzero(~dataset.annotated), n_unlabeled
    if any(size % world for size in sizes.values()):
        raise ConfigError(f"batch_size: {sizes} slices per task do not split evenly over {world} processes")
    samplers = {}
    for k, (kind, pool) in enumerate(pools.items()):
        if len(pool) == 0:
            raise ConfigError(f"--tasks: {task} has no {kind} training slices (check n_scribbled and the data)")
        seed = _derive_seed(config.seed, _SAMPLER, index, k)
        samplers[kind] = InfiniteSampler(pool, sizes[kind], seed, rank, world)
    if method.mixes_images and config.batch_size // world < 2:
        raise ConfigError(f"batch_size: mixup needs >= 2 slices per process, got {config.batch_size // world}")
    val_cases = load_split(task, root, "val") if config.val_every else []
    if config.val_every and not val_cases:
        raise DataError(f"{find_dataset_root(task, root)}: the {task} val split has no cases; validation needs "
                        "them (or set val_every=0)")
    prior = class_prior(load_split(task, root, config.prior_split), task, config.prior_split) \
        if method.needs_prior else None
    return TaskData(dataset, samplers, val_cases, split, prior)


def _prepare(batch: Mapping, generator: torch.Generator, config: TrainConfig, device: torch.device) -> dict:
    """Model input (3 channels), optional augmentation, device and memory format; no host sync.

    The CPU batch is moved by :func:`~modelmix_lite.perturb.to_device` (pinned, then ``non_blocking``).
    """
    image = as_model_input(to_device(batch["image"], device))
    target = to_device(batch["target"], device)
    if config.augment:
        image, (target,) = augment(image, [target], generator)
    if config.channels_last and device.type == "cuda":
        image = image.contiguous(memory_format=torch.channels_last)
    return {"image": image, "target": target, "n_scribbled": batch["n_scribbled"]}


# ----------------------------------------------------------------------------------------------
# Random state (checkpoint files: :mod:`modelmix_lite.checkpoints`)
# ----------------------------------------------------------------------------------------------


def _rng_state(generators: Mapping[str, torch.Generator]) -> dict:
    """This process's random state: python, numpy, torch CPU (+ CUDA) and the named generators."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping, generators: Mapping[str, torch.Generator]) -> None:
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for key, g in generators.items():
        g.set_state(state["generators"][key])


def _gather(obj: object, world: int) -> list:
    """``obj`` from every rank (a one-element list without DDP)."""
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def replica_digest(module: nn.Module) -> Tensor:
    """``(P,)`` float64: the sum of each parameter tensor — equal across DDP ranks that stayed in sync."""
    return torch.stack([p.detach().double().sum().cpu() for p in module.parameters()])


# ----------------------------------------------------------------------------------------------
# Logging
# ----------------------------------------------------------------------------------------------


class TermMeter:
    """Device-side running sums of the loss terms and the first step at which each went non-finite.

    ``update`` never syncs with the host; :meth:`read` does, once per log interval (averaging over DDP
    ranks), so a NaN/Inf is detected at the next log/checkpoint boundary but reported with its exact step.
    """

    def __init__(self, names: Sequence[str], device: torch.device):
        self.names = list(names)
        self.sums = torch.zeros(len(self.names), dtype=torch.float64, device=device)
        self.first_bad = torch.full((len(self.names),), -1, dtype=torch.long, device=device)
        self.count = 0

    def update(self, step: int, values: Sequence[Tensor]) -> None:
        v = torch.stack([t.detach().double() for t in values])
        self.sums += v
        self.first_bad = torch.where(~torch.isfinite(v) & (self.first_bad < 0), step, self.first_bad)
        self.count += 1

    def read(self, world: int) -> tuple[dict[str, float], tuple[int, str] | None]:
        """Mean of each term since the last read, and ``(step, term)`` of the first non-finite value or None."""
        sums, bad = self.sums.clone(), torch.where(self.first_bad < 0, torch.iinfo(torch.long).max, self.first_bad)
        if world > 1:
            dist.all_reduce(sums)
            dist.all_reduce(bad, op=dist.ReduceOp.MIN)
            sums /= world
        means = (sums / max(self.count, 1)).tolist()
        bad_list = bad.tolist()
        self.sums.zero_()
        self.count = 0
        first = min(range(len(bad_list)), key=bad_list.__getitem__)
        failure = None if bad_list[first] == torch.iinfo(torch.long).max else (bad_list[first], self.names[first])
        return dict(zip(self.names, means)), failure


def plot_training_curves(log_path: str | Path, out_path: str | Path) -> Path:
    """Plot the loss terms and the validation Dice of a ``log.jsonl`` against the step; save as an image."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_dice" in r]
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_val = fig.subplots(1, 2)
    names = [k for k in (train_rows[0] if train_rows else {}) if k not in ("step", "time", "steps_per_s")]
    for name in names:
        ax_loss.plot([r["step"] for r in train_rows], [r[name] for r in train_rows], label=name,
                     lw=2.5 if name == "loss" else 1.2)
    ax_loss.set(xlabel="step", ylabel="loss term", title="training loss (Eq. 9 and its terms)")
    if names:
        ax_loss.legend(fontsize=7, ncol=2)
    val_keys = [k for k in (val_rows[0] if val_rows else {}) if k.startswith("val_")]
    for key in val_keys:
        ax_val.plot([r["step"] for r in val_rows], [r[key] for r in val_rows], "o-", label=key,
                    lw=2.5 if key == "val_dice" else 1.2)
    ax_val.set(xlabel="step", ylabel="mean Dice", title="validation Dice", ylim=(0, 1))
    if val_keys:
        ax_val.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    return Path(out_path)


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------


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


_RESUME_FREE = ("steps", "epochs", "log_every", "val_every", "ckpt_every", "device", "compile")
"""Fields a resumed run may change: they do not alter the trajectory of the parameters (``steps`` and ``epochs``
only with the constant learning rate: the cosine schedule depends on the run's length)."""


def _read_run_config(path: Path) -> dict:
    """A run's ``config.json`` record (``method``, ``tasks``, ``config``); :class:`ConfigError` naming the file if it
    is missing, not JSON or not such a record."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; the run directory was not written by train") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err}); cannot resume from it") from None
    if not (isinstance(record, dict) and isinstance(record.get("method"), str) and isinstance(record.get("tasks"), list)
            and isinstance(record.get("config"), dict)):
        raise ConfigError(f"{path}: not a run configuration (expected method, tasks and config); cannot resume")
    return record


def _check_run_dir(out: Path, config: TrainConfig, method: str, tasks: list[str], overwrite: bool,
                     resume: bool) -> None:
    """Check the run directory against the flags (every rank, no writes); raise ConfigError on a clash."""
    exists = rundir.has_content(out)
    if resume:
        if not (out / "last.pt").is_file():
            raise ConfigError(f"{out}: nothing to resume (no last.pt)")
        recorded = _read_run_config(out / "config.json")
        if (recorded["method"], recorded["tasks"]) != (method, tasks):
            raise ConfigError(
                f"{out}: run was {recorded['method']} on {','.join(recorded['tasks'])}, "
                f"not {method} on {','.join(tasks)}"
            )
        old, new = recorded["config"], config_to_dict(config)
        free = _RESUME_FREE if config.lr_schedule == "constant" else _RESUME_FREE[2:]  # the decay needs the length
        changed = [k for k in new if k not in free and old.get(k) != new[k]]
        if changed:
            raise ConfigError(f"{out}: cannot resume with changed {', '.join(changed)} (see config.json)")
    elif exists:
        if not overwrite:
            raise ConfigError(f"{out}: run directory exists; pass --overwrite to replace it or --resume to continue")
        if not rundir.is_run_dir(out):
            raise ConfigError(f"{out}: not a run directory written by train (no {rundir.MARKER}); "
                              "refusing to delete it")


def _summed_terms(means: Mapping[str, float]) -> dict[str, str]:
    """Progress-bar view: each term summed over tasks (``inv/myops + inv/mscmr -> inv``), loss first."""
    out = {"loss": means["loss"]}
    for key, value in means.items():
        if key != "loss":
            name = key.split("/")[0]
            out[name] = out.get(name, 0.0) + value
    return {k: f"{v:.3f}" for k, v in out.items()}


def _validate(objective: ModelMixObjective, data: Mapping[str, TaskData], config: TrainConfig,
              device: torch.device) -> dict[str, float]:
    """Mean 3-D Dice over the validation cases and structures of each task, and ``val_dice``, their mean."""
    result = {}
    for task, td in data.items():
        rows = evaluate_cases(objective.models.models[task], td.val_cases, task, config.size, device, progress=False,
                              spacing_mm=config.spacing_mm)
        result[f"val_{task}"] = float(rows["dice"].mean())
    result["val_dice"] = float(np.mean(list(result.values())))
    return result


def build_objective(
    config: TrainConfig, method: MethodConfig, tasks: Sequence[str], device: torch.device, rank: int = 0,
    priors: Mapping[str, Tensor] | None = None,
) -> ModelMixObjective:
    """The task models (seeded by ``config.seed``) inside the objective, on ``device``; seeds the dropout stream.

    ``priors``: each task's class ratio, for the PU baselines (see :class:`ModelMixObjective`).
    """
    torch.manual_seed(_derive_seed(config.seed, _DROPOUT, rank))  # dropout draws from the global torch RNG
    models = TaskModelSet(tasks, config.base, None if config.core.dropout == "none" else config.core.dropout,
                          config.norm, config.core.identical_init, method.shared_encoder,
                          torch.Generator().manual_seed(config.seed), aux_decoder=method.aux_decoder,
                          encoder_bn=config.core.encoder_bn)
    seed = _derive_seed(config.seed, _OBJECTIVE, rank)
    core = config.core.with_physical_cutout(config.fov_mm)
    objective = ModelMixObjective(models, method, core, seed, config.compile, priors).to(device)
    if config.channels_last and device.type == "cuda":
        objective.to(memory_format=torch.channels_last)
    return objective


def _start_run_dir(out: Path, method: MethodConfig, tasks: list[str], config: TrainConfig,
                   data: Mapping[str, TaskData]) -> None:
    """(Re)create ``out`` (marked as a run directory, its lock kept) with ``config.json`` and ``split.json``."""
    rundir.reset(out)
    record = {"method": method.name, "tasks": tasks, "config": config_to_dict(config)}
    (out / "config.json").write_text(json.dumps(record, indent=2))
    (out / "split.json").write_text(json.dumps({t: td.split for t, td in data.items()}, indent=2))


def _truncate_log(path: Path, step: int) -> None:
    """Drop the log rows after ``step`` (written between the last checkpoint and a kill: the resumed run redoes them)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


def _last_good(out: Path) -> str:
    """``last.pt`` and its step, for the non-finite errors ("none written yet" before the first checkpoint)."""
    path = out / "last.pt"
    return f"{path} (step {load_checkpoint(path)['step']})" if path.is_file() else "none written yet"


def _restore(path: Path, objective: nn.Module, optimizer: torch.optim.Optimizer, data: Mapping[str, TaskData],
             generators: Mapping[str, torch.Generator], rank: int, world: int) -> tuple[int, float]:
    """Load ``last.pt`` into the objective, optimizer, samplers and random streams; return ``(step, best)``."""
    ckpt = load_checkpoint(path)
    if len(ckpt["rng"]) != world:
        raise ConfigError(f"{path}: written by {len(ckpt['rng'])} processes; resume with as many, not {world}")
    objective.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    for task, td in data.items():
        for kind, sampler in td.samplers.items():
            sampler.load_state_dict(ckpt["samplers"][task][kind])
    _set_rng_state(ckpt["rng"][rank], generators)
    return int(ckpt["step"]), float(ckpt["best"])


def train(
    config: TrainConfig,
    data_root: str | Path,
    out_dir: str | Path,
    method: str | MethodConfig,
    tasks: str | Sequence[str],
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> Path:
    """Train ``method`` on ``tasks`` from ``data_root``; write the run to ``out_dir`` and return it.

    The training slices are cached in ``cache_dir`` (None: :func:`~modelmix_lite.data.slices.default_cache_dir`,
    ``$MODELMIX_LITE_CACHE`` or ``~/.cache/modelmix_lite/slices``), so only the first run on the data decodes
    its training volumes (validation cases are still read each run).

    Under ``torch.distributed`` (initialised by the caller, e.g. :func:`main_train` under torchrun) the
    objective is wrapped in DDP, every task batch is sharded over the ranks and only rank 0 writes.
    Non-finite losses are detected at each log and checkpoint boundary and raise FloatingPointError
    naming the first bad step and term; ``last.pt`` then still holds the last good state.

    The run directory is locked for the whole run (:func:`~modelmix_lite.rundir.locked`): a second training
    into the same ``out_dir`` is refused, and ``overwrite`` deletes only a directory that ``train`` made.

    Raises:
        ConfigError: unknown method/task, a run directory clash (another training holds it, or it exists
            without ``overwrite``/``resume``), or options that do not fit the data.
        DataError: unreadable data.
        FloatingPointError: a non-finite loss.
    """
    distributed = dist.is_available() and dist.is_initialized()
    if distributed and dist.get_rank() != 0:  # rank 0 holds the lock for the process group
        return _train(config, data_root, out_dir, method, tasks, overwrite, resume, progress, cache_dir)
    with rundir.locked(out_dir):
        return _train(config, data_root, out_dir, method, tasks, overwrite, resume, progress, cache_dir)


def _train(
    config: TrainConfig,
    data_root: str | Path,
    out_dir: str | Path,
    method: str | MethodConfig,
    tasks: str | Sequence[str],
    overwrite: bool,
    resume: bool,
    progress: bool,
    cache_dir: str | Path | None,
) -> Path:
    """:func:`train` inside the run directory's lock."""
    method = get_method(method) if isinstance(method, str) else method
    tasks = [t.strip().lower() for t in (tasks.split(",") if isinstance(tasks, str) else tasks)]
    for task in tasks:
        if task not in TASKS:
            raise ConfigError(f"--tasks: unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    check_method_tasks(method, tasks)
    out, root = Path(out_dir), Path(data_root)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    _check_run_dir(out, config, method.name, tasks, overwrite, resume)
    if resume and (mismatch := check_trained_data(out, root, tasks)):
        raise ConfigError(f"{mismatch}; resume with the same --data")
    if distributed:
        dist.barrier()

    device = pick_device(config.device)
    data = {t: _load_task_data(t, root, config, method, k, rank, world, cache_dir) for k, t in enumerate(tasks)}
    steps = config.steps
    if config.epochs:
        pool = max(sum(len(s.pool) for s in td.samplers.values()) for td in data.values())
        steps = math.ceil(config.epochs * pool / config.batch_size)

    priors = {t: td.prior for t, td in data.items() if td.prior is not None}
    objective = build_objective(config, method, tasks, device, rank, priors)
    optimizer = torch.optim.Adam(objective.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    augment_rng = torch.Generator().manual_seed(_derive_seed(config.seed, _AUGMENT, rank))
    generators = {"objective": objective.generator, "augment": augment_rng}
    step, best = 0, -math.inf
    if resume:
        step, best = _restore(out / "last.pt", objective, optimizer, data, generators, rank, world)
        if rank == 0:
            _truncate_log(out / "log.jsonl", step)
    elif rank == 0:
        _start_run_dir(out, method, tasks, config, data)
        record = {"data_root": str(root), "data_fingerprint": data_fingerprint(root, tasks)}
        (out / DATA_RECORD).write_text(json.dumps(record, indent=2))
    net = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None) \
        if distributed else objective

    def checkpoint_state() -> dict:
        rng = _gather(_rng_state(generators), world)
        return {
            "model": objective.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "best": best,
            "rng": rng,
            "samplers": {t: {k: s.state_dict() for k, s in data[t].samplers.items()} for t in tasks},
            "method": method.name,
            "tasks": tasks,
            "config": config_to_dict(config),
            "replicas": _gather(replica_digest(objective), world),
        }

    def write_log(row: dict) -> None:
        if rank == 0:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    meter: TermMeter | None = None
    bar = tqdm(total=steps, initial=step, desc=f"{method.name} {'+'.join(tasks)}", disable=not progress or rank)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=config.amp and device.type == "cuda")
    tick = time.perf_counter()
    objective.train()
    try:  # the bar is closed on an error too, so the error prints on a line of its own
        while step < steps:
            batches = {t: _prepare(data[t].next_batch(), augment_rng, config, device) for t in tasks}
            with autocast:
                loss, terms = net(batches)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, config)
            try:
                optimizer.step()
            except RuntimeError as err:  # e.g. lr=1e38: the update itself overflows float32
                if "overflow" not in str(err):
                    raise
                raise FloatingPointError(f"non-finite update at step {step + 1}: the optimizer step overflows "
                                         f"(lr {config.lr:g}); last good checkpoint: {_last_good(out)}") from None
            step += 1
            if meter is None:
                meter = TermMeter([*terms, "loss"], device)  # terms first: a NaN is reported by its source
            meter.update(step, [*terms.values(), loss])
            bar.update()
            at_end = step == steps
            if step % config.log_every == 0 or step % config.ckpt_every == 0 or at_end:
                n_steps = meter.count
                means, failure = meter.read(world)
                if failure is not None:
                    raise FloatingPointError(f"non-finite loss at step {failure[0]}: term {failure[1]!r}; "
                                             f"last good checkpoint: {_last_good(out)}")
                now = time.perf_counter()
                write_log({"step": step, **means, "steps_per_s": round(n_steps / max(now - tick, 1e-9), 3)})
                tick = now
                bar.set_postfix(_summed_terms(means), refresh=False)
            if config.val_every and (step % config.val_every == 0 or at_end):
                if rank == 0:
                    scores = _validate(objective, data, config, device)
                    write_log({"step": step, **scores})
                    if scores["val_dice"] > best:
                        best = scores["val_dice"]
                        save_checkpoint({"model": objective.state_dict(), "step": step, "val": scores,
                                         "method": method.name, "tasks": tasks, "config": config_to_dict(config)},
                                        out / "best.pt")
                if distributed:
                    best_list = [best]
                    dist.broadcast_object_list(best_list)
                    best = best_list[0]
            if step % config.ckpt_every == 0 or at_end:
                state = checkpoint_state()
                if rank == 0:
                    save_checkpoint(state, out / "last.pt")
                if len({tuple(d.tolist()) for d in state["replicas"]}) > 1:
                    raise RuntimeError(f"DDP replicas diverged by step {step}: parameter sums differ between ranks")
    finally:
        bar.close()
    if rank == 0 and (out / "log.jsonl").is_file():
        plot_training_curves(out / "log.jsonl", out / "training_curves.png")
    return out


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _epilog() -> str:
    methods = "\n".join(f"  {name:<9} {m.summary}" for name, m in METHODS.items())
    tasks = "\n".join(f"  {name:<9} {spec.title}" for name, spec in TASKS.items())
    profiles = "\n".join(
        f"  {name:<9} steps={'%d epochs' % p.epochs if p.epochs else p.steps}, batch {p.batch_size}/task, "
        f"{p.size}x{p.size}, base {p.base}" for name, p in PROFILES.items()
    )
    return f"methods:\n{methods}\n\ntasks:\n{tasks}\n\nprofiles:\n{profiles}"


def _init_distributed() -> None:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (nccl on CUDA, gloo otherwise)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)


def main_train(argv: Sequence[str]) -> int:
    """``train`` command: parse ``argv``, train, print the run directory; return 0."""
    parser = argparse.ArgumentParser(
        prog="python -m modelmix_lite train",
        description="Train a method on one or more tasks. "
        "Multi-GPU: torchrun --nproc_per_node=N -m modelmix_lite train ...",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", default="modelmix", help="method name (listed below; default modelmix)")
    parser.add_argument("--tasks", default="myops,mscmr", help="comma-separated tasks (default myops,mscmr)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"data root (default {DEFAULT_DATA}; the default phantom is generated there if absent)")
    parser.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    parser.add_argument("--preset", default="paper", help=f"core preset: {', '.join(CORE_PRESETS)} (default paper)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/METHOD_TASKS_PROFILE)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig or CoreConfig field (repeatable), e.g. --set steps=50")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    parser.add_argument("--seed", type=int, default=None, help="random seed (shortcut for --set seed=N)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (shortcut for --set device=...)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="slice cache folder, filled on the first run (default $MODELMIX_LITE_CACHE, "
                        "else ~/.cache/modelmix_lite/slices)")
    args = parser.parse_args(list(argv))

    method = get_method(args.method)
    tasks = [t.strip().lower() for t in args.tasks.split(",") if t.strip()]
    overrides = _split_overrides(args.overrides)
    if args.seed is not None:
        overrides["seed"] = str(args.seed)
    if args.device is not None:
        overrides["device"] = args.device
    config = resolve_config(args.profile, overrides, args.preset)
    out = args.out or Path("runs") / f"{args.method.replace('#', 'ablation')}_{'+'.join(tasks)}_{args.profile}"
    _init_distributed()
    if not args.data.exists() and args.data == DEFAULT_DATA:
        if not dist.is_initialized() or dist.get_rank() == 0:
            ensure_phantom(args.data, progress=not args.quiet)
        if dist.is_initialized():
            dist.barrier()
    run = train(config, args.data, out, method, tasks, args.overwrite, args.resume, progress=not args.quiet,
                cache_dir=args.cache_dir)
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(f"run directory: {run}")
    return 0

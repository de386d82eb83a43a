"""Sampling: few-scribble training data per task, infinite seeded samplers and the batch a step takes.

Every random stream of a run (dropout, objective, augmentation, samplers) has its own seed,
:func:`derive_seed` of the run seed and a stream id (:data:`STREAM_DROPOUT`, ...), so no two share one and a
resumed run draws what the uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor

from .config import TrainConfig
from .data.class_ratio import class_prior
from .data.layout import find_dataset_root, list_cases
from .data.readers import load_split
from .data.slices import SliceDataset, cached_slice_dataset, few_scribble_split
from .data.tasks import TASKS, UNANNOTATED
from .errors import ConfigError, DataError
from .losses import check_target_values
from .methods import MethodConfig
from .models import as_model_input
from .perturb import augment, to_device


class Batch(TypedDict):
    """One task's batch, as :class:`~modelmix_lite.objective.ModelMixObjective` takes it (built only here).

    ``image``: ``(B, C, S, S)`` float32 (``C`` = 3 once :func:`prepare_batch` or :func:`example_batch` made it
    the model input); ``target``: ``(B, S, S)`` int64, ``UNANNOTATED`` where nothing is annotated;
    ``n_scribbled``: the leading rows that are scribbled slices (the rest are unlabeled slices).
    """

    image: Tensor
    target: Tensor
    n_scribbled: int


STREAM_DROPOUT, STREAM_OBJECTIVE, STREAM_AUGMENT, STREAM_SAMPLER = range(4)
"""Stream ids: the first key after the run seed, so no two random streams share a seed."""


def derive_seed(*keys: int) -> int:
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

    def next_batch(self) -> Batch:
        """The next :class:`Batch` of the task's samplers, on the CPU (``image`` as stored: ``C`` channels).

        The target values are checked here, once per batch on the CPU, so the step's losses need not
        (they would read the device back); :class:`DataError` names the task and slices.
        """
        parts = [self.samplers[kind].next() for kind in ("scribbled", "unlabeled") if kind in self.samplers]
        index = [i for part in parts for i in part]
        target = torch.from_numpy(self.dataset.targets[index].astype(np.int64))
        task = self.dataset.task
        check_target_values(target, TASKS[task].n_classes, name=f"{task} training slices {index}")
        return Batch(image=torch.from_numpy(self.dataset.images[index]), target=target, n_scribbled=len(parts[0]))


def load_task_data(
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
        seed = derive_seed(config.seed, STREAM_SAMPLER, index, k)
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


def prepare_batch(batch: Batch, generator: torch.Generator, config: TrainConfig, device: torch.device) -> Batch:
    """Model input (3 channels), optional augmentation, device and memory format; no host sync.

    The CPU batch is moved by :func:`~modelmix_lite.perturb.to_device` (pinned, then ``non_blocking``).
    """
    image = as_model_input(to_device(batch["image"], device))
    target = to_device(batch["target"], device)
    if config.augment:
        image, (target,) = augment(image, [target], generator)
    if config.channels_last and device.type == "cuda":
        image = image.contiguous(memory_format=torch.channels_last)
    return Batch(image=image, target=target, n_scribbled=batch["n_scribbled"])


def example_batch(
    task: str,
    root: str | Path,
    size: int,
    n_scribbled: int = 2,
    n_unlabeled: int = 2,
    n_subjects: int = 5,
    seed: int = 0,
    spacing_mm: float = 0.0,
) -> Batch:
    """A fixed :class:`Batch` of ``task``'s training slices (``image`` with 3 channels), for the tutorials.

    The ``n_subjects`` scribbled subjects are :func:`~modelmix_lite.data.slices.few_scribble_split`'s choice for
    ``seed``, as in training. The first ``n_scribbled`` rows are their slices with the most scribbled classes (ties broken at
    random), the next ``n_unlabeled`` rows random slices of the other subjects (all ``UNANNOTATED``).

    Raises:
        DataError: when there are fewer scribbled or unlabeled slices than asked for.
    """
    cases = load_split(task, root, "train")
    scribbled, _ = few_scribble_split([c.subject for c in cases], n_subjects, seed)
    data = SliceDataset(cases, size, "scribble", scribbled, spacing_mm=spacing_mm)
    rng = np.random.default_rng(seed)
    pools = {"scribbled": np.flatnonzero(data.annotated), "unlabeled": np.flatnonzero(~data.annotated)}
    for (kind, pool), n in zip(pools.items(), (n_scribbled, n_unlabeled)):
        if len(pool) < n:
            raise DataError(f"{root}: {task} has {len(pool)} {kind} training slices, {n} asked for")
    shuffled = rng.permutation(pools["scribbled"])
    n_classes = [len(np.setdiff1d(data.targets[i], [UNANNOTATED])) for i in shuffled]
    index = [*shuffled[np.argsort(n_classes, kind="stable")[::-1][:n_scribbled]],
             *rng.choice(pools["unlabeled"], n_unlabeled, replace=False)]
    return Batch(image=as_model_input(torch.from_numpy(data.images[index])),
                 target=torch.from_numpy(data.targets[index].astype(np.int64)), n_scribbled=n_scribbled)

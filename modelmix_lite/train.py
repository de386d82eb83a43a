"""Training: the loop, its log and its run directory, DDP (the command line: :mod:`~modelmix_lite.train_command`).

One iteration draws one batch of every task of the run (:mod:`~modelmix_lite.sampling`), evaluates the
:class:`~modelmix_lite.objective.ModelMixObjective` (all loss terms of all tasks and task pairs), and takes one
Adam step over every parameter. Runs are reproducible: every random draw comes from a seeded generator whose
state is checkpointed (:mod:`~modelmix_lite.checkpoints`), so a resumed CPU run equals the uninterrupted one bit
for bit. The configuration is a :class:`~modelmix_lite.config.TrainConfig`.

Run directory: ``config.json`` (the resolved :class:`~modelmix_lite.config.TrainConfig`, method and tasks),
``split.json`` (the scribbled / unlabeled subjects), ``log.jsonl`` (one row per log interval and per validation),
``last.pt`` (every ``ckpt_every`` steps and at the end), ``best.pt`` (best mean validation Dice) and
``training_curves.png``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import rundir
from .checkpoints import load_checkpoint, replica_digest, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, config_to_dict, device_name, pick_device
from .data.fingerprint import data_fingerprint
from .data.tasks import TASKS
from .errors import ConfigError
from .evaluate import evaluate_cases
from .files import write_text_atomic
from .methods import MethodConfig, check_method_tasks, get_method
from .objective import ModelMixObjective, build_objective
from .provenance import describe_environment
from .sampling import STREAM_AUGMENT, TaskData, derive_seed, load_task_data, prepare_batch
from .viz.results import plot_training_curves


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


def _gather(obj: object, world: int) -> list:
    """``obj`` from every rank (a one-element list without DDP)."""
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


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


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------


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


def _start_run_dir(out: Path, method: MethodConfig, tasks: list[str], config: TrainConfig,
                   data: Mapping[str, TaskData]) -> None:
    """(Re)create ``out`` (marked as a run directory, its lock kept) with ``config.json`` and ``split.json``."""
    rundir.reset(out)
    record = {"method": method.name, "tasks": tasks, "config": config_to_dict(config)}
    write_text_atomic(out / "config.json", json.dumps(record, indent=2))
    write_text_atomic(out / "split.json", json.dumps({t: td.split for t, td in data.items()}, indent=2))


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
    set_rng_state(ckpt["rng"][rank], generators)
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

    Under ``torch.distributed`` (initialised by the caller, e.g. :func:`~modelmix_lite.train_command.main_train` under torchrun) the
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


@dataclass
class _Session:
    """What one training holds while it runs: the run, its data, the model, the optimizer and the counters."""

    config: TrainConfig
    method: MethodConfig
    tasks: list[str]
    out: Path
    device: torch.device
    rank: int
    world: int
    data: dict[str, TaskData]
    objective: ModelMixObjective
    net: nn.Module
    optimizer: torch.optim.Optimizer
    generators: dict[str, torch.Generator]
    steps: int
    step: int = 0
    best: float = -math.inf

    @property
    def distributed(self) -> bool:
        return self.world > 1 or self.net is not self.objective


def _setup(config: TrainConfig, data_root: str | Path, out_dir: str | Path, method: str | MethodConfig,
           tasks: str | Sequence[str], overwrite: bool, resume: bool, cache_dir: str | Path | None) -> _Session:
    """Check the options and the run directory, load the data, build the objective and optimizer, then resume
    from ``last.pt`` or start the run directory (``config.json``, ``split.json``, ``data.json``)."""
    method = get_method(method) if isinstance(method, str) else method
    tasks = [t.strip().lower() for t in (tasks.split(",") if isinstance(tasks, str) else tasks)]
    for task in tasks:
        if task not in TASKS:
            raise ConfigError(f"--tasks: unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    check_method_tasks(method, tasks)
    out, root = Path(out_dir), Path(data_root)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    rundir.check_run_dir(out, config, method.name, tasks, overwrite, resume)
    if resume and (mismatch := rundir.check_trained_data(out, root, tasks)):
        raise ConfigError(f"{mismatch}; resume with the same --data")
    if distributed:
        dist.barrier()

    device = pick_device(config.device)
    data = {t: load_task_data(t, root, config, method, k, rank, world, cache_dir) for k, t in enumerate(tasks)}
    steps = config.steps
    if config.epochs:
        pool = max(sum(len(s.pool) for s in td.samplers.values()) for td in data.values())
        steps = math.ceil(config.epochs * pool / config.batch_size)
    priors = {t: td.prior for t, td in data.items() if td.prior is not None}
    objective = build_objective(config, method, tasks, device, rank, priors)
    optimizer = torch.optim.Adam(objective.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    augment_rng = torch.Generator().manual_seed(derive_seed(config.seed, STREAM_AUGMENT, rank))
    generators = {"objective": objective.generator, "augment": augment_rng}
    step, best = 0, -math.inf
    if resume:
        step, best = _restore(out / "last.pt", objective, optimizer, data, generators, rank, world)
        if rank == 0:
            rundir.truncate_log(out / rundir.LOG, step)
    elif rank == 0:
        _start_run_dir(out, method, tasks, config, data)
        record = {"data_root": str(Path(root).absolute()), "data_fingerprint": data_fingerprint(root, tasks),
                  "device": device_name(device), "environment": describe_environment()}
        write_text_atomic(out / rundir.DATA_RECORD, json.dumps(record, indent=2))
    net = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None) \
        if distributed else objective  # wrapped after the restore, as DDP broadcasts rank 0's weights
    return _Session(config, method, tasks, out, device, rank, world, data, objective, net, optimizer, generators,
                    steps, step, best)


def _optimizer_step(s: _Session, loss: Tensor) -> None:
    """Backward, the scheduled learning rate, one Adam step; an update that overflows is a FloatingPointError."""
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for group in s.optimizer.param_groups:
        group["lr"] = learning_rate(s.step, s.steps, s.config)
    try:
        s.optimizer.step()
    except RuntimeError as err:  # e.g. lr=1e38: the update itself overflows float32
        if "overflow" not in str(err):
            raise
        raise FloatingPointError(f"non-finite update at step {s.step + 1}: the optimizer step overflows "
                                 f"(lr {s.config.lr:g}); last good checkpoint: {_last_good(s.out)}") from None


def _write_log(s: _Session, row: dict) -> None:
    if s.rank == 0:
        with open(s.out / rundir.LOG, "a") as f:
            f.write(json.dumps(row) + "\n")


def _log_interval(s: _Session, meter: TermMeter, since: float, bar: tqdm) -> None:
    """The interval's mean terms into the log and the bar; a non-finite one is a FloatingPointError naming it."""
    n_steps = meter.count
    means, failure = meter.read(s.world)
    if failure is not None:
        raise FloatingPointError(f"non-finite loss at step {failure[0]}: term {failure[1]!r}; "
                                 f"last good checkpoint: {_last_good(s.out)}")
    _write_log(s, {"step": s.step, **means, "steps_per_s": round(n_steps / max(time.perf_counter() - since, 1e-9), 3)})
    bar.set_postfix(_summed_terms(means), refresh=False)


def _validate_and_keep_best(s: _Session) -> None:
    """Validation Dice into the log (rank 0); a new best mean is saved as ``best.pt`` and shared with the ranks."""
    if s.rank == 0:
        scores = _validate(s.objective, s.data, s.config, s.device)
        _write_log(s, {"step": s.step, **scores})
        if scores["val_dice"] > s.best:
            s.best = scores["val_dice"]
            save_checkpoint({"model": s.objective.state_dict(), "step": s.step, "val": scores,
                             "method": s.method.name, "tasks": s.tasks, "config": config_to_dict(s.config)},
                            s.out / "best.pt")
    if s.distributed:
        best = [s.best]
        dist.broadcast_object_list(best)
        s.best = best[0]


def _checkpoint(s: _Session) -> None:
    """``last.pt``: the whole state (model, optimizer, counters, every random stream and sampler of every rank)."""
    state = {
        "model": s.objective.state_dict(),
        "optimizer": s.optimizer.state_dict(),
        "step": s.step,
        "best": s.best,
        "rng": _gather(rng_state(s.generators), s.world),
        "samplers": {t: {k: sampler.state_dict() for k, sampler in s.data[t].samplers.items()} for t in s.tasks},
        "method": s.method.name,
        "tasks": s.tasks,
        "config": config_to_dict(s.config),
        "replicas": _gather(replica_digest(s.objective), s.world),
    }
    if s.rank == 0:
        save_checkpoint(state, s.out / "last.pt")
    if len({tuple(d.tolist()) for d in state["replicas"]}) > 1:
        raise RuntimeError(f"DDP replicas diverged by step {s.step}: parameter sums differ between ranks")


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
    """:func:`train` inside the run directory's lock: set up, then step, log, validate, checkpoint."""
    s = _setup(config, data_root, out_dir, method, tasks, overwrite, resume, cache_dir)
    meter: TermMeter | None = None
    bar = tqdm(total=s.steps, initial=s.step, desc=f"{s.method.name} {'+'.join(s.tasks)}",
               disable=not progress or s.rank)
    autocast = torch.autocast(s.device.type, torch.bfloat16, enabled=config.amp and s.device.type == "cuda")
    started = since = time.perf_counter()
    s.objective.train()
    try:  # the bar is closed on an error too, so the error prints on a line of its own
        while s.step < s.steps:
            batches = {t: prepare_batch(s.data[t].next_batch(), s.generators["augment"], config, s.device)
                       for t in s.tasks}
            with autocast:
                loss, terms = s.net(batches)
            _optimizer_step(s, loss)
            s.step += 1
            if meter is None:
                meter = TermMeter([*terms, "loss"], s.device)  # terms first: a NaN is reported by its source
            meter.update(s.step, [*terms.values(), loss])
            bar.update()
            at_end = s.step == s.steps
            if s.step % config.log_every == 0 or s.step % config.ckpt_every == 0 or at_end:
                _log_interval(s, meter, since, bar)
                since = time.perf_counter()
            if config.val_every and (s.step % config.val_every == 0 or at_end):
                _validate_and_keep_best(s)
            if s.step % config.ckpt_every == 0 or at_end:
                _checkpoint(s)
    finally:
        bar.close()
    if s.rank == 0 and (s.out / rundir.LOG).is_file():
        plot_training_curves(rundir.read_log(s.out)).savefig(s.out / rundir.CURVES, dpi=110)
        record = {**rundir.Run(s.out).provenance, "steps": s.step, "wall_s": round(time.perf_counter() - started, 1)}
        write_text_atomic(s.out / rundir.DATA_RECORD, json.dumps(record, indent=2))
    return s.out


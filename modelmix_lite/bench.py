"""``python -m modelmix_lite bench`` (its output and command line: :mod:`~modelmix_lite.bench_command`): how fast one training step of each method runs, and what it costs.

Per method the objective of :mod:`modelmix_lite.train` (:class:`~modelmix_lite.objective.ModelMixObjective`) is
built as a training run builds it and timed on synthetic batches of the right shapes (no data loading):
one step is forward + backward + Adam step. All methods are built first and then timed round-robin, so that
a busy machine slows each of them alike. Reported per method: the median step time (wall, and on a CPU
device also process CPU time), samples/s, peak memory, FLOPs per step (``torch.utils.flop_counter.
FlopCounterMode`` on one step), achieved FLOP/s, seconds per GFLOP, that per-FLOP cost relative to ``#1``
(ModelMix's overhead target: ``#4`` within :data:`OVERHEAD_TARGET` of ``#1``, i.e. a virtual model costs
only its FLOPs), the fraction of the device's dense bf16 peak (CUDA, known devices) and inference slices/s. The data path is measured once: building a
:class:`~modelmix_lite.data.slices.SliceDataset` from the phantom vs loading it from its cache, and a
``DataLoader`` over each.

A *method spec* is ``NAME[:PRESET]``: a method of :data:`~modelmix_lite.methods.METHODS` and a core preset
of :data:`~modelmix_lite.methods.CORE_PRESETS` (default ``paper``), e.g. ``#4:released_code``.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.flop_counter import FlopCounterMode

from .config import TrainConfig, device_name, pick_device
from .data.readers import load_split
from .data.slices import SliceDataset
from .data.tasks import TASKS, UNANNOTATED, get_task
from .errors import ConfigError
from .methods import CORE_PRESETS, METHODS, CoreConfig, MethodConfig, check_method_tasks
from .objective import build_objective
from .sampling import Batch
from .provenance import git_state

DEFAULT_METHODS: tuple[str, ...] = ("#1", "#2", "#4:paper", "#4:released_code", "fullsup")
"""Method specs benchmarked by default: the Table 1 baseline, L_inv alone, ModelMix under both presets, FullSup."""

OVERHEAD_TARGET: float = 1.15
"""``#4``'s seconds per FLOP may exceed ``#1``'s by at most this factor."""

PEAK_TFLOPS: tuple[tuple[str, float, str], ...] = (
    (r"H100 PCIe", 756.0, "bf16"),
    (r"H100", 989.0, "bf16"),  # SXM ("NVIDIA H100 80GB HBM3")
    (r"H200", 989.0, "bf16"),
    (r"A100", 312.0, "bf16"),
    (r"RTX 3090", 71.0, "bf16"),
    (r"\bL4\b", 121.0, "bf16"),
    (r"\bT4\b", 65.0, "fp16"),
)
"""Dense tensor-core peak per device-name pattern (first match wins): ``(regex, TFLOP/s, dtype)``."""


UNLABELED_FRACTION: float = TrainConfig.unlabeled_fraction
"""Share of unlabeled rows in a batch of a method with an unsupervised term (as in training)."""

SCRIBBLE_DENSITY: float = 0.05
"""Share of annotated pixels in a synthetic scribble target."""


# ----------------------------------------------------------------------------------------------
# Machine description
# ----------------------------------------------------------------------------------------------


def peak_tflops(gpu: str) -> tuple[float, str] | None:
    """``(dense TFLOP/s, dtype)`` of the CUDA device named ``gpu`` from :data:`PEAK_TFLOPS`, or None if unknown."""
    for pattern, tflops, dtype in PEAK_TFLOPS:
        if re.search(pattern, gpu):
            return tflops, dtype
    return None


def _host() -> str:
    """CPU model and core count, e.g. ``"AMD EPYC, 2 cores, 2 torch threads"``."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = names[0].strip() if names else model
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def round_robin_medians(
    fns: Sequence[Callable[[], object]], steps: int, device: torch.device
) -> list[tuple[float, float]]:
    """Median wall and median process-CPU seconds of each ``fn()`` over ``steps`` rounds that call every ``fn`` once.

    Interleaving the functions gives each the same share of whatever else the machine does. On CUDA every
    call is bracketed by ``torch.cuda.synchronize``. The CPU time (all threads of this process) leaves out
    the time other processes hold the cores, so on a shared machine it is the steadier cost measure.
    """
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(steps):
        for k, fn in enumerate(fns):
            _sync(device)
            tick, cpu_tick = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            wall[k].append(time.perf_counter() - tick)
            cpu[k].append(time.process_time() - cpu_tick)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu)]


def _memory_mib(device: torch.device) -> float:
    """CUDA: ``max_memory_allocated``; elsewhere the process's peak RSS (monotone over the whole run)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB


# ----------------------------------------------------------------------------------------------
# One method
# ----------------------------------------------------------------------------------------------


def parse_method_spec(spec: str) -> tuple[MethodConfig, CoreConfig]:
    """``"NAME[:PRESET]"`` -> (method, core preset); :class:`ConfigError` naming ``--methods`` otherwise."""
    name, _, preset = spec.partition(":")
    preset = preset or "paper"
    if name not in METHODS:
        raise ConfigError(f"--methods: unknown method {name!r} in {spec!r}; known methods: {', '.join(METHODS)}")
    if preset not in CORE_PRESETS:
        raise ConfigError(
            f"--methods: unknown core preset {preset!r} in {spec!r}; known presets: {', '.join(CORE_PRESETS)}"
        )
    return METHODS[name], CORE_PRESETS[preset]


def synthetic_batches(
    method: MethodConfig, tasks: Sequence[str], batch: int, size: int, device: torch.device,
    channels_last: bool = True, seed: int = 0,
) -> dict[str, Batch]:
    """Random training batches shaped as :meth:`~modelmix_lite.objective.ModelMixObjective.forward` takes them.

    Per task: ``image`` ``(B, 3, S, S)`` uniform in [0, 1); ``target`` ``(B, S, S)`` int64: full labels for
    ``target="label"`` methods, else :data:`SCRIBBLE_DENSITY` of the scribbled rows annotated with random
    classes and the unlabeled rows (:data:`UNLABELED_FRACTION` of the batch, for methods that use them)
    all :data:`UNANNOTATED`. Images are channels-last on CUDA if ``channels_last`` (as ``train`` prepares them).
    """
    generator = torch.Generator().manual_seed(seed)
    n_unlabeled = round(batch * UNLABELED_FRACTION) if method.uses_unlabeled else 0
    batches = {}
    for task in tasks:
        image = torch.rand(batch, 3, size, size, generator=generator)
        target = torch.randint(get_task(task).n_classes, (batch, size, size), generator=generator)
        if method.target != "label":
            hidden = torch.rand(batch, size, size, generator=generator) >= SCRIBBLE_DENSITY
            hidden[batch - n_unlabeled :] = True
            target = target.masked_fill(hidden, UNANNOTATED)
        if channels_last and device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
        batches[task] = Batch(image=image.to(device), target=target.to(device), n_scribbled=batch - n_unlabeled)
    return batches


class MethodBench:
    """One method spec's objective, built by :func:`modelmix_lite.objective.build_objective` as a training run
    builds it (bf16 autocast and channels-last on CUDA), on synthetic batches.

    Construction counts the FLOPs of one step, runs ``warmup`` steps and reads the peak memory (on CUDA:
    the peak above what was allocated before, i.e. this method's own models, optimizer state and
    activations). With ``compile`` the host and mixup passes are compiled (``TrainConfig.compile``).
    """

    def __init__(self, spec: str, tasks: Sequence[str], width: int, size: int, batch: int, warmup: int,
                 device: torch.device, compile: bool = False):
        method, core = parse_method_spec(spec)
        check_method_tasks(method, list(tasks))
        config = TrainConfig(batch_size=batch, size=size, base=width, compile=compile, core=core)
        self.spec, self.method, self.tasks, self.device = spec, method, list(tasks), device
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.objective = build_objective(config, method, tasks, device)
        self.optimizer = torch.optim.Adam(self.objective.parameters(), lr=config.lr)
        self.batches = synthetic_batches(method, tasks, batch, size, device, config.channels_last)
        self.autocast = torch.autocast(device.type, torch.bfloat16, enabled=config.amp and device.type == "cuda")
        self.samples = batch * len(self.tasks)
        with FlopCounterMode(display=False) as counter:
            self.train_step()
        self.flops: int = counter.get_total_flops()
        for _ in range(warmup):
            self.train_step()
        _sync(device)
        self.peak_memory_mib = _memory_mib(device) - before / 2**20

    def train_step(self) -> None:
        """Forward (Eq. 9 over all tasks and pairs), backward, Adam step."""
        self.objective.train()
        with self.autocast:
            loss, _ = self.objective(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def infer(self) -> None:
        """Every task model on its batch, eval mode, no autograd."""
        self.objective.eval()
        with torch.inference_mode(), self.autocast:
            for task in self.tasks:
                self.objective.models(task, self.batches[task]["image"])

    def result(self, step_s: float, step_cpu_s: float, infer_s: float) -> dict:
        """The record of this method from its median step times (see the module docstring)."""
        gflops, on_cpu = self.flops / 1e9, self.device.type == "cpu"
        peak = peak_tflops(device_name(self.device)) if self.device.type == "cuda" else None
        return {
            "method": self.method.name,
            "preset": self.spec.partition(":")[2] or "paper",
            "step_s": step_s,
            "step_cpu_s": step_cpu_s if on_cpu else None,
            "samples_per_s": self.samples / step_s,
            "peak_memory_mib": self.peak_memory_mib,
            "flops_per_step": self.flops,
            "tflop_per_s": self.flops / step_s / 1e12,
            "s_per_gflop": step_s / gflops,
            "cpu_s_per_gflop": step_cpu_s / gflops if on_cpu else None,
            "fraction_of_peak": None if peak is None else self.flops / step_s / 1e12 / peak[0],
            "inference_slices_per_s": self.samples / infer_s,
        }


def bench_methods(
    specs: Sequence[str], tasks: Sequence[str], width: int, size: int, batch: int, steps: int, warmup: int,
    device: torch.device, compile: bool = False,
) -> dict[str, dict]:
    """Build every method (:class:`MethodBench`), then time their training steps round-robin over ``steps``
    rounds, then their inference (after ``warmup`` untimed rounds); return ``{spec: record}``."""
    benches = [MethodBench(spec, tasks, width, size, batch, warmup, device, compile) for spec in specs]
    train_times = round_robin_medians([b.train_step for b in benches], steps, device)
    for _ in range(warmup):
        for b in benches:
            b.infer()
    infer_times = round_robin_medians([b.infer for b in benches], steps, device)
    return {b.spec: b.result(*train, infer[0]) for b, train, infer in zip(benches, train_times, infer_times)}


def overhead_ratios(results: dict[str, dict], field: str = "s_per_gflop") -> dict[str, float | None]:
    """Each method's ``field`` (seconds per FLOP) divided by that of ``#1`` with the same core preset, or of
    the first ``#1`` benchmarked when there is none with that preset; None where there is no ``#1`` or no value."""
    baselines: dict[str, float | None] = {}
    for r in results.values():
        if r["method"] == "#1":
            baselines.setdefault(r["preset"], r[field])
    first = next(iter(baselines.values()), None)
    ratios = {}
    for spec, r in results.items():
        base = baselines.get(r["preset"], first)
        ratios[spec] = None if base is None or r[field] is None else r[field] / base
    return ratios


# ----------------------------------------------------------------------------------------------
# The data path
# ----------------------------------------------------------------------------------------------


def _loader_seconds(dataset: SliceDataset, batch: int, steps: int, warmup: int, workers: int) -> float:
    """Wall seconds of ``steps`` batches of a shuffling ``DataLoader`` over ``dataset``, after ``warmup`` batches."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch * (warmup + steps),
                            generator=torch.Generator().manual_seed(0))
    batches = iter(DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers))
    for _ in range(warmup):
        next(batches)
    tick = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return time.perf_counter() - tick


def bench_data(
    tasks: Sequence[str], size: int, batch: int, steps: int, warmup: int, data_root: str | Path | None,
    workers: int,
) -> dict:
    """Build each task's training :class:`SliceDataset` from ``data_root`` (default: a fresh ``smoke`` phantom
    in a temporary directory), save and reload its cache, and time a ``DataLoader`` over both.

    Returns ``{"data_root", "workers", "n_slices", "phantom": {...}, "cache": {...}}``, each source with
    ``build_s`` (load + normalise + fit, or read the cache; all tasks), ``build_slices_per_s`` and
    ``loader_slices_per_s`` (``workers`` worker processes, batches of ``batch``).
    """
    from .data.phantom import generate_phantom

    with tempfile.TemporaryDirectory(prefix="modelmix_bench_") as tmp:
        root = Path(data_root) if data_root is not None else Path(tmp) / "phantom"
        if data_root is None:
            generate_phantom(root, "smoke", 0, tasks=tuple(tasks), progress=False)
        build = {"phantom": 0.0, "cache": 0.0}
        loader = {"phantom": 0.0, "cache": 0.0}
        n_slices = 0
        for task in tasks:
            tick = time.perf_counter()
            dataset = SliceDataset(load_split(task, root, "train"), size, target="scribble")
            build["phantom"] += time.perf_counter() - tick
            cache = Path(tmp) / f"{task}.npz"
            dataset.save_cache(cache)
            tick = time.perf_counter()
            cached = SliceDataset.from_cache(cache, dataset.fingerprint())
            build["cache"] += time.perf_counter() - tick
            for source, ds in (("phantom", dataset), ("cache", cached)):
                loader[source] += _loader_seconds(ds, batch, steps, warmup, workers)
            n_slices += len(dataset)
    return {
        "data_root": str(data_root) if data_root is not None else "smoke phantom (seed 0, temporary)",
        "workers": workers,
        "n_slices": n_slices,
        **{
            source: {
                "build_s": build[source],
                "build_slices_per_s": n_slices / build[source],
                "loader_slices_per_s": batch * steps * len(tasks) / loader[source],
            }
            for source in ("phantom", "cache")
        },
    }


# ----------------------------------------------------------------------------------------------
# The whole benchmark
# ----------------------------------------------------------------------------------------------


def _check_settings(width: int, size: int, batch: int, tasks: Sequence[str], steps: int, warmup: int) -> None:
    for option, value, low in (("--width", width, 1), ("--batch", batch, 2), ("--steps", steps, 1),
                               ("--warmup", warmup, 0)):
        if value < low:
            raise ConfigError(f"{option}: must be >= {low}, got {value}")
    if size < 16 or size % 16:
        raise ConfigError(f"--size: must be a positive multiple of 16 (four 2x2 poolings), got {size}")
    for task in tasks:
        if task not in TASKS:
            raise ConfigError(f"--tasks: unknown task {task!r}; known tasks: {', '.join(TASKS)}")


def run_bench(
    width: int = 16,
    size: int = 128,
    batch: int = 8,
    tasks: Sequence[str] = ("myops", "mscmr"),
    methods: Sequence[str] = DEFAULT_METHODS,
    steps: int = 10,
    warmup: int = 3,
    device: str = "auto",
    compile: bool = False,
    data_root: str | Path | None = None,
) -> dict:
    """Benchmark ``methods`` (specs ``NAME[:PRESET]``) on ``tasks`` and the data path; return the JSON record.

    Args:
        width: UNet base channels; size: slice side ``S``; batch: slices per task per step.
        steps, warmup: timed and untimed repetitions of every measurement.
        device: ``"auto"`` or a torch device string; compile: ``TrainConfig.compile`` (host and mixup passes).
        data_root: dataset root for the data-path measurement (default: a temporary ``smoke`` phantom).

    Returns:
        ``{"device", "torch", "commit", "dirty", "host", "settings", "results": {spec: {...}}, "overhead",
        "data", "created"}``. ``overhead`` holds each ``#4`` spec's seconds-per-FLOP ratio to ``#1`` (its
        ``basis``: process CPU time on a CPU device, wall time elsewhere), the target and whether all are
        within it.

    Raises:
        ConfigError: on a bad option, an unknown method spec, or a method that needs more tasks.
        DataError: if ``data_root`` does not hold the tasks' training data.
    """
    tasks = [t.strip().lower() for t in tasks]
    _check_settings(width, size, batch, tasks, steps, warmup)
    for spec in methods:
        check_method_tasks(parse_method_spec(spec)[0], tasks)
    dev = pick_device(device)
    workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    data = bench_data(tasks, size, batch, steps, warmup, data_root, workers)  # first: a bad root fails fast
    results = bench_methods(methods, tasks, width, size, batch, steps, warmup, dev, compile)
    for field, key in (("s_per_gflop", "s_per_flop_vs_#1"), ("cpu_s_per_gflop", "cpu_s_per_flop_vs_#1")):
        for spec, ratio in overhead_ratios(results, field).items():
            results[spec][key] = ratio
    basis = "cpu_s_per_flop_vs_#1" if dev.type == "cpu" else "s_per_flop_vs_#1"
    ratios = {spec: r[basis] for spec, r in results.items() if r["method"] == "#4"}
    known = [v for v in ratios.values() if v is not None]
    commit, dirty = git_state() or (None, None)
    peak = peak_tflops(device_name(dev)) if dev.type == "cuda" else None
    return {
        "device": device_name(dev),
        "torch": torch.__version__,
        "commit": commit,
        "dirty": dirty,
        "host": _host(),
        "settings": {
            "width": width, "size": size, "batch": batch, "tasks": tasks, "methods": list(methods),
            "steps": steps, "warmup": warmup, "device": str(dev), "compile": compile,
            "amp_bf16": dev.type == "cuda", "channels_last": dev.type == "cuda",
            "memory": "cuda max_memory_allocated" if dev.type == "cuda" else "process peak RSS (monotone)",
            "peak_tflops": None if peak is None else {"value": peak[0], "dtype": peak[1]},
        },
        "results": results,
        "overhead": {"target": OVERHEAD_TARGET, "basis": basis, "ratios": ratios,
                     "within_target": all(v <= OVERHEAD_TARGET for v in known) if known else None},
        "data": data,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


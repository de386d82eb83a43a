"""``python -m modelmix_lite bench``: how fast one training step of each method runs, and what it costs.

Per method the objective of :mod:`modelmix_lite.train` (:class:`~modelmix_lite.train.ModelMixObjective`) is
built as a training run builds it and timed on synthetic batches of the right shapes (no data loading):
one step is forward + backward + Adam step. Reported per method: the median step time, samples/s, peak
memory, FLOPs per step (``torch.utils.flop_counter.FlopCounterMode`` on one step), achieved FLOP/s, seconds
per GFLOP, that per-FLOP cost relative to ``#1`` (ModelMix's overhead target: ``#4`` within
:data:`OVERHEAD_TARGET` of ``#1``, i.e. a virtual model costs only its FLOPs), the fraction of the device's
dense bf16 peak (CUDA, known devices) and inference slices/s. The data path is measured once: building a
:class:`~modelmix_lite.data.slices.SliceDataset` from the phantom vs loading it from its cache, and a
``DataLoader`` over each.

A *method spec* is ``NAME[:PRESET]``: a method of :data:`~modelmix_lite.methods.METHODS` and a core preset
of :data:`~modelmix_lite.methods.CORE_PRESETS` (default ``paper``), e.g. ``#4:released_code``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.flop_counter import FlopCounterMode

from .data.readers import load_split
from .data.slices import SliceDataset
from .data.tasks import TASKS, UNANNOTATED, get_task
from .errors import ConfigError, DataError
from .methods import CORE_PRESETS, METHODS, CoreConfig, MethodConfig, check_method_tasks
from .models import TaskModelSet
from .train import TrainConfig, ModelMixObjective, pick_device

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

COMPARE_FIELDS: tuple[str, ...] = (
    "step_s", "step_cpu_s", "samples_per_s", "flops_per_step", "tflop_per_s", "s_per_gflop", "peak_memory_mib",
    "inference_slices_per_s",
)
"""The per-method fields that ``--compare`` divides (B / A)."""

UNLABELED_FRACTION: float = TrainConfig.unlabeled_fraction
"""Share of unlabeled rows in a batch of a method with an unsupervised term (as in training)."""

SCRIBBLE_DENSITY: float = 0.05
"""Share of annotated pixels in a synthetic scribble target."""


# ----------------------------------------------------------------------------------------------
# Machine description
# ----------------------------------------------------------------------------------------------


def peak_tflops(device_name: str) -> tuple[float, str] | None:
    """``(dense TFLOP/s, dtype)`` of a CUDA device from :data:`PEAK_TFLOPS`, or None if unknown."""
    for pattern, tflops, dtype in PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return tflops, dtype
    return None


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _host() -> str:
    """CPU model and core count, e.g. ``"AMD EPYC, 2 cores, 2 torch threads"``."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = names[0].strip() if names else model
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _git(*args: str) -> str | None:
    """Output of a read-only git command in this checkout, or None outside git."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """Median wall and median process-CPU seconds of ``fn()`` over ``steps`` calls after ``warmup`` untimed ones.

    On CUDA every call is bracketed by ``torch.cuda.synchronize``. The CPU time (all threads of this process)
    ignores the time other processes hold the cores, so on a shared machine it is the steadier cost measure.
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(steps):
        _sync(device)
        tick, cpu_tick = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - tick)
        cpu.append(time.process_time() - cpu_tick)
    return statistics.median(wall), statistics.median(cpu)


def _peak_memory_mib(device: torch.device) -> float:
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
    method: MethodConfig, tasks: Sequence[str], batch: int, size: int, device: torch.device, seed: int = 0
) -> dict[str, dict]:
    """Random training batches shaped as :meth:`ModelMixObjective.forward` takes them.

    Per task: ``image`` ``(B, 3, S, S)`` uniform in [0, 1); ``target`` ``(B, S, S)`` int64: full labels for
    ``target="label"`` methods, else :data:`SCRIBBLE_DENSITY` of the scribbled rows annotated with random
    classes and the unlabeled rows (:data:`UNLABELED_FRACTION` of the batch, for methods that use them)
    all :data:`UNANNOTATED`.
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
        if device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
        batches[task] = {"image": image.to(device), "target": target.to(device), "n_scribbled": batch - n_unlabeled}
    return batches


def bench_method(
    spec: str,
    tasks: Sequence[str],
    width: int,
    size: int,
    batch: int,
    steps: int,
    warmup: int,
    device: torch.device,
    compile: bool = False,
) -> dict:
    """Time one method spec's training step and inference on synthetic batches; see the module docstring.

    The objective is built as :func:`modelmix_lite.train.train` builds it (bf16 autocast and channels-last
    on CUDA). FLOPs are counted on one eager step before any compilation.
    """
    method, core = parse_method_spec(spec)
    check_method_tasks(method, list(tasks))
    models = TaskModelSet(tasks, width, None if core.dropout == "none" else core.dropout, "batch",
                          core.identical_init, method.shared_encoder, torch.Generator().manual_seed(0))
    objective = ModelMixObjective(models, method, core, seed=0).to(device)
    if device.type == "cuda":
        objective.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-3)
    batches = synthetic_batches(method, tasks, batch, size, device)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")

    def train_step() -> None:
        with autocast:
            loss, _ = objective(batches)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer() -> None:
        with torch.inference_mode(), autocast:
            for task in tasks:
                models(task, batches[task]["image"])

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    objective.train()
    with FlopCounterMode(display=False) as counter:
        train_step()
    flops = counter.get_total_flops()
    if compile:
        for model in models.models.values():
            model.compile()
    step_s, step_cpu_s = time_steps(train_step, steps, warmup, device)
    peak_memory = _peak_memory_mib(device)
    objective.eval()
    infer_s, _ = time_steps(infer, steps, warmup, device)
    samples, gflops = batch * len(tasks), flops / 1e9
    peak = peak_tflops(_device_name(device)) if device.type == "cuda" else None
    on_cpu = device.type == "cpu"
    return {
        "method": method.name,
        "preset": spec.partition(":")[2] or "paper",
        "step_s": step_s,
        "step_cpu_s": step_cpu_s if on_cpu else None,
        "samples_per_s": samples / step_s,
        "peak_memory_mib": peak_memory,
        "flops_per_step": flops,
        "tflop_per_s": flops / step_s / 1e12,
        "s_per_gflop": step_s / gflops,
        "cpu_s_per_gflop": step_cpu_s / gflops if on_cpu else None,
        "fraction_of_peak": None if peak is None else flops / step_s / 1e12 / peak[0],
        "inference_slices_per_s": samples / infer_s,
    }


def overhead_ratios(results: dict[str, dict], field: str = "s_per_gflop") -> dict[str, float | None]:
    """Each method's ``field`` (seconds per FLOP) divided by ``#1``'s; None where either is missing."""
    base = next((r[field] for r in results.values() if r["method"] == "#1"), None)
    return {spec: None if base is None or r[field] is None else r[field] / base for spec, r in results.items()}


# ----------------------------------------------------------------------------------------------
# The data path
# ----------------------------------------------------------------------------------------------


def _loader_slices_per_s(dataset: SliceDataset, batch: int, steps: int, warmup: int, workers: int) -> float:
    """Slices/s of a shuffling ``DataLoader`` over ``dataset``, timed over ``steps`` batches after ``warmup``."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch * (warmup + steps),
                            generator=torch.Generator().manual_seed(0))
    batches = iter(DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers))
    for _ in range(warmup):
        next(batches)
    tick = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return batch * steps / (time.perf_counter() - tick)


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
                loader[source] += batch * steps / _loader_slices_per_s(ds, batch, steps, warmup, workers)
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
        device: ``"auto"`` or a torch device string; compile: ``torch.compile`` the task models.
        data_root: dataset root for the data-path measurement (default: a temporary ``smoke`` phantom).

    Returns:
        ``{"device", "torch", "commit", "dirty", "host", "settings", "results": {spec: {...}}, "overhead",
        "data", "created"}``. ``overhead`` holds each ``#4`` spec's seconds-per-FLOP ratio to ``#1`` (its
        ``basis``: process CPU time on a CPU device, wall time elsewhere), the target and whether all are
        within it.

    Raises:
        ConfigError: on a bad option, an unknown method spec, or a method that needs more tasks.
    """
    tasks = [t.strip().lower() for t in tasks]
    _check_settings(width, size, batch, tasks, steps, warmup)
    for spec in methods:
        check_method_tasks(parse_method_spec(spec)[0], tasks)
    dev = pick_device(device)
    workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    results = {}
    for spec in methods:
        results[spec] = bench_method(spec, tasks, width, size, batch, steps, warmup, dev, compile)
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    for field, key in (("s_per_gflop", "s_per_flop_vs_#1"), ("cpu_s_per_gflop", "cpu_s_per_flop_vs_#1")):
        for spec, ratio in overhead_ratios(results, field).items():
            results[spec][key] = ratio
    basis = "cpu_s_per_flop_vs_#1" if dev.type == "cpu" else "s_per_flop_vs_#1"
    ratios = {spec: r[basis] for spec, r in results.items() if r["method"] == "#4"}
    known = [v for v in ratios.values() if v is not None]
    commit = _git("rev-parse", "HEAD")
    peak = peak_tflops(_device_name(dev)) if dev.type == "cuda" else None
    return {
        "device": _device_name(dev),
        "torch": torch.__version__,
        "commit": commit,
        "dirty": None if commit is None else bool(_git("status", "--porcelain", "--untracked-files=no")),
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
        "data": bench_data(tasks, size, batch, steps, warmup, data_root, workers),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------------------------
# Output and command line
# ----------------------------------------------------------------------------------------------

_TABLE_COLUMNS: dict[str, str] = {
    "step_s": "step s", "samples_per_s": "samples/s", "flops_per_step": "GFLOP/step", "tflop_per_s": "TFLOP/s",
    "s_per_gflop": "ms/GFLOP", "s_per_flop_vs_#1": "vs #1", "cpu_s_per_flop_vs_#1": "cpu vs #1",
    "fraction_of_peak": "of peak",
    "peak_memory_mib": "peak MiB", "inference_slices_per_s": "infer slices/s",
}


def format_table(record: dict) -> str:
    """A readable table of a :func:`run_bench` record: one row per method spec, then the data path."""
    frame = pd.DataFrame(record["results"]).T[list(_TABLE_COLUMNS)]
    frame["flops_per_step"] = frame["flops_per_step"] / 1e9
    frame["s_per_gflop"] = frame["s_per_gflop"] * 1e3
    frame = frame.rename(columns=_TABLE_COLUMNS).astype(float)
    data = record["data"]
    lines = [
        f"device {record['device']} | torch {record['torch']} | host {record['host']}",
        f"commit {record['commit']}{' (dirty)' if record['dirty'] else ''} | settings {json.dumps(record['settings'])}",
        frame.to_string(float_format=lambda v: f"{v:.4g}"),
        f"overhead ({record['overhead']['basis']}, target <= {record['overhead']['target']}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in record["overhead"]["ratios"].items() if v is not None),
        f"data ({data['n_slices']} slices, {data['workers']} loader workers): "
        + "; ".join(f"{s}: build {data[s]['build_slices_per_s']:.4g} slices/s, loader "
                    f"{data[s]['loader_slices_per_s']:.4g} slices/s" for s in ("phantom", "cache")),
    ]
    return "\n".join(lines)


def _load_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable bench JSON file ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("results"), dict):
        raise DataError(f"{path}: not a bench record (no 'results' object)")
    return record


def compare(a: dict, b: dict, a_name: str = "A", b_name: str = "B") -> pd.DataFrame:
    """Per-method ratios ``B / A`` of :data:`COMPARE_FIELDS` over the method specs both records hold.

    Raises:
        DataError: if the records share no method spec.
    """
    common = [spec for spec in a["results"] if spec in b["results"]]
    if not common:
        raise DataError(f"{b_name}: no method in common with {a_name} ({', '.join(a['results'])})")
    rows = {}
    for spec in common:
        ra, rb = a["results"][spec], b["results"][spec]
        rows[spec] = {f: rb[f] / ra[f] if ra.get(f) and rb.get(f) is not None else None for f in COMPARE_FIELDS}
    return pd.DataFrame(rows).T


def main_bench(argv: Sequence[str]) -> int:
    """``bench`` command: run the benchmark (print a table, optionally write JSON) or compare two JSON files."""
    parser = argparse.ArgumentParser(prog="python -m modelmix_lite bench", description=__doc__.partition("\n")[0])
    parser.add_argument("--width", type=int, default=16, help="UNet base channels (default 16)")
    parser.add_argument("--size", type=int, default=128, help="slice side S (default 128)")
    parser.add_argument("--batch", type=int, default=8, help="slices per task per step (default 8)")
    parser.add_argument("--tasks", default="myops,mscmr", help="comma-separated tasks (default myops,mscmr)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated NAME[:PRESET] specs (default {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--steps", type=int, default=10, help="timed repetitions (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (default 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the task models")
    parser.add_argument("--data", type=Path, default=None, help="data root for the data path (default: temp smoke phantom)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                        help="print per-method ratios B/A of two records instead of running")
    args = parser.parse_args(list(argv))
    if args.compare:
        a_path, b_path = args.compare
        table = compare(_load_record(a_path), _load_record(b_path), str(a_path), str(b_path))
        print(f"B / A  (A = {a_path}, B = {b_path})")
        print(table.astype(float).to_string(float_format=lambda v: f"{v:.3f}"))
        return 0
    record = run_bench(args.width, args.size, args.batch, [t for t in args.tasks.split(",") if t.strip()],
                       [m.strip() for m in args.methods.split(",") if m.strip()], args.steps, args.warmup,
                       args.device, args.compile, args.data)
    print(format_table(record))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0

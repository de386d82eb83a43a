"""What a CPU training step of the cpu profiles costs, and which CPU settings pay.

For ``#1`` and ``#4`` built as the cpu / cpu_long profiles build them (:func:`modelmix_lite.objective.build_objective`,
the profile's core preset, two tasks), one training step is timed under every combination of

* torch threads (``torch.set_num_threads``): 1 and 2;
* memory format: contiguous (NCHW) or channels-last (NHWC) input and weights;
* precision: float32, or bfloat16 autocast on the CPU;

round-robin (one step of each variant per round), so that a busy machine slows each variant alike. The batch
preparation the training loop does on the CPU before each step (index the slice arrays, three channels,
random rotation / flip / crop-zoom: :func:`modelmix_lite.perturb.augment`) is timed on its own, to show
whether data loading can starve the step.

    python benchmarks/cpu_step_cost.py --precisions float32 --out benchmarks/results/cpu_step_cost_float32.json
    python benchmarks/cpu_step_cost.py --methods '#1' --precisions bfloat16 --out ...bfloat16.json

``train`` applies ``amp`` (bf16) and ``channels_last`` on CUDA only; this benchmark is what that choice rests on.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from modelmix_lite.bench import synthetic_batches
from modelmix_lite.config import resolve_config
from modelmix_lite.methods import METHODS
from modelmix_lite.models import as_model_input
from modelmix_lite.objective import build_objective
from modelmix_lite.perturb import augment

THREADS = (1, 2)
FORMATS = ("contiguous", "channels_last")
PRECISIONS = ("float32", "bfloat16")


class Variant:
    """One method under one (threads, format, precision) setting: an objective, its optimizer and a batch."""

    def __init__(self, method: str, threads: int, memory_format: str, precision: str, profile: str,
                 tasks: list[str]):
        config = resolve_config(profile)
        self.name = f"{method} threads={threads} {memory_format} {precision}"
        self.threads, self.precision = threads, precision
        self.method, self.memory_format = method, memory_format
        torch.manual_seed(0)
        self.objective = build_objective(config, METHODS[method], tasks, torch.device("cpu"))
        self.batches = synthetic_batches(METHODS[method], tasks, config.batch_size, config.size,
                                         torch.device("cpu"), channels_last=False)
        if memory_format == "channels_last":
            self.objective = self.objective.to(memory_format=torch.channels_last)
            for batch in self.batches.values():
                batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.objective.parameters(), lr=config.lr)

    def step(self) -> None:
        torch.set_num_threads(self.threads)
        with torch.autocast("cpu", torch.bfloat16, enabled=self.precision == "bfloat16"):
            loss, _ = self.objective(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def time_variants(variants: list[Variant], rounds: int, warmup: int) -> dict[str, dict[str, float]]:
    """Median wall and process-CPU seconds per step of each variant, timed round-robin."""
    for variant in variants:
        for _ in range(warmup):
            variant.step()
    wall: dict[str, list[float]] = {v.name: [] for v in variants}
    cpu: dict[str, list[float]] = {v.name: [] for v in variants}
    for k in range(rounds):
        print(f"round {k + 1} of {rounds}", flush=True)
        for variant in variants:
            t0, c0 = time.perf_counter(), time.process_time()
            variant.step()
            wall[variant.name].append(time.perf_counter() - t0)
            cpu[variant.name].append(time.process_time() - c0)
    return {name: {"step_s": statistics.median(wall[name]), "step_cpu_s": statistics.median(cpu[name])}
            for name in wall}


def time_batch_preparation(profile: str, repeats: int) -> float:
    """Median seconds to prepare one task's training batch as ``train`` does (1 thread)."""
    config = resolve_config(profile)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(200, 1, config.size, config.size)
    targets = torch.randint(0, 4, (200, config.size, config.size))
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        index = torch.randint(0, 200, (config.batch_size,), generator=generator)
        image = as_model_input(images[index])
        augment(image, [targets[index]], generator)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu_long")
    parser.add_argument("--tasks", default="mscmr,acdc")
    parser.add_argument("--methods", default="#1,#4")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="float32 and/or bfloat16")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    variants = [Variant(m, t, f, p, args.profile, tasks)
                for m, t, f, p in itertools.product(args.methods.split(","), THREADS, FORMATS,
                                                    args.precisions.split(","))]
    results = time_variants(variants, args.rounds, args.warmup)
    prep_s = time_batch_preparation(args.profile, 50)
    config = resolve_config(args.profile)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {
        "profile": args.profile, "tasks": tasks, "size": config.size, "base": config.base,
        "batch_size": config.batch_size, "rounds": args.rounds, "warmup": args.warmup,
        "results": [{"method": v.method, "threads": v.threads, "memory_format": v.memory_format,
                     "precision": v.precision, **results[v.name]} for v in variants],
        "batch_preparation_s_per_task": prep_s,
        "device": "cpu", "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__, "commit": commit,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    for row in record["results"]:
        print(f"{row['method']:>3} threads={row['threads']} {row['memory_format']:<13} {row['precision']:<8} "
              f"step {row['step_s']:.3f} s  cpu {row['step_cpu_s']:.3f} s")
    print(f"batch preparation: {prep_s * 1e3:.1f} ms per task batch")
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

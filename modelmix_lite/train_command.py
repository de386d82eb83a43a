"""The ``train`` command: parse the command line, join torchrun's process group, train, print the run directory.

Single process: ``python -m modelmix_lite train --method modelmix --tasks myops,mscmr``. Several GPUs:
``torchrun --nproc_per_node=N -m modelmix_lite train ...`` (one process per GPU, gradients all-reduced by DDP).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from . import rundir
from .config import DEFAULT_DATA, PROFILES, resolve_config, split_overrides
from .data.phantom import ensure_phantom
from .data.tasks import TASKS
from .methods import CORE_PRESETS, METHODS, get_method
from .train import train


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
    overrides = split_overrides(args.overrides)
    if args.seed is not None:
        overrides["seed"] = str(args.seed)
    if args.device is not None:
        overrides["device"] = args.device
    config = resolve_config(args.profile, overrides, args.preset)
    out = args.out or Path("runs") / f"{rundir.run_name(args.method)}_{'+'.join(tasks)}_{args.profile}"
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

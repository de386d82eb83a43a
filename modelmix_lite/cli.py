"""``python -m modelmix_lite <command> [options]``: the library's command line.

Each command is one function registered with :func:`command`: it takes the arguments after its name, parses
them with its own :mod:`argparse` parser (so every command has ``--help``), and returns an exit status. The
command's modules are imported inside the function, so ``--help`` stays fast and one command's heavy
dependencies never slow another. Adding a command (``train``, ``evaluate``, ...) means adding one function.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .data.tasks import TASKS
from .errors import ConfigError, DataError
from .files import atomic_write

PROG = "python -m modelmix_lite"

Command = Callable[[list[str]], int]
COMMANDS: dict[str, Command] = {}
"""Command name -> function, in registration order (the order of ``--help``)."""


def command(fn: Command) -> Command:
    """Register ``fn`` as the command named after it; its docstring's first line is its help."""
    COMMANDS[fn.__name__] = fn
    return fn


def _summary(fn: Command) -> str:
    return (fn.__doc__ or "").strip().partition("\n")[0]


@command
def phantom(argv: list[str]) -> int:
    """Write the synthetic cardiac phantom in the ACDC / MSCMRseg / MyoPS folder layouts."""
    parser = argparse.ArgumentParser(prog=f"{PROG} phantom", description=_summary(phantom))
    parser.add_argument("--out", type=Path, required=True, help="data root to write (created if absent)")
    parser.add_argument("--preset", choices=("smoke", "default", "paper"), default="default",
                        help="size of the phantom: smoke (seconds), default (the book), paper (paper-sized splits)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS),
                        help="datasets to write (default: all)")
    args = parser.parse_args(argv)
    from .data.phantom import generate_phantom

    written = generate_phantom(args.out, args.preset, args.seed, tasks=tuple(args.tasks))
    n_cases = sum(len(subjects) for splits in written.values() for subjects in splits.values())
    print(f"{args.out}: wrote the {args.preset} phantom (seed {args.seed}), {n_cases} cases of {', '.join(written)}")
    return 0


@command
def inspect(argv: list[str]) -> int:
    """Summarise a dataset root: cases, shapes, spacings, label values, scribble coverage, problems."""
    from .data.inspect import main_inspect

    return main_inspect(argv)


@command
def download(argv: list[str]) -> int:
    """Fetch the public ACDC / MSCMRseg / MyoPS-scribble files into a data root, each checked by its SHA-256.

    Exit status: 0; 1 after an error or a problem ``inspect`` finds in the result; 2 when the terms are refused.
    """
    from .data import download as dl

    entries = dl.read_registry()
    parser = argparse.ArgumentParser(
        prog=f"{PROG} download", description=_summary(download), formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"sources:\n{dl.sources_text(entries)}\n\nterms:\n{dl.terms_text(dl.DATASETS)}",
    )
    parser.add_argument("datasets", nargs="+", choices=[*dl.DATASETS, "all"], help="what to fetch (all: every one)")
    parser.add_argument("--out", type=Path, required=True, help="data root to fill (created if absent)")
    parser.add_argument("--accept-terms", action="store_true", help="accept the terms below without being asked")
    parser.add_argument("--base-url", default=dl.DEFAULT_BASE_URL, help="where to fetch from, as URL/REPOSITORY/COMMIT/"
                        f"PATH: a mirror, or a file:// folder (default: {dl.DEFAULT_BASE_URL})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    chosen = dl.select(entries, args.datasets)
    datasets = sorted({e.dataset for e in chosen})
    print(f"Terms of the data to download:\n{dl.terms_text(datasets)}")
    if not dl.accept_terms(args.accept_terms):
        print(f"{PROG} download: error: the terms above were not accepted (pass --accept-terms)", file=sys.stderr)
        return 2
    counts = dl.download(chosen, args.out, args.base_url, progress=not args.quiet)
    print(f"{args.out}: {len(chosen)} files verified by SHA-256: {counts['present']} already there, {counts['fetched']}"
          f" fetched, {counts['refetched']} fetched again (corrupted); {counts['bytes'] / 1e6:.1f} MB downloaded")
    lines, n_problems = dl.inspect_summary(args.out, datasets)
    print("\n".join(lines))
    return 1 if n_problems else 0


@command
def train(argv: list[str]) -> int:
    """Train a method (ModelMix, its ablations, baselines) on one or more tasks; writes a run directory."""
    from .train_command import main_train

    return main_train(argv)


@command
def evaluate(argv: list[str]) -> int:
    """Score a training run on a split: per-volume 3-D Dice / HD / HD95 and the paper-style mean ± std table."""
    parser = argparse.ArgumentParser(prog=f"{PROG} evaluate", description=_summary(evaluate))
    parser.add_argument("run", type=Path, help="run directory written by 'train'")
    parser.add_argument("--data", type=Path, default=None,
                        help="data root (default: the one the run was trained on, from its data.json)")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="split to score (default: test)")
    parser.add_argument("--checkpoint", default="best.pt", help="checkpoint file in the run (default: best.pt)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto: as train)")
    parser.add_argument("--largest-cc", action="store_true", help="keep the largest connected component per class")
    parser.add_argument("--undefined-hd", choices=("nan", "diagonal"), default="nan",
                        help="HD where exactly one side is empty: nan (left out; tables show the count) or diagonal "
                             "(the volume's diagonal in mm, the usual penalty) (default: nan)")
    parser.add_argument("--csv", type=Path, help="also write the per-volume rows to this CSV file")
    args = parser.parse_args(argv)
    from .config import pick_device
    from .evaluate import evaluate_run, paper_table

    writable = args.csv is None or (args.csv.parent.is_dir() and os.access(args.csv.parent, os.W_OK))
    if not writable or args.csv is not None and args.csv.is_dir():
        raise ConfigError(f"--csv {args.csv}: cannot write there (no such writable folder, or a folder)")
    rows = evaluate_run(args.run, args.data, args.split, args.checkpoint, pick_device(args.device), args.largest_cc,
                        undefined_hd=args.undefined_hd)
    rule = {"nan": "undefined HD left out, (k/N): over k of N volumes",
            "diagonal": "undefined HD = the volume's diagonal"}[args.undefined_hd]
    for metric in ("dice", "hd95"):
        detail = "" if metric == "dice" else f"; {rule}"
        print(f"{metric} ({args.split}, {rows['case'].nunique()} volumes{detail})")
        print(paper_table(rows, metric).to_string(), end="\n\n")
    if args.csv:  # after the tables are printed: a failing write never loses them
        try:
            with atomic_write(args.csv, suffix=".csv") as tmp:
                rows.to_csv(tmp, index=False)
        except OSError as err:
            raise ConfigError(f"--csv {args.csv}: could not write the rows ({err.strerror})") from None
    return 0


@command
def predict(argv: list[str]) -> int:
    """Segment NIfTI volumes with a training run; writes predictions with the inputs' headers and raw labels."""
    parser = argparse.ArgumentParser(prog=f"{PROG} predict", description=_summary(predict))
    parser.add_argument("run", type=Path, help="run directory written by 'train'")
    parser.add_argument("--input", nargs="+", type=Path,
                        help="image file(s) of one volume, one per sequence (MyoPS: C0 DE T2)")
    parser.add_argument("--data", type=Path, help="or: a data root; every case of --split is segmented (neither "
                        "--input nor --data: the data root the run was trained on)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test", help="with --data (default: test)")
    parser.add_argument("--task", choices=list(TASKS), help="task model to use (default: the run's first task)")
    parser.add_argument("--out", type=Path, required=True, help="folder for <subject>_pred.nii.gz files")
    parser.add_argument("--checkpoint", default="best.pt", help="checkpoint file in the run (default: best.pt)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto: as train)")
    parser.add_argument("--largest-cc", action="store_true", help="keep the largest connected component per class")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the *_pred.nii.gz files already in --out (other files are left alone)")
    args = parser.parse_args(argv)
    from .config import pick_device
    from .evaluate import predict_run

    written = predict_run(args.run, args.out, args.task, args.input, args.data, args.split, args.checkpoint,
                          pick_device(args.device), args.largest_cc, overwrite=args.overwrite)
    for path in written:
        print(path)
    return 0


@command
def reproduce(argv: list[str]) -> int:
    """Re-run a table of the paper (every method x task combination x seed) into one tidy results file."""
    from .reproduce import main_reproduce

    return main_reproduce(argv)


@command
def bench(argv: list[str]) -> int:
    """Time one training step of each method: step time, samples/s, peak memory, FLOPs."""
    from .bench_command import main_bench

    return main_bench(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (1 after a :class:`~modelmix_lite.errors.DataError`,
    :class:`~modelmix_lite.errors.ConfigError` or the non-finite-loss ``FloatingPointError`` of training)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ModelMix (Zhang & Patel, MICCAI 2024) for few-scribble cardiac MRI segmentation.",
        epilog="commands:\n" + "\n".join(f"  {name:<10} {_summary(fn)}" for name, fn in COMMANDS.items())
        + f"\n\n'{PROG} COMMAND --help' describes a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", choices=COMMANDS, metavar="COMMAND", help=", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's options")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error(f"a command is required: {', '.join(COMMANDS)}")
    try:
        return COMMANDS[args.command](args.args)
    except (DataError, ConfigError, FloatingPointError) as err:  # FloatingPointError: train's NaN guard
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1

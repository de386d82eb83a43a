"""The ``reproduce`` command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..config import DEFAULT_DATA, PROFILES
from ..methods import METHODS
from .compare import comparison_table, summarize_results
from .specs import TABLES, get_table, parse_seeds
from .sweep import load_results, run_table


def _epilog() -> str:
    lines = ["tables (methods marked * are not implemented yet and are skipped):"]
    for spec in TABLES.values():
        rows = ", ".join(dict.fromkeys(
            f"{e.row}{'' if e.row == e.key else '=' + e.key}{'' if e.method in METHODS else '*'}"
            for e in spec.entries))
        combos = ", ".join(dict.fromkeys(e.combo for e in spec.entries))
        lines.append(f"  {spec.number} ({spec.split} split): {rows}\n     on {combos}")
    return "\n".join(lines)


def main_reproduce(argv: Sequence[str]) -> int:
    """``reproduce`` command: sweep one paper table, then print ours next to the paper's Dice; return 0."""
    parser = argparse.ArgumentParser(
        prog="python -m modelmix_lite reproduce",
        description="Train and score every row of a paper table for every seed (resumes where it stopped); "
        "results go to OUT/PROFILE/tableN.jsonl.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--table", required=True, help="paper table: 1, 2 or 3")
    parser.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data root (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0 for smoke, else 0,1,2)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="only these methods, e.g. ablation1 ablation4 pce (#N may be spelled ablationN; "
                        "a row under another preset: ablation4@released_code)")
    parser.add_argument("--combos", nargs="+", default=None, help="only these task combinations, e.g. myops+mscmr")
    parser.add_argument("--real", action="store_true",
                        help="the tables on the public data (ACDC + MSCMRseg; results in OUT/PROFILE-real/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(list(argv))
    spec = get_table(args.table, args.real)
    seeds = None if args.seeds is None else parse_seeds(args.seeds)
    path = run_table(spec.number, args.profile, args.data, args.out, seeds, args.methods, not args.quiet, args.combos,
                     real=args.real)
    if not path.is_file():
        print(f"results: none (every run of Table {spec.number} was skipped; see {path.parent / 'sweep.json'})")
        return 0
    rows = load_results(path)
    print(f"results: {path} ({len(rows)} rows)")
    if args.real:  # the paper has no numbers for these pairings: ours only
        summary = summarize_results(rows)
        with pd.option_context("display.width", 250, "display.max_columns", 40):
            print(summary.pivot_table(index="row", columns=["target", "structure"], values="dice_mean").round(3))
        return 0
    halves = list(dict.fromkeys(e.combo for e in spec.entries)) if spec.number == 1 else [""]
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        for half in halves:
            print(f"\nTable {spec.number} {half} Dice, ours vs paper:")
            print(comparison_table(rows, spec.number, "dice", half).to_string())
    return 0

"""The ``bench`` command's output: a readable table of a :func:`~modelmix_lite.bench.run_bench` record, the
comparison of two records (``--compare A.json B.json``), and the command line itself."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .bench import DEFAULT_METHODS, run_bench
from .errors import DataError
from .files import write_text_atomic

COMPARE_FIELDS: tuple[str, ...] = (
    "step_s", "step_cpu_s", "samples_per_s", "flops_per_step", "tflop_per_s", "s_per_gflop", "peak_memory_mib",
    "inference_slices_per_s",
)
"""The per-method fields that ``--compare`` divides (B / A)."""

_TABLE_COLUMNS: dict[str, str] = {
    "step_s": "step s", "samples_per_s": "samples/s", "flops_per_step": "GFLOP/step", "tflop_per_s": "TFLOP/s",
    "s_per_gflop": "ms/GFLOP", "s_per_flop_vs_#1": "vs #1", "cpu_s_per_flop_vs_#1": "cpu vs #1",
    "fraction_of_peak": "of peak",
    "peak_memory_mib": "peak MiB", "inference_slices_per_s": "infer slices/s",
}


def format_table(record: dict) -> str:
    """A readable table of a a :func:`~modelmix_lite.bench.run_bench` record: one row per method spec, then the data path."""
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
    parser = argparse.ArgumentParser(
        prog="python -m modelmix_lite bench",
        description="Time one training step of each method on synthetic batches (step time, samples/s, peak memory, "
        "FLOPs, time per FLOP vs #1, inference slices/s) and the data path; or compare two saved records.",
    )
    parser.add_argument("--width", type=int, default=16, help="UNet base channels (default 16)")
    parser.add_argument("--size", type=int, default=128, help="slice side S (default 128)")
    parser.add_argument("--batch", type=int, default=8, help="slices per task per step (default 8)")
    parser.add_argument("--tasks", default="myops,mscmr", help="comma-separated tasks (default myops,mscmr)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated NAME[:PRESET] specs (default {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--steps", type=int, default=10, help="timed repetitions (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (default 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the host and mixup passes (TrainConfig.compile)")
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
        write_text_atomic(args.out, json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0

"""``inspect``: what a dataset root holds, split by split, and every problem found in it.

Run as ``python -m modelmix_lite inspect --dataset acdc --root DIR [--json]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import ConfigError, DataError
from .layout import SPLITS, find_dataset_root, scan_split, split_present
from .nifti import load_nifti
from .readers import Case, load_case
from .tasks import TASKS, UNANNOTATED, get_task


def _raw_values(path: Path | None) -> set[int | float]:
    """The values stored in a label file, as they are (an integer where the value is one)."""
    if path is None:
        return set()
    return {int(v) if float(v).is_integer() else float(v) for v in np.unique(load_nifti(path).array)}


def _case_record(case: Case) -> dict:
    return {
        "subject": case.subject,
        "shape": list(case.image.shape[1:]),
        "spacing": [round(s, 4) for s in case.spacing],
        "dtype": "/".join(str(nib.load(p).get_data_dtype()) for p in case.files.images),
    }


def _inspect_split(task: str, root: str | Path, split: str, problems: list[str]) -> dict:
    spec = get_task(task)
    files, scan_problems = scan_split(task, root, split)
    problems += scan_problems
    if not files and not scan_problems:
        problems.append(f"{find_dataset_root(task, root)}: the {split} split is there but holds no case")
    n = spec.n_classes
    gt_voxels, hits, scribbled = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    disagree = 0
    report = {"cases": [], "label_values_raw": set(), "label_values": set(), "scribble_values_raw": set(),
              "scribble_values": set()}
    for case_files in files:
        try:
            case = load_case(case_files)
        except DataError as err:
            problems.append(str(err))
            continue
        report["cases"].append(_case_record(case))
        report["label_values_raw"] |= _raw_values(case.files.label)
        report["scribble_values_raw"] |= _raw_values(case.files.scribble)
        if case.label is not None:
            report["label_values"] |= {int(v) for v in np.unique(case.label)}
        if case.scribble is None:
            continue
        report["scribble_values"] |= {int(v) for v in np.unique(case.scribble)}
        annotated = case.scribble != UNANNOTATED
        scribbled += np.bincount(case.scribble[annotated], minlength=n)[:n]
        if case.label is not None:
            gt_voxels += np.bincount(case.label.ravel(), minlength=n)[:n]
            hits += np.bincount(case.label[annotated & (case.scribble == case.label)], minlength=n)[:n]
            disagree += int(np.sum(annotated & (case.scribble != case.label)))
    with_gt = bool(gt_voxels.sum())
    for key in ("label_values_raw", "label_values", "scribble_values_raw", "scribble_values"):
        report[key] = sorted(report[key])
    report["scribble_voxels"] = {name: int(c) for name, c in zip(spec.classes, scribbled)}
    report["scribble_coverage"] = (
        {name: float(h / g) if g else 0.0 for name, h, g in zip(spec.classes, hits, gt_voxels)} if with_gt else None
    )
    report["scribble_gt_disagreement"] = disagree if with_gt else None
    return report


def inspect_dataset(task: str, root: str | Path) -> dict:
    """Summarise every split of a dataset and collect all problems (one message per problem).

    Returns:
        ``{"task", "title", "root", "splits": {split: {"cases": [{subject, shape, spacing, dtype}],
        "label_values_raw", "label_values", "scribble_values_raw", "scribble_values",
        "scribble_voxels" (per class), "scribble_coverage" (per class: fraction of its GT voxels
        scribbled with that class; None without GT), "scribble_gt_disagreement" (voxels)}},
        "absent_splits": [split], "problems": [str]}``. A split whose folder (or MyoPS list) is not there is
        listed in ``absent_splits``, not a problem (the real ACDC test set is kept back); a split that is there
        but cannot be scanned is left out of ``splits`` and its error is a problem, and so is one with no case.
    """
    spec = get_task(task)
    report: dict = {"task": spec.name, "title": spec.title, "root": str(root), "splits": {}, "problems": []}
    try:
        report["root"] = str(find_dataset_root(task, root))
    except DataError as err:
        report["problems"].append(str(err))
        return report
    report["absent_splits"] = [split for split in SPLITS if not split_present(task, root, split)]
    for split in (s for s in SPLITS if s not in report["absent_splits"]):
        try:
            report["splits"][split] = _inspect_split(task, root, split, report["problems"])
        except DataError as err:
            report["problems"].append(str(err))
            continue
    return report


def format_report(report: dict) -> str:
    """Readable text for a :func:`inspect_dataset` report."""
    lines = [f"{report['title']} at {report['root']}"]
    for split, info in report["splits"].items():
        lines.append(f"\n[{split}] {len(info['cases'])} cases")
        for case in info["cases"]:
            shape = "x".join(map(str, case["shape"]))
            spacing = "x".join(f"{s:g}" for s in case["spacing"])
            lines.append(f"  {case['subject']:<24} {shape:<14} {spacing:<16} mm  {case['dtype']}")
        lines.append(f"  labels:    raw {info['label_values_raw']} -> canonical {info['label_values']}")
        if not info["scribble_values_raw"]:
            lines.append("  scribbles: none")
            continue
        lines.append(f"  scribbles: raw {info['scribble_values_raw']} -> canonical {info['scribble_values']}")
        coverage = info["scribble_coverage"]
        for name, voxels in info["scribble_voxels"].items():
            share = f"  ({coverage[name]:.2%} of its GT voxels)" if coverage is not None else ""
            lines.append(f"    {name:<12} {voxels:>9} scribbled voxels{share}")
        if info["scribble_gt_disagreement"]:
            lines.append(f"    {info['scribble_gt_disagreement']} scribbled voxels disagree with the GT")
    if report.get("absent_splits"):
        lines.append(f"\nabsent splits (not in this data root): {', '.join(report['absent_splits'])}")
    problems = report["problems"]
    lines.append(f"\n{len(problems)} problem(s)" + (":" if problems else ""))
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def main_inspect(args: list[str] | None = None) -> int:
    """``inspect`` command line; returns 1 if problems were found, else 0."""
    parser = argparse.ArgumentParser(prog="python -m modelmix_lite inspect", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(TASKS), help="which dataset to inspect")
    parser.add_argument("--root", "--data", dest="root", required=True, help="data root or dataset folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args(args)
    try:
        report = inspect_dataset(options.dataset, options.root)
    except ConfigError as err:
        parser.error(str(err))
    print(json.dumps(report, indent=2) if options.json else format_report(report))
    return 1 if report["problems"] else 0

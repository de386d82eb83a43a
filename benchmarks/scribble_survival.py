"""How many scribbled pixels keep their class when slices are brought to the network's grid, per class.

Before 0.2 a slice was padded to a square and resized by nearest neighbour to the profile's size; now it is
resampled to ``spacing_mm`` with :func:`~modelmix_lite.data.geometry.resample_labels` (strokes survive) and the
centred window is cut. A scribbled pixel *survives* when the network pixel it falls in carries its class.

    python benchmarks/scribble_survival.py --data ../shared/data/real --task acdc --profile cpu

writes ``benchmarks/results/scribble_survival_<task>_<profile>.json`` (with the commit and data fingerprint).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from modelmix_lite.config import PROFILES
from modelmix_lite.data.geometry import resample_labels, slice_geometry
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.tasks import UNANNOTATED, get_task
from modelmix_lite.data.fingerprint import data_fingerprint
from modelmix_lite.provenance import git_commit


def _survivors_nearest_square(scribble: np.ndarray, size: int) -> np.ndarray:
    """The pre-0.2 path: pad to a square of side max(h, w), nearest-exact resize; survival of each pixel."""
    h, w = scribble.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    square = np.full((side, side), UNANNOTATED, scribble.dtype)
    square[top : top + h, left : left + w] = scribble
    sample = np.minimum(((np.arange(size) + 0.5) * side / size).astype(int), side - 1)
    coarse = square[np.ix_(sample, sample)]
    rows = np.minimum(((np.arange(h) + top) * size) // side, size - 1)
    cols = np.minimum(((np.arange(w) + left) * size) // side, size - 1)
    return coarse[np.ix_(rows, cols)] == scribble


def _survivors_resampled(scribble: np.ndarray, size: int, spacing, spacing_mm: float) -> np.ndarray:
    """The 0.2 path: resample with the any-hit rule, cut the centred window; survival of each pixel."""
    h, w = scribble.shape
    geometry = slice_geometry(h, w, size, spacing, spacing_mm)
    coarse = resample_labels(scribble, geometry.resampled)
    rh, rw = geometry.resampled
    rows, cols = (np.arange(h) * rh) // h, (np.arange(w) * rw) // w
    inside = ((rows - geometry.top >= 0) & (rows - geometry.top < size))[:, None] & \
        ((cols - geometry.left >= 0) & (cols - geometry.left < size))[None, :]
    return inside & (coarse[np.ix_(rows, cols)] == scribble)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--task", default="acdc")
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    spec, config = get_task(args.task), PROFILES[args.profile]
    counts = {name: {"scribbled": 0, "before": 0, "after": 0} for name in spec.classes}
    for case in load_split(args.task, args.data, "train"):
        for z in range(case.scribble.shape[-1]):
            scribble = case.scribble[..., z]
            before = _survivors_nearest_square(scribble, config.size)
            after = _survivors_resampled(scribble, config.size, case.spacing, config.spacing_mm)
            for k, name in enumerate(spec.classes):
                mask = scribble == k
                counts[name]["scribbled"] += int(mask.sum())
                counts[name]["before"] += int(before[mask].sum())
                counts[name]["after"] += int(after[mask].sum())
    record = {
        "task": args.task, "profile": args.profile, "size": config.size, "spacing_mm": config.spacing_mm,
        "split": "train", "commit": git_commit(), "data_fingerprint": data_fingerprint(args.data, [args.task]),
        "survival": {name: {"scribbled_pixels": c["scribbled"], "before": c["before"] / c["scribbled"],
                            "after": c["after"] / c["scribbled"]} for name, c in counts.items() if c["scribbled"]},
    }
    out = Path(__file__).parent / "results" / f"scribble_survival_{args.task}_{args.profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    for name, values in record["survival"].items():
        print(f"{name:<12} {values['before']:.1%} -> {values['after']:.1%} of {values['scribbled_pixels']} pixels")


if __name__ == "__main__":
    main()

"""Merge the results of sweep lanes: ``python benchmarks/merge_sweep_lanes.py DEST_ROOT LANE_ROOT...``.

A long sweep runs as two ``reproduce`` processes ("lanes", each with its own ``--out LANE_ROOT`` and
``OMP_NUM_THREADS=1``: two processes never append to one results file). This copies every finished run (one with
``evaluation.jsonl``) of each lane's ``<profile>[-real]/runs/`` into ``DEST_ROOT``, appends its rows to
``tableN.jsonl`` and its status to ``sweep.json``, and skips runs already merged, so it can be run again at any time.
Checkpoints, locks and predictions stay behind; ``data.json``'s data root is made relative to the lane's checkout
(no machine path is committed). ``reproduce --out DEST_ROOT`` then resumes the sweep from what was merged.
"""
import json
import os
import shutil
import sys
from pathlib import Path

dest = Path(sys.argv[1])
SKIP = {".lock", "last.pt", "best.pt", "predictions.npz"}
for lane in map(Path, sys.argv[2:]):
    for folder in lane.iterdir():
        out = dest / folder.name
        status_src = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").is_file() else {}
        status_dst_path = out / "sweep.json"
        status_dst = json.loads(status_dst_path.read_text()) if status_dst_path.is_file() else {}
        for table_dir in sorted((folder / "runs").iterdir()):
            for run in sorted(table_dir.iterdir()):
                if not (run / "evaluation.jsonl").is_file():
                    continue
                target = out / "runs" / table_dir.name / run.name
                if (target / "evaluation.jsonl").is_file():
                    continue
                target.mkdir(parents=True)
                for f in run.iterdir():
                    if f.name == "data.json":  # the data root relative to the lane's checkout, not a machine path
                        record = json.loads(f.read_text())
                        record["data_root"] = os.path.relpath(record["data_root"], lane.resolve().parent)
                        (target / f.name).write_text(json.dumps(record, indent=2))
                    elif f.is_file() and f.name not in SKIP and not f.name.endswith(".tmp"):
                        shutil.copy2(f, target / f.name)
                with open(out / f"{table_dir.name}.jsonl", "a") as fh:
                    fh.write((run / "evaluation.jsonl").read_text())
                key = table_dir.name
                status_dst.setdefault(key, {})[run.name] = status_src.get(key, {}).get(run.name, {"status": "trained"})
                print("merged", target)
        out.mkdir(parents=True, exist_ok=True)
        status_dst_path.write_text(json.dumps(status_dst, indent=2) + "\n")

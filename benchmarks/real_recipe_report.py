"""The recipe on real patients: #1 vs #4 of the real-data Table 1 sweep, as issue 10's targets ask.

    python benchmarks/real_recipe_report.py --data ../shared/data/real --results results --profile cpu_long

Reads ``results/<profile>-real/table1.jsonl`` and its runs, and writes next to them ``recipe_report.json``
(per row and target: Dice per structure and average, HD95 with the number of volumes it is over, remote share
and near-heart Dice of the error breakdown, minutes to a validation Dice of .40 per run, the paired test of #4
against #1, and each run's MSCMRseg test-split scores of ``best.pt``) and ``recipe_curves.png`` (the logged
validation Dice of every run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from modelmix_lite import viz  # noqa: E402
from modelmix_lite.data.readers import load_split  # noqa: E402
from modelmix_lite.evaluate import evaluate_cases  # noqa: E402
from modelmix_lite.rundir import Run, run_geometry  # noqa: E402
from modelmix_lite.reproduce import (  # noqa: E402
    error_breakdown,
    load_results,
    minutes_to_dice,
    results_path,
    sweep_folder,
    wilcoxon_table,
)


def _summary(rows: pd.DataFrame) -> dict:
    out = {}
    for (method, target), part in rows.groupby(["method", "target"]):
        volume_avg = part.groupby(["case", "seed"])["dice"].mean()
        hd95 = part["hd95"].dropna()
        out[f"{method} {target}"] = {
            "dice": part.groupby("structure")["dice"].mean().round(3).to_dict(),
            "avg_dice_mean": round(float(volume_avg.mean()), 3), "avg_dice_std": round(float(volume_avg.std()), 3),
            "avg_dice_per_seed": part.groupby("seed")["dice"].mean().round(3).to_dict(),
            "hd95_mean_mm": round(float(hd95.mean()), 1), "hd95_volumes": f"{len(hd95)} of {len(part)}",
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--profile", default="cpu_long")
    args = parser.parse_args()
    folder = args.results / sweep_folder(args.profile, real=True)
    rows = load_results(results_path(args.results, sweep_folder(args.profile, real=True), 1))
    breakdown = error_breakdown(rows, args.results, args.data, 1, real=True)
    runs = sorted(path.parent / "log.jsonl" for path in (folder / "runs" / "table1").glob("*/evaluation.jsonl"))
    logs = {path.parent.name: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for path in runs}
    test_scores = {}
    cases = load_split("mscmr", args.data, "test")
    for path in runs:
        run = path.parent
        if not (run / "best.pt").is_file():
            continue
        record = json.loads((run / "config.json").read_text())
        model = Run(run).models("best.pt").models["mscmr"]
        scored = evaluate_cases(model, cases, "mscmr", progress=False, **run_geometry(run, record))
        test_scores[run.name] = {"avg_dice": round(float(scored["dice"].mean()), 3),
                                 "dice": scored.groupby("structure")["dice"].mean().round(3).to_dict(),
                                 "hd95_mm": round(float(scored["hd95"].mean()), 1)}
    report = {
        "profile": args.profile, "split": "val", "runs": len(runs),
        "commits": sorted(set(rows["commit"])), "data_fingerprints": sorted(set(rows["data_fingerprint"])),
        "device": sorted(set(rows["device"])), "wall_min": round(float(rows.drop_duplicates(
            ["method", "seed"])["wall_s"].sum() / 60), 1),
        "summary": _summary(rows),
        "remote_share": breakdown.groupby(["method", "target"])["remote"].mean().round(3).to_dict(),
        "dice_near": breakdown.groupby(["method", "target"])["dice_near"].mean().round(3).to_dict(),
        "minutes_to_val_acdc_0.40": {name: minutes_to_dice(log, "val_acdc", 0.40) for name, log in logs.items()},
        "minutes_to_val_mscmr_0.40": {name: minutes_to_dice(log, "val_mscmr", 0.40) for name, log in logs.items()},
        "wilcoxon_4_vs_best_baseline": wilcoxon_table(rows, 1).round(4).to_dict("records"),
        "mscmr_test_best_pt": test_scores,
    }
    report["remote_share"] = {" ".join(k): v for k, v in report["remote_share"].items()}
    report["dice_near"] = {" ".join(k): v for k, v in report["dice_near"].items()}
    (folder / "recipe_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    figure = viz.plot_validation_curves({name: pd.DataFrame(log) for name, log in logs.items()})
    figure.savefig(folder / "recipe_curves.png", dpi=110, bbox_inches="tight")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()

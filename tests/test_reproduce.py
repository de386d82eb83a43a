"""The reproduction runner (``modelmix_lite.reproduce``) and the paper's numbers (``modelmix_lite.paper_results``)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelmix_lite import reproduce
from modelmix_lite.config import PROFILES, resolve_config
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.tasks import TASKS
from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.data.fingerprint import data_fingerprint
from modelmix_lite.methods import METHODS
from modelmix_lite.metrics import evaluate_volume
from modelmix_lite.paper_results import PUBLISHED_COLUMNS, published
from modelmix_lite.reproduce import (
    MISSING,
    REAL_TABLES,
    RESULT_COLUMNS,
    TABLES,
    ablation_pattern,
    comparison_table,
    data_differs,
    error_breakdown,
    head_to_head,
    load_predictions,
    load_results,
    main_reproduce,
    minutes_to_dice,
    ours_vs_paper,
    parse_seeds,
    pattern_verdict,
    rank_agreement,
    results_path,
    run_diagnostics,
    run_dir,
    run_table,
    select_entries,
    sweep_folder,
    preset_comparison,
    preset_verdict,
    wilcoxon_table,
)
from modelmix_lite.train import train

COMBO = "myops+mscmr"
SWEEP = dict(seeds=[0], methods=["#1", "#4"], combos=[COMBO], progress=False)


@pytest.fixture(scope="module", autouse=True)
def _fast_smoke():
    """A 2-step smoke profile (validation and checkpoint every step) on one thread: the runner's logic is tested,
    not learning, and one thread keeps these tiny runs fast on a busy machine."""
    short = dataclasses.replace(PROFILES["smoke"], steps=2, log_every=1, val_every=1, ckpt_every=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PROFILES, "smoke", short)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sweep(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Table 1 in the smoke profile: #1 and #4 on MyoPS+MSCMRseg, seed 0. Returns ``(out_dir, results file)``."""
    out = tmp_path_factory.mktemp("sweep")
    return out, run_table(1, "smoke", phantom_root, out, **SWEEP)


def _mtimes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")}


# ----------------------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------------------


def test_results_file_has_one_row_per_method_seed_target_case_structure(sweep, phantom_root):
    out, path = sweep
    assert path == out / "smoke" / "table1.jsonl"
    assert list(json.loads(path.read_text().splitlines()[0])) == list(RESULT_COLUMNS)
    rows = load_results(path)
    per_run = sum(len(load_split(t, phantom_root, "val")) * len(TASKS[t].structures) for t in ("myops", "mscmr"))
    assert len(rows) == 2 * per_run
    assert not rows.duplicated(["method", "tasks", "seed", "target", "case", "structure"]).any()
    assert set(rows["method"]) == {"#1", "#4"}
    assert set(rows["tasks"]) == {COMBO} and set(rows["seed"]) == {0} and set(rows["table"]) == {1}
    assert set(rows["profile"]) == {"smoke"} and set(rows["device"]) == {"cpu"}
    assert set(rows["data_fingerprint"]) == {data_fingerprint(phantom_root, COMBO.split("+"))}
    for target in ("myops", "mscmr"):
        assert set(rows.loc[rows["target"] == target, "structure"]) == set(TASKS[target].structures)
    assert rows["dice"].between(0, 1).all() and (rows["wall_s"] > 0).all()


def test_predictions_npz_reproduces_the_scores(sweep, phantom_root):
    out, path = sweep
    rows = load_results(path)
    cases = {c.subject: c for t in ("myops", "mscmr") for c in load_split(t, phantom_root, "val")}
    for method in ("#1", "#4"):
        predictions = load_predictions(run_dir(out, "smoke", 1, method, COMBO, 0))
        assert set(predictions) == set(cases)
        for subject, pred in predictions.items():
            case = cases[subject]
            assert pred.dtype == np.uint8 and pred.shape == case.label.shape
            mine = rows[(rows["method"] == method) & (rows["case"] == subject)].set_index("structure")["dice"]
            for structure, values in evaluate_volume(pred, case.label, case.task, case.spacing).items():
                assert mine[structure] == pytest.approx(values["dice"], abs=1e-12)


def test_second_call_trains_nothing(sweep, phantom_root):
    out, path = sweep
    before, text = _mtimes(out), path.read_text()
    assert len(before) == 4  # best.pt and last.pt of two runs
    run_table(1, "smoke", phantom_root, out, **SWEEP)
    assert _mtimes(out) == before
    assert path.read_text() == text
    status = json.loads((out / "smoke" / "sweep.json").read_text())["table1"]
    assert {s["status"] for s in status.values()} == {"recorded"}


def test_finished_runs_missing_from_results_are_appended_without_training(sweep, phantom_root, tmp_path):
    out, path = sweep
    copy = tmp_path / "copy"  # as committed: results and run files, no checkpoints; then the results file is lost
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("*.pt"))
    (copy / "smoke" / "table1.jsonl").unlink()
    again = run_table(1, "smoke", phantom_root, copy, **SWEEP)
    assert not list(copy.rglob("*.pt"))  # nothing was trained
    pd.testing.assert_frame_equal(load_results(again), load_results(path))
    status = json.loads((copy / "smoke" / "sweep.json").read_text())["table1"]
    assert {s["status"] for s in status.values()} == {"evaluated"}


def test_interrupted_run_resumes_and_matches_the_uninterrupted_one(sweep, phantom_root, tmp_path):
    out, _ = sweep
    run = run_dir(tmp_path, "smoke", 1, "#1", COMBO, 0)
    train(resolve_config("smoke", {"seed": "0", "steps": "1"}), phantom_root, run, "#1", COMBO.split("+"),
          progress=False)
    run_table(1, "smoke", phantom_root, tmp_path, seeds=[0], methods=["ablation1"], combos=[COMBO], progress=False)
    status = json.loads((tmp_path / "smoke" / "sweep.json").read_text())["table1"]
    assert [s["status"] for s in status.values()] == ["resumed"]
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps[0] == 1 and steps[-1] == 2
    resumed, straight = load_predictions(run), load_predictions(run_dir(out, "smoke", 1, "#1", COMBO, 0))
    assert all(np.array_equal(resumed[case], straight[case]) for case in straight)


def test_checkpoints_can_be_dropped_once_scored(sweep, phantom_root, tmp_path):
    out, path = sweep
    again = run_table(1, "smoke", phantom_root, tmp_path, **{**SWEEP, "methods": ["#1"]}, keep_checkpoints=False)
    run = run_dir(tmp_path, "smoke", 1, "#1", COMBO, 0)
    assert not list(run.glob("*.pt")) and (run / "predictions.npz").is_file()
    mine, theirs = load_results(again), load_results(path)
    columns = ["case", "structure", "dice"]
    pd.testing.assert_frame_equal(mine[columns].reset_index(drop=True),
                                  theirs.loc[theirs["method"] == "#1", columns].reset_index(drop=True))


def test_tables_share_trainings_and_score_them_on_their_own_split(sweep, phantom_root, tmp_path):
    out, _ = sweep
    copy = tmp_path / "copy"  # Table 1's #4 with its checkpoints; Table 3's "ModelMix w/ MSCMR" is the same training
    shutil.copytree(out, copy)
    before = _mtimes(copy)
    path = run_table(3, "smoke", phantom_root, copy, seeds=[0], methods=["#4"], combos=[COMBO], progress=False)
    assert _mtimes(copy) == before  # nothing trained
    status = json.loads((copy / "smoke" / "sweep.json").read_text())["table3"]
    assert [s["status"] for s in status.values()] == ["reused: trained in table1"]
    run = run_dir(copy, "smoke", 3, "#4", COMBO, 0)
    assert json.loads((run / "trained_in.json").read_text()) == {"run": "smoke/runs/table1/ablation4__myops+mscmr__seed0"}
    rows = load_results(path)
    assert set(rows["target"]) == {"myops"}
    cases = {c.subject: c for c in load_split("myops", phantom_root, "test")}
    predictions = load_predictions(run)
    assert set(predictions) == set(cases) and set(rows["case"]) == set(cases)
    for subject, pred in predictions.items():
        mine = rows[rows["case"] == subject].set_index("structure")["dice"]
        for structure, values in evaluate_volume(pred, cases[subject].label, "myops", cases[subject].spacing).items():
            assert mine[structure] == pytest.approx(values["dice"], abs=1e-12)
    other_seed = run_table(3, "smoke", phantom_root, copy, seeds=[1], methods=["#4"], combos=[COMBO], progress=False)
    assert len(_mtimes(copy)) == len(before) + 2  # seed 1 was never trained: it is trained now
    assert set(load_results(other_seed)["seed"]) == {0, 1}


def test_method_missing_from_methods_is_skipped_with_a_warning(monkeypatch, phantom_root, tmp_path):
    monkeypatch.delitem(METHODS, "#2")
    with pytest.warns(UserWarning, match=r"Table 1: #2 \('#2'\) is not implemented; skipped"):
        path = run_table(1, "smoke", phantom_root, tmp_path, seeds=[0], methods=["#2"], progress=False)
    assert not path.exists()
    status = json.loads((tmp_path / "smoke" / "sweep.json").read_text())["table1"]
    assert [(s["tasks"], s["status"]) for s in status.values()] == [
        ("myops+mscmr", "skipped: not implemented"), ("myops+acdc", "skipped: not implemented")]
    assert not list(tmp_path.rglob("*.pt"))


def test_results_made_from_other_data_are_refused(sweep, phantom_root, tmp_path):
    out, path = sweep
    other = tmp_path / "data"
    shutil.copytree(phantom_root, other)
    assert data_differs(load_results(path), other) == []
    scribble = next((other / "MSCMR_dataset").rglob("*scribble*"))
    scribble.write_bytes(scribble.read_bytes() + b"\0")
    assert data_differs(load_results(path), other) == ["#1 on myops+mscmr", "#4 on myops+mscmr"]
    before = _mtimes(out)
    with pytest.raises(DataError, match=r"table1\.jsonl: #1 on myops\+mscmr, #4 on myops\+mscmr were made from other"):
        run_table(1, "smoke", other, out, **SWEEP)
    assert _mtimes(out) == before


def test_cli_prints_ours_next_to_the_paper(sweep, phantom_root, capsys):
    out, path = sweep
    before = _mtimes(out)
    argv = ["--table", "1", "--profile", "smoke", "--data", str(phantom_root), "--out", str(out), "--seeds", "0",
            "--methods", "ablation1", "modelmix", "--combos", COMBO, "--quiet"]
    assert main_reproduce(argv) == 0
    printed = capsys.readouterr().out
    assert f"results: {path} (" in printed and ".805±.181" in printed  # Table 1, #4, MSCMRseg Avg of the paper
    assert _mtimes(out) == before


def test_run_diagnostics_reads_the_logs(sweep):
    out, _ = sweep
    frame = run_diagnostics(out, "smoke", 1).set_index("method")
    assert list(frame.index) == ["#1", "#4"] and (frame["steps"] == 2).all()
    log_file = run_dir(out, "smoke", 1, "#4", COMBO, 0) / "log.jsonl"
    log = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert frame.loc["#4", "best_val_dice"] == max(r["val_dice"] for r in log if "val_dice" in r)
    assert run_diagnostics(out, "smoke", 2).empty


def test_error_breakdown_cuts_only_false_positives(sweep, phantom_root):
    out, path = sweep
    rows = load_results(path)
    near = error_breakdown(rows, out, phantom_root, 1, distance_mm=20.0)
    assert len(near) == len(rows) and set(near["row"]) == {"#1", "#4"}
    merged = near.merge(rows, on=["method", "tasks", "seed", "target", "case", "structure"], suffixes=("", "_rows"))
    assert np.allclose(merged["dice"], merged["dice_rows"])
    assert (near["dice_near"] >= near["dice"] - 1e-12).all()  # the ground truth lies inside the near region
    assert near["remote"].dropna().between(0, 1).all()
    everywhere = error_breakdown(rows, out, phantom_root, 1, distance_mm=1e6)
    assert np.allclose(everywhere["dice_near"], everywhere["dice"]) and (everywhere["remote"].dropna() == 0).all()
    with pytest.raises(DataError, match="predictions file not found"):
        error_breakdown(rows, out / "elsewhere", phantom_root, 1)


def test_broken_results_line_names_file_and_line(tmp_path):
    path = tmp_path / "table1.jsonl"
    path.write_text(json.dumps(dict.fromkeys(RESULT_COLUMNS, 0)) + "\n{oops\n")
    with pytest.raises(DataError, match=r"table1\.jsonl: line 2 is not JSON"):
        load_results(path)
    path.write_text('{"table": 1}\n')
    with pytest.raises(DataError, match=r"table1\.jsonl: missing columns \['method'"):
        load_results(path)


# ----------------------------------------------------------------------------------------------
# Table specs and options
# ----------------------------------------------------------------------------------------------


def test_table_specs_follow_the_paper():
    assert (TABLES[1].split, TABLES[2].split, TABLES[3].split) == ("val", "test", "test")
    assert [(e.method, e.combo) for e in TABLES[1].entries][:5] == [(f"#{k}", COMBO) for k in range(1, 6)]
    assert all(e.targets == e.tasks for e in TABLES[1].entries)
    assert {e.targets for e in TABLES[2].entries} == {("mscmr",)}
    assert [e.combo for e in TABLES[3].entries if e.role == "modelmix"] == [
        "myops+acdc", "myops+mscmr", "myops+mscmr+acdc"]
    for number, spec in TABLES.items():  # every row we train has a published counterpart
        assert {e.row for e in spec.entries} <= set(published(number)["method"])


def test_select_entries_aliases_and_errors():
    assert [e.combo for e in select_entries(1, ["ablation4"])] == ["myops+mscmr", "myops+acdc"]
    assert [e.row for e in select_entries(2, ["modelmix", "pce"])] == ["PCE", "ModelMix w/ MyoPS"]
    assert [e.method for e in select_entries(1, None, ["myops+acdc"])] == ["#1", "#2", "#3", "#4", "#5"]
    with pytest.raises(ConfigError, match="--methods: wsl4 not in Table 1; it has #1, #2, #3, #4, #5"):
        select_entries(1, ["wsl4"])
    with pytest.raises(ConfigError, match=r"--combos: myops\+acdc not in Table 2; it has mscmr, myops\+mscmr"):
        select_entries(2, None, ["myops+acdc"])
    with pytest.raises(ConfigError, match="no row with these methods and combinations"):
        select_entries(3, ["pce"], ["myops+acdc"])
    with pytest.raises(ConfigError, match="--table: expected 1, 2 or 3, got 4"):
        select_entries(4)


def test_parse_seeds():
    assert parse_seeds("0,1,2") == (0, 1, 2)
    with pytest.raises(ConfigError, match="--seeds: expected distinct non-negative integers, got '0,0'"):
        parse_seeds("0,0")
    with pytest.raises(ConfigError, match="--seeds: expected comma-separated integers, got 'a'"):
        parse_seeds("a")


# ----------------------------------------------------------------------------------------------
# The paper's numbers
# ----------------------------------------------------------------------------------------------


def _avg(table: int, method: str, target: str, half: str = "") -> float:
    paper = published(table).set_index(["half", "method", "target", "structure", "metric"])
    return float(paper.loc[(half, method, target, "Avg", "dice"), "mean"])


def test_published_spot_values_and_shape():
    paper = published()
    assert list(paper.columns) == list(PUBLISHED_COLUMNS)
    assert [len(published(t)) for t in (1, 2, 3)] == [2 * 5 * 7, 9 * 2 * 4, 8 * 2 * 3]
    cell = paper.set_index(["table", "half", "method", "target", "structure", "metric"])
    assert tuple(cell.loc[(1, COMBO, "#4", "mscmr", "Avg", "dice")]) == (.805, .181)
    assert tuple(cell.loc[(1, "myops+acdc", "#5", "acdc", "RV", "dice")]) == (.143, .133)
    assert tuple(cell.loc[(2, "", "ModelMix w/ MyoPS", "mscmr", "LV", "hd")]) == (78.05, 16.11)
    assert tuple(cell.loc[(3, "", "ModelMix w/ MSCMR+ACDC", "myops", "Avg", "hd")]) == (43.95, 19.50)
    with pytest.raises(ConfigError, match="table: the paper has Tables 1, 2 and 3, not 4"):
        published(4)


def test_published_numbers_agree_with_the_papers_text():
    # §3.2: #2 over #1 by 20.9, 25.6, 9.4 points (MyoPS, MSCMRseg, ACDC); #4 reaches 57.4, 80.5, 76.7
    gains = [_avg(1, "#2", t, h) - _avg(1, "#1", t, h) for t, h in (("myops", COMBO), ("mscmr", COMBO),
                                                                    ("acdc", "myops+acdc"))]
    assert gains == pytest.approx([.209, .256, .094], abs=5e-4)
    assert [_avg(1, "#4", "myops", COMBO), _avg(1, "#4", "mscmr", COMBO), _avg(1, "#4", "acdc", "myops+acdc")] == [
        .574, .805, .767]
    # §3.2: MyoPS improves over separately trained models (#2) by 13.4 (with MSCMRseg) and 12.6 (with ACDC)
    assert [_avg(1, "#4", "myops", h) - _avg(1, "#2", "myops", h) for h in (COMBO, "myops+acdc")] == pytest.approx(
        [.134, .126], abs=5e-4)
    # §3.3: ModelMix w/ MyoPS beats the best scribble-supervised method of Table 2 by 9.7 points
    scribble = ("PCE", "Mixup", "Cutout", "CycleMix", "ShapePU", "WSL4")
    assert _avg(2, "ModelMix w/ MyoPS", "mscmr") - max(_avg(2, m, "mscmr") for m in scribble) == pytest.approx(.097)
    # §3.3: w/ ACDC and w/ MSCMR exceed the second-best method of Table 3 (nnPU) by 22.4 and 26.9 points
    second = max(_avg(3, m, "myops") for m in ("PCE", "CVIR", "nnPU"))
    assert [_avg(3, f"ModelMix w/ {m}", "myops") - second for m in ("ACDC", "MSCMR")] == pytest.approx(
        [.224, .269], abs=5e-4)


# ----------------------------------------------------------------------------------------------
# Comparisons on hand-made rows
# ----------------------------------------------------------------------------------------------


def _rows(table: int, method: str, tasks: str, target: str, dice: dict[str, list[float]]) -> pd.DataFrame:
    """Result rows with the given Dice per structure, one value per case (``c0``, ``c1``, ...), seed 0."""
    rows = [{"table": table, "method": method, "tasks": tasks, "target": target, "case": f"c{k}",
             "structure": structure, "dice": value, "hd": 10.0 * (k + 1), "hd95": 5.0, "seed": 0,
             "profile": "smoke", "device": "cpu", "commit": "abc", "wall_s": 1.0, "data_fingerprint": "f"}
            for structure, values in dice.items() for k, value in enumerate(values)]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _table2_rows() -> pd.DataFrame:
    diffs = [.01, .02, .03, .04, .05, .06]
    base = [.5, .6, .7, .4, .5, .6]
    return pd.concat([
        _rows(2, "pce", "mscmr", "mscmr", {"LV": [.5, .7], "MYO": [.1, .1], "RV": [.2, .2]}),
        _rows(2, "wsl4", "mscmr", "mscmr", {s: base for s in ("LV", "MYO", "RV")}),
        _rows(2, "#4", "myops+mscmr", "mscmr", {s: [b + d for b, d in zip(base, diffs)] for s in ("LV", "MYO", "RV")}),
    ], ignore_index=True)


def test_comparison_table_hand_computed_cells():
    table = comparison_table(_table2_rows(), 2, "dice")
    assert table.loc["PCE", ("MSCMRseg", "LV", "ours")] == ".600±.141"  # mean and sample std of .5, .7
    assert table.loc["PCE", ("MSCMRseg", "LV", "paper")] == ".454±.271"
    assert table.loc["Mixup", ("MSCMRseg", "Avg", "ours")] == MISSING
    assert table.loc["FullSup-nnUNet", ("MSCMRseg", "Avg", "paper")] == ".799±.160"
    assert list(table.index) == list(dict.fromkeys(published(2)["method"]))
    hd = comparison_table(_table2_rows(), 2, "hd")
    assert hd.loc["PCE", ("MSCMRseg", "RV", "ours")] == "15.00±7.07"
    with pytest.raises(ConfigError, match="half: Table 1 has 'myops\\+mscmr' and 'myops\\+acdc', not ''"):
        comparison_table(_table2_rows(), 1)


def test_wilcoxon_against_the_best_baseline_hand_computed():
    frame = wilcoxon_table(_table2_rows(), 2).set_index("structure")
    assert set(frame["baseline"]) == {"WSL4"} and set(frame["modelmix"]) == {"ModelMix w/ MyoPS"}
    # six positive differences: the exact two-sided p-value is 2 / 2**6
    assert frame.loc["LV", "n"] == 6 and frame.loc["LV", "p_value"] == pytest.approx(2 / 64)
    assert frame.loc["LV", "statistic"] == 0 and frame.loc["LV", "mean_diff"] == pytest.approx(.035)
    assert frame.loc["Avg", "n"] == 18


def test_load_or_sweep_loads_what_is_recorded_and_says_what_is_not(tmp_path):
    rows = _rows(2, "pce", "mscmr", "mscmr", {"LV": [.5, .7]})
    path = results_path(tmp_path, "cpu", 2)
    path.parent.mkdir(parents=True)
    path.write_text(reproduce.sweep._jsonl(rows))
    tables = reproduce.load_or_sweep([2, 3], "cpu", tmp_path / "no_data", tmp_path)
    assert tables[1].source == "not requested" and tables[1].rows.empty and tables[1].out_dir is None
    assert tables[2].source == f"loaded from {path}" and tables[2].out_dir == tmp_path
    assert tables[2].rows["dice"].tolist() == [.5, .7]
    assert tables[3].source == "no recorded results: python -m modelmix_lite reproduce --table 3 --profile cpu"
    smoke = reproduce.load_or_sweep([2], "smoke", tmp_path / "no_data", tmp_path)
    assert smoke[2].source == "not run (the smoke profile sweeps Table 1 only)"


def test_preset_comparison_pairs_the_released_row_with_its_paper_row():
    paper = {"LV": [.5, .6, .7], "MYO": [.4, .4, .4], "RV": [.1, .2, .3]}
    released = {"LV": [.6, .6, .9], "MYO": [.3, .4, .4], "RV": [.1, .2, .3]}
    rows = pd.concat([_rows(1, "#4", "mscmr+acdc", "acdc", paper), _rows(1, "#2", "mscmr+acdc", "acdc", released),
                      _rows(1, "#4@released_code", "mscmr+acdc", "acdc", released)], ignore_index=True)
    frame = preset_comparison(rows).set_index("structure")
    assert set(frame["row"]) == {"#4 (released code)"} and set(frame["reference"]) == {"#4"}
    assert list(frame.index) == ["LV", "MYO", "RV", "Avg"]
    # LV differences .1, 0, .2: mean .1, population std sqrt(2/3) * .1
    assert frame.loc["LV", "n"] == 3 and frame.loc["LV", "mean_diff"] == pytest.approx(.1)
    assert frame.loc["LV", "std_diff"] == pytest.approx(.1 * (2 / 3) ** .5)
    assert (frame.loc["LV", "mean"], frame.loc["LV", "mean_ref"]) == (pytest.approx(.7), pytest.approx(.6))
    assert np.isnan(frame.loc["RV", "p_value"])  # every difference zero: no test
    # Avg pools the nine pairs: differences .1, 0, .2, -.1, 0, 0, 0, 0, 0
    assert frame.loc["Avg", "n"] == 9 and frame.loc["Avg", "mean_diff"] == pytest.approx(.2 / 9)
    assert preset_comparison(rows[rows["method"] != "#4"]).empty  # no paper row: nothing to compare with
    assert preset_verdict(preset_comparison(rows)) == (
        "ACDC: released code higher by 0.022 of average Dice, within what the paired test can tell from chance "
        "(p = 7.5e-01, 9 pairs)")  # scipy: W = 1.5 over the three non-zero differences
    assert preset_verdict(preset_comparison(rows[rows["method"] != "#4"])) == "not recorded"


def test_head_to_head_uses_the_same_rows_for_the_paper():
    line = head_to_head(_table2_rows(), 2).iloc[0]
    assert (line["modelmix"], line["baseline"]) == ("ModelMix w/ MyoPS", "WSL4")
    assert line["gap"] == pytest.approx(.035)
    assert (line["paper_dice"], line["paper_baseline_dice"]) == (.784, .687)
    assert line["paper_gap"] == pytest.approx(.097)


def test_ours_vs_paper_and_rank_agreement():
    pairs = ours_vs_paper(_table2_rows()).set_index("row")
    assert pairs.loc["WSL4", "paper"] == .687 and pairs.loc["WSL4", "ours"] == pytest.approx(.55)
    assert rank_agreement(pairs.reset_index()).iloc[0].to_dict() == {"table": 2, "n": 3, "spearman": 1.0}


def _table1_rows(order: dict[str, float]) -> pd.DataFrame:
    parts = []
    for method, dice in order.items():
        for target, structures in (("myops", ("Scar", "Edema")), ("mscmr", ("LV", "MYO", "RV"))):
            parts.append(_rows(1, method, COMBO, target, {s: [dice, dice] for s in structures}))
    return pd.concat(parts, ignore_index=True)


def test_ablation_pattern_held_and_broken():
    good = {"#1": .2, "#2": .4, "#3": .5, "#4": .6, "#5": .3}
    pattern = ablation_pattern(_table1_rows(good))
    assert list(pattern["holds"]) == [True, True]
    assert pattern_verdict(pattern) == "held on all 2 (combination, task) pairs"
    broken = ablation_pattern(_table1_rows({**good, "#3": .35}))
    assert list(broken["#3 > #2"]) == [False, False] and list(broken["holds"]) == [False, False]
    assert pattern_verdict(broken).startswith("did not hold: #3 > #2 fails on MyoPS of myops+mscmr (0.350 vs 0.400)")
    partial = ablation_pattern(_table1_rows({"#1": .2, "#2": .4, "#4": .6}))
    assert partial["holds"].isna().all()
    assert pattern_verdict(partial) == "held where it could be checked (#3, #5 not run)"
    empty = pd.DataFrame(columns=list(RESULT_COLUMNS))
    assert pattern_verdict(ablation_pattern(empty)) == "could not be checked: Table 1 was not run"


def test_minutes_to_dice_sums_training_time_until_the_first_crossing():
    log = [{"step": 60, "loss": 1.0, "steps_per_s": 1.0}, {"step": 60, "val_acdc": 0.3},
           {"step": 120, "loss": 0.5, "steps_per_s": 0.5}, {"step": 120, "val_acdc": 0.45},
           {"step": 180, "loss": 0.4, "steps_per_s": 1.0}, {"step": 180, "val_acdc": 0.5}]
    assert minutes_to_dice(log, "val_acdc", 0.4) == 3.0  # 60 s + 120 s of steps
    assert minutes_to_dice(log, "val_acdc", 0.3) == 1.0
    assert minutes_to_dice(log, "val_acdc", 0.9) is None


def test_a_preset_row_has_its_own_key_run_folder_and_training_config(tmp_path, monkeypatch):
    released = select_entries(1, ["ablation4@released_code"], real=True)
    assert [(e.row, e.method, e.preset, e.key, e.role) for e in released] == [
        ("#4 (released code)", "#4", "released_code", "#4@released_code", "preset")]
    assert [e.key for e in select_entries(1, ["modelmix"], real=True)] == ["#4"]  # the paper row only
    assert run_dir("r", "p", 1, released[0].key, "mscmr+acdc", 2).name == "ablation4-released_code__mscmr+acdc__seed2"
    seen = {}

    def fake_train(config, root, run, method, tasks, **kwargs):
        seen.update(method=method, lr=config.lr, detach=config.core.detach_virtual)
        raise RuntimeError("stop after the configuration")

    monkeypatch.setattr(reproduce.sweep, "train", fake_train)
    with pytest.raises(RuntimeError, match="stop after"):
        reproduce.sweep._run_one(REAL_TABLES[1], released[0], 0, "smoke", tmp_path, tmp_path, True, "smoke-real")
    assert seen == {"method": "#4", "lr": 1e-4, "detach": True}  # the released code's optimiser and core


def test_real_tables_pair_the_public_tasks_and_reuse_table1s_modelmix():
    assert [(e.row, e.combo, e.targets) for e in REAL_TABLES[1].entries] == [
        (row, "mscmr+acdc", ("mscmr", "acdc"))
        for row in ("#1", "#2", "#2+dice", "#3", "#4", "#5", "#4 (released code)")]
    table2 = {e.row: e for e in REAL_TABLES[2].entries}
    assert list(table2) == ["PCE", "Mixup", "Cutout", "CycleMix", "ShapePU", "WSL4", "ModelMix w/ ACDC"]
    assert (table2["ModelMix w/ ACDC"].method, table2["ModelMix w/ ACDC"].combo) == ("#4", "mscmr+acdc")
    assert REAL_TABLES[2].split == "test" and "FullSup-UNet" not in table2
    assert [e.combo for e in select_entries(1, ["ablation4"], real=True)] == ["mscmr+acdc"]
    assert sweep_folder("cpu_long", real=True) == "cpu_long-real" and sweep_folder("cpu") == "cpu"
    with pytest.raises(ConfigError, match=r"--table: expected 1 or 2 with --real, got 3"):
        select_entries(3, real=True)

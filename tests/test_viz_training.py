"""Notebook 05 (training and evaluation): finished runs in ``modelmix_lite.evaluate`` and figures in ``viz``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection

from modelmix_lite.data.geometry import heart_window, middle_slice
from modelmix_lite.config import config_to_dict, resolve_config
from modelmix_lite.data.inspect import inspect_dataset
from modelmix_lite.data.phantom import generate_phantom
from modelmix_lite.data.readers import load_split
from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.data.fingerprint import data_fingerprint
from modelmix_lite.evaluate import evaluate_cases, evaluate_run, paper_table, qualitative_cases
from modelmix_lite.methods import METHODS
from modelmix_lite.objective import build_objective
from modelmix_lite.rundir import DATA_RECORD, Run, finished_run
from modelmix_lite.viz import plot_dice_strip, plot_qualitative, plot_training_curves, plot_validation_curves

TASKS = ["myops", "mscmr"]


@pytest.fixture(autouse=True)
def _close_figures_and_use_one_thread():
    """Tiny tensors: extra threads only add synchronisation (seconds per forward pass on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    plt.close("all")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke phantom of MyoPS and MSCMRseg. Read-only."""
    root = tmp_path_factory.mktemp("phantom")
    generate_phantom(root, "smoke", 0, tasks=tuple(TASKS), progress=False)
    return root


def _write_run(run: Path, method: str = "#4", **overrides: str) -> torch.nn.Module:
    """A run directory as ``train`` leaves it (config.json, best.pt) with perturbed untrained weights."""
    config = resolve_config("smoke", overrides)
    objective = build_objective(config, METHODS[method], TASKS, torch.device("cpu"))
    with torch.no_grad():
        for p in objective.parameters():
            p.add_(0.01 * torch.randn_like(p))
    run.mkdir(parents=True)
    record = {"method": METHODS[method].name, "tasks": TASKS, "config": config_to_dict(config)}
    (run / "config.json").write_text(json.dumps(record))
    torch.save({"model": objective.state_dict(), "step": 6}, run / "best.pt")
    return objective.models.eval()


# --- data_fingerprint ------------------------------------------------------------------------


def test_data_fingerprint_follows_the_bytes_not_the_location(root: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(root, tmp_path / "elsewhere")
    assert data_fingerprint(copy, TASKS) == data_fingerprint(root, TASKS)
    assert data_fingerprint(root, ["mscmr"]) != data_fingerprint(root, TASKS)
    image = sorted((copy / "MSCMR_dataset" / "TestSet" / "images").glob("*.nii.gz"))[0]
    image.write_bytes(image.read_bytes() + b"\0")
    assert data_fingerprint(copy, TASKS) != data_fingerprint(root, TASKS)


def test_data_fingerprint_names_a_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MyoPS/"):
        data_fingerprint(tmp_path, ["myops"])


# --- finished_run --------------------------------------------------------------------------


def test_finished_run_needs_same_config_finished_training_and_same_data(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run)
    record = json.loads((run / "config.json").read_text())
    (run / DATA_RECORD).write_text(json.dumps({"data_fingerprint": "abc"}))
    assert not finished_run(run, record, "abc")  # no training_curves.png: interrupted
    (run / "training_curves.png").write_bytes(b"")
    assert finished_run(run, record, "abc")
    assert not finished_run(run, record, "abd")
    assert not finished_run(run, {**record, "method": "#2"}, "abc")
    assert not finished_run(run, {**record, "config": {**record["config"], "steps": 7}}, "abc")
    assert not finished_run(tmp_path / "absent", record, "abc")
    (run / "config.json").write_text("{")
    with pytest.raises(DataError, match=r"config.json: not valid JSON"):
        finished_run(run, record, "abc")


# --- Run.models -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["#4", "#5"])
def test_load_run_models_restores_the_checkpointed_weights(tmp_path: Path, method: str) -> None:
    saved = _write_run(tmp_path / "run", method)
    loaded = Run(tmp_path / "run").models()
    assert not loaded.training
    shared_kernel = loaded.models["myops"].encoder.block1.conv1 is loaded.models["mscmr"].encoder.block1.conv1
    assert shared_kernel == (method == "#5")  # #5 shares the convolutions (BatchNorm per task: encoder_bn)
    x = torch.rand(2, 3, 32, 32)
    for task in TASKS:
        torch.testing.assert_close(loaded(task, x), saved(task, x), rtol=0, atol=0)


def test_load_run_models_names_a_missing_checkpoint(tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"last_but_one.pt: checkpoint not found"):
        Run(tmp_path / "run").models("last_but_one.pt")
    with pytest.raises(ConfigError, match=r"config.json: not found"):
        Run(tmp_path).models()


def test_load_run_models_rejects_weights_of_another_architecture(tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    other = _write_run(tmp_path / "wider", base="16")
    torch.save({"model": {f"models.{k}": v for k, v in other.state_dict().items()}}, tmp_path / "run" / "best.pt")
    with pytest.raises(DataError, match=r"best.pt: weights do not fit the run's config.json"):
        Run(tmp_path / "run").models()
    torch.save({"weights": {}}, tmp_path / "run" / "best.pt")
    with pytest.raises(DataError, match=r"best.pt: no 'model' state"):
        Run(tmp_path / "run").models()


# --- evaluate_run ----------------------------------------------------------------------------


def test_evaluate_run_scores_every_task_as_evaluate_cases(root: Path, tmp_path: Path) -> None:
    models = _write_run(tmp_path / "run")
    rows = evaluate_run(tmp_path / "run", root, "test", progress=False)
    assert list(rows.columns) == ["method", "task", "case", "structure", "dice", "hd", "hd95"]
    assert set(rows["method"]) == {"#4"}
    for task in TASKS:
        expected = evaluate_cases(models.models[task], load_split(task, root, "test"), task, 32, progress=False,
                                  spacing_mm=resolve_config("smoke").spacing_mm)  # the run's geometry
        got = rows[rows["task"] == task].drop(columns=["method", "task"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)


def test_evaluate_run_refuses_a_split_without_ground_truth(root: Path, tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    data = shutil.copytree(root, tmp_path / "data")
    shutil.rmtree(data / "MyoPS" / "test_gd")  # the real MyoPS test labels are withheld
    with pytest.raises(DataError, match=r"myops test split: 1 of 1 cases lack ground truth \(e.g. myops_test_201\)"):
        evaluate_run(tmp_path / "run", data, "test", progress=False)


# --- paper_table -----------------------------------------------------------------------------


def _rows() -> pd.DataFrame:
    values = {  # (method, case, structure): dice
        ("B", "c1", "LV"): 0.6, ("B", "c2", "LV"): 0.8, ("B", "c1", "MYO"): 0.5, ("B", "c2", "MYO"): 0.3,
        ("A", "c1", "LV"): 0.9, ("A", "c2", "LV"): 0.9, ("A", "c1", "MYO"): 0.4, ("A", "c2", "MYO"): 0.6,
    }
    return pd.DataFrame([{"method": m, "task": "mscmr", "case": c, "structure": s, "dice": d, "hd": 10 * d,
                          "hd95": 5 * d} for (m, c, s), d in values.items()])


def test_paper_table_matches_hand_computed_mean_and_sample_std() -> None:
    table = paper_table(_rows())
    assert list(table.index) == ["B", "A"]  # order of appearance
    assert list(table.columns) == [("mscmr", "LV"), ("mscmr", "MYO"), ("mscmr", "Avg")]
    # B LV: mean .7, std sqrt(.02) = .1414; B Avg over .6 .8 .5 .3: mean .55, std .2082
    assert table.loc["B"].tolist() == [".700±.141", ".400±.141", ".550±.208"]
    assert table.loc["A"].tolist() == [".900±.000", ".500±.141", ".700±.245"]
    assert paper_table(_rows(), "hd").loc["B", ("mscmr", "LV")] == "7.00±1.41"


def test_paper_table_hd_cells_say_over_how_many_volumes_when_some_are_undefined() -> None:
    rows = _rows()
    rows.loc[(rows["method"] == "B") & (rows["case"] == "c1") & (rows["structure"] == "LV"), ["hd", "hd95"]] = np.nan
    table = paper_table(rows, "hd")
    assert table.loc["B", ("mscmr", "LV")] == "8.00±— (1/2)"  # only c2's 8.0 is defined
    assert table.loc["B", ("mscmr", "Avg")] == "5.33±2.52 (3/4)"  # 8, 5, 3 over the 4 (case, structure) pairs
    assert table.loc["A", ("mscmr", "LV")] == "9.00±.00"  # every volume: no count


def test_paper_table_rejects_unknown_metric_and_missing_keys() -> None:
    with pytest.raises(ConfigError, match=r"metric: 'iou' is not one of dice, hd, hd95"):
        paper_table(_rows(), "iou")
    with pytest.raises(DataError, match=r"missing columns \['method'\]"):
        paper_table(_rows().drop(columns=["method"]))


# --- figures ---------------------------------------------------------------------------------


def test_plot_validation_curves_draws_each_runs_validation_rows() -> None:
    log = pd.DataFrame([{"step": 2, "loss": 1.0}, {"step": 4, "val_myops": 0.2, "val_mscmr": 0.4, "val_dice": 0.3},
                        {"step": 8, "val_myops": 0.5, "val_mscmr": 0.7, "val_dice": 0.6}])
    fig = plot_validation_curves({"a": log, "b": log.assign(val_dice=log["val_dice"] / 2)})
    assert [ax.get_title() for ax in fig.axes] == ["MyoPS 2020 (bSSFP + LGE + T2)", "MSCMRseg (LGE)", "mean over tasks"]
    mean_a, mean_b = fig.axes[2].lines
    assert mean_a.get_xdata().tolist() == [4, 8] and mean_a.get_ydata().tolist() == [0.3, 0.6]
    assert mean_b.get_ydata().tolist() == [0.15, 0.3]
    with pytest.raises(DataError, match=r"a: no validation rows"):
        plot_validation_curves({"a": log[log["val_dice"].isna()]})


def test_plot_training_curves_draws_a_runs_terms_and_its_validation_when_it_has_one() -> None:
    rows = [{"step": 2, "loss": 1.0, "inv/myops": -0.5, "inv/mscmr": -0.4, "sup/myops": 1.2, "steps_per_s": 3.0},
            {"step": 4, "loss": 0.8, "inv/myops": -0.6, "inv/mscmr": -0.5, "sup/myops": 1.0, "steps_per_s": 3.0},
            {"step": 4, "val_myops": 0.2, "val_mscmr": 0.4, "val_dice": 0.3}]
    fig = plot_training_curves(rows)
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["total (Eq. 9)", "inv", "sup", "MyoPS 2020 (bSSFP + LGE + T2)", "MSCMRseg (LGE)",
                      "mean over tasks"]
    assert fig.axes[0].lines[0].get_ydata().tolist() == [1.0, 0.8]
    assert [line.get_label() for line in fig.axes[1].lines] == ["myops", "mscmr"]
    no_validation = plot_training_curves(rows[:2])  # a run with val_every=0
    assert [ax.get_title() for ax in no_validation.axes] == ["total (Eq. 9)", "inv", "sup"]


def test_plot_dice_strip_draws_a_dot_per_volume_and_a_bar_at_the_mean() -> None:
    rows = _rows()
    fig = plot_dice_strip(rows)
    (ax,) = fig.axes
    assert sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)) == 8
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    means = sorted(float(segment[0][1]) for c in bars for segment in c.get_segments())
    assert means == pytest.approx(sorted([0.7, 0.4, 0.9, 0.5]))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LV", "MYO"]
    with pytest.raises(DataError, match=r"missing columns \['task'\]"):
        plot_dice_strip(rows.drop(columns=["task"]))


def test_plot_qualitative_merges_ranks_of_one_case_and_checks_predictions(root: Path) -> None:
    first, second = load_split("myops", root, "train")[:2]
    picks = {"worst": first, "median": first, "best": second}
    predictions = {"m": {c.subject: c.label for c in (first, second)}}
    fig = plot_qualitative(picks, predictions, {"m": {first.subject: 0.5, second.subject: 0.25}})
    assert len(fig.axes) == 2 * 4  # two distinct cases; image, scribble, ground truth, one method
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image (DE)", "scribble", "ground truth", "m"]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith(f"worst = median\n{first.subject}") for t in texts)
    assert "Dice(avg) 0.250" in texts
    (wx, wy), z = heart_window(first), middle_slice(first)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), first.image[1, wx, wy, z].T)  # DE, zoomed
    with pytest.raises(DataError, match=rf"m on {second.subject}: expected shape"):
        plot_qualitative(picks, {"m": {first.subject: first.label, second.subject: first.label[:-1]}})
    mscmr = load_split("mscmr", root, "train")[0]
    with pytest.raises(DataError, match=r"expected cases of one task, got \['mscmr', 'myops'\]"):
        plot_qualitative({"a": first, "b": mscmr}, {})


def test_data_fingerprint_and_inspect_skip_an_absent_split(root: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(root, tmp_path / "no_test")
    shutil.rmtree(copy / "MSCMR_dataset" / "TestSet")
    assert data_fingerprint(copy, ["mscmr"]) != data_fingerprint(root, ["mscmr"])  # it still reads train + val
    report = inspect_dataset("mscmr", copy)
    assert report["absent_splits"] == ["test"] and report["problems"] == [] and set(report["splits"]) == {"train", "val"}
    with pytest.raises(DataError, match=r"TestSet/images: test images folder not found"):
        load_split("mscmr", copy, "test")  # asked for, an absent split is an error


def test_qualitative_cases_ranks_by_every_method_and_predicts_each_pick(phantom_root: Path, tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    models = Run(tmp_path / "run").models().models
    cases = load_split("mscmr", phantom_root, "val")
    subjects = [case.subject for case in cases]
    rows = pd.DataFrame(
        [{"method": label, "case": subject, "structure": s, "dice": (k + 1) / 10 + (0.05 if label == "b" else 0)}
         for label in ("a", "b") for k, subject in enumerate(subjects) for s in ("LV", "MYO")]
    )
    picks, predictions, dice = qualitative_cases({"a": models["mscmr"], "b": models["mscmr"]}, rows, cases, 32,
                                                 device="cpu")
    assert [picks[rank].subject for rank in ("worst", "best")] == [subjects[0], subjects[-1]]
    assert set(predictions) == {"a", "b"} and set(predictions["a"]) == {case.subject for case in picks.values()}
    for case in picks.values():
        assert predictions["a"][case.subject].shape == case.image.shape[1:]
    assert dice["a"][subjects[0]] == pytest.approx(0.1)
    assert dice["b"][subjects[-1]] == pytest.approx(len(subjects) / 10 + 0.05)

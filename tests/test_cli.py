"""The command line end to end on the smoke phantom: train -> evaluate -> predict, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelmix_lite.cli import main
from modelmix_lite.data.nifti import load_nifti
from modelmix_lite.data.readers import load_split
from modelmix_lite.metrics import volume_diagonal_mm


@pytest.fixture(scope="module")
def run_dir(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--method", "#4", "--tasks", "myops,mscmr", "--profile", "smoke", "--data", str(phantom_root),
            "--out", str(out), "--set", "steps=2", "--set", "val_every=0"]
    assert main(argv) == 0
    return out


def test_evaluate_prints_paper_table(run_dir: Path, phantom_root: Path, tmp_path: Path, capsys) -> None:
    csv = tmp_path / "rows.csv"
    assert main(["evaluate", str(run_dir), "--data", str(phantom_root), "--split", "val",
                 "--checkpoint", "last.pt", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "Scar" in out and "LV" in out and "±" in out
    rows = csv.read_text().splitlines()
    n_val = len(load_split("myops", phantom_root, "val")) * 2 + len(load_split("mscmr", phantom_root, "val")) * 3
    assert len(rows) == 1 + n_val  # header + one row per (case, structure)


def test_evaluate_penalises_undefined_hd_with_the_diagonal_when_asked(run_dir: Path, phantom_root: Path, tmp_path: Path,
                                                                    capsys, monkeypatch) -> None:
    import modelmix_lite.evaluate as evaluate

    def predict_nothing(model, case, *args, **kwargs):  # every structure empty: every HD undefined
        return np.zeros(case.label.shape, np.uint8)

    monkeypatch.setattr(evaluate, "predict_volume", predict_nothing)
    csvs = {rule: tmp_path / f"{rule}.csv" for rule in ("nan", "diagonal")}
    for rule, csv in csvs.items():
        assert main(["evaluate", str(run_dir), "--data", str(phantom_root), "--split", "val", "--checkpoint",
                     "last.pt", "--undefined-hd", rule, "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "undefined HD left out" in out and "undefined HD = the volume's diagonal" in out
    nan, diagonal = (pd.read_csv(csvs[rule]) for rule in ("nan", "diagonal"))
    assert nan["hd"].isna().all() and nan["hd95"].isna().all()
    cases = {c.subject: c for task in ("myops", "mscmr") for c in load_split(task, phantom_root, "val")}
    expected = [volume_diagonal_mm(cases[c].label.shape, cases[c].spacing) for c in diagonal["case"]]
    np.testing.assert_allclose(diagonal["hd"], expected)
    np.testing.assert_allclose(diagonal["hd95"], expected)


def test_predict_writes_raw_labels_on_the_input_grid(run_dir: Path, phantom_root: Path, tmp_path: Path) -> None:
    case = load_split("myops", phantom_root, "test")[0]
    assert main(["predict", str(run_dir), "--task", "myops", "--input", *map(str, case.files.images),
                 "--out", str(tmp_path), "--checkpoint", "last.pt"]) == 0
    pred = load_nifti(next(tmp_path.glob("*_pred.nii.gz")))
    assert pred.array.shape == case.image.shape[1:]
    np.testing.assert_allclose(pred.affine, case.affine, atol=1e-5)
    assert set(np.unique(pred.array)) <= {0, 200, 500, 1220, 2221}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--method", "nope", "--tasks", "acdc"], "unknown method 'nope'"),
        (["train", "--method", "#4", "--tasks", "acdc,brats"], "unknown task 'brats'"),
        (["predict", "RUN_THAT_DOES_NOT_EXIST", "--input", "x.nii.gz", "--out", "o"], "config.json: not found"),
    ],
)
def test_bad_options_give_one_clear_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]

"""The command line end to end on the smoke phantom: train -> evaluate -> predict, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelmix_lite.cli import main
from modelmix_lite.data.nifti import load_nifti
from modelmix_lite.data.readers import load_split


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

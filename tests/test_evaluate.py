"""Whole-volume inference through an oracle model, tables, case selection and NIfTI export."""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from modelmix_lite.data.tasks import get_task, unmap_labels
from modelmix_lite.errors import DataError
from modelmix_lite.evaluate import evaluate_cases, predict_volume, select_cases, write_prediction


@dataclass
class FakeCase:
    task: str
    subject: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, float, float]
    affine: np.ndarray


class Oracle(nn.Module):
    """Reads the class back from the intensity: the test images are ``label / (K - 1)`` after normalisation."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.seen_training: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        classes = (x[:, 0] * (self.n_classes - 1)).round().long()
        return 10.0 * nn.functional.one_hot(classes, self.n_classes).permute(0, 3, 1, 2).float()


def make_label(shape=(24, 20, 3)) -> np.ndarray:
    """Background, RV, MYO and LV blocks in every slice (so each slice min-max scales to label / 3)."""
    label = np.zeros(shape, np.uint8)
    label[2:8, 3:9] = 1
    label[10:16, 2:12] = 2
    label[11:15, 4:10] = 3
    label[19:22, 13:17] = 3  # a smaller second LV component
    return label


def make_case(subject="p1", label=None, task="acdc") -> FakeCase:
    label = make_label() if label is None else label
    affine = np.diag([1.5, 1.25, 8.0, 1.0])
    affine[:3, 3] = [10.0, -5.0, 2.0]
    return FakeCase(task, subject, label[None].astype(np.float32) * 7 + 100, label, (1.5, 1.25, 8.0), affine)


def test_oracle_prediction_is_exact_on_the_original_non_square_grid():
    case, oracle = make_case(), Oracle(4)
    oracle.train()
    pred = predict_volume(oracle, case, size=24, batch_size=2)
    assert pred.shape == (24, 20, 3) and pred.dtype == np.uint8
    np.testing.assert_array_equal(pred, case.label)
    assert oracle.seen_training == [False, False] and oracle.training  # eval inside, mode restored


def test_oracle_prediction_survives_resizing():
    case = make_case()
    pred = predict_volume(Oracle(4), case, size=40)  # scale 40/24: up and back down
    assert (pred == case.label).mean() > 0.98


def test_largest_cc_drops_islands():
    case = make_case()
    pred = predict_volume(Oracle(4), case, size=24, largest_cc=True)
    expected = case.label.copy()
    expected[19:22, 13:17] = 0  # the smaller LV component
    np.testing.assert_array_equal(pred, expected)


def test_evaluate_cases_oracle_scores_perfectly():
    cases = [make_case("p1"), make_case("p2")]
    rows = evaluate_cases(Oracle(4), cases, "acdc", size=24, progress=False)
    assert list(rows.columns) == ["case", "structure", "dice", "hd", "hd95"]
    assert rows[["case", "structure"]].values.tolist() == [
        ["p1", "LV"], ["p1", "MYO"], ["p1", "RV"], ["p2", "LV"], ["p2", "MYO"], ["p2", "RV"]
    ]
    assert (rows["dice"] == 1.0).all() and (rows["hd"] == 0.0).all() and (rows["hd95"] == 0.0).all()


def test_evaluate_cases_errors():
    with pytest.raises(DataError, match="p1: no ground-truth label to evaluate against"):
        evaluate_cases(Oracle(4), [FakeCase("acdc", "p1", np.zeros((1, 4, 4, 1)), None, (1, 1, 1), np.eye(4))],
                       "acdc", size=4, progress=False)
    with pytest.raises(DataError, match="p1: a mscmr case cannot be evaluated as task acdc"):
        evaluate_cases(Oracle(4), [make_case(task="mscmr")], "acdc", size=24, progress=False)


def test_select_cases_hand_table():
    rows = pd.DataFrame(
        {
            "case": ["a", "a", "b", "b", "c", "d"],
            "structure": ["LV", "RV", "LV", "RV", "LV", "LV"],
            "dice": [0.4, 0.6, 1.0, 0.8, 0.7, 0.1],
        }
    )
    assert select_cases(rows) == {"worst": "d", "median": "a", "best": "b"}
    with pytest.raises(DataError, match="rows: expected a non-empty table"):
        select_cases(rows.iloc[:0])


def test_write_prediction_round_trip_raw_values(tmp_path):
    label = np.zeros((6, 5, 2), np.uint8)
    label[1:3, 1:3] = [1, 2]
    label[4, :, 0] = 3
    label[4, :, 1] = 4
    case = make_case(label=label, task="myops")
    case.image = np.repeat(case.image, 3, axis=0)
    path = write_prediction(case, label, tmp_path / "out" / "pred.nii.gz")
    image = nib.load(path)
    stored = np.asarray(image.dataobj)
    np.testing.assert_array_equal(stored, unmap_labels(label, get_task("myops")))
    assert set(np.unique(stored)) == {0, 200, 500, 1220, 2221}
    np.testing.assert_allclose(image.affine, case.affine)
    np.testing.assert_allclose(image.header.get_zooms()[:3], case.spacing)
    with pytest.raises(DataError, match=r"pred.nii.gz: prediction shape \(6, 5\) does not match"):
        write_prediction(case, label[..., 0], tmp_path / "pred.nii.gz")
    with pytest.raises(DataError, match="prediction values outside 0..4 of task myops"):
        write_prediction(case, label + 5, tmp_path / "pred.nii.gz")

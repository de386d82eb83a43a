"""Metrics against hand-counted voxel sets and exact distances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.metrics import (
    errors_by_distance,
    dice,
    evaluate_volume,
    format_mean_std,
    hausdorff,
    largest_connected_component,
    structure_mask,
    summarize,
    surface_distances,
)


def cube(shape=(12, 12, 12), start=(2, 2, 2), side=6) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + side) for s in start)] = True
    return mask


def test_dice_counts():
    a = cube(side=4)  # 64 voxels
    half = a.copy()
    half[:, :, 4:] = False  # 4 x 4 x 2 = 32 voxels inside a
    assert dice(a, half) == pytest.approx(2 * 32 / 96)
    shifted = np.roll(a, 1, axis=0)  # overlap 3 x 4 x 4 = 48
    assert dice(a, shifted) == pytest.approx(2 * 48 / 128)
    assert dice(a, a) == 1.0
    assert dice(a, ~a) == 0.0


def test_dice_nested_discs_close_to_analytic():
    yy, xx = np.mgrid[:101, :101] - 50
    inner, outer = xx**2 + yy**2 <= 20**2, xx**2 + yy**2 <= 30**2
    assert dice(inner, outer) == pytest.approx(2 * 20**2 / (20**2 + 30**2), abs=0.01)


def test_empty_conventions():
    empty, full = np.zeros((4, 4, 4), bool), cube((4, 4, 4), (1, 1, 1), 2)
    assert dice(empty, empty) == 1.0
    assert dice(empty, full) == 0.0 and dice(full, empty) == 0.0
    assert hausdorff(empty, empty, (1, 1, 1)) == 0.0
    assert math.isnan(hausdorff(empty, full, (1, 1, 1)))
    assert math.isnan(hausdorff(full, empty, (1, 1, 1), percentile=95))


@pytest.mark.parametrize("axis, k", [(0, 2), (1, 3), (2, 1)])
def test_hausdorff_of_shifted_cube_is_shift_times_spacing(axis, k):
    spacing = (2.5, 1.0, 0.7)
    a = cube()
    b = np.roll(a, k, axis=axis)
    assert hausdorff(a, b, spacing) == pytest.approx(k * spacing[axis])
    assert hausdorff(b, a, spacing) == pytest.approx(k * spacing[axis])
    assert hausdorff(a, b, spacing, percentile=95) <= hausdorff(a, b, spacing)


def test_hd95_is_percentile_of_pooled_distances():
    # 1-D: gt = {0}; pred = {0, 9}. pred->gt distances [0, 9], gt->pred [0]; spacing 2 mm.
    gt, pred = np.zeros(10, bool), np.zeros(10, bool)
    gt[0] = pred[0] = pred[9] = True
    assert sorted(surface_distances(pred, gt, (2.0,))) == [0.0, 0.0, 18.0]
    assert hausdorff(pred, gt, (2.0,)) == 18.0
    assert hausdorff(pred, gt, (2.0,), percentile=95) == pytest.approx(0.9 * 18.0)  # rank 1.9 of 0..2
    assert hausdorff(pred, gt, (2.0,), percentile=50) == 0.0


def test_bad_inputs_raise():
    a = cube()
    with pytest.raises(DataError, match="pred: expected a boolean mask, got dtype uint8"):
        dice(a.astype(np.uint8), a)
    with pytest.raises(DataError, match=r"pred/gt: shapes differ"):
        dice(a, a[:-1])
    with pytest.raises(DataError, match="spacing: expected 3 positive finite values"):
        hausdorff(a, a, (1.0, 1.0))
    with pytest.raises(DataError, match="spacing: expected 3 positive finite values"):
        hausdorff(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match=r"percentile: must lie in \[0, 100\]"):
        hausdorff(a, a, (1, 1, 1), percentile=101)


def test_structure_mask_union():
    label = np.array([0, 1, 2, 3, 4, 4])
    assert structure_mask(label, (3, 4)).tolist() == [False, False, False, True, True, True]
    assert structure_mask(label, (1,)).tolist() == [False, True, False, False, False, False]


def test_evaluate_volume_identity_and_order():
    gt = np.zeros((10, 10, 4), np.uint8)
    gt[2:5, 2:5] = 3
    gt[5:8, 2:5] = 2
    gt[2:5, 6:9] = 1
    result = evaluate_volume(gt, gt.copy(), "acdc", (1.5, 1.5, 10.0))
    assert list(result) == ["LV", "MYO", "RV"]
    for values in result.values():
        assert values == {"dice": 1.0, "hd": 0.0, "hd95": 0.0}


def test_evaluate_volume_myops_edema_is_edema_union_scar():
    gt = np.zeros((10, 10, 3), np.uint8)
    gt[1:4, 1:4] = 3  # edema
    gt[5:8, 5:8] = 4  # scar
    pred = np.where(gt > 0, 3, 0).astype(np.uint8)  # everything called edema
    result = evaluate_volume(pred, gt, "myops", (1.0, 1.0, 1.0))
    assert list(result) == ["Scar", "Edema"]
    assert result["Edema"] == {"dice": 1.0, "hd": 0.0, "hd95": 0.0}
    assert result["Scar"]["dice"] == 0.0
    assert math.isnan(result["Scar"]["hd"]) and math.isnan(result["Scar"]["hd95"])


def test_evaluate_volume_rejects_bad_labels_and_task():
    gt = np.zeros((4, 4, 2), np.uint8)
    bad = gt.copy()
    bad[0, 0, 0] = 255
    with pytest.raises(DataError, match=r"pred: label values \[0, 255\] outside 0..3 of task acdc"):
        evaluate_volume(bad, gt, "acdc", (1, 1, 1))
    with pytest.raises(ConfigError, match="task: unknown task 'foo'"):
        evaluate_volume(gt, gt, "foo", (1, 1, 1))


def test_summarize_hand_table():
    rows = pd.DataFrame(
        {
            "method": ["m"] * 4 + ["n"] * 2,
            "case": ["a", "a", "b", "b", "a", "a"],
            "structure": ["LV", "RV", "LV", "RV", "LV", "RV"],
            "dice": [0.8, 1.0, 0.6, 0.4, 0.5, 0.7],
            "hd": [2.0, 4.0, np.nan, 8.0, 1.0, 3.0],
            "hd95": [1.0, 2.0, np.nan, 6.0, 1.0, 2.0],
        }
    )
    table = summarize(rows).set_index(["method", "structure"])
    assert list(table.index) == [("m", "LV"), ("m", "RV"), ("m", "Avg"), ("n", "LV"), ("n", "RV"), ("n", "Avg")]
    assert table.loc[("m", "LV"), "dice_mean"] == pytest.approx(0.7)
    assert table.loc[("m", "LV"), "dice_std"] == pytest.approx(math.sqrt(0.02))
    assert table.loc[("m", "RV"), "dice_std"] == pytest.approx(math.sqrt(0.18))
    assert table.loc[("m", "Avg"), "dice_mean"] == pytest.approx(0.7)
    assert table.loc[("m", "Avg"), "dice_std"] == pytest.approx(math.sqrt(0.2 / 3))  # pooled, ddof=1
    assert table.loc[("m", "LV"), "hd_mean"] == 2.0 and table.loc[("m", "LV"), "hd_n"] == 1
    assert math.isnan(table.loc[("m", "LV"), "hd_std"])
    assert table.loc[("m", "Avg"), "hd_mean"] == pytest.approx(14 / 3) and table.loc[("m", "Avg"), "hd_n"] == 3
    assert table.loc[("n", "Avg"), "dice_mean"] == pytest.approx(0.6)
    assert math.isnan(table.loc[("n", "LV"), "dice_std"])  # one volume


def test_summarize_rejects_bad_rows():
    rows = pd.DataFrame({"case": ["a", "a"], "structure": ["LV", "LV"], "dice": [1, 1], "hd": [0, 0], "hd95": [0, 0]})
    with pytest.raises(DataError, match="rows: repeated"):
        summarize(rows)
    with pytest.raises(DataError, match=r"rows: missing columns \['hd95'\]"):
        summarize(rows.drop(columns="hd95"))


def test_format_mean_std():
    assert format_mean_std(0.805, 0.181) == ".805±.181"
    assert format_mean_std(0.80449, 0.0504) == ".804±.050"
    assert format_mean_std(1.0, 0.0) == "1.000±.000"
    assert format_mean_std(78.05, 16.11, digits=2) == "78.05±16.11"
    assert format_mean_std(0.5, float("nan")) == ".500±—"  # one volume: no spread, and never "nan"
    assert format_mean_std(float("nan"), float("nan")) == "—"


def test_largest_connected_component():
    mask = np.zeros((6, 6, 1), bool)
    mask[0, 0:3] = True  # 3 voxels
    mask[3, 3] = mask[4, 4] = mask[5, 5] = mask[4, 5] = True  # 4 voxels, diagonally connected
    kept = largest_connected_component(mask)
    assert kept.sum() == 4 and kept[3, 3, 0] and not kept[0, 0, 0]
    assert not largest_connected_component(np.zeros((3, 3), bool)).any()
    with pytest.raises(DataError, match="mask: expected a boolean mask"):
        largest_connected_component(mask.astype(int))


def test_errors_by_distance_separates_remote_false_positives():
    gt = np.zeros((40, 30, 4), np.uint8)
    gt[5:10, 5:10, 1:3] = 3  # MSCMR LV: a 5x5x2 block
    pred = gt.copy()
    pred[30:34, 20:25, 0:2] = 3  # 4x5x2 = 40 voxels of "LV" far away (> 20 mm at 2 mm spacing)
    pred[10, 5:10, 1:3] = 3  # 10 voxels just outside the heart: a near error
    out = errors_by_distance(pred, gt, "mscmr", (2.0, 2.0, 5.0), distance_mm=20.0)["LV"]
    assert out["remote"] == pytest.approx(40 / (50 + 40 + 10))
    assert out["dice_near"] == pytest.approx(2 * 50 / (60 + 50))  # the near error still counts
    assert math.isnan(errors_by_distance(gt * 0 + (gt > 0), gt, "mscmr", (2.0, 2.0, 5.0))["LV"]["remote"])
    far = errors_by_distance(pred, gt, "mscmr", (2.0, 2.0, 5.0), distance_mm=1000.0)["LV"]
    assert far == {"remote": 0.0, "dice_near": pytest.approx(2 * 50 / (100 + 50))}  # nothing remote: plain Dice


def test_errors_by_distance_bad_inputs():
    gt = np.zeros((8, 8, 2), np.uint8)
    with pytest.raises(DataError, match="no foreground"):
        errors_by_distance(gt, gt, "mscmr", (1, 1, 1))
    gt[2, 2, 0] = 1
    with pytest.raises(DataError, match="shapes differ"):
        errors_by_distance(gt[:4], gt, "mscmr", (1, 1, 1))
    with pytest.raises(ConfigError, match="distance_mm"):
        errors_by_distance(gt, gt, "mscmr", (1, 1, 1), distance_mm=-1)

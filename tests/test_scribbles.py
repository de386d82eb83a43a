from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from modelmix_lite.data.scribbles import scribble_coverage, synthesize_scribbles
from modelmix_lite.data.tasks import UNANNOTATED
from modelmix_lite.errors import ConfigError, DataError

U = UNANNOTATED


def heart_label(shape=(120, 128, 5)) -> np.ndarray:
    """A drawn short-axis stack: LV disk, MYO ring, RV crescent shrinking toward the apex; last slice empty."""
    x, y = np.meshgrid(np.arange(shape[0]) - 60.0, np.arange(shape[1]) - 64.0, indexing="ij")
    r = np.hypot(x, y)
    label = np.zeros(shape, np.uint8)
    for z in range(shape[2] - 1):
        cavity = 18 - 3 * z
        label[..., z][r < cavity + 7] = 2
        label[..., z][r < cavity] = 3
        rv = ((x + 16) / (16 - 3 * z)) ** 2 + (y / 30) ** 2 < 1
        label[..., z][rv & (r >= cavity + 7)] = 1
    return label


def test_coverage_hand_computed():
    label = np.array([[0, 0, 0, 0], [1, 1, 2, 2]], np.uint8)[..., None]
    scribble = np.array([[0, U, U, U], [1, U, U, U]], np.uint8)[..., None]
    cov = scribble_coverage(scribble, label, n_classes=4)
    assert cov[0] == 0.25 and cov[1] == 0.5 and cov[2] == 0.0
    assert math.isnan(cov[3])  # absent class
    assert cov["all"] == 2 / 8


def test_coverage_counts_only_matching_class():
    label = np.array([[1, 1]], np.uint8)[..., None]
    scribble = np.array([[2, 1]], np.uint8)[..., None]  # the first mark has the wrong class
    assert scribble_coverage(scribble, label, 3)[1] == 0.5


def test_coverage_shape_mismatch():
    with pytest.raises(DataError, match=r"scribble: shape \(2, 2\) differs from the label's \(2, 3\)"):
        scribble_coverage(np.zeros((2, 2)), np.zeros((2, 3)), 2)


def test_scribble_is_subset_of_its_class_and_thin():
    label = heart_label()
    scribble = synthesize_scribbles(label, "acdc", np.random.default_rng(0))
    assert scribble.shape == label.shape and scribble.dtype == np.uint8
    marked = scribble != U
    np.testing.assert_array_equal(scribble[marked], label[marked])
    for c in range(4):  # pen at most 3 px wide: no 4x4 block is fully scribbled
        assert not ndimage.binary_erosion(scribble == c, np.ones((4, 4, 1), bool)).any()


def test_coverage_in_real_scribble_ranges():
    label = heart_label()
    for seed in range(3):
        cov = scribble_coverage(synthesize_scribbles(label, "acdc", np.random.default_rng(seed)), label, 4)
        for c in (1, 2, 3):
            assert 0.05 <= cov[c] <= 0.20, (seed, c, cov[c])
        assert 0 < cov[0] < 0.03
        assert cov["all"] < 0.03


def test_every_heart_slice_gets_every_structure_and_empty_slices_none():
    label = heart_label()
    scribble = synthesize_scribbles(label, "acdc", np.random.default_rng(1))
    for z in range(label.shape[2] - 1):
        assert set(np.unique(scribble[..., z])) == {0, 1, 2, 3, U}, z
    assert np.all(scribble[..., -1] == U)


def test_background_stroke_keeps_a_gap_to_the_structures():
    label = heart_label()
    scribble = synthesize_scribbles(label, "acdc", np.random.default_rng(2))
    near_heart = ndimage.binary_dilation(label > 0, np.ones((3, 3, 1), bool))
    assert (scribble == 0).any()
    assert not ((scribble == 0) & near_heart).any()


def test_deterministic_per_rng():
    label = heart_label()
    a = synthesize_scribbles(label, "acdc", np.random.default_rng(5))
    b = synthesize_scribbles(label, "acdc", np.random.default_rng(5))
    c = synthesize_scribbles(label, "acdc", np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_specks_stay_unannotated_but_slice_gets_background():
    label = np.zeros((40, 40, 1), np.uint8)
    label[20:22, 20:22, 0] = 3  # 4 px: a single scribbled pixel would already be 25 %
    scribble = synthesize_scribbles(label, "acdc", np.random.default_rng(0))
    assert not (scribble == 3).any()
    assert (scribble == 0).any()


def test_myops_classes_and_pathology_strokes():
    label = np.array([0, 0, 1, 2], np.uint8)[heart_label()]  # MyoPS classes: RV is background, MYO 1, LV 2
    x, y = np.meshgrid(np.arange(120) - 60.0, np.arange(128) - 64.0, indexing="ij")
    sector = (x > 0) & (np.abs(y) < x)  # a lateral territory of the myocardium
    for z in range(4):
        ring = label[..., z] == 1
        label[..., z][ring & sector] = 3
        label[..., z][ring & sector & (np.abs(y) < 0.4 * x)] = 4
    scribble = synthesize_scribbles(label, "myops", np.random.default_rng(0))
    marked = scribble != U
    np.testing.assert_array_equal(scribble[marked], label[marked])
    cov = scribble_coverage(scribble, label, 5)
    for c in (1, 2, 3, 4):
        assert 0.05 <= cov[c] <= 0.20, (c, cov[c])


@pytest.mark.parametrize(
    "label, match",
    [
        (np.zeros((4, 4), np.uint8), r"label: expected a 3-D \(X, Y, Z\) volume, got shape \(4, 4\)"),
        (np.zeros((4, 4, 2), np.float32), r"label: expected integer class indices, got dtype float32"),
        (np.full((4, 4, 2), 7, np.uint8), r"label: values \[7\] are not classes 0..3"),
        (np.zeros((4, 4, 2), np.uint8), r"label: the volume has no foreground"),
    ],
)
def test_bad_labels(label, match):
    with pytest.raises(DataError, match=match):
        synthesize_scribbles(label, "acdc", np.random.default_rng(0))


def test_no_room_for_any_stroke():
    label = np.full((2, 2, 1), 3, np.uint8)  # a 4-px LV speck filling the slice: no stroke, no background
    with pytest.raises(DataError, match=r"label: no slice could be scribbled"):
        synthesize_scribbles(label, "acdc", np.random.default_rng(0))


def test_bad_options():
    label = heart_label()
    with pytest.raises(ConfigError, match=r"target: expected 0 < low <= high <= 1, got \(0.2, 0.1\)"):
        synthesize_scribbles(label, "acdc", np.random.default_rng(0), target=(0.2, 0.1))
    with pytest.raises(ConfigError, match=r"margin: expected 1 <= low <= high pixels, got \(0, 4\)"):
        synthesize_scribbles(label, "acdc", np.random.default_rng(0), margin=(0, 4))

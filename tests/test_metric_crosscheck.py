"""Dice, HD and HD95 of :mod:`modelmix_lite.metrics` against MONAI's implementation (a test dependency).

Checked on anisotropic volumes (a synthetic one always; real ACDC and MSCMRseg validation labels when the real
data is present), agreement to 1e-6 mm. Where the two libraries define a number differently, the test pins the
difference instead:

* **HD95.** Ours is medpy's ``hd95``, the 95th percentile of both directions' surface distances *pooled*
  (what the released evaluation wraps). MONAI's ``percentile=95`` takes the 95th percentile of each direction
  and then the larger one. The pooled number is rebuilt from MONAI's directed surface distances and must match.
* **Empty structures.** Ours follows the released evaluation: both empty → Dice 1, HD 0; one empty → Dice 0, HD
  undefined (NaN, or the volume's diagonal with ``undefined_hd="diagonal"``). MONAI gives Dice 1 / 0 with
  ``ignore_empty=False`` and an infinite or NaN HD where one side is empty.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from modelmix_lite.data.readers import load_split
from modelmix_lite.data.tasks import get_task
from modelmix_lite.metrics import evaluate_volume, volume_diagonal_mm

from test_real_data import REAL_ROOT

monai_metrics = pytest.importorskip("monai.metrics", reason="MONAI is a test dependency (pip install -e .[dev])")
from monai.metrics.utils import get_mask_edges, get_surface_distance  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")  # inside MONAI 1.6


def _onehot(mask: np.ndarray) -> torch.Tensor:
    """A boolean ``(X, Y, Z)`` mask as MONAI's ``(B=1, C=1, X, Y, Z)`` one-hot tensor."""
    return torch.from_numpy(mask[None, None].astype(np.float32))


def monai_values(pred: np.ndarray, gt: np.ndarray, spacing) -> dict[str, float]:
    """Dice, HD and pooled HD95 of two non-empty boolean masks, from MONAI."""
    spacing = [float(s) for s in spacing]
    dice = monai_metrics.compute_dice(_onehot(pred), _onehot(gt), include_background=True).item()
    hd = monai_metrics.compute_hausdorff_distance(_onehot(pred), _onehot(gt), include_background=True,
                                                  spacing=spacing).item()
    edges_pred, edges_gt = get_mask_edges(pred, gt, crop=True)
    pooled = np.concatenate([np.asarray(get_surface_distance(edges_pred, edges_gt, spacing=spacing)),
                             np.asarray(get_surface_distance(edges_gt, edges_pred, spacing=spacing))])
    directed95 = monai_metrics.compute_hausdorff_distance(_onehot(pred), _onehot(gt), include_background=True,
                                                          percentile=95, spacing=spacing).item()
    return {"dice": dice, "hd": hd, "hd95": float(np.percentile(pooled, 95)), "monai_hd95": directed95}


def _prediction(label: np.ndarray) -> np.ndarray:
    """A plausible wrong segmentation: the labels shifted by 2 voxels in x and 1 in y, one class eroded."""
    pred = np.roll(label, (2, 1), axis=(0, 1))
    eroded = ndimage.binary_erosion(pred == 2, structure=np.ones((3, 3, 1), bool))  # in-plane
    return np.where((pred == 2) & ~eroded, 0, pred)


def _check_task_volume(pred: np.ndarray, gt: np.ndarray, task: str, spacing) -> int:
    ours = evaluate_volume(pred, gt, task, spacing)
    checked = 0
    for structure, classes in get_task(task).structures.items():
        p, g = np.isin(pred, classes), np.isin(gt, classes)
        if not p.any() or not g.any():
            continue
        theirs = monai_values(p, g, spacing)
        for metric in ("dice", "hd", "hd95"):
            assert ours[structure][metric] == pytest.approx(theirs[metric], abs=1e-6), (structure, metric)
        assert theirs["monai_hd95"] >= ours[structure]["hd95"] - 1e-6  # max of directed ≥ pooled percentile
        checked += 1
    return checked


def _synthetic() -> tuple[np.ndarray, np.ndarray]:
    grid = np.indices((40, 36, 9)).astype(float)
    centre = np.array([20, 18, 4])[:, None, None, None]
    radius = np.sqrt((((grid - centre) * np.array([1.3, 1.3, 5.0])[:, None, None, None]) ** 2).sum(0))
    gt = np.select([radius < 8, radius < 12, radius < 16], [3, 2, 1], 0).astype(np.uint8)
    return _prediction(gt), gt


def test_metrics_agree_with_monai_on_an_anisotropic_volume():
    pred, gt = _synthetic()
    assert _check_task_volume(pred, gt, "acdc", (1.3, 1.3, 5.0)) == 3


def test_empty_structure_conventions_against_monai():
    _, gt = _synthetic()
    spacing = (1.3, 1.3, 5.0)
    empty = np.zeros_like(gt)
    ours = evaluate_volume(empty, gt, "acdc", spacing)["LV"]
    assert ours["dice"] == 0.0 and np.isnan(ours["hd"]) and np.isnan(ours["hd95"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns that a side is empty
        theirs_dice = monai_metrics.compute_dice(_onehot(empty == 3), _onehot(gt == 3), ignore_empty=False).item()
        theirs_hd = monai_metrics.compute_hausdorff_distance(_onehot(empty == 3), _onehot(gt == 3),
                                                             include_background=True, spacing=list(spacing)).item()
    assert theirs_dice == 0.0 and not np.isfinite(theirs_hd)
    penalised = evaluate_volume(empty, gt, "acdc", spacing, undefined_hd="diagonal")["LV"]
    diagonal = float(np.sqrt((40 * 1.3) ** 2 + (36 * 1.3) ** 2 + (9 * 5.0) ** 2))
    assert penalised["hd"] == penalised["hd95"] == pytest.approx(diagonal) == volume_diagonal_mm(gt.shape, spacing)
    both = evaluate_volume(empty, empty, "acdc", spacing)["LV"]
    assert (both["dice"], both["hd"], both["hd95"]) == (1.0, 0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert monai_metrics.compute_dice(_onehot(empty == 3), _onehot(empty == 3), ignore_empty=False).item() == 1.0


@pytest.mark.skipif(not (REAL_ROOT / "ACDC_dataset").is_dir() or not (REAL_ROOT / "MSCMR_dataset").is_dir(),
                    reason=f"no real data at {REAL_ROOT} (see ../shared/data/README.md)")
@pytest.mark.parametrize("task", ["acdc", "mscmr"])
def test_metrics_agree_with_monai_on_real_label_volumes(task):
    cases = load_split(task, REAL_ROOT, "val")[:2]
    checked = 0
    for case in cases:
        assert len(set(np.round(case.spacing, 3))) > 1  # anisotropic: slices thicker than the in-plane pixels
        checked += _check_task_volume(_prediction(case.label), case.label, task, case.spacing)
    assert checked == 3 * len(cases)

"""The public ACDC and MSCMRseg releases: every split present reads cleanly, the slice geometry inverts on real
ground truth, and a short train + evaluate run goes end to end.

The data root is ``$MODELMIX_LITE_REAL_DATA`` or ``../shared/data/real`` beside the repository
(``../shared/data/README.md``). Without it these tests skip: a user's clone has none, CI has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from modelmix_lite.config import PROFILES, resolve_config
from modelmix_lite.data.geometry import fit_slice, restore_probabilities
from modelmix_lite.data.inspect import inspect_dataset
from modelmix_lite.data.nifti import load_nifti
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.tasks import get_task, map_labels
from modelmix_lite.errors import DataError
from modelmix_lite.evaluate import evaluate_run
from modelmix_lite.metrics import dice
from modelmix_lite.train import train

REAL_ENV = "MODELMIX_LITE_REAL_DATA"
REAL_ROOT = Path(os.environ.get(REAL_ENV) or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real")

pytestmark = pytest.mark.skipif(
    not (REAL_ROOT / "ACDC_dataset").is_dir() or not (REAL_ROOT / "MSCMR_dataset").is_dir(),
    reason=f"no real data at {REAL_ROOT} (set ${REAL_ENV}; see ../shared/data/README.md)",
)


@pytest.mark.parametrize("task, splits", [("acdc", {"train", "val"}), ("mscmr", {"train", "val", "test"})])
def test_every_split_present_reads_with_no_problem(task, splits):
    report = inspect_dataset(task, REAL_ROOT)
    assert report["problems"] == []
    assert set(report["splits"]) == splits  # ACDC's test set is kept back: absent, not a problem
    assert all(info["cases"] for info in report["splits"].values())


def test_the_myops_label_files_map_to_canonical_labels():
    spec = get_task("myops")
    kinds = []
    for path in sorted((REAL_ROOT / "MyoPS_scribbles").glob("*.nii.gz")):
        raw = load_nifti(path).array
        kind = "scribble" if np.any(np.round(raw) == 3000) else "gt"
        canonical = map_labels(raw, spec.scribble_map if kind == "scribble" else spec.gt_map, path)
        assert canonical.dtype == np.uint8 and canonical.shape == raw.shape
        kinds.append(kind)
    assert (kinds.count("scribble"), kinds.count("gt")) == (20, 5)


@pytest.mark.parametrize("task", ["acdc", "mscmr"])
@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_ground_truth_survives_fit_and_restore(task, profile):
    """The geometry's Dice ceiling on real validation volumes: class probabilities at the network's grid,
    mapped back to the scanner's grid, lose almost nothing (>= .99 per structure)."""
    config = PROFILES[profile]
    spec = get_task(task)
    for case in load_split(task, REAL_ROOT, "val")[:2]:
        restored = np.zeros_like(case.label)
        for z in range(case.label.shape[-1]):
            one_hot = (np.arange(spec.n_classes)[:, None, None] == case.label[..., z][None]).astype(np.float32)
            fitted, _, geometry = fit_slice(one_hot, config.size, spacing=case.spacing, spacing_mm=config.spacing_mm)
            restored[..., z] = restore_probabilities(fitted, geometry).argmax(0)
        for k in range(1, spec.n_classes):
            assert dice(restored == k, case.label == k) >= 0.99, (case.subject, spec.classes[k])


def test_a_short_real_run_trains_and_evaluates(tmp_path):
    config = resolve_config("smoke", ["steps=2", "val_every=0", "ckpt_every=2", "log_every=1", "device=cpu"])
    run = train(config, REAL_ROOT, tmp_path / "run", "modelmix", ["mscmr", "acdc"], progress=False)
    assert (run / "last.pt").is_file() and (run / "training_curves.png").is_file()
    rows = evaluate_run(run, REAL_ROOT, "val", checkpoint="last.pt", progress=False)
    assert set(rows["task"]) == {"mscmr", "acdc"}
    assert rows.groupby("task")["case"].nunique().to_dict() == {"acdc": 30, "mscmr": 5}
    assert rows["dice"].between(0, 1).all()


@pytest.fixture(scope="module")
def slice_cache(tmp_path_factory):
    """One slice cache for the real-data runs below (the real MSCMRseg slices are fitted once)."""
    return tmp_path_factory.mktemp("real_cache")


@pytest.mark.parametrize("method, overrides", [("shapepu", []), ("cvir", ["prior_split=val"]),
                                               ("nnpu", ["prior_split=val"])])
def test_pu_baselines_train_on_real_mscmr_whose_training_split_has_scribbles_only(tmp_path, slice_cache, method,
                                                                                 overrides):
    config = resolve_config("smoke", ["steps=2", "val_every=0", *overrides])
    run = train(config, REAL_ROOT, tmp_path / "run", method, ["mscmr"], progress=False, cache_dir=slice_cache)
    assert (run / "last.pt").is_file()


def test_nnpu_on_real_mscmr_without_a_prior_split_names_the_fix(tmp_path, slice_cache):
    config = resolve_config("smoke", ["steps=2", "val_every=0"])
    with pytest.raises(DataError, match=r"no ground truth in the train split.*set prior_split=val"):
        train(config, REAL_ROOT, tmp_path / "run", "nnpu", ["mscmr"], progress=False, cache_dir=slice_cache)

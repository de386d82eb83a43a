from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from modelmix_lite.data import anatomy, phantom
from modelmix_lite.data.layout import list_cases
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.scribbles import scribble_coverage
from modelmix_lite.data.tasks import TASKS, UNANNOTATED
from modelmix_lite.errors import ConfigError

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    summary = phantom.generate_phantom(root, "smoke", seed=0, progress=False)
    cases = {task: {split: load_split(task, root, split) for split in SPLITS} for task in TASKS}
    return root, summary, cases


def volumes(root, task):
    """Every NIfTI array written for ``task``, keyed by path relative to ``root``."""
    files = [f for split in SPLITS for case in list_cases(task, root, split)
             for f in (*case.images, case.label, case.scribble) if f is not None]
    return {str(f.relative_to(root)): np.asarray(nib.load(f).dataobj) for f in files}


def test_summary_uses_the_real_subject_numbers(smoke):
    _, summary, _ = smoke
    assert summary["acdc"]["val"][0] == "patient071_frame01" and summary["acdc"]["test"][0] == "patient086_frame01"
    assert [s[:10] for s in summary["acdc"]["train"]] == ["patient001"] * 2 + ["patient002"] * 2 + ["patient003"] * 2
    es_frames = [int(s[-2:]) for s in summary["acdc"]["train"][1::2]]
    assert all(10 <= f <= 14 for f in es_frames)
    assert summary["mscmr"] == {
        "train": [f"subject{n}_DE" for n in (2, 4, 6, 7, 9, 13)], "val": ["subject1_DE"], "test": ["subject3_DE"],
    }
    assert summary["myops"] == {
        "train": [f"myops_training_{n}" for n in (102, 103, 104, 105, 107, 108)],
        "val": ["myops_training_101"],
        "test": ["myops_test_201"],
    }


def test_readers_load_every_split_with_gt_and_released_scribbles(smoke):
    _, summary, cases = smoke
    for task in TASKS:
        for split in SPLITS:
            loaded = cases[task][split]
            assert [c.subject for c in loaded] == summary[task][split]
            assert all(c.label is not None for c in loaded)
            has_scribble = split == "train" or task == "acdc"  # ACDC val/test: weak_labels
            assert all((c.scribble is not None) == has_scribble for c in loaded), (task, split)


def test_raw_encodings_on_disk(smoke):
    root, _, _ = smoke
    myops = volumes(root, "myops")
    gt = np.unique(np.concatenate([v.ravel() for k, v in myops.items() if k.endswith("_gd.nii.gz")
                                   and "MyoPS_scribbles" not in k]))
    assert set(gt) <= {0, 200, 500, 600, 1220, 2221} and {200, 500, 1220, 2221} <= set(gt)
    scribbles = np.unique(np.concatenate([v.ravel() for k, v in myops.items() if "MyoPS_scribbles" in k]))
    assert {0, 3000} <= set(scribbles) <= {0, 3000, 200, 500, 1220, 2221}
    acdc = volumes(root, "acdc")
    acdc_scribbles = np.unique(np.concatenate([v.ravel() for k, v in acdc.items() if k.endswith("_scribble.nii.gz")]))
    assert set(acdc_scribbles) == {0, 1, 2, 3, 4}  # 4 = unannotated


def test_images_are_nonnegative_intensity_integers(smoke):
    _, _, cases = smoke
    for task in TASKS:
        for case in cases[task]["train"]:
            assert case.image.shape[0] == TASKS[task].n_channels
            assert case.image.min() >= 0 and 800 < case.image.max() <= 4000
            np.testing.assert_array_equal(case.image, np.rint(case.image))
            acquisition = phantom.PRESETS["smoke"][task]
            assert acquisition.pixel_mm[0] <= case.spacing[0] <= acquisition.pixel_mm[1]
            assert acquisition.n_slices[0] <= case.image.shape[3] <= acquisition.n_slices[1]


def test_deterministic_per_seed(smoke, tmp_path):
    root, _, _ = smoke
    phantom.generate_phantom(tmp_path / "same", "smoke", seed=0, tasks=("acdc", "myops"), progress=False)
    phantom.generate_phantom(tmp_path / "other", "smoke", seed=1, tasks=("acdc", "myops"), progress=False)
    for task in ("acdc", "myops"):
        first, same, other = volumes(root, task), volumes(tmp_path / "same", task), volumes(tmp_path / "other", task)
        assert same.keys() == first.keys()
        for key in first:
            np.testing.assert_array_equal(same[key], first[key], err_msg=key)
        assert any(not np.array_equal(other[k], first[k]) for k in first if k in other)


def test_lv_is_enclosed_by_myocardium_in_mid_slices(smoke):
    _, _, cases = smoke
    for task in TASKS:
        lv, wall = TASKS[task].classes.index("LV"), [TASKS[task].classes.index(c) for c in ("MYO", "edema", "scar")
                                                    if c in TASKS[task].classes]
        for case in cases[task]["train"]:
            with_lv = [z for z in range(case.label.shape[2]) if (case.label[..., z] == lv).any()]
            for z in with_lv[len(with_lv) // 3: 2 * len(with_lv) // 3 + 1]:
                ring = ndimage.binary_dilation(case.label[..., z] == lv, np.ones((3, 3), bool))
                assert np.isin(case.label[..., z][ring], [lv, *wall]).all(), (case.subject, z)


def test_rv_shrinks_and_is_absent_on_the_most_apical_slice(smoke):
    _, _, cases = smoke
    for task in ("acdc", "mscmr"):
        for case in cases[task]["train"] + cases[task]["val"]:
            heart = [z for z in range(case.label.shape[2]) if case.label[..., z].any()]
            rv_area = [(case.label[..., z] == 1).sum() for z in heart]
            assert max(rv_area) > 0 and rv_area[-1] == 0, case.subject


def test_end_systole_has_smaller_cavity_and_thicker_wall(smoke):
    _, _, cases = smoke
    train = cases["acdc"]["train"]
    for ed, es in zip(train[::2], train[1::2]):
        lv_ed, lv_es = (ed.label == 3).sum(), (es.label == 3).sum()
        assert lv_es < 0.8 * lv_ed
        assert (es.label == 2).sum() / lv_es > (ed.label == 2).sum() / lv_ed


def test_pathology_scar_in_edema_in_myocardium(smoke):
    _, _, cases = smoke
    for case in cases["myops"]["train"] + cases["myops"]["val"]:
        label = case.label
        assert (label == 4).any() and (label == 3).any(), case.subject
        in_plane = np.zeros((3, 3, 3), bool)
        in_plane[..., 1] = True
        lesion_parts, n = ndimage.label(np.isin(label, (3, 4)), in_plane)
        for k in range(1, n + 1):  # every lesion piece sits in the myocardium next to normal MYO or the LV
            around = ndimage.binary_dilation(lesion_parts == k, in_plane)
            assert np.isin(label[around], (1, 2)).any(), case.subject
        assert (label == 3).sum() + (label == 4).sum() > 1.3 * (label == 4).sum()


def test_lesion_masks_nest_scar_in_edema():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lesion = anatomy.sample_subject(rng, lesion=True).heart.lesion
        theta, depth = rng.uniform(-np.pi, np.pi, 5000), rng.uniform(0, 1, 5000)
        for t in np.linspace(0, 1, 6):
            edema, scar = anatomy.lesion_masks(lesion, theta, depth, t)
            assert not (scar & ~edema).any()
    assert anatomy.sample_subject(rng, lesion=False).heart.lesion is None


def test_contrasts(smoke):
    _, _, cases = smoke
    for case in cases["myops"]["train"]:
        c0, de, t2 = case.image
        myo, lv, edema, scar = (case.label == k for k in (1, 2, 3, 4))
        assert c0[lv].mean() > 2 * c0[myo].mean()  # bSSFP: bright blood, dark myocardium
        assert de[scar].mean() > 2.5 * de[myo].mean()  # LGE: bright scar, nulled healthy myocardium
        assert de[myo].mean() < de[lv].mean() < de[scar].mean()  # blood moderately bright
        assert t2[edema].mean() > 1.4 * t2[myo].mean() > t2[lv].mean()  # T2: bright edema, darker blood
    for case in cases["mscmr"]["train"]:  # MSCMR labels no scar, but its LGE shows it inside MYO
        lge, myo, lv = case.image[0], case.label == 2, case.label == 3
        assert np.median(lge[myo]) < 0.5 * np.median(lge[lv])
        assert (lge[myo] > np.median(lge[lv])).mean() > 0.02, case.subject
    for case in cases["acdc"]["train"]:  # bright blood outside the ventricles: background is not trivial
        cine, lv = case.image[0], case.label == 3
        assert (cine[case.label == 0] > 0.8 * np.median(cine[lv])).sum() > 20, case.subject


def test_scribbles_on_the_phantom(smoke):
    _, _, cases = smoke
    for task in TASKS:
        for case in cases[task]["train"]:
            scribble, label = case.scribble, case.label
            marked = scribble != UNANNOTATED
            np.testing.assert_array_equal(scribble[marked], label[marked])
            cov = scribble_coverage(scribble, label, TASKS[task].n_classes)
            for c in range(1, TASKS[task].n_classes):
                assert 0.05 <= cov[c] <= 0.20, (case.subject, c, cov[c])
            assert cov[0] < 0.03
            for z in range(label.shape[2]):
                assert marked[..., z].any() == label[..., z].any(), (case.subject, z)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"preset": "huge"}, r"preset: unknown preset 'huge'; expected one of paper, default, smoke"),
        ({"tasks": ("acdc", "brats")}, r"tasks: unknown tasks \['brats'\]"),
        ({"seed": -1}, r"seed: expected a non-negative integer, got -1"),
        ({"seed": 1.5}, r"seed: expected a non-negative integer, got 1.5"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        phantom.generate_phantom(tmp_path, **{"preset": "smoke", **kwargs}, progress=False)
    assert not any(tmp_path.iterdir())


def test_frames_of_one_patient_share_the_scan_geometry(smoke):
    _, _, cases = smoke
    train = cases["acdc"]["train"]
    for ed, es in zip(train[::2], train[1::2]):
        assert ed.image.shape == es.image.shape and ed.spacing == es.spacing
        outside = (ed.label == 0) & (es.label == 0)  # same body, same contrast: only noise differs
        ed_level, es_level = np.median(ed.image[0][outside]), np.median(es.image[0][outside])
        assert ed_level > 100 and abs(ed_level - es_level) < 0.1 * ed_level


def test_scan_and_render_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"sequence: the phantom has no contrast for 'FLAIR'"):
        phantom.sample_scan(rng, "FLAIR")
    subject = anatomy.sample_subject(rng, lesion=False)
    geometry = phantom.sample_geometry(rng, phantom.PRESETS["smoke"]["myops"], "myops", subject.heart.length)
    with pytest.raises(ConfigError, match=r"scans: expected 3 \(one per sequence of myops\), got 1"):
        phantom.render_volume(subject, geometry, "myops", [phantom.sample_scan(rng, "C0")], rng)

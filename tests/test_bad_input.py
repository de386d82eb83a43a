"""Bad input raises DataError/ConfigError naming the file (or option) and the problem; inspect collects them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_readers import SHAPE, SPACING, make_case, save_raw, write_dataset, write_myops_lists, write_myops_subject

from modelmix_lite.data import layout, writer
from modelmix_lite.data.inspect import format_report, inspect_dataset, main_inspect
from modelmix_lite.data.nifti import load_nifti
from modelmix_lite.data.readers import load_split
from modelmix_lite.errors import ConfigError, DataError

ACDC_TRAIN = "ACDC_dataset/train"


def named(path: Path, problem: str) -> str:
    """A ``match`` pattern for a message naming ``path`` and then ``problem``."""
    return re.escape(str(path)) + ".*" + problem


def write_acdc_train(root: Path, subject: str = "patient001_frame01", image=None, gt=None, scribble=None,
                     image_spacing=SPACING, label_spacing=SPACING) -> None:
    """One raw ACDC training case (image int16; GT/scribble uint8 unless given as float)."""
    base = root / ACDC_TRAIN
    save_raw(base / f"images/{subject}.nii.gz", np.ones(SHAPE) if image is None else image, image_spacing)
    if gt is not None:
        save_raw(base / f"labels/{subject}_gt.nii.gz", gt, label_spacing)
    if scribble is None:
        scribble = np.full(SHAPE, 4, np.uint8)
        scribble[0] = 0
    save_raw(base / f"labels/{subject}_scribble.nii.gz", scribble, label_spacing)


# --- layout: partners, orphans, names, roots ---------------------------------------------------------------


def test_train_image_without_scribble(tmp_path):
    write_dataset("acdc", tmp_path)
    missing = tmp_path / ACDC_TRAIN / "labels/patient010_frame12_scribble.nii.gz"
    missing.unlink()
    image = tmp_path / ACDC_TRAIN / "images/patient010_frame12.nii.gz"
    with pytest.raises(DataError, match=named(image, "scribble " + re.escape(str(missing)) + " not found")):
        layout.list_cases("acdc", tmp_path, "train")


def test_val_image_without_ground_truth(tmp_path):
    write_dataset("mscmr", tmp_path)
    (tmp_path / "MSCMR_dataset/val/labels/subject1_DE_manual.nii.gz").unlink()
    with pytest.raises(DataError, match=named(tmp_path / "MSCMR_dataset/val/images/subject1_DE.nii.gz",
                                              "ground truth .*subject1_DE_manual.nii.gz not found")):
        layout.list_cases("mscmr", tmp_path, "val")


def test_myops_test_without_ground_truth_is_fine(tmp_path):
    write_dataset("myops", tmp_path)
    (tmp_path / "MyoPS/test_gd/myops_test_201_gd.nii.gz").unlink()
    assert layout.list_cases("myops", tmp_path, "test")[0].label is None


def test_scribble_without_image(tmp_path):
    write_dataset("acdc", tmp_path)
    (tmp_path / ACDC_TRAIN / "images/patient002_frame01.nii.gz").unlink()
    orphan = tmp_path / ACDC_TRAIN / "labels/patient002_frame01_scribble.nii.gz"
    with pytest.raises(DataError, match=named(orphan, "no matching image .*patient002_frame01.nii.gz")):
        layout.list_cases("acdc", tmp_path, "train")


def test_unexpected_file_names(tmp_path):
    write_dataset("acdc", tmp_path)
    stray_image = tmp_path / ACDC_TRAIN / "images/patient1.nii.gz"
    stray_label = tmp_path / "ACDC_dataset/val/labels/patient071_frame01_scribble.nii.gz"
    save_raw(stray_image, np.ones(SHAPE))
    save_raw(stray_label, np.ones(SHAPE))
    with pytest.raises(DataError, match=named(stray_image, "unexpected image file name")):
        layout.list_cases("acdc", tmp_path, "train")
    with pytest.raises(DataError, match=named(stray_label, "unexpected file name")):
        layout.list_cases("acdc", tmp_path, "val")


def test_myops_missing_sequence_and_unlisted_subject(tmp_path):
    write_dataset("myops", tmp_path)
    t2 = tmp_path / "MyoPS/train/myops_training_110_T2.nii.gz"
    t2.unlink()
    with pytest.raises(DataError, match=named(t2, "image file not found")):
        layout.list_cases("myops", tmp_path, "train")
    write_myops_lists(tmp_path, train=["myops_training_102", "myops_training_103"], val=["myops_training_101"])
    with pytest.raises(DataError, match=named(tmp_path / "MyoPS/train/myops_training_110_C0.nii.gz",
                                              "subject myops_training_110 is not listed in train20.txt")):
        layout.list_cases("myops", tmp_path, "train")


def test_myops_subject_in_both_lists_and_malformed_lists(tmp_path):
    write_dataset("myops", tmp_path)
    write_myops_lists(tmp_path, train=["myops_training_102", "myops_training_103", "myops_training_110"],
                      val=["myops_training_101", "myops_training_102"])
    with pytest.raises(DataError, match="validation5.txt: myops_training_102 is also listed in train20.txt"):
        layout.list_cases("myops", tmp_path, "train")
    (tmp_path / "MyoPS/validation5.txt").write_text("myops_training_101 myops_training_101_gd\n")
    with pytest.raises(DataError, match=r"validation5.txt:1: expected 'img_prefix gt_prefix z'"):
        layout.list_cases("myops", tmp_path, "val")
    (tmp_path / "MyoPS/validation5.txt").write_text("myops_training_101 myops_training_109_gd 0\n")
    with pytest.raises(DataError, match=r"validation5.txt:1: bad prefixes"):
        layout.list_cases("myops", tmp_path, "val")
    (tmp_path / "MyoPS/test.csv").write_text("name,stage\nmyops_test_201,test\n")
    with pytest.raises(DataError, match=r"test.csv: expected a header 'file_name,stage,dx,dy,dz'"):
        layout.list_cases("myops", tmp_path, "test")
    (tmp_path / "MyoPS/train20.txt").unlink()
    with pytest.raises(DataError, match=named(tmp_path / "MyoPS/train20.txt", "MyoPS split list not found")):
        layout.list_cases("myops", tmp_path, "train")


def test_wrong_dataset_root(tmp_path):
    write_dataset("mscmr", tmp_path)
    with pytest.raises(DataError, match=named(tmp_path, r"expected the ACDC .* folder ACDC_dataset/.*'MSCMR_dataset'")):
        layout.list_cases("acdc", tmp_path, "train")
    with pytest.raises(DataError, match=named(tmp_path / "nowhere", "data root not found")):
        layout.find_dataset_root("acdc", tmp_path / "nowhere")
    (tmp_path / "MSCMR_dataset/TestSet").rename(tmp_path / "MSCMR_dataset/test")
    images = tmp_path / "MSCMR_dataset/TestSet/images"
    with pytest.raises(DataError, match=named(images, "test images folder not found")):
        layout.list_cases("mscmr", tmp_path, "test")


def test_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="split: unknown split 'training'"):
        layout.list_cases("acdc", tmp_path, "training")
    with pytest.raises(ConfigError, match="task: unknown task 'brats'"):
        layout.list_cases("brats", tmp_path, "train")
    with pytest.raises(ConfigError, match=r"splits: unknown split names \['dev'\]"):
        writer.write_index("myops", tmp_path, {"dev": []})


# --- readers: grids, labels, voxels --------------------------------------------------------------------


def test_image_label_shape_mismatch_names_both_files(tmp_path):
    write_acdc_train(tmp_path, scribble=np.zeros((12, 10, 3)))
    scribble = tmp_path / ACDC_TRAIN / "labels/patient001_frame01_scribble.nii.gz"
    image = tmp_path / ACDC_TRAIN / "images/patient001_frame01.nii.gz"
    with pytest.raises(DataError, match=named(scribble, r"shape \(12, 10, 3\) differs from " + re.escape(str(image)))):
        load_split("acdc", tmp_path, "train")


def test_spacing_mismatch(tmp_path):
    write_acdc_train(tmp_path, gt=np.zeros(SHAPE), label_spacing=(1.5, 1.25, 10.0))
    with pytest.raises(DataError, match=named(tmp_path / ACDC_TRAIN / "labels/patient001_frame01_gt.nii.gz",
                                              r"spacing \(1.5, 1.25, 10.0\) differs from")):
        load_split("acdc", tmp_path, "train")


def test_spacing_within_tolerance_and_unit_spacing_are_accepted(tmp_path):
    write_acdc_train(tmp_path, gt=np.zeros(SHAPE), label_spacing=(1.5, 1.25, 8.004))
    assert load_split("acdc", tmp_path, "train")[0].spacing == SPACING
    write_acdc_train(tmp_path, gt=np.zeros(SHAPE), label_spacing=(1.0, 1.0, 1.0))
    assert load_split("acdc", tmp_path, "train")[0].spacing == SPACING


def test_myops_sequence_shape_mismatch(tmp_path):
    write_myops_subject(tmp_path)
    write_myops_lists(tmp_path, train=[], val=["myops_training_101"])
    de = tmp_path / "MyoPS/train/myops_training_101_DE.nii.gz"
    save_raw(de, np.ones((12, 11, 4)), dtype=np.uint16)
    with pytest.raises(DataError, match=named(de, r"shape \(12, 11, 4\) differs from .*myops_training_101_C0")):
        load_split("myops", tmp_path, "val")


def test_unknown_label_values(tmp_path):
    gt = np.zeros(SHAPE)
    gt[0, 0, 0] = 7
    write_acdc_train(tmp_path, gt=gt)
    with pytest.raises(DataError, match=named(tmp_path / ACDC_TRAIN / "labels/patient001_frame01_gt.nii.gz",
                                              r"unknown label values \[7\]")):
        load_split("acdc", tmp_path, "train")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_image_voxels(bad, tmp_path):
    image = np.ones(SHAPE, np.float32)
    image[1, 2, 3] = bad
    write_acdc_train(tmp_path, image=image)
    with pytest.raises(DataError, match=named(tmp_path / ACDC_TRAIN / "images/patient001_frame01.nii.gz",
                                              "NaN or Inf voxels")):
        load_split("acdc", tmp_path, "train")


def test_empty_scribble(tmp_path):
    write_acdc_train(tmp_path, scribble=np.full(SHAPE, 4, np.uint8))
    with pytest.raises(DataError, match=named(tmp_path / ACDC_TRAIN / "labels/patient001_frame01_scribble.nii.gz",
                                              "no annotated voxel")):
        load_split("acdc", tmp_path, "train")


def test_truncated_missing_and_non_3d_files(tmp_path):
    path = tmp_path / "v.nii.gz"
    save_raw(path, np.random.default_rng(0).random((20, 20, 8)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=named(path, "unreadable or truncated NIfTI file")):
        load_nifti(path)
    path.write_bytes(data[:40])
    with pytest.raises(DataError, match=named(path, "unreadable or truncated NIfTI file")):
        load_nifti(path)
    with pytest.raises(DataError, match=named(tmp_path / "none.nii.gz", "file not found")):
        load_nifti(tmp_path / "none.nii.gz")
    save_raw(path, np.ones((*SHAPE, 2)))
    with pytest.raises(DataError, match=named(path, r"expected a 3-D volume, found shape \(12, 10, 4, 2\)")):
        load_nifti(path)


# --- writer -----------------------------------------------------------------------------------------------


def test_write_case_rejects_bad_arrays(tmp_path):
    case = make_case("acdc", 0)
    write = lambda **kw: writer.write_case(**{"task": "acdc", "root": tmp_path, "split": "train",  # noqa: E731
                                              "subject": "patient001_frame01", "image": case["image"],
                                              "spacing": SPACING, **kw})
    with pytest.raises(DataError, match="patient1: not a acdc train subject id"):
        write(subject="patient1")
    with pytest.raises(DataError, match=r"image must be \(C=1, X, Y, Z\), got shape \(12, 10, 4\)"):
        write(image=case["image"][0])
    too_bright = case["image"].copy()
    too_bright[0, 0, 0, 0] = 40000
    with pytest.raises(DataError, match=r"frame01.nii.gz: image values \[\d+, 40000\] do not fit the stored int16"):
        write(image=too_bright)
    with pytest.raises(DataError, match=r"label has values \[4\] outside \[0, 1, 2, 3\]"):
        write(label=np.full(SHAPE, 4, np.uint8))
    with pytest.raises(DataError, match=r"label has values \[1.5\] outside"):
        write(label=np.full(SHAPE, 1.5))
    with pytest.raises(DataError, match=r"scribble has values \[4\] outside \[0, 1, 2, 3, 255\]"):
        write(scribble=np.full(SHAPE, 4, np.uint8))
    with pytest.raises(DataError, match=r"scribble shape \(12, 10\) differs"):
        write(scribble=np.zeros((12, 10), np.uint8))
    myops = make_case("myops", 0)
    with pytest.raises(DataError, match="MyoPS test subjects have no scribble file"):
        writer.write_case("myops", tmp_path, "test", "myops_test_201", myops["image"], SPACING,
                          scribble=myops["scribble"])
    assert not list(tmp_path.rglob("*.nii.gz"))  # a rejected case writes nothing


# --- inspect collects problems ------------------------------------------------------------------------------


def test_inspect_collects_every_problem_and_keeps_going(tmp_path, capsys):
    write_dataset("acdc", tmp_path)
    train = tmp_path / ACDC_TRAIN
    (train / "labels/patient001_frame01_scribble.nii.gz").unlink()  # image without its scribble
    nan_image = np.ones(SHAPE, np.float32)
    nan_image[0, 0, 0] = np.nan
    save_raw(train / "images/patient002_frame01.nii.gz", nan_image)  # NaN voxel
    truncated = tmp_path / "ACDC_dataset/val/labels/patient071_frame01_gt.nii.gz"
    truncated.write_bytes(truncated.read_bytes()[:60])
    save_raw(tmp_path / "ACDC_dataset/TestSet/labels/patient099_frame01_gt.nii.gz", np.zeros(SHAPE))  # orphan
    report = inspect_dataset("acdc", tmp_path)
    problems = "\n".join(report["problems"])
    assert len(report["problems"]) == 4
    assert "patient001_frame01_scribble.nii.gz not found" in problems
    assert "patient002_frame01.nii.gz: volume contains NaN or Inf voxels" in problems
    assert "patient071_frame01_gt.nii.gz: unreadable or truncated" in problems
    assert "patient099_frame01_gt.nii.gz: no matching image" in problems
    assert [c["subject"] for c in report["splits"]["train"]["cases"]] == ["patient010_frame12"]
    assert [c["subject"] for c in report["splits"]["test"]["cases"]] == ["patient086_frame01"]
    assert "4 problem(s):" in format_report(report)  # the val split holds only the truncated case: not "empty" too
    assert main_inspect(["--dataset", "acdc", "--root", str(tmp_path)]) == 1
    assert "patient099_frame01_gt.nii.gz: no matching image" in capsys.readouterr().out


def test_inspect_wrong_root_is_a_problem_and_a_missing_split_is_absent(tmp_path):
    report = inspect_dataset("myops", tmp_path)
    assert report["splits"] == {} and len(report["problems"]) == 1
    assert report["problems"][0].startswith(f"{tmp_path}: expected the MyoPS")
    write_dataset("myops", tmp_path)
    (tmp_path / "MyoPS/test.csv").unlink()
    report = inspect_dataset("myops", tmp_path)
    assert sorted(report["splits"]) == ["train", "val"]
    assert report["absent_splits"] == ["test"] and report["problems"] == []  # an error only when asked for
    with pytest.raises(DataError, match=r"MyoPS/test.csv: MyoPS test list not found"):
        layout.list_cases("myops", tmp_path, "test")

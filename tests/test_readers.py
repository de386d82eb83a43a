"""Readers and layouts: exact round-trips through the official layouts, pairing by name, file quirks."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from modelmix_lite.data import layout, writer
from modelmix_lite.data.inspect import format_report, inspect_dataset, main_inspect
from modelmix_lite.data.nifti import load_nifti, save_nifti
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.tasks import TASKS, UNANNOTATED

SHAPE = (12, 10, 4)
SPACING = (1.5, 1.25, 8.0)
SUBJECTS = {
    "acdc": {"train": ["patient002_frame01", "patient010_frame12", "patient001_frame01"],
             "val": ["patient071_frame01"], "test": ["patient086_frame01"]},
    "mscmr": {"train": ["subject10_DE", "subject2_DE", "subject13_DE"],
              "val": ["subject1_DE"], "test": ["subject3_DE"]},
    "myops": {"train": ["myops_training_103", "myops_training_102", "myops_training_110"],
              "val": ["myops_training_101"], "test": ["myops_test_201"]},
}


def make_case(task: str, seed: int, shape: tuple[int, int, int] = SHAPE) -> dict[str, np.ndarray]:
    """Integer-valued image (channel c in [1000c, 1000c + 999]), every class in the GT, a scribble on ~30%."""
    rng = np.random.default_rng(seed)
    spec = TASKS[task]
    image = np.stack([rng.integers(0, 1000, shape) + 1000 * c for c in range(spec.n_channels)]).astype(np.float64)
    label = (np.arange(np.prod(shape)).reshape(shape) % spec.n_classes).astype(np.uint8)
    scribble = np.where(rng.random(shape) < 0.3, label, UNANNOTATED).astype(np.uint8)
    return {"image": image, "label": label, "scribble": scribble}


def write_dataset(task: str, root: Path, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Write SUBJECTS[task] through write_case + write_index; returns the arrays by subject."""
    arrays = {}
    for split, subjects in SUBJECTS[task].items():
        for subject in subjects:
            arrays[subject] = make_case(task, seed + len(arrays))
            scribble = None if (task, split) == ("myops", "test") else arrays[subject]["scribble"]
            writer.write_case(task, root, split, subject, arrays[subject]["image"], SPACING,
                              label=arrays[subject]["label"], scribble=scribble)
    writer.write_index(task, root, SUBJECTS[task])
    return arrays


def save_raw(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), dtype=None) -> None:
    """A plain nibabel write, bypassing save_nifti, for quirky files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array, dtype=dtype)
    image = nib.Nifti1Image(array, np.diag([*spacing, 1.0]))
    image.header.set_zooms((*spacing, *[1.0] * (array.ndim - 3)))
    nib.save(image, path)


@pytest.mark.parametrize("task", ["acdc", "mscmr", "myops"])
def test_write_then_read_round_trips_exactly(task, tmp_path):
    arrays = write_dataset(task, tmp_path)
    for split, subjects in SUBJECTS[task].items():
        cases = load_split(task, tmp_path, split)
        assert [c.subject for c in cases] == sorted(subjects, key=layout._natural_key)
        for case in cases:
            expected = arrays[case.subject]
            assert case.image.dtype == np.float32 and case.image.shape == (TASKS[task].n_channels, *SHAPE)
            np.testing.assert_array_equal(case.image, expected["image"])
            np.testing.assert_array_equal(case.label, expected["label"])
            assert case.spacing == SPACING
            np.testing.assert_allclose(case.affine, np.diag([*SPACING, 1.0]))
            if (task, split) in {("myops", "val"), ("myops", "test")}:
                assert case.scribble is None
            else:
                np.testing.assert_array_equal(case.scribble, expected["scribble"])


def test_natural_subject_order_for_mscmr(tmp_path):
    write_dataset("mscmr", tmp_path)
    subjects = [c.subject for c in layout.list_cases("mscmr", tmp_path, "train")]
    assert subjects == ["subject2_DE", "subject10_DE", "subject13_DE"]


def test_raw_encodings_on_disk(tmp_path):
    write_dataset("acdc", tmp_path)
    write_dataset("myops", tmp_path)
    acdc = layout.list_cases("acdc", tmp_path, "val")[0]
    assert acdc.scribble == tmp_path / "ACDC_dataset/val/weak_labels/patient071_frame01_scribble.nii.gz"
    assert load_nifti(acdc.images[0]).array.dtype == np.int16
    raw = load_nifti(acdc.scribble).array
    assert raw.dtype == np.uint8 and set(np.unique(raw)) == {0, 1, 2, 3, 4}
    myops = layout.list_cases("myops", tmp_path, "train")[0]
    assert [load_nifti(p).array.dtype for p in myops.images] == [np.uint16, np.uint16, np.float32]
    gt = load_nifti(myops.label).array
    assert set(np.unique(gt)) == {0, 200, 500, 1220, 2221}
    scribble = load_nifti(myops.scribble)
    assert scribble.spacing == (1.0, 1.0, 1.0) and scribble.array.dtype == np.float32
    canonical = make_case("myops", 1)["scribble"]  # myops_training_102 was the second case written
    np.testing.assert_array_equal(scribble.array == 0, canonical == UNANNOTATED)
    np.testing.assert_array_equal(scribble.array == 3000, canonical == 0)
    np.testing.assert_array_equal(scribble.array == 2221, canonical == 4)


def test_write_index_contents(tmp_path):
    write_dataset("myops", tmp_path)
    train = (tmp_path / "MyoPS/train20.txt").read_text().splitlines()
    assert train[:5] == [f"myops_training_103 myops_training_103_gd {z}" for z in range(4)] + [
        "myops_training_102 myops_training_102_gd 0"]
    assert len(train) == 12
    assert (tmp_path / "MyoPS/test.csv").read_text() == "file_name,stage,dx,dy,dz\nmyops_test_201,test,12,10,4\n"
    writer.write_index("acdc", tmp_path, SUBJECTS["acdc"])  # a no-op
    assert not list((tmp_path / "ACDC_dataset").glob("*.txt"))


def test_myops_net_style_list_lines_are_read(tmp_path):
    write_dataset("myops", tmp_path)
    (tmp_path / "MyoPS/validation5.txt").write_text(
        "MyoPS/train/myops_training_101     MyoPS/train_gd/myops_training_101     0\n")
    assert [c.subject for c in layout.list_cases("myops", tmp_path, "val")] == ["myops_training_101"]


def test_pairing_is_by_name_not_sorted_position(tmp_path):
    """ACDC train: an optional _gt for patient002 sorts between the scribbles; a zip of sorted lists would mis-pair."""
    root = tmp_path / "ACDC_dataset/train"
    for k, subject in enumerate(["patient001_frame01", "patient002_frame01", "patient003_frame01"]):
        save_raw(root / f"images/{subject}.nii.gz", np.full(SHAPE, k, np.int16))
        scribble = np.full(SHAPE, 4, np.uint8)
        scribble[0, 0, 0] = k  # the scribble's only class identifies its subject
        save_raw(root / f"labels/{subject}_scribble.nii.gz", scribble)
    save_raw(root / "labels/patient002_frame01_gt.nii.gz", np.full(SHAPE, 2, np.uint8))
    cases = load_split("acdc", tmp_path, "train")
    for k, case in enumerate(cases):
        assert case.image[0, 0, 0, 0] == k
        assert case.scribble[0, 0, 0] == k and np.sum(case.scribble != UNANNOTATED) == 1
        assert (case.label is not None) == (k == 1)


def test_find_dataset_root_accepts_data_root_or_dataset_folder(tmp_path):
    write_dataset("mscmr", tmp_path)
    assert layout.find_dataset_root("mscmr", tmp_path) == tmp_path / "MSCMR_dataset"
    assert layout.find_dataset_root("mscmr", tmp_path / "MSCMR_dataset") == tmp_path / "MSCMR_dataset"
    assert len(layout.list_cases("mscmr", tmp_path / "MSCMR_dataset", "train")) == 3


def test_non_square_and_differently_sized_slices(tmp_path):
    root = tmp_path / "MSCMR_dataset/train"
    shapes = {"subject2_DE": (216, 256, 2), "subject4_DE": (480, 480, 1), "subject6_DE": (512, 512, 1)}
    for subject, shape in shapes.items():
        save_raw(root / f"images/{subject}.nii.gz", np.ones(shape), dtype=np.int16)
        scribble = np.full(shape, 4, np.uint8)
        scribble[-1, -1, -1] = 2
        save_raw(root / f"labels/{subject}_scribble.nii.gz", scribble)
    cases = load_split("mscmr", tmp_path, "train")
    assert {c.subject: c.image.shape[1:] for c in cases} == shapes
    assert all(c.scribble[-1, -1, -1] == 2 for c in cases)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float64])
def test_image_storage_types(dtype, tmp_path):
    root = tmp_path / "ACDC_dataset/val"
    values = np.arange(np.prod(SHAPE)).reshape(SHAPE) * 7
    save_raw(root / "images/patient071_frame01.nii.gz", values, spacing=SPACING, dtype=dtype)
    save_raw(root / "labels/patient071_frame01_gt.nii.gz", values % 4, spacing=SPACING, dtype=np.uint8)
    case = load_split("acdc", tmp_path, "val")[0]
    assert case.image.dtype == np.float32
    np.testing.assert_array_equal(case.image[0], values)
    assert case.scribble is None


def write_myops_subject(root: Path, subject: str = "myops_training_101", shape=SHAPE, values=(10, 20, 30),
                        gt: np.ndarray | None = None, spacing=(1.25, 1.25, 10.0)) -> None:
    """Raw MyoPS files: C0/DE/T2 constant at ``values`` (uint16/uint16/float64), GT stored as float with (1,1,1)."""
    for seq, value, dtype in zip(("C0", "DE", "T2"), values, (np.uint16, np.uint16, np.float64)):
        save_raw(root / f"MyoPS/train/{subject}_{seq}.nii.gz", np.full(shape, value), spacing=spacing, dtype=dtype)
    gt = np.zeros(shape) if gt is None else gt
    save_raw(root / f"MyoPS/train_gd/{subject}_gd.nii.gz", gt, dtype=np.float64)


def write_myops_lists(root: Path, train: list[str], val: list[str]) -> None:
    for name, subjects in (("train20.txt", train), ("validation5.txt", val)):
        (root / "MyoPS" / name).write_text("".join(f"{s} {s}_gd 0\n" for s in subjects))


def test_myops_quirks_float_labels_unit_spacing_and_channel_stacking(tmp_path):
    gt = np.zeros(SHAPE)
    gt[0], gt[1], gt[2], gt[3], gt[4], gt[5] = 200, 499.977, 600, 1220.02, 2221, 0
    write_myops_subject(tmp_path, gt=gt)
    write_myops_lists(tmp_path, train=[], val=["myops_training_101"])
    case = load_split("myops", tmp_path, "val")[0]
    np.testing.assert_array_equal(case.image[:, 0, 0, 0], [10, 20, 30])  # C0, DE, T2 in sequence order
    assert case.spacing == (1.25, 1.25, 10.0)  # from the image, not the (1,1,1) GT header
    np.testing.assert_allclose(case.affine, np.diag([1.25, 1.25, 10.0, 1.0]))
    np.testing.assert_array_equal(case.label[:6, 0, 0], [1, 2, 0, 3, 4, 0])  # 600 (RV) is background


def test_myops_scribble_encoding(tmp_path):
    write_myops_subject(tmp_path, subject="myops_training_102")
    write_myops_lists(tmp_path, train=["myops_training_102"], val=[])
    raw = np.zeros(SHAPE)
    raw[0, :5, 0] = [3000, 200, 500, 1220, 2221.0004]
    save_raw(tmp_path / "MyoPS_scribbles/myops_training_102_gd.nii.gz", raw, dtype=np.float32)
    scribble = load_split("myops", tmp_path, "train")[0].scribble
    np.testing.assert_array_equal(scribble[0, :6, 0], [0, 1, 2, 3, 4, UNANNOTATED])
    assert np.sum(scribble != UNANNOTATED) == 5


def test_myops_val_ignores_full_gt_files_in_scribble_folder(tmp_path):
    write_myops_subject(tmp_path)
    write_myops_lists(tmp_path, train=[], val=["myops_training_101"])
    save_raw(tmp_path / "MyoPS_scribbles/myops_training_101_gd.nii.gz", np.full(SHAPE, 500.0))
    assert layout.scan_split("myops", tmp_path, "train") == ([], [])
    assert layout.list_cases("myops", tmp_path, "val")[0].scribble is None


def test_four_d_volume_with_singleton_last_axis_is_squeezed(tmp_path):
    save_raw(tmp_path / "v.nii.gz", np.ones((*SHAPE, 1)), spacing=(2.0, 2.0, 5.0), dtype=np.int16)
    volume = load_nifti(tmp_path / "v.nii.gz")
    assert volume.array.shape == SHAPE and volume.spacing == (2.0, 2.0, 5.0)


def test_save_nifti_atomic_creates_folders_and_writes_spacing(tmp_path):
    path = tmp_path / "a/b/v.nii.gz"
    save_nifti(path, np.ones(SHAPE), affine=np.eye(4), spacing=(1.0, 2.0, 3.0), dtype=np.int16)
    assert sorted(p.name for p in path.parent.iterdir()) == ["v.nii.gz"]
    volume = load_nifti(path)
    assert volume.spacing == (1.0, 2.0, 3.0) and volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.affine, np.eye(4))


def test_inspect_clean_dataset_and_coverage(tmp_path):
    root = tmp_path / "ACDC_dataset/train"
    label = np.zeros(SHAPE, np.uint8)
    label[:6] = 3  # 240 LV voxels, 240 background voxels
    scribble = np.full(SHAPE, 4, np.uint8)
    scribble[0, :, 0] = 3  # 10 LV voxels scribbled
    scribble[-1, :2, 0] = 0  # 2 background voxels scribbled
    save_raw(root / "images/patient001_frame01.nii.gz", np.ones(SHAPE), dtype=np.int16)
    save_raw(root / "labels/patient001_frame01_gt.nii.gz", label, dtype=np.uint8)
    save_raw(root / "labels/patient001_frame01_scribble.nii.gz", scribble, dtype=np.uint8)
    report = inspect_dataset("acdc", tmp_path)
    assert report["problems"] == [] and report["absent_splits"] == ["val", "test"]
    (tmp_path / "ACDC_dataset/val/images").mkdir(parents=True)  # there, but empty: a problem (issue 13 item 6)
    assert inspect_dataset("acdc", tmp_path)["problems"] == [
        f"{tmp_path / 'ACDC_dataset'}: the val split is there but holds no case"]
    train = report["splits"]["train"]
    assert train["cases"] == [{"subject": "patient001_frame01", "shape": [12, 10, 4], "spacing": [1.0, 1.0, 1.0],
                               "dtype": "int16"}]
    assert train["label_values_raw"] == [0, 3] and train["scribble_values_raw"] == [0, 3, 4]
    assert train["scribble_values"] == [0, 3, UNANNOTATED]
    assert train["scribble_voxels"] == {"background": 2, "RV": 0, "MYO": 0, "LV": 10}
    assert train["scribble_coverage"] == {"background": 2 / 240, "RV": 0.0, "MYO": 0.0, "LV": 10 / 240}
    assert train["scribble_gt_disagreement"] == 0
    assert "patient001_frame01" in format_report(report) and "0 problem(s)" in format_report(report)


def test_main_inspect_json_and_exit_code(tmp_path, capsys):
    write_dataset("myops", tmp_path)
    assert main_inspect(["--dataset", "myops", "--root", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["subject"] for c in report["splits"]["val"]["cases"]] == ["myops_training_101"]
    assert report["splits"]["val"]["scribble_coverage"] is None
    assert main_inspect(["--dataset", "myops", "--data", str(tmp_path / "MyoPS")]) == 0
    assert "uint16/uint16/float32" in capsys.readouterr().out

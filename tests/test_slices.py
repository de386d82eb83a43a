"""The 2-D slice path: normalisation, fit/restore, the few-scribble split, SliceDataset and its cache."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from modelmix_lite.data import geometry as slices_geometry
from modelmix_lite.data import slices
from modelmix_lite.data.layout import list_cases
from modelmix_lite.data.phantom import generate_phantom
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.slices import (
    SliceDataset,
    cached_slice_dataset,
    few_scribble_split,
    fit_slice,
    normalize_intensity,
    restore_probabilities,
)
from modelmix_lite.data.tasks import UNANNOTATED
from modelmix_lite.errors import ConfigError, DataError


@dataclass
class FakeCase:
    task: str
    subject: str
    image: np.ndarray
    label: np.ndarray | None
    scribble: np.ndarray | None


def make_case(subject: str, shape=(20, 16, 3), task="acdc", channels=1, seed=0) -> FakeCase:
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 20, (channels, *shape)).astype(np.float32)
    label = rng.integers(0, 4, shape).astype(np.uint8)
    scribble = np.full(shape, UNANNOTATED, np.uint8)
    scribble[5:8, 4:10, :] = label[5:8, 4:10, :]
    scribble[..., -1] = UNANNOTATED  # the last slice carries no scribble
    return FakeCase(task, subject, image, label, scribble)


def one_hot(label: np.ndarray, k: int) -> np.ndarray:
    return (np.arange(k)[:, None, None] == label[None]).astype(np.float32)


def test_normalize_range_and_affine_invariance():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, (8, 9, 4)).astype(np.float32)
    base[0, 0, 0] = 1e6  # outlier, clipped away
    volume = np.stack([base, 5 * base + 3])
    out = normalize_intensity(volume)
    assert out.dtype == np.float32 and out.shape == volume.shape
    assert out.min(axis=(1, 2)).tolist() == [[0.0] * 4] * 2
    np.testing.assert_allclose(out.max(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)
    assert np.median(out[0, ..., 0]) > 0.3  # clipped: the outlier does not squash the slice
    assert np.median(normalize_intensity(volume, low=0.0, high=100.0)[0, ..., 0]) < 0.01  # unclipped: it does


def test_normalize_constant_slice_is_zero_and_errors():
    volume = np.ones((1, 4, 4, 2), np.float32)
    volume[0, :, :, 1] = np.arange(16).reshape(4, 4)
    out = normalize_intensity(volume, low=0.0, high=100.0)
    assert np.all(out[0, ..., 0] == 0.0) and not np.isnan(out).any()
    np.testing.assert_allclose(out[0, ..., 1], np.arange(16).reshape(4, 4) / 15)
    volume[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="volume: contains NaN or Inf"):
        normalize_intensity(volume)
    with pytest.raises(DataError, match=r"volume: expected shape \(C, X, Y, Z\)"):
        normalize_intensity(np.ones((4, 4, 2)))
    with pytest.raises(ConfigError, match="low/high: need 0 <= low < high <= 100"):
        normalize_intensity(np.ones((1, 4, 4, 2)), low=60, high=40)


@pytest.mark.parametrize("h, w", [(216, 256), (256, 216), (480, 480), (7, 12)])
def test_fit_then_restore_is_exact_at_native_resolution_when_size_is_the_padded_side(h, w):
    rng = np.random.default_rng(0)
    image = rng.random((2, h, w)).astype(np.float32)
    label = rng.integers(0, 4, (h, w)).astype(np.uint8)
    side = max(h, w)
    fitted, (fitted_label,), geometry = fit_slice(image, side, [label], label_fill=UNANNOTATED)
    assert fitted.shape == (2, side, side) and fitted_label.dtype == np.uint8
    assert geometry.resampled == (h, w) and (geometry.top, geometry.left) == ((h - side) // 2, (w - side) // 2)
    padding = np.ones((side, side), bool)
    padding[-geometry.top : -geometry.top + h, -geometry.left : -geometry.left + w] = False
    assert np.all(fitted_label[padding] == UNANNOTATED) and np.all(fitted[:, padding] == 0)
    restored = restore_probabilities(one_hot(fitted_label, 256), geometry)
    assert restored.shape == (256, h, w)
    np.testing.assert_array_equal(restored.argmax(0), label)
    np.testing.assert_allclose(restore_probabilities(fitted, geometry), image, atol=1e-6)


def test_fit_resamples_to_the_target_spacing_and_cuts_the_centred_window():
    # 200 x 160 pixels of 1.0 x 1.5 mm -> 2 mm pixels: 100 x 120, then the centred 64 x 64 window
    _, _, geometry = fit_slice(np.zeros((1, 200, 160)), 64, spacing=(1.0, 1.5, 8.0), spacing_mm=2.0)
    assert geometry.resampled == (100, 120) and (geometry.top, geometry.left) == (18, 28)
    assert geometry.scale == (0.5, 0.75)
    image = np.zeros((1, 200, 160), np.float32)
    image[:, 100, 80] = 1.0  # the image centre stays at the window centre
    fitted, _, _ = fit_slice(image, 64, spacing=(1.0, 1.5, 8.0), spacing_mm=2.0)
    peak = np.unravel_index(fitted[0].argmax(), fitted[0].shape)
    assert abs(peak[0] - 32) <= 1 and abs(peak[1] - 32) <= 1
    with pytest.raises(DataError, match=r"spacing: need two positive in-plane voxel sizes"):
        fit_slice(np.zeros((1, 8, 8)), 8, spacing=None, spacing_mm=2.0)
    with pytest.raises(ConfigError, match=r"spacing_mm: must be a finite number >= 0"):
        fit_slice(np.zeros((1, 8, 8)), 8, spacing=(1, 1, 1), spacing_mm=-1.0)


@pytest.mark.parametrize("h, w, spacing, size, min_agreement",
                         [(216, 256, 1.5, 128, 0.985), (480, 480, 0.75, 256, 0.98)])
def test_fit_then_restore_is_close_when_resampling(h, w, spacing, size, min_agreement):
    yy, xx = np.mgrid[:h, :w]
    label = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 4) ** 2).astype(np.uint8)  # a disc
    label[: h // 3] += 2 * ((xx[: h // 3] // 20) % 2).astype(np.uint8)  # stripes, 20 px wide
    target = spacing * max(h, w) / size  # the whole slice fits the window
    _, (fitted_label,), geometry = fit_slice(np.zeros((1, h, w)), size, [label], 0, (spacing, spacing), target)
    assert fitted_label.shape == (size, size)
    restored = restore_probabilities(torch.from_numpy(one_hot(fitted_label, 4))[None], geometry)
    assert isinstance(restored, torch.Tensor) and restored.shape == (1, 4, h, w)
    assert (restored[0].argmax(0).numpy() == label).mean() >= min_agreement


def test_restore_marks_what_the_window_cut_away_as_background():
    label = np.ones((40, 40), np.uint8)
    _, (fitted_label,), geometry = fit_slice(np.zeros((1, 40, 40)), 16, [label])  # native, centre 16 x 16
    restored = restore_probabilities(one_hot(fitted_label, 2), geometry).argmax(0)
    assert (geometry.top, geometry.left) == (12, 12)
    assert restored[12:28, 12:28].min() == 1 and restored.sum() == 16 * 16


def test_resample_labels_keeps_thin_strokes_and_votes_on_ground_truth():
    scribble = np.full((4, 4), UNANNOTATED, np.uint8)
    scribble[1, 1] = 2  # one annotated pixel in the top-left 2 x 2 window
    np.testing.assert_array_equal(slices_geometry.resample_labels(scribble, (2, 2)), [[2, 255], [255, 255]])
    gt = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [3, 3, 2, 2], [3, 0, 2, 0]], np.uint8)
    np.testing.assert_array_equal(slices_geometry.resample_labels(gt, (2, 2), fill=0), [[1, 0], [3, 2]])
    line = np.full((70, 70), UNANNOTATED, np.uint8)
    line[np.arange(70), np.arange(70)] = 1  # a 1-px diagonal stroke, shrunk 2.33 x
    kept = slices_geometry.resample_labels(line, (30, 30))
    assert np.count_nonzero(kept == 1) >= 30  # every coarse pixel on the diagonal keeps it
    nearest = line[np.round(np.arange(30) * 70 / 30).astype(int)][:, np.round(np.arange(30) * 70 / 30).astype(int)]
    assert np.count_nonzero(nearest == 1) < np.count_nonzero(kept == 1)


def test_fit_slice_errors():
    with pytest.raises(DataError, match=r"labels: shape \(4, 5\) does not match the image slice \(4, 4\)"):
        fit_slice(np.zeros((1, 4, 4)), 8, [np.zeros((4, 5), np.uint8)])
    with pytest.raises(ConfigError, match="size: expected a positive int, got 0"):
        fit_slice(np.zeros((1, 4, 4)), 0)
    _, _, geometry = fit_slice(np.zeros((1, 4, 6)), 8)
    with pytest.raises(DataError, match=r"prob: expected trailing dims \(8, 8\)"):
        restore_probabilities(np.zeros((2, 6, 6)), geometry)


def test_few_scribble_split():
    subjects = [f"subject{i:02d}" for i in range(20)]
    scribbled, unlabeled = few_scribble_split(subjects, 5, seed=3)
    assert len(scribbled) == 5 and scribbled == sorted(scribbled) and unlabeled == sorted(unlabeled)
    assert sorted(scribbled + unlabeled) == subjects
    assert few_scribble_split(subjects[::-1], 5, seed=3) == (scribbled, unlabeled)
    assert {tuple(few_scribble_split(subjects, 5, seed=s)[0]) for s in range(5)} != {tuple(scribbled)}
    with pytest.raises(ConfigError, match="n_scribbled: need 0 <= n_scribbled <= 3 .* got 5"):
        few_scribble_split(subjects[:3], 5)
    with pytest.raises(DataError, match=r"subjects: repeated subject names \['a'\]"):
        few_scribble_split(["a", "a", "b"], 1)


def test_dataset_shapes_targets_and_unlabeled_subjects():
    cases = [make_case("a", seed=1), make_case("b", (16, 20, 2), seed=2)]
    ds = SliceDataset(cases, size=20, target="scribble", scribbled_subjects=["a"])
    assert len(ds) == 5 and ds.images.shape == (5, 1, 20, 20) and ds.images.dtype == np.float32
    assert ds.targets.dtype == np.uint8
    assert ds.case_index.tolist() == [0, 0, 0, 1, 1] and ds.z.tolist() == [0, 1, 2, 0, 1]
    item = ds[1]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (1, 20, 20)
    assert item["target"].dtype == torch.int64 and item["target"].shape == (20, 20)
    assert (item["case"], item["z"], item["annotated"]) == (0, 1, True)
    # subject a: width 16 padded by 2 on each side; size == side, so the scribble is copied exactly.
    np.testing.assert_array_equal(ds.targets[0][:, 2:18], cases[0].scribble[..., 0])
    assert np.all(ds.targets[0][:, :2] == UNANNOTATED)
    assert ds.annotated.tolist() == [True, True, False, False, False]  # a's last slice has no scribble; b is unlabeled
    assert np.all(ds.targets[3:] == UNANNOTATED)


def test_dataset_full_labels_and_none():
    cases = [make_case("a", seed=1), make_case("b", seed=2)]
    ds = SliceDataset(cases, size=20, target="label")
    np.testing.assert_array_equal(ds.targets[4][:, 2:18], cases[1].label[..., 1])
    assert np.all(ds.targets[:, :, :2] == 0)  # GT padding is background
    assert ds.annotated.all()
    assert not SliceDataset(cases, size=20, target="none").annotated.any()
    cases[1].label = None
    with pytest.raises(DataError, match="b: target='label' needs a label volume"):
        SliceDataset(cases, size=20, target="label")
    SliceDataset(cases, size=20, target="label", scribbled_subjects=["a"])  # b's label is not needed


def test_dataset_errors():
    a = make_case("a")
    with pytest.raises(ConfigError, match="target: expected one of"):
        SliceDataset([a], target="gt")
    with pytest.raises(ConfigError, match=r"scribbled_subjects: not among the cases: \['z'\]"):
        SliceDataset([a], size=8, scribbled_subjects=["z"])
    with pytest.raises(DataError, match=r"a: expected image shape \(3, X, Y, Z\)"):
        SliceDataset([make_case("a", task="myops")], size=8)
    with pytest.raises(DataError, match=r"cases: mixed tasks \['acdc', 'mscmr'\]"):
        SliceDataset([a, make_case("b", task="mscmr")], size=8)
    a.scribble = a.scribble[:-1]
    with pytest.raises(DataError, match=r"a: scribble shape \(19, 16, 3\) does not match the image \(20, 16, 3\)"):
        SliceDataset([a], size=8)


def test_cache_round_trip_and_fingerprint(tmp_path):
    cases = [make_case("a", task="myops", channels=3, seed=1), make_case("b", task="myops", channels=3, seed=2)]
    ds = SliceDataset(cases, size=12, scribbled_subjects=["b"])
    path = tmp_path / "slices.cache"
    ds.save_cache(path)
    loaded = SliceDataset.from_cache(path, fingerprint=ds.fingerprint())
    for name in ("images", "targets", "case_index", "z", "annotated"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(ds, name))
    assert loaded.subjects == ["a", "b"] and loaded.task == "myops" and len(loaded) == len(ds)
    assert torch.equal(loaded[4]["target"], ds[4]["target"])
    assert SliceDataset(cases, size=12, scribbled_subjects=["a"]).fingerprint() != ds.fingerprint()
    assert SliceDataset(cases, size=16, scribbled_subjects=["b"]).fingerprint() != ds.fingerprint()
    with pytest.raises(DataError, match="slices.cache: slice cache has fingerprint .* expected 0123"):
        SliceDataset.from_cache(path, fingerprint="0123")
    with pytest.raises(DataError, match="missing.npz: slice cache not found"):
        SliceDataset.from_cache(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a cache")
    with pytest.raises(DataError, match="junk.npz: not a readable slice cache"):
        SliceDataset.from_cache(tmp_path / "junk.npz")


@pytest.fixture(scope="module")
def mscmr_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mscmr")
    generate_phantom(root, "smoke", seed=0, tasks=("mscmr",), progress=False)
    return root


def _no_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a NIfTI volume was decoded")

    monkeypatch.setattr(slices, "load_case", fail)
    monkeypatch.setattr("nibabel.load", fail)


def test_slice_cache_is_built_once_then_read_without_decoding(mscmr_root, tmp_path, monkeypatch):
    files = list_cases("mscmr", mscmr_root, "train")
    scribbled = [files[0].subject, files[2].subject]
    built = cached_slice_dataset(files, tmp_path / "cache", 16, "scribble", scribbled)
    direct = SliceDataset(load_split("mscmr", mscmr_root, "train"), 16, "scribble", scribbled)
    assert built.fingerprint() == direct.fingerprint()
    np.testing.assert_array_equal(built.images, direct.images)
    (entry,) = (tmp_path / "cache").iterdir()
    assert entry.name.startswith("mscmr-") and entry.suffix == ".npz"

    with monkeypatch.context() as patch:
        _no_decoding(patch)
        again = cached_slice_dataset(files, tmp_path / "cache", 16, "scribble", scribbled)
        with pytest.raises(AssertionError, match="decoded"):  # another setting is another entry
            cached_slice_dataset(files, tmp_path / "cache", 16, "scribble", scribbled[:1])
    assert again.fingerprint() == built.fingerprint()
    for name in ("images", "targets", "case_index", "z", "annotated"):
        np.testing.assert_array_equal(getattr(again, name), getattr(built, name))


def test_slice_cache_misses_when_a_source_file_changes(mscmr_root, tmp_path, monkeypatch):
    files = list_cases("mscmr", mscmr_root, "train")
    cached_slice_dataset(files, tmp_path, 16)
    scribble = files[1].scribble
    stat = scribble.stat()
    try:
        os.utime(scribble, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # "edited"
        with monkeypatch.context() as patch, pytest.raises(AssertionError, match="decoded"):
            _no_decoding(patch)
            cached_slice_dataset(files, tmp_path, 16)
    finally:
        os.utime(scribble, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(slices.CACHE_ENV, str(tmp_path / "mine"))
    assert slices.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(slices.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert slices.default_cache_dir() == tmp_path / "xdg" / "modelmix_lite" / "slices"


def test_slice_cache_errors_and_unwritable_folder(mscmr_root, tmp_path):
    files = list_cases("mscmr", mscmr_root, "train")
    with pytest.raises(DataError, match="^files: no cases to build a slice dataset from$"):
        cached_slice_dataset([], tmp_path, 16)
    built = cached_slice_dataset(files, tmp_path, 16, target="label")
    (entry,) = tmp_path.iterdir()
    built.meta["low"] = 1.0  # a cache whose content does not match its name
    built.save_cache(entry)
    with pytest.raises(DataError, match=rf"{entry.name}: slice cache holds other settings than its name says"):
        cached_slice_dataset(files, tmp_path, 16, target="label")
    entry.write_bytes(b"junk")
    with pytest.raises(DataError, match=rf"{entry.name}: not a readable slice cache"):
        cached_slice_dataset(files, tmp_path, 16, target="label")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match=r"could not write the slice cache .*; continuing without it"):
        uncached = cached_slice_dataset(files, blocker / "cache", 16, target="label")
    np.testing.assert_array_equal(uncached.targets, SliceDataset(load_split("mscmr", mscmr_root, "train"), 16,
                                                                 target="label").targets)

"""Figures build on tiny synthetic cases, draw what they claim, and reject bad input; the notebooks' set-up helpers."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from modelmix_lite.data.geometry import annotated_slices, heart_window, middle_slice
from modelmix_lite.data.scribbles import scribble_stats_frame
from modelmix_lite import tutorial, viz  # noqa: E402
from modelmix_lite.data import phantom  # noqa: E402
from modelmix_lite.data.slices import SliceDataset  # noqa: E402
from modelmix_lite.data.tasks import TASKS, UNANNOTATED  # noqa: E402
from modelmix_lite.errors import ConfigError, DataError  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_case(task: str = "acdc", subject: str = "p1", shape=(24, 20, 5), heart=range(1, 4)) -> SimpleNamespace:
    """A Case-like object: each class of ``task`` a band on the slices ``heart``, with a short scribble inside."""
    spec = TASKS[task]
    x, y, z = shape
    label = np.zeros(shape, np.uint8)
    scribble = np.full(shape, UNANNOTATED, np.uint8)
    for c in range(1, spec.n_classes):
        label[4 + 3 * c : 7 + 3 * c, 5:15, list(heart)] = c
        scribble[5 + 3 * c, 6:10, list(heart)] = c
    scribble[1, 2:18, list(heart)] = 0
    image = np.random.default_rng(0).normal(100, 10, (spec.n_channels, *shape)).astype(np.float32)
    return SimpleNamespace(task=task, subject=subject, split="train", image=image, label=label, scribble=scribble,
                           spacing=(1.0, 1.0, 5.0), affine=np.eye(4))


def test_class_colors_are_shared_by_class_name() -> None:
    acdc, myops = viz.class_colors("acdc"), viz.class_colors("myops")
    assert acdc.shape == (4, 4) and myops.shape == (5, 4)
    assert np.array_equal(acdc[TASKS["acdc"].classes.index("MYO")], myops[TASKS["myops"].classes.index("MYO")])


def test_overlay_draws_transposed_layers_with_unannotated_transparent() -> None:
    image = np.arange(12.0).reshape(4, 3)
    label = np.zeros((4, 3), np.uint8)
    label[1, 2] = 3
    scribble = np.full((4, 3), UNANNOTATED, np.uint8)
    scribble[2, 0] = 1
    scribble[0, 1] = 0
    _, ax = plt.subplots()
    viz.overlay(ax, image, label, scribble, task="acdc")
    grey, fill, strokes = (im.get_array() for im in ax.images)
    assert grey.shape == (3, 4) and grey[2, 1] == image[1, 2]  # drawn as (Y, X): X to the right
    assert np.allclose(fill[2, 1], [*to_rgba(viz.CLASS_COLORS["LV"])[:3], viz.LABEL_ALPHA])
    assert fill[0, 0, 3] == 0  # background ground truth is transparent
    assert np.allclose(strokes[0, 2], to_rgba(viz.CLASS_COLORS["RV"]))
    assert np.allclose(strokes[1, 0], to_rgba(viz.CLASS_COLORS["background"]))
    assert strokes[0, 0, 3] == 0 and (strokes[..., 3] > 0).sum() == 2  # unannotated is transparent
    assert len(ax.collections) == 1  # one contour: only LV is present


def test_overlay_rejects_bad_slices() -> None:
    _, ax = plt.subplots()
    with pytest.raises(DataError, match=r"label2d: shape \(3, 3\) differs from the image slice's \(4, 3\)"):
        viz.overlay(ax, np.zeros((4, 3)), label2d=np.zeros((3, 3), np.uint8))
    with pytest.raises(DataError, match=r"label2d: values \[255\] are not classes of acdc"):
        viz.overlay(ax, np.zeros((4, 3)), label2d=np.full((4, 3), UNANNOTATED, np.uint8))
    with pytest.raises(DataError, match=r"scribble2d: values \[4\] are not classes of acdc"):
        viz.overlay(ax, np.zeros((4, 3)), scribble2d=np.full((4, 3), 4, np.uint8))
    with pytest.raises(DataError, match=r"image2d: expected a non-empty 2-D slice, got shape \(4,\)"):
        viz.overlay(ax, np.zeros(4))


def test_annotated_and_middle_slices() -> None:
    case = make_case(heart=[1, 2, 4])
    assert annotated_slices(case).tolist() == [1, 2, 4]
    assert middle_slice(case) == 2
    case.label = None  # the scribbles' foreground is used instead
    assert annotated_slices(case).tolist() == [1, 2, 4]


def test_heart_window_is_a_square_around_the_foreground_with_margin() -> None:
    case = make_case(shape=(64, 64, 2), heart=[1])
    case.label[:] = 0
    case.label[10:20, 20:30, 1] = 2
    assert heart_window(case) == (slice(5, 25), slice(15, 35))
    assert heart_window(case, margin=2.0) == (slice(0, 38), slice(2, 48))  # clipped at the border


def test_case_montage_has_a_row_per_sequence_and_a_column_per_slice() -> None:
    fig = viz.case_montage(make_case("myops", shape=(24, 20, 6), heart=range(1, 4)))
    assert len(fig.axes) == 3 * 3  # default slices: only the annotated ones, here 3
    assert [ax.get_title() for ax in fig.axes[:3]] == ["z = 1", "z = 2", "z = 3"]
    fig = viz.case_montage(make_case("acdc"), slices=[0, 4], show=("image", "scribble"))
    assert len(fig.axes) == 2
    assert len(fig.axes[0].images) == 2  # image and scribble, no ground truth


def test_case_montage_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match=r"show: unknown layers \['mask'\]"):
        viz.case_montage(make_case(), show=("image", "mask"))
    with pytest.raises(ConfigError, match=r"slices: \[9\] not in the 5 slices of p1"):
        viz.case_montage(make_case(), slices=[0, 9])
    with pytest.raises(ConfigError, match="slices: empty; give at least one Z index"):
        viz.case_montage(make_case(), slices=[])


def test_dataset_overview_has_a_column_per_task_sequence() -> None:
    fig = viz.dataset_overview({"acdc": make_case("acdc"), "myops": make_case("myops")})
    assert len(fig.axes) == 2 * (1 + 3)
    assert fig.axes[1].get_title().startswith("MYOPS · C0")
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["background", "RV", "MYO", "LV", "edema", "scar"]  # the union of the tasks' classes


def test_scribble_stats_frame_matches_a_hand_count() -> None:
    label = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 3, 3, 0], [0, 0, 0, 0]], np.uint8)[..., None]
    u = UNANNOTATED
    scribble = np.array([[0, 0, u, u], [u, 1, u, u], [u, 2, 3, u], [u, u, u, u]], np.uint8)[..., None]
    case = SimpleNamespace(task="acdc", subject="p1", label=label, scribble=scribble)
    frame = scribble_stats_frame([case])
    assert frame.columns.tolist() == ["task", "case", "class", "coverage"]
    assert frame["class"].tolist() == ["background", "RV", "MYO", "LV"]
    coverage = frame["coverage"].tolist()
    assert coverage[0] == 2 / 12 and coverage[1] == 1 / 2 and math.isnan(coverage[2]) and coverage[3] == 1 / 2


def test_scribble_stats_frame_needs_ground_truth_and_scribble() -> None:
    case = make_case()
    case.label = None
    with pytest.raises(DataError, match="acdc/p1: no ground truth, so no scribble coverage"):
        scribble_stats_frame([case])


def test_plot_scribble_stats_has_a_panel_per_task_over_the_reference_band() -> None:
    frame = scribble_stats_frame([make_case("acdc", "a"), make_case("acdc", "b"), make_case("myops", "m")])
    fig = viz.plot_scribble_stats(frame)
    assert len(fig.axes) == 2
    (band,) = [p for p in fig.axes[0].patches if p.get_label() == "real ACDC, structures (6–18 %)"]
    assert (band.get_y(), band.get_y() + band.get_height()) == viz.ACDC_SCRIBBLE_BAND
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == list(TASKS["myops"].classes)
    with pytest.raises(DataError, match="frame: no rows to plot"):
        viz.plot_scribble_stats(frame.iloc[:0])


def test_network_inputs_shows_annotated_and_unlabeled_slices() -> None:
    cases = [make_case("myops", "a", shape=(24, 20, 4)), make_case("myops", "b", shape=(24, 20, 4))]
    dataset = SliceDataset(cases, size=16, scribbled_subjects=["a"])
    fig = viz.network_inputs(dataset, n=4)
    assert len(fig.axes) == 3 * 4
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert sum("(annotated)" in t for t in titles) == 2 and sum("(no target)" in t for t in titles) == 2
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)  # the network's intensity range, not a percentile window
    with pytest.raises(DataError, match="dataset: no slices to show"):
        viz.network_inputs(dataset, n=0)


def test_slice_viewer_redraws_on_every_control(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ipywidgets")
    drawn = []
    monkeypatch.setattr(viz.data, "overlay", lambda ax, **layers: drawn.append(layers))
    case = make_case("myops", shape=(24, 20, 5))
    case.label = None
    viewer = viz.slice_viewer(case)
    slider, sequence = viewer.children[0].children
    label, scribble, zoom = viewer.children[1].children
    assert (slider.max, slider.value) == (4, 2) and label.disabled and not label.value
    slider.value = 3
    sequence.value = 2
    zoom.value = False
    assert np.array_equal(drawn[-1]["image2d"], case.image[2, :, :, 3])
    assert drawn[-1]["label2d"] is None and np.array_equal(drawn[-1]["scribble2d"], case.scribble[:, :, 3])
    scribble.value = False
    assert drawn[-1]["scribble2d"] is None


# The notebooks' set-up helpers (modelmix_lite.tutorial), which the figures above are shown with.


def test_resolve_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tutorial.resolve_profile("smoke") == "smoke"
    monkeypatch.setattr(tutorial.torch.cuda, "is_available", lambda: False)
    assert tutorial.resolve_profile(None) == tutorial.resolve_profile("auto") == "cpu"
    monkeypatch.setattr(tutorial.torch.cuda, "is_available", lambda: True)
    assert tutorial.resolve_profile("auto") == "gpu"
    with pytest.raises(ConfigError, match="profile: unknown profile 'fast'; expected one of smoke, cpu, cpu_long, gpu, paper"):
        tutorial.resolve_profile("fast")


def test_resolve_data_root_checks_a_given_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"data_root: {tmp_path / 'missing'} does not exist"):
        tutorial.resolve_data_root(tmp_path / "missing", "cpu")
    with pytest.raises(DataError, match=f"data_root: {tmp_path} holds none of the dataset folders ACDC_dataset/"):
        tutorial.resolve_data_root(tmp_path, "cpu")
    (tmp_path / "MyoPS").mkdir()
    assert tutorial.resolve_data_root(str(tmp_path), "cpu") == tmp_path
    assert tutorial.available_tasks(tmp_path) == ["myops"]


def test_resolve_data_root_generates_the_phantom_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_generate(out, preset, seed, progress):
        calls.append((preset, seed))
        (out / "ACDC_dataset").mkdir()

    monkeypatch.setattr(phantom, "generate_phantom", fake_generate)
    monkeypatch.setattr(tutorial, "phantom_dir", lambda preset, seed: tmp_path / f"{preset}-{seed}")
    assert tutorial.resolve_data_root(None, "smoke", seed=3) == tmp_path / "smoke-3"
    assert tutorial.resolve_data_root(None, "smoke", seed=3) == tmp_path / "smoke-3"  # reused
    assert tutorial.resolve_data_root(None, "paper") == tmp_path / "default-0"
    assert calls == [("smoke", 3), ("default", 0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default-0", "smoke-3"]  # no temporary folder left


def test_phantom_dir_keeps_presets_and_seeds_apart() -> None:
    assert tutorial.phantom_dir("default") == tutorial.REPO_ROOT / "data" / "phantom"
    assert tutorial.phantom_dir("smoke", 2).name == "phantom_smoke_seed2"


def test_write_provenance_records_settings_environment_and_each_run(tmp_path: Path) -> None:
    import json

    from modelmix_lite.checkpoints import save_checkpoint

    run = tmp_path / "ablation4_paper"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "#4", "tasks": ["myops"], "config": {"seed": 3}}))
    (run / "data.json").write_text(json.dumps({"data_fingerprint": "abc", "wall_s": 12.5}))  # as train() writes it
    save_checkpoint({"step": 40}, run / "best.pt")
    record = tutorial.write_provenance(tmp_path, {"ModelMix": run}, {"ModelMix": False}, profile="cpu",
                                       data_root=tmp_path / "data")
    # paths as a reader should see them, relative to the repository (never the build machine's absolute path)
    assert record["profile"] == "cpu" and record["data_root"] == os.path.relpath(tmp_path / "data", tutorial.REPO_ROOT)
    assert record["runs"]["ModelMix"] == {"dir": os.path.relpath(run, tutorial.REPO_ROOT), "trained_now": False, "data_fingerprint": "abc",
                                          "wall_s": 12.5, "best_step": 40,
                                          "config": {"method": "#4", "tasks": ["myops"], "config": {"seed": 3}}}
    assert set(record["environment"]) >= {"python", "torch", "commit"}
    assert json.loads((tmp_path / "provenance.json").read_text()) == record


def test_describe_environment_names_versions_and_device() -> None:
    info = tutorial.describe_environment()
    assert info["torch"] == tutorial.torch.__version__
    assert info["device"] == ("cuda" if tutorial.torch.cuda.is_available() else "cpu")
    assert set(info) == {"python", "modelmix_lite", "torch", "numpy", "device", "gpu", "colab", "commit"}


def test_expected_runtime_reports_the_recorded_book_timing(tmp_path: Path) -> None:
    import json

    record = {"machine": "a test machine", "runs": [{"commit": "abc1234", "notebooks_s": {"04_x": 524.3}}]}
    (tmp_path / "timings.json").write_text(json.dumps(record))
    line = tutorial.expected_runtime("04_x", tmp_path / "timings.json")
    assert "cpu profile about 9 min" in line and "abc1234" in line and "a test machine" in line
    assert tutorial.expected_runtime("05_y", tmp_path / "timings.json").startswith("Expected runtime: not recorded")
    assert tutorial.expected_runtime("04_x", tmp_path / "absent.json").startswith("Expected runtime: not recorded")
    assert tutorial.state_runtime("03_parameter_interpolation") == tutorial.expected_runtime("03_parameter_interpolation")
    committed = json.loads(tutorial.BOOK_TIMINGS.read_text())["runs"][0]["notebooks_s"]
    assert {p.stem for p in (tutorial.REPO_ROOT / "notebooks").glob("0*.py")} == set(committed)


def test_display_path_is_relative_to_the_repository() -> None:
    assert tutorial.display_path(tutorial.REPO_ROOT / "data" / "phantom") == os.path.join("data", "phantom")
    assert tutorial.display_path(tutorial.REPO_ROOT.parent / "shared") == os.path.join("..", "shared")
    assert not tutorial.display_path("/tmp/x").startswith("/")


def test_real_data_root_comes_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(tutorial.REAL_DATA_ENV, raising=False)
    assert tutorial.real_data_root() is None and "no real data" in tutorial.real_data_note(None)
    monkeypatch.setenv(tutorial.REAL_DATA_ENV, str(tmp_path))
    assert tutorial.real_data_root() is None  # a folder without a dataset is not real data
    (tmp_path / "MSCMR_dataset").mkdir()
    assert tutorial.real_data_root() == tmp_path
    assert "one validation case of each public dataset" in tutorial.real_data_note(tmp_path)

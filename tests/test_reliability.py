"""Issue 13's small defects, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from modelmix_lite.data.nifti import save_nifti
from modelmix_lite.data.readers import load_split
from modelmix_lite.errors import ConfigError
from modelmix_lite.files import write_text_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path, umask_022):
    nifti = save_nifti(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.uint8))
    write_text_atomic(tmp_path / "list.txt", "x\n")
    for path in (nifti, tmp_path / "list.txt"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path


def test_ensure_phantom_with_a_bad_seed_leaves_no_temporary_folder(tmp_path):
    from modelmix_lite.data.phantom import ensure_phantom
    from modelmix_lite.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^seed: expected a non-negative integer, got -1$"):
        ensure_phantom(tmp_path / "phantom", seed=-1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_training_on_an_empty_train_split_names_the_folder(tmp_path):
    from modelmix_lite.data.phantom import generate_phantom
    from modelmix_lite.errors import DataError
    from modelmix_lite.config import resolve_config
    from modelmix_lite.train import train

    root = tmp_path / "data"
    generate_phantom(root, "smoke", seed=0, tasks=("mscmr",), progress=False)
    for path in (root / "MSCMR_dataset" / "train").rglob("*.nii.gz"):
        path.unlink()
    config = resolve_config("smoke", ["steps=1", "val_every=0"])
    with pytest.raises(DataError, match=r"MSCMR_dataset: the mscmr train split has no cases; training needs"):
        train(config, root, tmp_path / "run", "pce", ["mscmr"], progress=False, cache_dir=tmp_path / "cache")


# --- one clear line instead of a traceback (items 9, 11, 12) ----------------------------------


def _cli_train(phantom_root, out, task: str, steps: int):
    from modelmix_lite.cli import main

    assert main(["train", "--method", "pce", "--tasks", task, "--profile", "smoke", "--data", str(phantom_root),
                 "--out", str(out), "--set", f"steps={steps}", "--set", "val_every=0"]) == 0
    return out


@pytest.fixture(scope="module")
def smoke_run(phantom_root, tmp_path_factory):
    return _cli_train(phantom_root, tmp_path_factory.mktemp("reliability") / "run", "mscmr", 2)


class _Pickled:
    def __reduce__(self):  # what a malicious checkpoint carries: code run on unpickling
        return (print, ("pwned",))


@pytest.mark.parametrize("content", ["empty", "truncated", "text", "malicious"])
def test_a_damaged_checkpoint_is_one_line_without_weights_only_advice(smoke_run, phantom_root, tmp_path, capsys,
                                                                       content):
    import shutil

    import torch

    from modelmix_lite.cli import main

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    path = run / "last.pt"
    if content == "empty":
        path.write_bytes(b"")
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif content == "text":
        path.write_text("hello")
    else:
        torch.save({"model": _Pickled()}, path)
    assert main(["evaluate", str(run), "--data", str(phantom_root), "--split", "val", "--checkpoint", "last.pt"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f" evaluate: error: {path}: not a checkpoint written by modelmix_lite (or corrupted)")
    assert len(err.splitlines()) == 1 and "weights_only" not in err
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("device, message", [
    ("banana", r"--device: 'banana' is not a device \(auto, cpu, cuda, cuda:1, mps\)"),
    ("cuda", r"--device cuda: CUDA is not available on this machine"),
])
def test_an_unusable_device_is_refused_before_any_data_is_read(phantom_root, tmp_path, capsys, monkeypatch, device,
                                                                message):
    import torch

    import modelmix_lite.train as train_module
    from modelmix_lite.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_module, "load_task_data", lambda *a, **k: pytest.fail("data read before the check"))
    assert main(["train", "--method", "pce", "--tasks", "mscmr", "--profile", "smoke", "--data", str(phantom_root),
                 "--out", str(tmp_path / "run"), "--set", f"device={device}"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err)
    assert not (tmp_path / "run").exists()


def test_a_non_finite_loss_is_printed_as_the_error(phantom_root, tmp_path, capsys):
    from modelmix_lite.cli import main

    code = main(["train", "--method", "pce", "--tasks", "mscmr", "--profile", "smoke", "--data", str(phantom_root),
                 "--out", str(tmp_path / "run"), "--set", "steps=4", "--set", "val_every=0", "--set", "lr=1e38"])
    errors = [line for line in capsys.readouterr().err.splitlines() if " error: " in line]
    assert code == 1 and len(errors) == 1  # besides the progress bar, one line
    assert errors[0].startswith("python -m modelmix_lite train: error: non-finite update at step 1: ")


# --- silent wrong answers (item 3) ------------------------------------------------------------


def test_fractional_labels_are_an_error_not_a_rounded_class():
    from modelmix_lite.data.tasks import get_task, map_labels
    from modelmix_lite.errors import DataError

    acdc, myops = get_task("acdc"), get_task("myops")
    with pytest.raises(DataError, match=r"^lab.nii.gz: label values \[1.5\] are not integers \(more than 0.003 from one\)"):
        map_labels(np.array([0.0, 1.0, 1.5, 2.0]), acdc.gt_map, "lab.nii.gz")
    assert map_labels(np.array([0.0, 1.0005, 3.0]), acdc.gt_map).tolist() == [0, 1, 3]  # float noise reads
    assert map_labels(np.array([0.0, 499.977, 200.0]), myops.gt_map).tolist() == \
        map_labels(np.array([0, 500, 200]), myops.gt_map).tolist()


def test_an_image_and_label_with_different_affines_are_refused(tmp_path):
    from modelmix_lite.data.layout import CaseFiles
    from modelmix_lite.data.readers import load_case
    from modelmix_lite.errors import DataError

    oblique = np.array([[0.0, -1.5, 0, 10.0], [1.5, 0, 0, -20.0], [0, 0, 8.0, 5.0], [0, 0, 0, 1]])
    image = save_nifti(tmp_path / "img.nii.gz", np.zeros((4, 4, 2), np.float32), oblique)
    label = np.zeros((4, 4, 2), np.uint8)

    def case(label_affine):
        path = save_nifti(tmp_path / "gt.nii.gz", label, label_affine)
        return CaseFiles("acdc", "p1", "val", (image,), path, None)

    assert load_case(case(oblique)).label.shape == (4, 4, 2)  # same grid
    assert load_case(case(np.diag([1.5, 1.5, 8.0, 1.0]))).label is not None  # header without orientation: shape/spacing only
    shifted = oblique.copy()
    shifted[:3, 3] += [0, 3.0, 0]
    with pytest.raises(DataError, match=r"gt.nii.gz: origin differs from .*img.nii.gz by 3.00 mm"):
        load_case(case(shifted))
    flipped = oblique.copy()
    flipped[:3, 0] *= -1
    with pytest.raises(DataError, match=r"gt.nii.gz: orientation differs from .*img.nii.gz"):
        load_case(case(flipped))


def test_an_empty_split_that_a_command_needs_is_an_error_naming_the_folder(tmp_path):
    from modelmix_lite.data.inspect import inspect_dataset
    from modelmix_lite.data.phantom import generate_phantom
    from modelmix_lite.errors import DataError
    from modelmix_lite.config import resolve_config
    from modelmix_lite.train import train

    root = tmp_path / "data"
    generate_phantom(root, "smoke", seed=0, tasks=("mscmr",), progress=False)
    for path in (root / "MSCMR_dataset" / "val").rglob("*.nii.gz"):
        path.unlink()
    problems = inspect_dataset("mscmr", root)["problems"]
    assert problems == [f"{root / 'MSCMR_dataset'}: the val split is there but holds no case"]
    config = resolve_config("smoke", ["steps=1", "val_every=1"])
    with pytest.raises(DataError, match=r"MSCMR_dataset: the mscmr val split has no cases; validation needs them"):
        train(config, root, tmp_path / "run", "pce", ["mscmr"], progress=False, cache_dir=tmp_path / "cache")
    train(resolve_config("smoke", ["steps=1", "val_every=0"]), root, tmp_path / "run2", "pce", ["mscmr"],
          progress=False, cache_dir=tmp_path / "cache")  # a run that does not validate needs no val split


# --- predict (items 4 and 8) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def myops_run(phantom_root, tmp_path_factory):
    return _cli_train(phantom_root, tmp_path_factory.mktemp("predict") / "run", "myops", 1)


def test_predict_checks_the_myops_sequence_order(myops_run, phantom_root, tmp_path, capsys):
    from modelmix_lite.cli import main
    from modelmix_lite.data.readers import load_split

    c0, de, t2 = map(str, load_split("myops", phantom_root, "test")[0].files.images)
    argv = ["predict", str(myops_run), "--checkpoint", "last.pt", "--out", str(tmp_path / "out"), "--input"]
    assert main([*argv, de, c0, t2]) == 1
    assert re.search(r"--input: image 1 must be the C0 sequence \(order C0, DE, T2\), got .*_DE", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
    assert main([*argv, c0, de, t2]) == 0
    (written,) = (tmp_path / "out").iterdir()
    assert written.name == Path(c0).name.replace("_C0.nii.gz", "_pred.nii.gz")


def test_predict_refuses_to_mix_with_earlier_predictions(myops_run, phantom_root, tmp_path, capsys):
    from modelmix_lite.cli import main

    out = tmp_path / "out"
    argv = ["predict", str(myops_run), "--checkpoint", "last.pt", "--data", str(phantom_root), "--split", "val",
            "--out", str(out)]
    assert main(argv) == 0
    first = sorted(p.name for p in out.iterdir())
    (out / "stale_pred.nii.gz").write_bytes(b"old")  # a prediction of another subject, from an earlier run
    (out / "notes.txt").write_text("mine")
    assert main(argv) == 1
    assert "already holds" in capsys.readouterr().err and (out / "stale_pred.nii.gz").read_bytes() == b"old"
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*first, "notes.txt"])  # stale one gone, notes kept


@pytest.mark.parametrize("content, message", [
    ("{not json", r"config.json: not valid JSON \(.*\); cannot resume from it$"),
    ('{"method": 3}', r"config.json: not a run configuration \(expected method, tasks and config\); cannot resume$"),
])
def test_resume_from_an_invalid_config_json_is_one_line(smoke_run, phantom_root, tmp_path, capsys, content, message):
    import shutil

    from modelmix_lite.cli import main

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    (run / "config.json").write_text(content)
    assert main(["train", "--method", "pce", "--tasks", "mscmr", "--profile", "smoke", "--data", str(phantom_root),
                 "--out", str(run), "--set", "steps=3", "--set", "val_every=0", "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err)


# --- item 15 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting, message", [("seed=-1", r"seed: must be >= 0, got -1"),
                                              ("weight_decay=nan", r"weight_decay: must be >= 0, got nan")])
def test_negative_seed_and_nan_weight_decay_are_refused(setting, message):
    from modelmix_lite.errors import ConfigError
    from modelmix_lite.config import resolve_config

    with pytest.raises(ConfigError, match=message):
        resolve_config("smoke", [setting])


def test_out_pointing_to_a_file_is_one_line(phantom_root, tmp_path, capsys):
    from modelmix_lite.cli import main

    thesis = tmp_path / "thesis.pdf"
    thesis.write_bytes(b"%PDF")
    assert main(["train", "--method", "pce", "--tasks", "mscmr", "--profile", "smoke", "--data", str(phantom_root),
                 "--out", str(thesis), "--set", "steps=1"]) == 1
    assert capsys.readouterr().err.strip().endswith(f"{thesis}: is a file, not a run directory; choose another --out")
    assert thesis.read_bytes() == b"%PDF"


def test_a_papermill_data_root_that_is_not_a_path_is_one_line():
    from modelmix_lite.errors import ConfigError
    from modelmix_lite.tutorial import resolve_data_root

    with pytest.raises(ConfigError, match=r"^data_root: expected a folder path \(a string\) or None, got 5$"):
        resolve_data_root(5, "smoke")


# --- the data a run was trained on (items 7 and 15) ---------------------------------------------


def test_a_run_remembers_its_data_and_resume_or_evaluate_elsewhere_says_so(phantom_root, tmp_path):
    from modelmix_lite.data.phantom import generate_phantom
    from modelmix_lite.errors import ConfigError
    from modelmix_lite.data.fingerprint import data_fingerprint
    from modelmix_lite.evaluate import evaluate_run
    from modelmix_lite.rundir import DATA_RECORD
    from modelmix_lite.config import resolve_config
    from modelmix_lite.train import train

    config = resolve_config("smoke", ["steps=2", "val_every=0", "ckpt_every=1"])
    run = train(config, phantom_root, tmp_path / "run", "pce", ["mscmr"], progress=False)
    recorded = json.loads((run / DATA_RECORD).read_text())
    fingerprint = data_fingerprint(phantom_root, ["mscmr"])
    assert {key: recorded.pop(key) for key in ("data_root", "data_fingerprint")} == {
        "data_root": str(phantom_root), "data_fingerprint": fingerprint}
    # the rest of the provenance that train() writes itself: device, software, and at the end steps and wall time
    assert recorded.pop("device") == "cpu" and recorded.pop("steps") == 2 and recorded.pop("wall_s") > 0
    assert recorded.pop("environment")["torch"] == torch.__version__ and recorded == {}
    other = tmp_path / "other"
    generate_phantom(other, "smoke", seed=1, tasks=("mscmr",), progress=False)
    longer = resolve_config("smoke", ["steps=3", "val_every=0", "ckpt_every=1"])
    with pytest.raises(ConfigError, match=r"trained on .* \(data fingerprint [0-9a-f]{16}\), but .*other holds other "
                                          r"data \(fingerprint [0-9a-f]{16}\); resume with the same --data$"):
        train(longer, other, run, "pce", ["mscmr"], resume=True, progress=False)
    with pytest.warns(UserWarning, match=r"trained on .* but .*other holds other data"):
        evaluate_run(run, other, "val", checkpoint="last.pt", progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same data: no warning
        evaluate_run(run, phantom_root, "val", checkpoint="last.pt", progress=False)


def test_evaluate_and_predict_default_to_the_data_the_run_was_trained_on(phantom_root, tmp_path, monkeypatch):
    import warnings

    from modelmix_lite.config import resolve_config
    from modelmix_lite.evaluate import evaluate_run, predict_run
    from modelmix_lite.rundir import DATA_RECORD
    from modelmix_lite.rundir import Run
    from modelmix_lite.train import train

    config = resolve_config("smoke", ["steps=2", "val_every=0", "ckpt_every=2"])
    run = train(config, phantom_root, tmp_path / "run", "pce", ["mscmr"], progress=False)
    assert Run(run).data_root == phantom_root
    monkeypatch.chdir(tmp_path)  # the record holds an absolute path: another working folder still finds it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = evaluate_run(run, split="val", checkpoint="last.pt", progress=False)
    assert sorted(rows["case"].unique()) == sorted(c.subject for c in load_split("mscmr", phantom_root, "val"))
    written = predict_run(run, tmp_path / "pred", split="val", checkpoint="last.pt")
    assert len(written) == rows["case"].nunique()
    (run / DATA_RECORD).unlink()  # a run recorded before data.json: the data root must be given
    with pytest.raises(ConfigError, match=r"records no data root \(trained before data.json existed\); pass --data$"):
        evaluate_run(run, split="val", checkpoint="last.pt", progress=False)


def test_evaluate_checks_the_csv_folder_before_scoring(smoke_run, phantom_root, tmp_path, capsys, monkeypatch):
    import modelmix_lite.evaluate as evaluate
    from modelmix_lite.cli import main

    monkeypatch.setattr(evaluate, "evaluate_run", lambda *a, **k: pytest.fail("scored before the check"))
    csv = tmp_path / "missing" / "rows.csv"
    assert main(["evaluate", str(smoke_run), "--data", str(phantom_root), "--csv", str(csv)]) == 1
    assert capsys.readouterr().err.strip().endswith(f"--csv {csv}: cannot write there (no such writable folder, "
                                                    "or a folder)")


def test_a_failed_checkpoint_write_leaves_the_old_file_and_no_tmp(tmp_path, monkeypatch):
    import torch

    from modelmix_lite.checkpoints import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def disk_full(obj, target):
        Path(target).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"step": 2}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1

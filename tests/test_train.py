from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from modelmix_lite import objective as objective_module
from modelmix_lite import sampling
from modelmix_lite import train as train_module
from modelmix_lite.checkpoints import load_checkpoint
from modelmix_lite.config import resolve_config
from modelmix_lite.data import slices
from modelmix_lite.data.phantom import generate_phantom
from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.methods import CORE_PRESETS, METHODS
from modelmix_lite.models import TaskModelSet
from modelmix_lite.objective import ModelMixObjective, task_pairs
from modelmix_lite.sampling import InfiniteSampler
from modelmix_lite.train import TermMeter, train
from modelmix_lite.train_command import main_train

TASKS = ["myops", "mscmr"]
TINY = ["steps=2", "batch_size=4", "size=32", "base=4", "val_every=0", "log_every=1", "ckpt_every=2"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    generate_phantom(root, "smoke", seed=0, tasks=tuple(TASKS), progress=False)
    return root


def tiny(*extra: str, preset: str = "paper"):
    return resolve_config("smoke", [*TINY, *extra], preset)


def params(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.pt")["model"]


# --- configuration ---------------------------------------------------------------------------


def test_overrides_are_parsed_to_the_field_types():
    config = resolve_config("cpu", ["steps=7", "lr=0.01", "augment=no", "detach_virtual=true", "dice_on=all"])
    assert (config.steps, config.lr, config.augment) == (7, 0.01, False)
    assert config.core.detach_virtual is True and config.core.dice_on == "all"
    assert config.core.mix_bn is False  # the rest of the paper preset is kept
    released = resolve_config("paper", {"mix_bn": "false"}, preset="released_code")
    assert released.core == dataclasses.replace(CORE_PRESETS["released_code"], mix_bn=False)
    assert (released.size, released.base, released.batch_size, released.epochs) == (256, 64, 16, 1000)


@pytest.mark.parametrize(
    "profile, overrides, message",
    [
        ("fast", [], r"^--profile: unknown profile 'fast'; known profiles: smoke, cpu, cpu_long, gpu, paper$"),
        ("cpu", ["stepz=3"], r"^--set stepz: unknown option; known options: steps, epochs, "),
        ("cpu", ["steps=three"], r"^--set steps=three: expected int$"),
        ("cpu", ["augment=maybe"], r"^--set augment=maybe: expected bool$"),
        ("cpu", ["steps"], r"^--set steps: expected key=value$"),
        ("cpu", ["size=40"], r"^size: must be a multiple of 16 \(four 2x2 poolings\), got 40$"),
        ("cpu", ["cos_reduce=flat"], r"^cos_reduce: 'flat' is not one of 'spatial', 'pixel'$"),
    ],
)
def test_bad_config_is_one_clear_line(profile, overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        resolve_config(profile, overrides)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "method, tasks, message",
    [
        ("nope", TASKS, r"^--method: unknown method 'nope'; known methods: pce, #1"),
        ("pce", ["myops", "lv"], r"^--tasks: unknown task 'lv'; known tasks: acdc, mscmr, myops$"),
        ("#4", ["myops"], r"^--tasks: method '#4' needs at least 2 tasks, got myops$"),
    ],
)
def test_bad_method_or_task_fails_before_writing(tmp_path, method, tasks, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny(), tmp_path / "data", tmp_path / "run", method, tasks, progress=False)
    assert not (tmp_path / "run").exists()


def test_help_lists_methods_tasks_and_profiles(capsys):
    with pytest.raises(SystemExit) as exit_:
        main_train(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in [*METHODS, "acdc", "mscmr", "myops", "smoke", "cpu", "gpu", "paper", "--set"]:
        assert word in text


# --- pieces ----------------------------------------------------------------------------------


def test_sampler_shards_cover_the_global_batch_and_every_slice_per_pass():
    pool = list(range(100, 110))
    single = InfiniteSampler(pool, 4, seed=3)
    ranks = [InfiniteSampler(pool, 4, seed=3, rank=r, world=2) for r in range(2)]
    drawn = []
    for _ in range(5):  # 20 draws = two full passes
        batch = single.next()
        assert batch == ranks[0].next() + ranks[1].next()
        drawn += batch
    assert sorted(drawn[:10]) == pool and sorted(drawn[10:]) == pool
    state = single.state_dict()
    ahead = [single.next() for _ in range(3)]
    single.load_state_dict(state)
    assert [single.next() for _ in range(3)] == ahead
    with pytest.raises(ConfigError, match=r"^batch_size: 5 slices do not split evenly over 2 processes$"):
        InfiniteSampler(pool, 5, seed=0, rank=0, world=2)


def test_meter_reports_first_non_finite_step_and_term():
    meter = TermMeter(["loss", "inv/a"], torch.device("cpu"))
    meter.update(1, [torch.tensor(1.0), torch.tensor(3.0)])
    meter.update(2, [torch.tensor(3.0), torch.tensor(5.0)])
    assert meter.read(world=1) == ({"loss": 2.0, "inv/a": 4.0}, None)
    meter.update(3, [torch.tensor(1.0), torch.tensor(float("inf"))])
    meter.update(4, [torch.tensor(float("nan")), torch.tensor(float("nan"))])
    assert meter.read(world=1)[1] == (3, "inv/a")


def test_task_pairs():
    assert task_pairs(["a", "b"], "all") == [("a", "b"), ("b", "a")]
    assert task_pairs(["a", "b", "c"], "first") == [("a", "b"), ("a", "c"), ("b", "a"), ("c", "a")]


def _batches(n_scribbled: int = 2, size: int = 32) -> dict:
    gen = torch.Generator().manual_seed(0)
    out = {}
    for task, classes in (("myops", 5), ("mscmr", 4)):
        target = torch.randint(0, classes, (4, size, size), generator=gen)
        target[torch.rand(4, size, size, generator=gen) < 0.9] = 255
        target[n_scribbled:] = 255
        out[task] = {"image": torch.rand(4, 3, size, size, generator=gen), "target": target,
                     "n_scribbled": n_scribbled}
    return out


@pytest.mark.parametrize("preset, reaches_partner", [("paper", True), ("released_code", False)])
def test_virtual_model_gradient_reaches_partner_encoder_only_in_paper_preset(preset, reaches_partner):
    core = CORE_PRESETS[preset]
    models = TaskModelSet(TASKS, base=4, dropout=None)
    objective = ModelMixObjective(models, METHODS["modelmix"], core, seed=1)
    _, terms = objective(_batches())
    assert set(terms) == {f"{t}/{task}" for task in TASKS for t in ("inv", "vsup", "vreg")} | (
        {f"mixce/{task}" for task in TASKS} if core.mixup_ce else set()
    )
    # vsup/myops + vreg/myops involve the partner (mscmr) only through the virtual model f̃_(myops,mscmr)
    (terms["vsup/myops"] + terms["vreg/myops"]).backward()
    partner = dict(models.models["mscmr"].encoder.named_parameters())
    touched = {n for n, p in partner.items() if p.grad is not None}
    if reaches_partner:  # exactly the mixed conv's kernel and bias (Eq. 5)
        (layer,) = {n.rsplit(".", 1)[0] for n in touched}
        assert touched == {f"{layer}.weight", f"{layer}.bias"}
        assert partner[f"{layer}.weight"].grad.abs().sum() > 0
    else:  # released code: the mixed weights are detached copies
        assert touched == set()
    host = models.models["myops"].encoder
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in host.parameters())


def test_full_modelmix_step_trains_both_encoders():
    models = TaskModelSet(TASKS, base=4, dropout=None)
    loss, _ = ModelMixObjective(models, METHODS["modelmix"], CORE_PRESETS["paper"], seed=0)(_batches())
    loss.backward()
    for task in TASKS:
        grads = [p.grad for p in models.models[task].encoder.parameters()]
        assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


# --- runs on the smoke phantom ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["pce", "#1", "#2", "#3", "#4", "#5", "fullsup"])
def test_every_table1_method_runs_two_steps(phantom, tmp_path, method):
    run = train(tiny(), phantom, tmp_path / "run", method, TASKS if method != "pce" else ["mscmr"], progress=False)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["method"] == method and recorded["config"]["steps"] == 2
    assert load_checkpoint(run / "last.pt")["step"] == 2


def test_released_preset_run_with_validation_and_curves(phantom, tmp_path):
    config = tiny("steps=2", "val_every=2", preset="released_code")
    run = train(config, phantom, tmp_path / "run", "modelmix", TASKS, progress=False)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {"mixce/myops", "vreg/mscmr"} <= set(rows[0])
    val = rows[-1]
    assert 0.0 <= val["val_dice"] <= 1.0 and val["val_dice"] == pytest.approx((val["val_myops"] + val["val_mscmr"]) / 2)
    best = load_checkpoint(run / "best.pt")
    assert best["step"] == 2 and best["val"]["val_dice"] == val["val_dice"]
    assert (run / "training_curves.png").stat().st_size > 0
    split = json.loads((run / "split.json").read_text())
    assert len(split["myops"]["scribbled"]) == 5 and len(split["myops"]["unlabeled"]) == 1


def test_resume_is_bit_exact_on_cpu(phantom, tmp_path):
    straight = train(tiny("steps=4", "ckpt_every=100"), phantom, tmp_path / "a", "modelmix", TASKS, progress=False)
    halfway = params(train(tiny("steps=2", "ckpt_every=100"), phantom, tmp_path / "b", "modelmix", TASKS,
                           progress=False))
    resumed = train(tiny("steps=4", "ckpt_every=100"), phantom, tmp_path / "b", "modelmix", TASKS, resume=True,
                    progress=False)
    a, b = params(straight), params(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["models.models.myops.head.weight"], halfway["models.models.myops.head.weight"])
    assert [json.loads(r)["step"] for r in (resumed / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_second_run_reads_the_slice_cache_and_decodes_no_volume(phantom, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = params(train(tiny(), phantom, tmp_path / "a", "#2", TASKS, progress=False, cache_dir=cache))
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == ["mscmr", "myops"]

    def fail(*args, **kwargs):
        raise AssertionError("a NIfTI volume was decoded")

    monkeypatch.setattr(sampling, "load_split", fail)
    monkeypatch.setattr(slices, "load_case", fail)
    monkeypatch.setattr("nibabel.load", fail)
    second = params(train(tiny(), phantom, tmp_path / "b", "#2", TASKS, progress=False, cache_dir=cache))
    assert all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(AssertionError, match="decoded"):  # another size: another cache entry, built from the volumes
        train(tiny("size=48"), phantom, tmp_path / "c", "#2", TASKS, progress=False, cache_dir=cache)


def test_batches_are_checked_on_the_cpu_before_the_step(phantom, tmp_path):
    data = sampling.load_task_data("mscmr", phantom, tiny(), METHODS["#1"], 0, 0, 1, tmp_path)
    batch = data.next_batch()
    assert batch["target"].dtype == torch.int64 and batch["target"].shape == (4, 32, 32)
    data.dataset.targets[:, 0, 0] = 7  # e.g. a corrupted slice cache
    with pytest.raises(DataError, match=r"^mscmr training slices \[[0-9, ]+\]: values \[7\] are neither a class "
                                        r"0\.\.3 nor the unannotated value 255$"):
        data.next_batch()


def test_slice_cache_folder_defaults_to_the_environment_variable(phantom, tmp_path, monkeypatch):
    monkeypatch.setenv(slices.CACHE_ENV, str(tmp_path / "cache"))
    train(tiny(), phantom, tmp_path / "run", "#1", TASKS, progress=False)
    assert {p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()} == set(TASKS)
    assert not (phantom / ".cache").exists()  # the data root is only read


def test_resume_refuses_changed_settings(phantom, tmp_path):
    train(tiny(), phantom, tmp_path / "run", "#1", TASKS, progress=False)
    with pytest.raises(ConfigError, match=r"run/?: cannot resume with changed lr, core \(see config.json\)$"):
        train(tiny("lr=0.5", "mix_bn=true"), phantom, tmp_path / "run", "#1", TASKS, resume=True, progress=False)
    with pytest.raises(ConfigError, match=r"run was #1 on myops,mscmr, not #2 on myops,mscmr$"):
        train(tiny(), phantom, tmp_path / "run", "#2", TASKS, resume=True, progress=False)
    with pytest.raises(ConfigError, match=r"nothing to resume \(no last.pt\)$"):
        train(tiny(), phantom, tmp_path / "other", "#1", TASKS, resume=True, progress=False)


def test_existing_run_dir_is_not_overwritten(phantom, tmp_path):
    run = train(tiny(), phantom, tmp_path / "run", "#1", TASKS, progress=False)
    before = (run / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"run: run directory exists; pass --overwrite to replace it or --resume"):
        train(tiny(), phantom, run, "#1", TASKS, progress=False)
    assert (run / "last.pt").read_bytes() == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    (other / "config.json").write_text("{}")  # a file of that name does not make a folder a run directory
    with pytest.raises(ConfigError, match=r"notes: not a run directory written by train \(no \.modelmix_run\); "
                                          r"refusing to delete it$"):
        train(tiny(), phantom, other, "#1", TASKS, overwrite=True, progress=False)
    assert (other / "keep.txt").read_text() == "mine" and (other / "config.json").read_text() == "{}"
    train(tiny("seed=1"), phantom, run, "#1", TASKS, overwrite=True, progress=False)
    assert json.loads((run / "config.json").read_text())["config"]["seed"] == 1


def test_non_finite_loss_stops_with_step_and_term_and_keeps_last_good_checkpoint(phantom, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = objective_module.invariance_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] == 7 else value  # step 4, first task (myops)

    monkeypatch.setattr(objective_module, "invariance_loss", poisoned)
    config = tiny("steps=8", "log_every=3", "ckpt_every=3")
    with pytest.raises(FloatingPointError, match=r"^non-finite loss at step 4: term 'inv/myops'; last good "
                                                 r"checkpoint: .*last.pt \(step 3\)$"):
        train(config, phantom, tmp_path / "run", "#2", TASKS, progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


# --- learning-rate schedule and physical geometry ---------------------------------------------


def test_cosine_schedule_warms_up_then_decays_to_the_final_ratio():
    config = resolve_config("smoke", ["lr=0.01", "lr_schedule=cosine", "warmup_steps=4", "final_lr_ratio=0.1"])
    lrs = [train_module.learning_rate(step, 14, config) for step in range(14)]
    assert lrs[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])  # linear warm-up: lr (step + 1) / 4
    assert lrs[4] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.001)  # cosine from lr to 0.1 lr
    assert lrs[9] == pytest.approx(0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * 5 / 9)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    constant = resolve_config("smoke", ["lr=0.01"])
    assert {train_module.learning_rate(step, 14, constant) for step in range(14)} == {0.01}


def test_the_optimizer_follows_the_schedule(phantom, tmp_path, monkeypatch):
    seen = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    config = tiny("steps=4", "lr=0.03", "lr_schedule=cosine", "warmup_steps=2", "final_lr_ratio=0")
    train(config, phantom, tmp_path / "run", "#1", TASKS, progress=False)
    assert seen == pytest.approx([0.015, 0.03, 0.03, 0.0])  # warm-up, then cosine from lr (t = 0) to 0 (t = 1)


def test_resume_under_the_cosine_schedule_refuses_another_length(phantom, tmp_path):
    cosine = ("lr_schedule=cosine", "warmup_steps=1")
    train(tiny(*cosine), phantom, tmp_path / "run", "#1", TASKS, progress=False)
    with pytest.raises(ConfigError, match=r"cannot resume with changed steps \(see config.json\)$"):
        train(tiny(*cosine, "steps=4"), phantom, tmp_path / "run", "#1", TASKS, resume=True, progress=False)


def test_cutout_is_sized_in_millimetres_when_slices_have_a_physical_pixel_size():
    config = resolve_config("cpu")  # 96 px of 224/96 mm: a 224 mm view
    assert config.fov_mm == pytest.approx(224.0)
    assert config.core.with_physical_cutout(config.fov_mm).cutout_size == pytest.approx(28.0 / 224.0)
    native = resolve_config("paper")
    assert native.fov_mm is None and native.core.with_physical_cutout(native.fov_mm) == native.core
    with pytest.raises(ConfigError, match=r"cutout_mm: 300.0 mm does not fit in the 224 mm field of view"):
        resolve_config("cpu", ["cutout_mm=300"]).core.with_physical_cutout(224.0)


def test_a_training_holding_the_run_directory_refuses_another(phantom, tmp_path):
    from modelmix_lite import rundir

    with rundir.locked(tmp_path / "run"):  # as a training in another process holds it
        with pytest.raises(ConfigError, match=r"run: another training is writing to this run directory"):
            train(tiny(), phantom, tmp_path / "run", "#1", TASKS, progress=False)
        assert [p.name for p in (tmp_path / "run").iterdir()] == [rundir.LOCK]
    run = train(tiny(), phantom, tmp_path / "run", "#1", TASKS, progress=False)  # released: it runs
    assert (run / rundir.MARKER).is_file() and (run / "last.pt").is_file()
    with pytest.raises(ConfigError, match=r"nothing to resume"):
        train(tiny(), phantom, tmp_path / "fresh", "#1", TASKS, resume=True, progress=False)
    assert not (tmp_path / "fresh").exists()  # a refused run leaves no folder behind


def test_two_trainings_started_on_one_run_directory_at_once(phantom, tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "modelmix_lite", "train", "--method", "#1", "--tasks", ",".join(TASKS),
               "--data", str(phantom), "--profile", "smoke", "--out", str(out), "--quiet", "--device", "cpu",
               "--set", "steps=400", "--set", "val_every=0", "--set", "ckpt_every=400"]  # outlasts the second's start
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "config.json").is_file() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()  # the first is still training
    second = subprocess.run(command, capture_output=True, text=True)
    assert second.returncode == 1
    assert "another training is writing to this run directory" in second.stderr
    assert first.wait(timeout=300) == 0
    assert json.loads((out / "config.json").read_text())["config"]["steps"] == 400
    assert load_checkpoint(out / "last.pt")["step"] == 400  # nothing of the first was lost


def test_resume_after_a_kill_drops_the_log_rows_past_the_checkpoint(phantom, tmp_path):
    run = train(tiny("steps=2", "ckpt_every=100"), phantom, tmp_path / "run", "#1", TASKS, progress=False)
    with open(run / "log.jsonl", "a") as log:  # what a run killed after step 3, before its next checkpoint, left
        log.write(json.dumps({"step": 3, "loss": 1.0, "steps_per_s": 1.0}) + "\n")
    train(tiny("steps=4", "ckpt_every=100"), phantom, run, "#1", TASKS, resume=True, progress=False)
    assert [json.loads(r)["step"] for r in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]

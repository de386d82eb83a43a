from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from modelmix_lite.data.class_ratio import class_prior
from modelmix_lite.baselines import (
    baseline_terms,
    box_mix,
    cutout_terms,
    cvir_loss,
    cyclemix_consistency,
    dmpls_pseudo_label,
    dmpls_pseudo_label_loss,
    mixup_terms,
    nnpu_risk,
    pu_negatives,
    shape_consistency,
    shapepu_marginal_loss,
    wsl4_terms,
    em_class_prior,
    SHAPEPU_CONSISTENCY_WEIGHT,
    CYCLEMIX_CONSISTENCY_WEIGHT,
)
from modelmix_lite.config import resolve_config
from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.evaluate import evaluate_run
from modelmix_lite.losses import cosine_loss
from modelmix_lite.losses import dice_loss, partial_cross_entropy
from modelmix_lite.methods import BASELINES, CORE_PRESETS, METHODS, MethodConfig
from modelmix_lite.models import TaskModelSet, UNet
from modelmix_lite.objective import build_objective
from modelmix_lite.sampling import prepare_batch
from modelmix_lite.train import train
from modelmix_lite.train_command import main_train

U = 255
PAPER = CORE_PRESETS["paper"]
TINY = ["steps=2", "batch_size=4", "size=32", "base=4", "log_every=1", "ckpt_every=2", "val_every=2"]
TASK = {"mixup": "mscmr", "cutout": "mscmr", "wsl4": "mscmr", "cyclemix": "mscmr", "shapepu": "mscmr",
        "nnpu": "myops", "cvir": "myops"}
TERMS = {"mixup": {"sup", "mix"}, "cutout": {"sup"}, "wsl4": {"sup", "pl"}, "cyclemix": {"sup", "mix", "cycle"},
         "nnpu": {"sup", "pu"}, "cvir": {"sup", "pu"}, "shapepu": {"sup", "pu", "shape"}}


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def logits_of(*probs: list[float]) -> torch.Tensor:
    """``(1, C, 1, W)`` logits whose softmax at pixel ``w`` is ``probs[w]``."""
    return torch.tensor(probs).log().T[None, :, None, :].clone().requires_grad_(True)


# --- registry ---------------------------------------------------------------------------------


def test_every_baseline_is_a_single_task_method_preset():
    for name in BASELINES:
        method = METHODS[name]
        assert method.baseline == name and method.min_tasks == 1 and not (method.inv or method.mixes_models)
    assert {n for n in BASELINES if METHODS[n].uses_unlabeled} == {"wsl4", "cyclemix", "nnpu", "cvir", "shapepu"}
    assert {n for n in METHODS if METHODS[n].aux_decoder} == {"wsl4"}
    assert {n for n in METHODS if METHODS[n].needs_prior} == {"nnpu", "cvir"}  # ShapePU estimates it by EM
    assert {n for n in METHODS if METHODS[n].mixes_images} == {"#2", "#2+dice", "#3", "#4", "modelmix", "#5", "mixup",
                                                                     "cyclemix"}


def test_unknown_baseline_is_refused():
    with pytest.raises(ConfigError, match=r"^baseline: 'pu' is not one of '', 'mixup', 'cutout', "):
        MethodConfig("x", "x", baseline="pu")
    with pytest.raises(ConfigError, match=r"^baseline: unknown baseline 'pu'; known baselines: mixup, cutout"):
        baseline_terms("pu", UNet(base=4), torch.zeros(2, 3, 32, 32), torch.zeros(2, 32, 32, dtype=torch.long),
                       seeded(), PAPER)


def test_pu_baselines_need_the_class_ratio():
    x, y = torch.zeros(2, 3, 32, 32), torch.zeros(2, 32, 32, dtype=torch.long)
    with pytest.raises(ConfigError, match=r"^--method cvir: needs the class ratio of the task"):
        baseline_terms("cvir", UNet(base=4), x, y, seeded(), PAPER)
    config = resolve_config("smoke", ["base=4"])
    with pytest.raises(ConfigError, match=r"^--method nnpu: needs the class ratio of task 'myops' \(priors\)$"):
        build_objective(config, METHODS["nnpu"], ["myops"], torch.device("cpu"))


# --- class ratio ------------------------------------------------------------------------------


def test_class_prior_is_the_voxel_share_of_each_class():
    cases = [SimpleNamespace(subject="a", label=np.array([[0, 0, 1], [2, 0, 0]], np.uint8)),
             SimpleNamespace(subject="b", label=np.array([[3, 3]], np.uint8))]
    assert class_prior(cases, "mscmr").tolist() == pytest.approx([4 / 8, 1 / 8, 1 / 8, 2 / 8])


def test_class_prior_needs_ground_truth():
    with pytest.raises(DataError, match=r"^b: no ground truth in the train split, and nnPU/CVIR need the class ratio of its labels; "
                       r"set prior_split=val"):
        class_prior([SimpleNamespace(subject="a", label=np.zeros((2, 2), np.uint8)),
                     SimpleNamespace(subject="b", label=None)], "acdc")
    with pytest.raises(DataError, match=r"^acdc: no train cases"):
        class_prior([], "acdc")
    with pytest.raises(DataError, match=r"^a: ground truth has class 4, not a acdc class$"):
        class_prior([SimpleNamespace(subject="a", label=np.array([0, 4], np.uint8))], "acdc")


# --- WSL4 (DMPLS) -----------------------------------------------------------------------------


def test_dmpls_pseudo_label_for_a_known_beta():
    p_main = torch.tensor([0.8, 0.2])[None, :, None, None].requires_grad_(True)
    p_aux = torch.tensor([0.3, 0.7])[None, :, None, None].requires_grad_(True)
    # β = 0.6: 0.6·0.8 + 0.4·0.3 = 0.60 > 0.40 -> class 0;  β = 0.2: 0.16 + 0.24 = 0.40 < 0.60 -> class 1
    assert dmpls_pseudo_label(p_main, p_aux, 0.6).item() == 0
    pseudo = dmpls_pseudo_label(p_main, p_aux, torch.tensor(0.2))
    assert pseudo.item() == 1 and pseudo.dtype == torch.long and not pseudo.requires_grad


def test_dmpls_pseudo_label_loss_is_the_mean_dice_of_both_branches():
    main, aux = torch.randn(2, 4, 8, 8, generator=seeded(1)), torch.randn(2, 4, 8, 8, generator=seeded(2))
    pseudo = torch.randint(0, 4, (2, 8, 8), generator=seeded(3))
    expected = 0.5 * (dice_loss(main, pseudo) + dice_loss(aux, pseudo))
    assert dmpls_pseudo_label_loss(main, aux, pseudo) == pytest.approx(expected.item())
    confident = 50 * torch.nn.functional.one_hot(pseudo, 4).permute(0, 3, 1, 2).float()
    assert dmpls_pseudo_label_loss(confident, confident, pseudo).item() == pytest.approx(0.0, abs=1e-5)


def test_auxiliary_branch_trains_the_shared_encoder_and_its_own_decoder_only():
    model = UNet(base=4, dropout=None, generator=seeded())
    aux_model = UNet(base=4, dropout=None, generator=seeded(), aux_decoder=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), aux_model.state_dict().values()))
    x, y = torch.randn(2, 3, 32, 32, generator=seeded(1)), torch.randint(0, 4, (2, 32, 32), generator=seeded(2))
    partial_cross_entropy(aux_model.decode_aux(aux_model.encode(x)), y).backward()
    grads = {name: p.grad for name, p in aux_model.named_parameters()}
    assert all(grads[n] is None for n in grads if n.startswith(("decoder.", "head.")))
    trained = [n for n in grads if n.startswith(("encoder.", "aux_")) and n.endswith("weight")]
    assert trained and all(grads[n].abs().sum() > 0 for n in trained)


def test_evaluation_uses_the_main_branch_and_aux_dropout_is_train_only():
    model = UNet(base=4, generator=seeded(), aux_decoder=True).eval()
    x = torch.randn(2, 3, 32, 32, generator=seeded(1))
    features = model.encode(x)
    assert torch.equal(model(x), model.decode(features))
    assert not torch.allclose(model(x), model.decode_aux(features))
    assert torch.equal(model.decode_aux(features), model.decode_aux(features))
    with pytest.raises(ConfigError, match=r"^aux_decoder: this UNet was built without an auxiliary decoder$"):
        UNet(base=4).decode_aux(features)


def test_task_models_with_aux_decoder_keep_the_main_init():
    plain = TaskModelSet(["myops", "mscmr"], base=4, generator=seeded())
    dual = TaskModelSet(["myops", "mscmr"], base=4, generator=seeded(), aux_decoder=True)
    dual_myops = dual.models["myops"].state_dict()
    assert all(torch.equal(p, dual_myops[k]) for k, p in plain.models["myops"].state_dict().items())
    first, second = (dual.models[t].aux_decoder.state_dict() for t in ("myops", "mscmr"))
    assert all(torch.equal(first[k], second[k]) for k in first)  # identical_init copies it too


def test_wsl4_terms_weights_and_pseudo_label_without_gradient():
    model = UNet(base=4, dropout=None, generator=seeded(), aux_decoder=True).eval()  # eval: no aux dropout
    x, y = torch.randn(2, 3, 32, 32, generator=seeded(1)), torch.full((2, 32, 32), U)
    y[0, :4, :4] = 1
    terms = wsl4_terms(model, x, y, seeded(7))
    beta = torch.rand((), generator=seeded(7))  # the β wsl4_terms drew
    features = model.encode(x)
    main, aux = model.decode(features), model.decode_aux(features)
    pseudo = dmpls_pseudo_label(main.softmax(1), aux.softmax(1), beta)
    sup = 0.5 * (partial_cross_entropy(main, y) + partial_cross_entropy(aux, y))
    assert terms["sup"].item() == pytest.approx(sup.item())
    assert terms["pl"].item() == pytest.approx(0.5 * dmpls_pseudo_label_loss(main, aux, pseudo).item())


# --- Mixup, Cutout, CycleMix ------------------------------------------------------------------


def test_mixup_of_identical_slices_is_plain_pce():
    model = UNet(base=4, dropout=None, generator=seeded()).eval()
    x = torch.randn(1, 3, 32, 32, generator=seeded(1)).expand(4, -1, -1, -1)
    y = torch.full((4, 32, 32), U)
    y[:, 10:20, 10:20] = 2
    terms = mixup_terms(model, x, y, seeded(), PAPER)
    assert terms["mix"].item() == pytest.approx(terms["sup"].item(), rel=1e-5)


def test_cutout_without_a_cut_is_pce_and_cut_pixels_are_never_background():
    model = UNet(base=4, dropout=None, generator=seeded()).eval()
    x, y = torch.randn(2, 3, 32, 32, generator=seeded(1)), torch.randint(0, 4, (2, 32, 32), generator=seeded(2))
    no_cut = dataclasses.replace(PAPER, cutout_p=0.0)
    plain = partial_cross_entropy(model(x), y)
    assert torch.equal(cutout_terms(model, x, y, seeded(), no_cut)["sup"], plain)
    released = CORE_PRESETS["released_code"]  # cutout_label_fill=0 there: the baseline ignores it
    cut = cutout_terms(model, x, y, seeded(), PAPER)["sup"]
    assert torch.equal(cut, cutout_terms(model, x, y, seeded(), released)["sup"]) and not torch.equal(cut, plain)


def test_cyclemix_consistency_compares_each_unmixed_part_with_its_source():
    mask = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)  # pixel 0 shows x1, pixel 1 shows x2
    p1 = torch.tensor([[1.0, 1.0], [0.0, 0.0]])[None, :, None, :]  # class 0 at both pixels
    p2 = torch.tensor([[0.0, 0.0], [1.0, 1.0]])[None, :, None, :]  # class 1 at both pixels
    assert torch.equal(box_mix(p1, p2, mask), torch.tensor([[1.0, 0.0], [0.0, 1.0]])[None, :, None, :])
    assert cyclemix_consistency(box_mix(p1, p2, mask), p1, p2, mask).item() == pytest.approx(-1.0)
    assert cyclemix_consistency(p1, p1, p2, mask).item() == pytest.approx(-0.5)  # right on pixel 0 only
    keep = torch.ones(1, 1, 1, 2)
    assert shape_consistency(p2, p2, keep).item() == pytest.approx(-1.0)
    assert shape_consistency(p1, p2, keep).item() == pytest.approx(0.0)
    assert shape_consistency(p1, p2, torch.zeros(1, 1, 1, 2)).item() == pytest.approx(0.0)  # all hole


def test_shape_consistency_ignores_the_cut_out_hole():
    p = torch.tensor([[1.0, 1.0], [0.0, 0.0]])[None, :, None, :]  # class 0 at both pixels
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])[None, :, None, :]  # class 0, then class 1 (the hole)
    keep = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert shape_consistency(q, p, torch.ones(1, 1, 1, 2)).item() == pytest.approx(-0.5)
    assert shape_consistency(q, p, keep).item() == pytest.approx(-1.0)  # the hole, where they differ, is left out
    assert cosine_loss(q, p, mask=keep).item() == shape_consistency(q, p, keep).item()


def _em_case(confidence: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Two scribble pixels (one per class: π_s = .5/.5), then 8 unannotated ones: 6 of class 0, 2 of class 1."""
    target = torch.full((1, 1, 10), U)
    target[0, 0, :2] = torch.tensor([0, 1])
    sure, unsure = [confidence, 1 - confidence], [1 - confidence, confidence]
    probs = torch.tensor([sure, unsure] + [sure] * 6 + [unsure] * 2).T.reshape(1, 2, 1, 10)
    return probs, target


def test_em_class_prior_recovers_the_ratio_of_the_unannotated_pixels():
    probs, target = _em_case(0.999)  # near-certain posteriors: the ratio is the count, 6 of 8
    assert em_class_prior(probs, target, iterations=50).tolist() == pytest.approx([0.75, 0.25], abs=1e-2)
    assert em_class_prior(probs, target, iterations=0).tolist() == pytest.approx([0.5, 0.5])  # starts at π_s


def test_em_class_prior_is_a_fixed_point_of_the_em_step():
    probs, target = _em_case(0.9)
    one = em_class_prior(probs, target, iterations=1)
    assert one.tolist() == pytest.approx([0.7, 0.3])  # M-step from π_s: the mean posterior over U
    prior = em_class_prior(probs, target, iterations=200)
    ratio = prior / torch.tensor([0.5, 0.5])
    weighted = probs[0, :, 0, 2:].T * ratio
    again = (weighted / weighted.sum(1, keepdim=True)).mean(0)  # one more E + M step by hand
    assert again.tolist() == pytest.approx(prior.tolist(), abs=1e-6)
    assert prior[0] > one[0]  # EM sharpens the mean posterior towards the majority class


def test_cyclemix_weighs_its_consistency():
    torch.manual_seed(0)
    model = UNet(3, 4, base=4, dropout=None)
    y = torch.full((4, 16, 16), U)
    y[:2, 4:12:2, 4:12:2] = 1
    terms = baseline_terms("cyclemix", model, torch.rand(4, 3, 16, 16), y, torch.Generator().manual_seed(0),
                           CORE_PRESETS["paper"])
    assert -CYCLEMIX_CONSISTENCY_WEIGHT <= terms["cycle"].item() < 0 and CYCLEMIX_CONSISTENCY_WEIGHT == 0.1


def test_shapepu_needs_no_class_ratio_and_weighs_its_consistency():
    torch.manual_seed(0)
    model = UNet(3, 4, base=4, dropout=None)
    x = torch.rand(2, 3, 16, 16)
    y = torch.full((2, 16, 16), U)
    y[0, 4:12:2, 4:12:2] = 1
    terms = baseline_terms("shapepu", model, x, y, torch.Generator().manual_seed(0), CORE_PRESETS["paper"])
    assert set(terms) == {"sup", "pu", "shape"}
    assert -SHAPEPU_CONSISTENCY_WEIGHT <= terms["shape"].item() <= 0  # 0.05 · (−cos)


# --- PU learning ------------------------------------------------------------------------------

# Three pixels of a 2-class slice: scribbled 0, scribbled 1, unannotated; p = .75/.25, .25/.75, .5/.5.
PROBS = ([0.75, 0.25], [0.25, 0.75], [0.5, 0.5])
TARGET = torch.tensor([[[0, 1, U]]])
PRIOR = torch.tensor([0.6, 0.4])


def test_nnpu_risk_by_hand_with_the_non_negative_correction():
    logits = logits_of(*PROBS)
    # class 0: R− = E_U[−log .5] − .6 E_P[−log .25] = ln2 − 1.2 ln2 < 0 -> defitting: −R− = 0.2 ln2
    # class 1: R− = ln2 − .4 ln4 = 0.2 ln2 >= 0 -> .4 E_P[−log .75] + R− = .4 ln(4/3) + 0.2 ln2
    # mean: (0.4 ln2 + 0.4 ln(4/3)) / 2 = 0.2 ln(8/3)
    assert nnpu_risk(logits, TARGET, PRIOR).item() == pytest.approx(0.2 * math.log(8 / 3), rel=1e-5)
    # β = 1: R− >= −β everywhere, the unbiased PU risk; class 0 is .6 ln(4/3) − 0.2 ln2, the mean ln(4/3) / 2
    assert nnpu_risk(logits, TARGET, PRIOR, beta=1.0).item() == pytest.approx(math.log(4 / 3) / 2, rel=1e-5)


def test_nnpu_defitting_gradient_raises_the_negative_risk():
    logits = logits_of(*PROBS)
    grad = torch.autograd.grad(nnpu_risk(logits, TARGET, PRIOR), logits)[0]
    log_not = (1 - logits.softmax(1)).log()
    negative_risk_0 = -log_not[0, 0, 0, 2] + PRIOR[0] * log_not[0, 0, 0, 0]
    log_p = logits.log_softmax(1)
    class_1 = -PRIOR[1] * log_p[0, 1, 0, 1] - log_not[0, 1, 0, 2] + PRIOR[1] * log_not[0, 1, 0, 1]
    expected = torch.autograd.grad(0.5 * (-negative_risk_0 + class_1), logits)[0]
    assert torch.allclose(grad, expected, atol=1e-6)


def test_pu_losses_without_scribbles_are_zero_and_finite():
    logits = logits_of(*PROBS)
    nothing = torch.full((1, 1, 3), U)
    for loss in (nnpu_risk(logits, nothing, PRIOR), cvir_loss(logits, nothing, PRIOR)):
        assert loss.item() == 0.0 and torch.isfinite(torch.autograd.grad(loss, logits)[0]).all()


def test_pu_negatives_leave_out_the_prior_share_with_the_highest_probability():
    probs = torch.tensor([[0.1, 0.9, 0.5, 0.01], [0.9, 0.1, 0.5, 0.99]])[None, :, None, :]
    unlabeled = torch.tensor([[[True, True, True, False]]])
    negatives = pu_negatives(probs, unlabeled, torch.tensor([0.66, 0.34]))
    # class 0: round(.66·3) = 2 dropped (p .9, .5); class 1: round(.34·3) = 1 dropped (p .9); pixel 3 is labelled
    assert negatives[0, :, 0].tolist() == [[True, False, False, False], [False, True, True, False]]


def test_cvir_loss_by_hand():
    logits = logits_of(*PROBS)
    # class 0: round(.6·1) = 1 unlabeled pixel dropped -> no negative: −log .75
    # class 1: round(.4·1) = 0 dropped -> the unlabeled pixel is a negative: −log .75 − log(1 − .5)
    loss = cvir_loss(logits, TARGET, PRIOR)
    assert loss.item() == pytest.approx((2 * math.log(4 / 3) + math.log(2)) / 2, rel=1e-5)
    log_p, log_not = logits.log_softmax(1), (1 - logits.softmax(1)).log()
    expected = -(log_p[0, 0, 0, 0] + log_p[0, 1, 0, 1] + log_not[0, 1, 0, 2]) / 2
    assert torch.allclose(torch.autograd.grad(loss, logits)[0], torch.autograd.grad(expected, logits)[0], atol=1e-6)


def test_shapepu_marginal_loss_by_hand():
    logits = logits_of([0.5, 0.3, 0.2], [0.25, 0.15, 0.6], [0.2, 0.7, 0.1])
    target = torch.tensor([[[U, U, 1]]])
    # |U| = 2, one dropped per class: class 1 drops pixel 0 (.3 > .15) -> pixel 1 is not class 1;
    # class 2 drops pixel 1 (.6 > .2) -> pixel 0 is not class 2; background is never excluded
    loss = shapepu_marginal_loss(logits, target, torch.tensor([0.5, 0.5, 0.5]))
    assert loss.item() == pytest.approx((-math.log(0.5 + 0.3) - math.log(0.25 + 0.6)) / 2, rel=1e-5)


@pytest.mark.parametrize("loss", [nnpu_risk, cvir_loss, shapepu_marginal_loss])
def test_pu_losses_check_the_prior(loss):
    logits = logits_of(*PROBS)
    with pytest.raises(DataError, match=r"^prior: expected 2 class ratios, got shape \(3,\)$"):
        loss(logits, TARGET, torch.tensor([0.5, 0.3, 0.2]))
    with pytest.raises(DataError, match=r"^prior: class ratios must be in \[0, 1\], got \[1.5, -0.5\]$"):
        loss(logits, TARGET, torch.tensor([1.5, -0.5]))
    with pytest.raises(DataError, match=r"^target: values \[7\] are neither a class 0..1"):
        loss(logits, torch.tensor([[[0, 7, U]]]), PRIOR)


# --- training ---------------------------------------------------------------------------------


def test_training_step_reads_nothing_back_to_the_host(monkeypatch):
    """Like tests/test_sync_free.py for ModelMix: every baseline's step under the CPU host-read detector."""
    config = resolve_config("smoke", ["size=32", "base=4", "batch_size=4"])
    target = torch.full((4, 32, 32), U)
    target[:2, 8:24:3, 8:24:3] = 1
    priors = {"mscmr": torch.tensor([0.7, 0.1, 0.1, 0.1])}
    for name in BASELINES:
        objective = build_objective(config, METHODS[name], ["mscmr"], torch.device("cpu"), priors=priors)
        batch = {"image": torch.rand(4, 1, 32, 32, generator=seeded()), "target": target, "n_scribbled": 2}
        batches = {"mscmr": prepare_batch(batch, seeded(1), config, torch.device("cpu"))}
        with monkeypatch.context() as patch:
            for read in ("item", "__bool__", "tolist", "cpu"):
                patch.setattr(torch.Tensor, read, lambda *a, **k: pytest.fail(f"{name}: host read in the step"))
            loss, terms = objective(batches)
            loss.backward()
        assert set(terms) == {f"{t}/mscmr" for t in TERMS[name]} and torch.isfinite(loss)
        assert [k for k in objective.state_dict() if not k.startswith("models.")] == []


@pytest.mark.parametrize("method", BASELINES)
def test_each_baseline_trains_two_steps_and_validates(phantom_root, tmp_path, method):
    config = resolve_config("smoke", TINY)
    run = train(config, phantom_root, tmp_path / "run", method, [TASK[method]], progress=False)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 2]
    assert set(rows[0]) == {"step", "loss", "steps_per_s"} | {f"{t}/{TASK[method]}" for t in TERMS[method]}
    assert all(math.isfinite(r["loss"]) for r in rows[:2])
    assert 0.0 <= rows[2]["val_dice"] <= 1.0


@pytest.mark.parametrize("method", [
    "mixup", "wsl4",
])
def test_a_baseline_run_is_evaluated_from_its_checkpoint(phantom_root, tmp_path, method):
    out = tmp_path / "run"
    assert main_train(["--method", method, "--tasks", "mscmr", "--data", str(phantom_root), "--profile", "smoke",
                       "--out", str(out), "--quiet", *[f"--set={kv}" for kv in TINY]]) == 0
    val = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    rows = evaluate_run(out, phantom_root, "val", "best.pt", progress=False)
    assert rows["dice"].mean() == pytest.approx(val["val_dice"])

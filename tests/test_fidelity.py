"""The ``released_code`` preset reproduces the released code's settings (issue 11): optimiser, MyoPS L_reg, the
rows of the supervised terms; and the "#2 + Dice" control row."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from modelmix_lite.config import resolve_config
from modelmix_lite.losses import degenerate_reg_loss, dice_loss, partial_cross_entropy
from modelmix_lite.methods import CORE_PRESETS, METHODS
from modelmix_lite.models import TaskModelSet
from modelmix_lite.objective import ModelMixObjective

from test_train import _batches  # two tasks, 2 scribbled rows of 4, 10 % of their pixels scribbled


@pytest.mark.parametrize("profile", ["smoke", "cpu", "cpu_long", "gpu", "paper"])
def test_released_code_preset_brings_the_codes_optimiser(profile):
    released = resolve_config(profile, preset="released_code")
    assert (released.lr, released.weight_decay, released.lr_schedule, released.warmup_steps) == \
        (1e-4, 5e-4, "constant", 0)
    assert released.steps == resolve_config(profile).steps  # the budget stays the profile's
    assert resolve_config(profile, ["lr=0.002"], preset="released_code").lr == 0.002  # --set wins


def test_paper_preset_keeps_the_profiles_optimiser():
    assert (resolve_config("cpu").lr, resolve_config("cpu").lr_schedule) == (3e-3, "cosine")
    assert (resolve_config("paper").lr, resolve_config("paper").weight_decay) == (1e-3, 0.0)


def _softmax_maps(batch: int = 2, classes: int = 5, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, batch, classes, size, size, generator=gen)
    return logits[0].softmax(1).requires_grad_(), logits[1].softmax(1).requires_grad_()


def test_degenerate_myops_reg_is_minus_one_with_no_gradient():
    p, q = _softmax_maps()
    loss = degenerate_reg_loss(p, q)
    assert loss.item() == pytest.approx(-1.0, abs=1e-6)
    loss.backward()
    assert p.grad.abs().max() < 1e-6 and q.grad.abs().max() < 1e-6


def test_degenerate_myops_reg_is_zero_where_the_rotated_map_is_empty():
    p, q = _softmax_maps()
    mask = torch.ones(2, 1, 8, 8)
    mask[:, :, :4, :] = 0  # half of every map has no virtual prediction
    assert degenerate_reg_loss(p, q, mask).item() == pytest.approx(-0.5, abs=1e-6)


def _objective(method: str, **core_fields) -> ModelMixObjective:
    torch.manual_seed(0)
    models = TaskModelSet(["myops", "mscmr"], base=4, dropout=None)
    core = dataclasses.replace(CORE_PRESETS["paper"], cutout_p=0.0, **core_fields)
    return ModelMixObjective(models, METHODS[method], core, seed=1)


def test_sup_rows_batch_puts_the_unlabeled_slices_in_the_dice_denominator():
    batches = _batches()
    objective = _objective("#2+dice", dice_on="all", sup_rows="batch")
    objective.eval()  # BatchNorm by running statistics: the logits do not depend on which rows are scored
    _, terms = objective(batches)
    x, y = batches["mscmr"]["image"], batches["mscmr"]["target"]
    logits = objective.models.models["mscmr"](x)
    full = partial_cross_entropy(logits[:2], y[:2]) + dice_loss(logits, y, on="all", average="present")
    scribbled = partial_cross_entropy(logits[:2], y[:2]) + dice_loss(logits[:2], y[:2], on="all")
    assert terms["sup/mscmr"].item() == pytest.approx(full.item(), rel=1e-5)
    assert abs(full.item() - scribbled.item()) > 1e-3  # the choice changes the number


def test_sup_rows_scribbled_scores_only_the_scribbled_slices():
    batches = _batches()
    objective = _objective("#2+dice", dice_on="all")
    objective.eval()
    _, terms = objective(batches)
    x, y = batches["mscmr"]["image"], batches["mscmr"]["target"]
    logits = objective.models.models["mscmr"](x)
    expected = partial_cross_entropy(logits[:2], y[:2]) + dice_loss(logits[:2], y[:2], on="all")
    assert terms["sup/mscmr"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_control_row_is_two_with_the_dice_term_and_no_virtual_model():
    control, two, three = METHODS["#2+dice"], METHODS["#2"], METHODS["#3"]
    assert dataclasses.replace(control, name="#2", summary=two.summary, dice=False) == two
    assert control.dice == three.dice and not control.mixes_models
    _, terms = _objective("#2+dice")(_batches())
    assert set(terms) == {f"{t}/{task}" for t in ("sup", "inv") for task in ("myops", "mscmr")}


def test_released_code_myops_host_trains_with_the_degenerate_reg():
    core = {f.name: getattr(CORE_PRESETS["released_code"], f.name) for f in dataclasses.fields(CORE_PRESETS["paper"])}
    core.pop("cutout_p")
    objective = _objective("#4", **core)
    _, terms = objective(_batches())
    assert -1.0 <= terms["vreg/myops"].item() < -0.5  # -(share of pixels inside the rotated-back map)
    params = [p for p in objective.models.models["myops"].parameters()]
    myops = torch.autograd.grad(terms["vreg/myops"], params, retain_graph=True, allow_unused=True)
    assert max(g.abs().max().item() for g in myops if g is not None) < 1e-6  # a no-op, as in the code
    mscmr_params = [p for p in objective.models.models["mscmr"].parameters()]
    mscmr = torch.autograd.grad(terms["vreg/mscmr"], mscmr_params, allow_unused=True)
    assert max(g.abs().max().item() for g in mscmr if g is not None) > 1e-4  # a real cosine for MSCMR

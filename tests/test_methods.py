from __future__ import annotations

import dataclasses

import pytest

from modelmix_lite.errors import ConfigError
from modelmix_lite.methods import (
    CORE_PRESETS,
    METHODS,
    CoreConfig,
    check_method_tasks,
    get_core,
    get_method,
)


def test_presets_differ_exactly_where_paper_and_code_disagree():
    paper, code = CORE_PRESETS["paper"], CORE_PRESETS["released_code"]
    differing = {f.name for f in dataclasses.fields(CoreConfig) if getattr(paper, f.name) != getattr(code, f.name)}
    assert differing == {
        "mix_bn", "detach_virtual", "rotate_virtual", "dice_on", "dice_average", "mixup_partner", "mixup_ce",
        "cutout_label_fill", "dropout", "cos_reduce", "sup_rows", "myops_reg",
    }
    assert (paper.mix_bn, paper.detach_virtual, paper.dice_on) == (False, False, "annotated")
    assert (code.mix_bn, code.detach_virtual, code.dice_on, code.cutout_label_fill) == (True, True, "all", 0)


def test_table1_rows_switch_on_one_term_at_a_time():
    rows = [METHODS[k] for k in ("#1", "#2", "#3", "#4")]
    flags = [(m.inv, m.vicinal_sup, m.vicinal_reg) for m in rows]
    assert flags == [(False, False, False), (True, False, False), (True, True, False), (True, True, True)]
    assert METHODS["modelmix"] is METHODS["#4"]
    assert METHODS["#5"].shared_encoder and METHODS["#5"].inv and not METHODS["#5"].mixes_models
    assert not any(m.shared_encoder for m in rows)


def test_unlabeled_slices_used_only_by_unsupervised_terms():
    assert not METHODS["#1"].uses_unlabeled
    assert METHODS["#2"].uses_unlabeled
    assert not METHODS["fullsup"].uses_unlabeled and METHODS["fullsup"].target == "label"


def test_unknown_method_lists_known_names():
    with pytest.raises(ConfigError, match=r"^--method: unknown method 'nope'; known methods: pce, #1, #2, .*modelmix"):
        get_method("nope")


def test_unknown_preset_lists_known_names():
    with pytest.raises(ConfigError, match=r"^--preset: unknown preset 'x'; known presets: paper, released_code$"):
        get_core("x")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dice_on": "some"}, r"^dice_on: 'some' is not one of 'annotated', 'all'$"),
        ({"pairs": "random"}, r"^pairs: 'random' is not one of 'all', 'first'$"),
        ({"lambda_alpha": 0.01}, r"^lambda_alpha: Beta concentration must be >= 0.05, got 0.01$"),
        ({"mixup_alpha": 0.0}, r"^mixup_alpha: Beta concentration must be >= 0.05"),
        ({"cutout_p": 1.5}, r"^cutout_p: must be in \[0, 1\]"),
        ({"cutout_label_fill": 3}, r"^cutout_label_fill: 3 is not one of 0, 255$"),
    ],
)
def test_core_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CoreConfig(**kwargs)


def test_method_task_count_checked():
    check_method_tasks(METHODS["pce"], ["mscmr"])
    with pytest.raises(ConfigError, match=r"^--tasks: method '#4' needs at least 2 tasks, got mscmr$"):
        check_method_tasks(METHODS["#4"], ["mscmr"])
    with pytest.raises(ConfigError, match=r"^--tasks: duplicate task in mscmr,mscmr$"):
        check_method_tasks(METHODS["#4"], ["mscmr", "mscmr"])

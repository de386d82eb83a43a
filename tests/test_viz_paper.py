"""The figures of notebook 06 (paper comparisons) in ``modelmix_lite.viz``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from modelmix_lite.errors import DataError
from modelmix_lite.viz import plot_dice_by_method, plot_ours_vs_paper


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _rows() -> pd.DataFrame:
    """Annotated rows: #1 and #4 on MyoPS (Scar, Edema) and MSCMRseg (LV), two cases, seeds 0 and 1."""
    rows = []
    for row, base in (("#1", 0.2), ("#4", 0.6)):
        for seed in (0, 1):
            for k, case in enumerate(("c0", "c1")):
                for target, structures in (("myops", ("Scar", "Edema")), ("mscmr", ("LV",))):
                    for s, structure in enumerate(structures):
                        rows.append({"half": "myops+mscmr", "target": target, "row": row, "case": case, "seed": seed,
                                     "structure": structure, "dice": base + 0.1 * k + 0.01 * seed + 0.2 * s})
    return pd.DataFrame(rows)


def _points(ax) -> list[float]:
    return sorted(float(y) for c in ax.collections if isinstance(c, PathCollection) for _, y in c.get_offsets())


def test_dice_by_method_plots_one_dot_per_volume_at_its_mean_dice():
    fig = plot_dice_by_method(_rows())
    myops, mscmr = fig.axes
    assert [t.get_text() for t in myops.get_xticklabels()] == ["#1", "#4"]
    assert myops.get_title() == "MyoPS 2020 (bSSFP + LGE + T2)\ntrained on myops+mscmr"
    # a MyoPS volume's Dice is the mean of Scar (base) and Edema (base + 0.2): base + 0.1
    expected = sorted(b + 0.1 + 0.1 * k + 0.01 * s for b in (0.2, 0.6) for k in (0, 1) for s in (0, 1))
    assert _points(myops) == pytest.approx(expected)
    assert _points(mscmr) == pytest.approx(sorted(b + 0.1 * k + 0.01 * s for b in (0.2, 0.6) for k in (0, 1)
                                                  for s in (0, 1)))


def test_dice_by_method_rejects_empty_or_incomplete_rows():
    with pytest.raises(DataError, match=r"rows: expected a non-empty table; missing columns \[\]"):
        plot_dice_by_method(_rows().iloc[:0])
    with pytest.raises(DataError, match=r"missing columns \['half'\]"):
        plot_dice_by_method(_rows().drop(columns="half"))


def _pairs() -> pd.DataFrame:
    return pd.DataFrame([
        {"table": 1, "half": "myops+mscmr", "target": "myops", "row": "#1", "ours": 0.1, "paper": 0.231},
        {"table": 1, "half": "myops+mscmr", "target": "myops", "row": "#4", "ours": 0.4, "paper": 0.574},
        {"table": 1, "half": "myops+acdc", "target": "acdc", "row": "#4", "ours": 0.5, "paper": 0.767},
        {"table": 2, "half": "", "target": "mscmr", "row": "PCE", "ours": 0.3, "paper": 0.304},
        {"table": 2, "half": "", "target": "mscmr", "row": "Mixup", "ours": 0.2, "paper": np.nan},
    ])


def test_ours_vs_paper_puts_each_row_at_paper_ours():
    fig = plot_ours_vs_paper(_pairs())
    assert [ax.get_title() for ax in fig.axes] == ["Table 1", "Table 2"]
    table1, table2 = fig.axes
    offsets = sorted(tuple(xy) for c in table1.collections for xy in c.get_offsets())
    assert offsets == [(0.231, 0.1), (0.574, 0.4), (0.767, 0.5)]
    assert [t.get_text() for t in table2.texts] == ["PCE"]  # Mixup has no paper number
    assert [t.get_text() for t in table1.get_legend().get_texts()] == [
        "MyoPS 2020, trained on myops+mscmr", "ACDC, trained on myops+acdc"]


def test_ours_vs_paper_needs_a_row_with_both_numbers():
    with pytest.raises(DataError, match="pairs: expected rows with both 'ours' and 'paper'"):
        plot_ours_vs_paper(_pairs().assign(paper=np.nan))
    with pytest.raises(DataError, match=r"missing columns \['half'\]"):
        plot_ours_vs_paper(_pairs().drop(columns="half"))

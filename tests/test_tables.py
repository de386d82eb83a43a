"""The book's one table helper: captions, hidden index, "—" for missing values, rounding, a scroll container."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmix_lite.viz.tables import MISSING, TABLE_CLASS, format_cell, show_table


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.51234, "0.512"), (3, "3"), (np.int64(45), "45"), (np.float64(0.5), "0.500"), (1.1e-13, "1.1e-13"),
     (0.0, "0.000"), (float("nan"), MISSING), (None, MISSING), (np.nan, MISSING), ("#4", "#4"), (True, "True")],
)
def test_format_cell(value, text):
    assert format_cell(value) == text


def test_format_cell_digits():
    assert format_cell(2 / 3, digits=1) == "0.7" and format_cell(0.04, digits=1) == "4.0e-02"


def test_show_table_captions_can_hide_the_index_and_never_prints_nan():
    frame = pd.DataFrame({"dice": [0.51234, np.nan], "p_value": [1.1e-15, 0.2]}, index=["#1", "#4"])
    page = show_table(frame, "Dice on MSCMRseg.", index=False).data
    assert page.startswith(f'<div class="{TABLE_CLASS}">') and page.endswith("</div>")
    assert "<caption>Dice on MSCMRseg.</caption>" in page
    assert ">0.512<" in page and f">{MISSING}<" in page and ">1.1e-15<" in page and ">0.200<" in page
    assert "nan" not in page.lower() and "#4" not in page  # the index is hidden
    assert "#4" in show_table(frame, "a meaningful index is shown by default").data
    assert ">0<" not in show_table(frame.reset_index(drop=True), "a 0, 1, 2 range is not").data

"""Tables as a reader sees them: one helper, so every table of the book has a caption, no index column, "—" for
a missing value, rounded numbers and a container that scrolls instead of pushing the page wider.

:func:`show_table` returns an :class:`IPython.display.HTML` object: displayed as a cell's last expression or
glued (``myst_nb.glue``), it renders the same in the book, in Jupyter and on Colab. Its class
:data:`TABLE_CLASS` is styled by the book's ``_static/tables.css`` (padding, borders, overflow).
"""

from __future__ import annotations

import math
from numbers import Number
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from IPython.display import HTML

MISSING = "—"
"""What a missing value (NaN, None) prints as."""
TABLE_CLASS = "mml-table"
"""CSS class of the scroll container (``book/_static/tables.css``)."""


def format_cell(value: object, digits: int = 3) -> str:
    """One cell as text: numbers rounded to ``digits`` decimals (integers as they are), NaN and None as
    :data:`MISSING`, anything else as ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Number):
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number):
            return MISSING
        if number.is_integer() and abs(number) < 1e15 and not isinstance(value, float):
            return str(int(number))
        if number != 0 and abs(number) < 10 ** -digits:
            return f"{number:.1e}"  # a p-value of 1e-13 stays visible instead of becoming 0.000
        return f"{number:.{digits}f}"
    return str(value)


def show_table(frame: pd.DataFrame, caption: str, digits: int = 3, index: bool | None = None) -> HTML:
    """``frame`` as a captioned table (a pandas ``Styler``) in a horizontally scrolling container.

    Args:
        frame: the table.
        caption: what the table shows, in one sentence (rendered above it).
        digits: decimals of non-integer numbers (:func:`format_cell`).
        index: show the index (e.g. the methods of a results table); by default only a meaningful one, not
            a plain ``0, 1, 2, ...`` range.
    Returns:
        An :class:`IPython.display.HTML` to display or glue (IPython and jinja2 come with every notebook
        kernel; the library's other modules do not need them).
    """
    from IPython.display import HTML

    styler = frame.style.format(lambda value: format_cell(value, digits)).set_caption(caption)
    if index is None:
        index = not isinstance(frame.index, pd.RangeIndex)
    if not index:
        styler = styler.hide(axis="index")
    return HTML(f'<div class="{TABLE_CLASS}">{styler.to_html()}</div>')

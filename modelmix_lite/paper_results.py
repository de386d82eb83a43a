"""The numbers Zhang & Patel (MICCAI 2024) publish in Tables 1-3, as data.

Every value is copied from the paper's tables (mean ± std over test or validation volumes; Dice in [0, 1],
HD in mm). :func:`published` returns them as one tidy frame, the form the reproduction runner
(:mod:`modelmix_lite.reproduce`) writes its own results in, so the two can be put side by side.

Row labels are the paper's (``"#4"``, ``"WSL4"``, ``"ModelMix w/ MyoPS"``); structures are the tasks'
evaluation structures (:data:`~modelmix_lite.data.tasks.TASKS`) plus ``"Avg"``, pooled over volumes and
structures.
"""

from __future__ import annotations

import pandas as pd

from .data.tasks import get_task
from .errors import ConfigError

MeanStd = tuple[float, float]

PUBLISHED_COLUMNS: tuple[str, ...] = ("table", "half", "method", "target", "structure", "metric", "mean", "std")
"""Columns of :func:`published`."""

TABLE1: dict[str, dict[str, dict[str, list[MeanStd]]]] = {
    # Table 1, top half "MyoPS(5 scribble) | MSCMRseg(5 scribble)": Dice on the validation sets.
    "myops+mscmr": {
        "#1": {"myops": [(.310, .257), (.153, .090), (.231, .199)],
               "mscmr": [(.373, .346), (.337, .254), (.139, .143), (.283, .264)]},
        "#2": {"myops": [(.348, .189), (.531, .106), (.440, .177)],
               "mscmr": [(.700, .234), (.416, .190), (.501, .460), (.539, .319)]},
        "#3": {"myops": [(.480, .074), (.625, .197), (.552, .160)],
               "mscmr": [(.823, .104), (.717, .117), (.508, .419), (.683, .275)]},
        "#4": {"myops": [(.518, .081), (.630, .128), (.574, .117)],
               "mscmr": [(.922, .050), (.799, .095), (.696, .267), (.805, .181)]},
        "#5": {"myops": [(.242, .166), (.386, .150), (.314, .168)],
               "mscmr": [(.581, .094), (.462, .101), (.346, .265), (.463, .188)]},
    },
    # Table 1, bottom half "MyoPS(5 scribble) | ACDC(5 scribble)". The MyoPS cells of #1 and #2 repeat the top
    # half's: those models never interact across tasks.
    "myops+acdc": {
        "#1": {"myops": [(.310, .257), (.153, .090), (.231, .199)],
               "acdc": [(.585, .249), (.466, .147), (.279, .176), (.443, .231)]},
        "#2": {"myops": [(.348, .189), (.531, .106), (.440, .177)],
               "acdc": [(.580, .240), (.544, .183), (.486, .294), (.537, .244)]},
        "#3": {"myops": [(.449, .059), (.644, .113), (.546, .134)],
               "acdc": [(.803, .161), (.686, .124), (.462, .303), (.650, .253)]},
        "#4": {"myops": [(.543, .170), (.588, .194), (.566, .173)],
               "acdc": [(.829, .145), (.743, .127), (.728, .131), (.767, .140)]},
        "#5": {"myops": [(.179, .173), (.258, .227), (.219, .195)],
               "acdc": [(.783, .142), (.473, .129), (.143, .133), (.466, .295)]},
    },
}
"""Table 1 (§3.2): half (task combination) -> row -> target -> (mean, std) per structure, then Avg."""

TABLE2: dict[str, dict[str, list[MeanStd]]] = {
    # Table 2: MSCMRseg test set; LV, MYO, RV, Avg. (The §3.3 text calls it "Table 3"; the caption is Table 2.)
    "PCE": {"dice": [(.454, .271), (.356, .182), (.102, .072), (.304, .241)],
            "hd": [(111.87, 14.40), (109.72, 20.30), (123.62, 19.33), (115.07, 16.02)]},
    # Mixup and Cutout print the same LV HD (259.42±14.18); copied as printed.
    "Mixup": {"dice": [(.440, .102), (.310, .127), (.021, .013), (.257, .200)],
              "hd": [(259.42, 14.18), (210.00, 12.37), (251.98, 15.6), (240.47, 25.96)]},
    "Cutout": {"dice": [(.315, .103), (.307, .153), (.166, .110), (.263, .139)],
               "hd": [(259.42, 14.18), (240.06, 16.38), (252.18, 15.42), (250.56, 17.04)]},
    "CycleMix": {"dice": [(.517, .086), (.421, .108), (.007, .007), (.315, .237)],
                 "hd": [(213.20, 35.65), (151.36, 55.12), (260.56, 12.66), (208.37, 58.88)]},
    "ShapePU": {"dice": [(.758, .191), (.567, .168), (.059, .026), (.461, .331)],
                "hd": [(209.04, 16.09), (234.08, 18.15), (237.86, 14.13), (226.99, 20.45)]},
    "WSL4": {"dice": [(.809, .079), (.653, .109), (.599, .261), (.687, .191)],
             "hd": [(140.95, 69.06), (147.74, 59.93), (95.07, 60.53), (127.92, 67.49)]},
    "ModelMix w/ MyoPS": {"dice": [(.875, .077), (.754, .079), (.722, .201), (.784, .145)],
                          "hd": [(78.05, 16.11), (69.85, 30.45), (99.20, 46.81), (82.36, 35.09)]},
    "FullSup-UNet": {"dice": [(.775, .158), (.604, .147), (.572, .207), (.651, .191)],
                     "hd": [(23.50, 21.79), (34.03, 19.25), (81.29, 11.29), (46.27, 30.91)]},
    "FullSup-nnUNet": {"dice": [(.885, .085), (.757, .147), (.757, .201), (.799, .160)],
                       "hd": [(21.48, 29.68), (13.50, 12.99), (18.27, 12.51), (17.75, 19.87)]},
}
"""Table 2 (§3.3): row -> metric -> (mean, std) for LV, MYO, RV, Avg on the MSCMRseg test set."""

TABLE3: dict[str, dict[str, list[MeanStd]]] = {
    # Table 3: MyoPS test set; Scar, Edema, Avg.
    "PCE": {"dice": [(.242, .170), (.122, .077), (.182, .144)],
            "hd": [(76.22, 37.24), (124.89, 21.27), (100.55, 38.77)]},
    "CVIR": {"dice": [(.288, .191), (.085, .034), (.186, .170)],
             "hd": [(45.01, 18.44), (125.27, 20.83), (85.14, 45.04)]},
    "nnPU": {"dice": [(.290, .166), (.236, .078), (.263, .131)],
             "hd": [(126.51, 35.27), (125.05, 20.69), (125.78, 28.55)]},
    # The three ModelMix rows' task marks are garbled in our copy of the table. §3.3 fixes them: "Mixing with
    # model parameters of ACDC and MSCMRseg separately, our ModelMix [...] exceeding the second-best comparison
    # methods by 22.4% and 26.9%": the second best is nnPU (.263), so w/ ACDC has Avg .487 (= .263 + .224) and
    # w/ MSCMR has Avg .532 (= .263 + .269); the remaining row (.509) is w/ MSCMR+ACDC. Each row keeps its HD.
    "ModelMix w/ ACDC": {"dice": [(.455, .251), (.518, .140), (.487, .203)],
                         "hd": [(77.52, 34.68), (81.85, 28.37), (79.69, 31.35)]},
    "ModelMix w/ MSCMR": {"dice": [(.488, .263), (.575, .147), (.532, .215)],
                          "hd": [(70.18, 34.19), (75.57, 28.13), (72.87, 31.02)]},
    "ModelMix w/ MSCMR+ACDC": {"dice": [(.474, .269), (.545, .158), (.509, .221)],
                               "hd": [(41.26, 20.38), (46.63, 18.71), (43.95, 19.50)]},
    "FullSup-UNet": {"dice": [(.423, .253), (.445, .149), (.434, .205)],
                     "hd": [(117.61, 35.08), (119.13, 22.7), (118.37, 29.17)]},
    "FullSup-nnUNet": {"dice": [(.496, .252), (.563, .141), (.529, .204)],
                       "hd": [(43.86, 37.27), (45.14, 33.86), (44.50, 35.15)]},
}
"""Table 3 (§3.3): row -> metric -> (mean, std) for Scar, Edema, Avg on the MyoPS test set."""


def table_structures(task: str) -> tuple[str, ...]:
    """The columns of ``task`` in the paper's tables: its evaluation structures, then ``"Avg"``."""
    return (*get_task(task).structures, "Avg")


def _rows(table: int, half: str, method: str, target: str, metric: str, values: list[MeanStd]) -> list[dict]:
    structures = table_structures(target)
    if len(values) != len(structures):
        raise AssertionError(f"table {table} {method} {target}: {len(values)} values for {structures}")
    return [
        {"table": table, "half": half, "method": method, "target": target, "structure": structure,
         "metric": metric, "mean": mean, "std": std}
        for structure, (mean, std) in zip(structures, values)
    ]


def published(table: int | None = None) -> pd.DataFrame:
    """The paper's Table ``table`` (1, 2 or 3; ``None``: all three) as a tidy frame.

    Returns:
        One row per (table, half, method, target, structure, metric) with ``mean`` and ``std``. ``half`` is
        Table 1's task combination (``"myops+mscmr"``, ``"myops+acdc"``) and ``""`` in Tables 2-3; ``metric``
        is ``"dice"`` or ``"hd"`` (mm; Tables 2-3 only).

    Raises:
        ConfigError: on a table other than 1, 2, 3 or ``None``.
    """
    if table not in (None, 1, 2, 3):
        raise ConfigError(f"table: the paper has Tables 1, 2 and 3, not {table!r}")
    rows: list[dict] = []
    if table in (None, 1):
        for half, methods in TABLE1.items():
            for method, targets in methods.items():
                for target, values in targets.items():
                    rows += _rows(1, half, method, target, "dice", values)
    for number, target, data in ((2, "mscmr", TABLE2), (3, "myops", TABLE3)):
        if table in (None, number):
            for method, metrics in data.items():
                for metric, values in metrics.items():
                    rows += _rows(number, "", method, target, metric, values)
    return pd.DataFrame(rows, columns=list(PUBLISHED_COLUMNS))

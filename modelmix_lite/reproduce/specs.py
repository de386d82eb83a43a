"""What each paper table trains and scores: :class:`TableSpec` rows (:class:`Entry`), the phantom and real-data
tables, and the sweep's selection options.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


from ..config import PROFILES
from ..errors import ConfigError
from ..methods import METHODS


RESULT_COLUMNS: tuple[str, ...] = (
    "table", "method", "tasks", "target", "case", "structure", "dice", "hd", "hd95",
    "seed", "profile", "device", "commit", "wall_s", "data_fingerprint",
)
"""Columns of a results file, one row per (method, tasks, seed, target, case, structure)."""


ROLES: tuple[str, ...] = ("modelmix", "baseline", "reference", "preset")
"""What a table row is: ModelMix, a scribble-supervised baseline (ablations included), a fully supervised
reference (never counted as a baseline), or a row computed under another core preset (``Entry.preset``: the
released code's reading of a method, compared with its ``paper`` row, never ranked against the baselines)."""


SHORT_NAMES: dict[str, str] = {"myops": "MyoPS", "mscmr": "MSCMRseg", "acdc": "ACDC"}
"""The tasks as the paper's table headers name them."""


MISSING = "—"
"""Cell text of a comparison table where one side has no number."""


@dataclass(frozen=True)
class Entry:
    """One row of a paper table: a method trained on some tasks, scored on some of them.

    Attributes:
        row: the paper's row label (``"#4"``, ``"WSL4"``, ``"ModelMix w/ MyoPS"``).
        method: its :data:`~modelmix_lite.methods.METHODS` key.
        tasks: the training tasks, in the order given to :func:`~modelmix_lite.train.train`.
        targets: the tasks scored.
        role: one of :data:`ROLES`.
        preset: the core preset it trains with (:data:`~modelmix_lite.methods.CORE_PRESETS`).
    """

    row: str
    method: str
    tasks: tuple[str, ...]
    targets: tuple[str, ...]
    role: str = "baseline"
    preset: str = "paper"

    @property
    def key(self) -> str:
        """The ``method`` column of its results: the method key, ``"#4@released_code"`` under another preset."""
        return self.method if self.preset == "paper" else f"{self.method}@{self.preset}"

    @property
    def combo(self) -> str:
        """The tasks as one string, ``"myops+mscmr"`` (the ``tasks`` column of a results file)."""
        return "+".join(self.tasks)


@dataclass(frozen=True)
class TableSpec:
    """What one paper table trains and where it is scored.

    Attributes:
        number: 1, 2 or 3.
        split: the split scored (``"val"`` for Table 1, ``"test"`` for Tables 2-3).
        entries: its rows, in the paper's order (Table 1: one block per task combination).
    """

    number: int
    split: str
    entries: tuple[Entry, ...]


def _single(row: str, method: str, target: str, role: str = "baseline") -> Entry:
    return Entry(row, method, (target,), (target,), role)


def _modelmix(row: str, tasks: tuple[str, ...], target: str | None = None) -> Entry:
    """ModelMix (#4) trained on ``tasks`` (in Table 1's order, so the tables share its trainings), scored on
    ``target`` (default: the first task)."""
    return Entry(row, "#4", tasks, (target or tasks[0],), "modelmix")


TABLES: dict[int, TableSpec] = {
    1: TableSpec(1, "val", tuple(
        Entry(method, method, combo, combo, "modelmix" if method == "#4" else "baseline")
        for combo in (("myops", "mscmr"), ("myops", "acdc"))
        for method in ("#1", "#2", "#3", "#4", "#5")
    )),
    2: TableSpec(2, "test", (
        _single("PCE", "pce", "mscmr"),
        _single("Mixup", "mixup", "mscmr"),
        _single("Cutout", "cutout", "mscmr"),
        _single("CycleMix", "cyclemix", "mscmr"),
        _single("ShapePU", "shapepu", "mscmr"),
        _single("WSL4", "wsl4", "mscmr"),
        _modelmix("ModelMix w/ MyoPS", ("myops", "mscmr"), "mscmr"),
        _single("FullSup-UNet", "fullsup", "mscmr", "reference"),
    )),
    3: TableSpec(3, "test", (
        _single("PCE", "pce", "myops"),
        _single("CVIR", "cvir", "myops"),
        _single("nnPU", "nnpu", "myops"),
        _modelmix("ModelMix w/ ACDC", ("myops", "acdc")),
        _modelmix("ModelMix w/ MSCMR", ("myops", "mscmr")),
        _modelmix("ModelMix w/ MSCMR+ACDC", ("myops", "mscmr", "acdc")),
        _single("FullSup-UNet", "fullsup", "myops", "reference"),
    )),
}
"""Paper table number -> what it trains and scores (see the module docstring)."""


REAL_TABLES: dict[int, TableSpec] = {
    1: TableSpec(1, "val", tuple(
        Entry(method, method, ("mscmr", "acdc"), ("mscmr", "acdc"), "modelmix" if method == "#4" else "baseline")
        for method in ("#1", "#2", "#2+dice", "#3", "#4", "#5")
    ) + (Entry("#4 (released code)", "#4", ("mscmr", "acdc"), ("mscmr", "acdc"), "preset", "released_code"),)),
    2: TableSpec(2, "test", (
        *(entry for entry in TABLES[2].entries if entry.role == "baseline"),
        _modelmix("ModelMix w/ ACDC", ("mscmr", "acdc"), "mscmr"),
    )),
}
"""The tables on the public data (``--real``): no MyoPS image is public, so Table 1 pairs MSCMRseg (LGE) with
ACDC (bSSFP), scored on both validation splits, with the control row "#2+dice" (#2 with #3's Dice term, no
virtual model: it separates the two changes from #2 to #3) and "#4 (released code)" (ModelMix under the
``released_code`` preset, the Reproducibility chapter's comparison), and Table 2's ModelMix mixes MSCMRseg with ACDC (it is Table 1's
#4 run, scored on the MSCMRseg test split). Table 3 (target MyoPS) stays phantom-only, and FullSup-UNet is left
out: the only real ground truth of the training tasks is in the validation and test splits."""


def get_table(table: int | str, real: bool = False) -> TableSpec:
    """The spec of Table ``table`` (``real``: of :data:`REAL_TABLES`); :class:`ConfigError` for another number."""
    tables = REAL_TABLES if real else TABLES
    try:
        return tables[int(table)]
    except (KeyError, ValueError, TypeError):
        numbers = ", ".join(map(str, tables))
        numbers = " or ".join(numbers.rsplit(", ", 1))
        raise ConfigError(f"--table: expected {numbers}{' with --real' if real else ''}, got {table!r}") from None


def sweep_folder(profile: str, real: bool = False) -> str:
    """The folder of a sweep under the results root: ``<profile>`` (phantom) or ``<profile>-real``."""
    return f"{profile}-real" if real else profile


def default_seeds(profile: str) -> tuple[int, ...]:
    """Seeds of a sweep: ``(0,)`` in the smoke profile, ``(0, 1, 2)`` otherwise."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile: unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}")
    return (0,) if profile == "smoke" else (0, 1, 2)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; :class:`ConfigError` on an empty list, a non-integer or a repeat."""
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: expected distinct non-negative integers, got {text!r}")
    return seeds


def _canonical_method(name: str) -> str:
    """``"ablation4"`` -> ``"#4"`` (a shell-friendly spelling); aliases such as ``"modelmix"`` -> ``"#4"``; a
    preset suffix stays: ``"ablation4@released_code"`` -> ``"#4@released_code"``."""
    name, at, preset = name.strip().lower().partition("@")
    if name.startswith("ablation"):
        name = "#" + name.removeprefix("ablation")
    return (METHODS[name].name if name in METHODS else name) + at + preset


def select_entries(
    table: int, methods: Iterable[str] | None = None, combos: Iterable[str] | None = None, real: bool = False
) -> list[Entry]:
    """The rows of Table ``table`` whose method is in ``methods`` and task combination in ``combos`` (None: all).

    Raises:
        ConfigError: on a method or combination the table does not have, or when nothing is left.
    """
    spec = get_table(table, real)
    entries = list(spec.entries)
    for option, wanted, key in (("--methods", methods, "key"), ("--combos", combos, "combo")):
        if wanted is None:
            continue
        wanted = [_canonical_method(w) if key == "key" else w.strip().lower() for w in wanted]
        known = list(dict.fromkeys(getattr(e, key) for e in spec.entries))
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ConfigError(f"{option}: {', '.join(unknown)} not in Table {spec.number}; it has {', '.join(known)}")
        entries = [e for e in entries if getattr(e, key) in wanted]
    if not entries:
        raise ConfigError(f"--methods/--combos: Table {spec.number} has no row with these methods and combinations")
    return entries

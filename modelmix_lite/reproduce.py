"""Reproduce the paper's Tables 1-3: train every row × seed, score it, and compare with the published numbers.

What each table trains and scores is a :class:`TableSpec` in :data:`TABLES`:

* **Table 1** (§3.2, ablations): rows #1-#5, each on MyoPS+MSCMRseg and on MyoPS+ACDC; both tasks of a
  combination are scored on their **validation** split, as in the paper.
* **Table 2** (§3.3): target MSCMRseg, scored on its **test** split: PCE, Mixup, Cutout, CycleMix, ShapePU and
  WSL4 (each trained on MSCMRseg alone), ModelMix (#4) trained on MSCMRseg+MyoPS, FullSup.
* **Table 3** (§3.3): target MyoPS, test split: PCE, CVIR, nnPU, ModelMix with ACDC, with MSCMRseg and with
  both, FullSup.

:func:`run_table` writes under ``out_dir/<profile>/``::

    table<N>.jsonl     one row per (method, tasks, seed, target, case, structure): RESULT_COLUMNS
    sweep.json         every run's status: trained, resumed, evaluated (rows appended from its evaluation
                       file), recorded (rows already in the results file) or "skipped: not implemented"
    runs/table<N>/<method>__<tasks>__seed<k>/     (``#4`` spelled ``ablation4``)
                       the train() run directory, plus evaluation.jsonl (its rows) and predictions.npz

``wall_s`` is the time the sweep spent on a run: training (only the remaining steps of a resumed run) and scoring.
A row that another table already trained (:func:`trained_elsewhere`) is only scored: its run directory holds copies
of the training's ``config.json``, ``split.json`` and ``log.jsonl``, and ``trained_in.json`` names where the
checkpoints are; ``wall_s`` is then the scoring time.
``data_fingerprint`` is :func:`~modelmix_lite.evaluate.data_fingerprint` of the run's tasks.

Runs of methods that :data:`~modelmix_lite.methods.METHODS` does not (yet) hold are skipped with a warning.
A sweep resumes where it stopped: a run whose rows are in the results file is not touched, a finished run (it has
``evaluation.jsonl``) only has its rows appended, an interrupted run continues from its ``last.pt``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr, wilcoxon
from tqdm.auto import tqdm

from .config import DEFAULT_DATA, PROFILES, TrainConfig, config_to_dict, pick_device, resolve_config
from .data.readers import Case, load_split
from .errors import ConfigError, DataError
from .evaluate import data_fingerprint, load_run_models, predict_volume, run_geometry, select_cases
from .methods import METHODS
from .metrics import errors_by_distance, evaluate_volume, format_distance, format_mean_std, summarize
from .paper_results import published, table_structures
from .train import train
from .tutorial import git_commit

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


# ----------------------------------------------------------------------------------------------
# The table specs
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Files of a sweep
# ----------------------------------------------------------------------------------------------


def results_path(out_dir: str | Path, profile: str, table: int) -> Path:
    """``out_dir/<profile>/table<N>.jsonl``."""
    return Path(out_dir) / profile / f"table{table}.jsonl"


def run_dir(out_dir: str | Path, profile: str, table: int, method: str, tasks: str, seed: int) -> Path:
    """``out_dir/<profile>/runs/table<N>/<method>__<tasks>__seed<k>`` (``#`` spelled ``ablation``, ``@`` as
    ``-``: ``ablation4-released_code``)."""
    name = f"{method.replace('#', 'ablation').replace('@', '-')}__{tasks}__seed{seed}"
    return Path(out_dir) / profile / "runs" / f"table{table}" / name


def data_differs(rows: pd.DataFrame, data_root: str | Path) -> list[str]:
    """The runs of ``rows`` whose data fingerprint is not that of their tasks in ``data_root``.

    Each row records :func:`~modelmix_lite.evaluate.data_fingerprint` of its run's tasks; results made from other
    data cannot be extended (a sweep would mix two datasets) or drawn (their images differ from the predictions).

    Returns:
        ``"method on tasks"`` of every such run (empty: all runs match).
    """
    runs = rows.drop_duplicates(["method", "tasks", "data_fingerprint"])
    current = {tasks: data_fingerprint(data_root, tasks.split("+")) for tasks in set(runs["tasks"])}
    return sorted({f"{r.method} on {r.tasks}" for r in runs.itertuples() if r.data_fingerprint != current[r.tasks]})


def _check_same_data(rows: pd.DataFrame, data_root: str | Path) -> None:
    """DataError unless every run of ``rows`` was made from ``data_root`` (so its predictions match the images)."""
    differ = data_differs(rows, data_root)
    if differ:
        raise DataError(f"{data_root}: not the data of {', '.join(differ)}; its images do not match the predictions")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _jsonl(rows: pd.DataFrame) -> str:
    """Rows as JSON lines; NaN (an HD with one empty mask) is written as ``null``."""
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return "".join(json.dumps(record) + "\n" for record in records)


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results file (or a run's ``evaluation.jsonl``) into a frame with :data:`RESULT_COLUMNS`.

    Raises:
        DataError: when the file is missing, a line is not JSON, or columns are missing.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: results file not found")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number} is not JSON ({err.msg})") from None
    frame = pd.DataFrame(records)
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    try:
        return frame[list(RESULT_COLUMNS)].astype(
            {"table": int, "seed": int, "dice": float, "hd": float, "hd95": float, "wall_s": float})
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: a value of the wrong type ({err})") from None


def load_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """A run's ``predictions.npz`` (or its run directory) as ``{case: (X, Y, Z) uint8 labels}``."""
    path = Path(path)
    path = path / "predictions.npz" if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    with np.load(path) as data:
        return {case: data[case] for case in data.files}


# ----------------------------------------------------------------------------------------------
# Running a sweep
# ----------------------------------------------------------------------------------------------


def score_run(
    run: str | Path, data_root: str | Path, split: str, targets: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Score a run's ``best.pt`` on ``split`` of each target task, volume by volume, keeping the predictions.

    Like :func:`~modelmix_lite.evaluate.evaluate_run`, but for chosen targets only, and it also returns the
    predicted volumes (what ``predictions.npz`` keeps for the figures).

    Returns:
        ``(rows, predictions)``: rows ``target, case, structure, dice, hd, hd95`` and ``{case: (X, Y, Z) uint8}``.

    Raises:
        DataError: a case without ground truth, or two targets with a case of the same name.
        ConfigError: a target the run did not train.
    """
    run = Path(run)
    record = json.loads((run / "config.json").read_text())
    device = pick_device(record["config"]["device"])
    models = load_run_models(run, "best.pt", device)
    rows, predictions = [], {}
    for target in targets:
        if target not in record["tasks"]:
            raise ConfigError(f"{run}: target {target!r} was not trained (tasks {', '.join(record['tasks'])})")
        for case in load_split(target, data_root, split):
            if case.label is None:
                raise DataError(f"{case.files.images[0]}: no ground truth to score {target} {split} against")
            if case.subject in predictions:
                raise DataError(f"{case.files.images[0]}: case name {case.subject!r} occurs in two targets")
            pred = predict_volume(models.models[target], case, device=device, **run_geometry(run, record))
            predictions[case.subject] = pred
            for structure, values in evaluate_volume(pred, case.label, target, case.spacing).items():
                rows.append({"target": target, "case": case.subject, "structure": structure, **values})
    return pd.DataFrame(rows, columns=["target", "case", "structure", "dice", "hd", "hd95"]), predictions


def _device_name(device: str) -> str:
    device = pick_device(device)
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def _run_one(
    spec: TableSpec, entry: Entry, seed: int, profile: str, root: Path, out: Path, keep_checkpoints: bool,
    folder: str,
) -> tuple[pd.DataFrame, str]:
    """Train (or resume) and score one run; return its result rows and what was done.

    ``evaluation.jsonl`` is written after the final checkpoint and the scores, so a run that has it is done (even
    when its checkpoints were not kept): its rows are returned as they are.
    """
    run = run_dir(out, folder, spec.number, entry.key, entry.combo, seed)
    evaluation = run / "evaluation.jsonl"
    if evaluation.is_file():
        rows = load_results(evaluation)
        if data_differs(rows, root):
            raise DataError(f"{evaluation}: made from other data than {root} (another data fingerprint)")
        return rows, "evaluated"
    config = resolve_config(profile, {"seed": str(seed)}, entry.preset)
    resume = (run / "last.pt").is_file()
    tick = time.perf_counter()
    source = None if resume else trained_elsewhere(out, folder, entry, config)
    if source is None:
        train(config, root, run, entry.method, entry.tasks, overwrite=not resume, resume=resume, progress=False)
    else:
        run.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "split.json", "log.jsonl"):
            shutil.copy2(source / name, run / name)
        _write_atomic(run / "trained_in.json", json.dumps({"run": str(source.relative_to(out))}) + "\n")
    scores, predictions = score_run(run if source is None else source, root, spec.split, entry.targets)
    meta = {
        "table": spec.number, "method": entry.key, "tasks": entry.combo, "seed": seed, "profile": profile,
        "device": _device_name(config.device), "commit": git_commit(),
        "wall_s": round(time.perf_counter() - tick, 2), "data_fingerprint": data_fingerprint(root, entry.tasks),
    }
    rows = scores.assign(**meta)[list(RESULT_COLUMNS)]
    np.savez_compressed(run / "predictions.tmp.npz", **{k: v.astype(np.uint8) for k, v in predictions.items()})
    os.replace(run / "predictions.tmp.npz", run / "predictions.npz")
    _write_atomic(evaluation, _jsonl(rows))  # written last: its presence marks the run finished
    if not keep_checkpoints:
        for checkpoint in run.glob("*.pt"):
            checkpoint.unlink()
    if source is not None:
        return rows, f"reused: trained in {source.parent.name}"
    return rows, "resumed" if resume else "trained"


def trained_elsewhere(out: str | Path, profile: str, entry: Entry, config: TrainConfig) -> Path | None:
    """A finished run of another table of this sweep that trained exactly what ``entry`` needs, or ``None``.

    Tables share trainings: Table 3's "ModelMix w/ MSCMR" is Table 1's #4 on MyoPS+MSCMRseg, scored on the test
    split instead of the validation split. A run qualifies when it is finished (``evaluation.jsonl``), kept its
    ``best.pt``, and its ``config.json`` records the same method, tasks (in order) and configuration (``device``
    and ``compile`` aside, which do not change what is learned).
    """
    name = run_dir(out, profile, 0, entry.key, entry.combo, config.seed).name  # the same in every table
    wanted = {k: v for k, v in config_to_dict(config).items() if k not in ("device", "compile")}
    for other in sorted((Path(out) / profile / "runs").glob(f"table*/{name}")):
        if not ((other / "evaluation.jsonl").is_file() and (other / "best.pt").is_file()):
            continue
        record = json.loads((other / "config.json").read_text())
        found = {k: v for k, v in record["config"].items() if k not in ("device", "compile")}
        if (record["method"], record["tasks"], found) == (METHODS[entry.method].name, list(entry.tasks), wanted):
            return other
    return None


def _recorded_runs(path: Path, root: Path) -> set[tuple[str, str, int]]:
    """(method, tasks, seed) of the runs already in a results file; DataError if some were made from other data."""
    if not path.is_file():
        return set()
    rows = load_results(path)
    differ = data_differs(rows, root)
    if differ:
        raise DataError(f"{path}: {', '.join(differ)} were made from other data than {root} (another data "
                        "fingerprint); use another --out, or the data they were made from")
    return set(zip(rows["method"], rows["tasks"], rows["seed"].astype(int)))


def _update_status(path: Path, table: int, name: str, record: dict) -> None:
    status = json.loads(path.read_text()) if path.is_file() else {}
    status.setdefault(f"table{table}", {})[name] = record
    _write_atomic(path, json.dumps(status, indent=2) + "\n")


def run_table(
    table: int,
    profile: str,
    data_root: str | Path,
    out_dir: str | Path,
    seeds: Sequence[int] | None = None,
    methods: Iterable[str] | None = None,
    progress: bool = True,
    combos: Iterable[str] | None = None,
    keep_checkpoints: bool = True,
    real: bool = False,
) -> Path:
    """Train and score every row of Table ``table`` for every seed; return the results file.

    Runs ``train(resolve_config(profile, seed=k), data_root, run_dir, method, tasks)`` for each selected row
    (:func:`select_entries`) and seed, scores its ``best.pt`` on the table's split of its targets
    (:func:`score_run`) and appends the rows to ``out_dir/<profile>/table<N>.jsonl``. Rows whose method
    is not in :data:`~modelmix_lite.methods.METHODS` are skipped with a warning and recorded in
    ``sweep.json`` as ``"skipped: not implemented"``. One progress bar covers the whole sweep.

    Args:
        seeds: default :func:`default_seeds` of the profile.
        methods, combos: restrict the sweep to these methods (``"#4"``, ``"ablation4"``, ``"pce"``...) and task
            combinations (``"myops+mscmr"``).
        keep_checkpoints: False deletes a run's ``*.pt`` once it is scored (its rows and predictions stay).
        real: sweep :data:`REAL_TABLES` (the public data) into ``out_dir/<profile>-real/``.

    Raises:
        ConfigError: an unknown table, profile, method or combination.
        DataError: unreadable data, or a results file made from other data (:func:`data_differs`).
    """
    spec = get_table(table, real)
    folder = sweep_folder(profile, real)
    seeds = tuple(default_seeds(profile) if seeds is None else seeds)
    entries = select_entries(spec.number, methods, combos, real)
    root, out = Path(data_root), Path(out_dir)
    results = results_path(out, folder, spec.number)
    results.parent.mkdir(parents=True, exist_ok=True)
    recorded = _recorded_runs(results, root)
    jobs = [(entry, seed) for entry in entries for seed in seeds]
    bar = tqdm(jobs, desc=f"Table {spec.number} ({profile})", disable=not progress)
    for entry, seed in bar:
        name = run_dir(out, folder, spec.number, entry.key, entry.combo, seed).name
        bar.set_postfix_str(name)
        if entry.method not in METHODS:
            warnings.warn(f"Table {spec.number}: {entry.row} ({entry.method!r}) is not implemented; skipped",
                          stacklevel=2)
            status = "skipped: not implemented"
        elif (entry.key, entry.combo, seed) in recorded:
            status = "recorded"
        else:
            rows, status = _run_one(spec, entry, seed, profile, root, out, keep_checkpoints, folder)
            with open(results, "a") as f:
                f.write(_jsonl(rows))
        record = {"row": entry.row, "method": entry.key, "tasks": entry.combo, "seed": seed, "status": status}
        _update_status(out / folder / "sweep.json", spec.number, name, record)
    return results


# ----------------------------------------------------------------------------------------------
# Tables, tests and figures' data
# ----------------------------------------------------------------------------------------------


def annotate(rows: pd.DataFrame) -> pd.DataFrame:
    """Result rows with the paper's ``row`` label, its ``role`` and Table 1's ``half`` (``""`` in Tables 2-3).

    Raises:
        DataError: a (table, method, tasks) that no table spec has.
    """
    lookup = {(spec.number, e.key, e.combo): e
              for tables in (TABLES, REAL_TABLES) for spec in tables.values() for e in spec.entries}
    keys = list(zip(rows["table"].astype(int), rows["method"], rows["tasks"]))
    unknown = sorted({k for k in keys if k not in lookup})
    if unknown:
        raise DataError(f"rows: no table row for (table, method, tasks) {unknown[0]}")
    return rows.assign(
        row=[lookup[k].row for k in keys],
        role=[lookup[k].role for k in keys],
        half=[k[2] if k[0] == 1 else "" for k in keys],
    )


_KEYS = ["table", "half", "row", "role", "method", "tasks", "target"]


def summarize_results(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over volumes × seeds for every table row, target and structure (``"Avg"`` pools structures).

    Returns:
        :func:`~modelmix_lite.metrics.summarize`'s columns keyed by table, half, row, role, method, tasks, target.
    """
    rows = annotate(rows)
    volumes = rows.assign(case=rows["case"] + "@seed" + rows["seed"].astype(str))
    return summarize(volumes[[*_KEYS, "case", "structure", "dice", "hd", "hd95"]])


def _row_order(table: int, half: str) -> list[str]:
    """Rows of a comparison table: the paper's, then any row the spec has and the paper does not."""
    paper = published(table)
    rows = list(dict.fromkeys(paper.loc[paper["half"] == half, "method"]))
    spec_rows = [e.row for e in TABLES[table].entries if (e.combo if table == 1 else "") == half]
    return rows + [r for r in spec_rows if r not in rows]


def comparison_table(rows: pd.DataFrame, table: int, metric: str = "dice", half: str = "") -> pd.DataFrame:
    """Our ``metric`` next to the paper's, in the paper's layout: one line per table row, ``mean±std`` cells.

    Args:
        rows: result rows (any tables; only ``table``'s are used), possibly empty.
        metric: ``"dice"`` (3 decimals) or ``"hd"`` (mm, 2 decimals).
        half: Table 1's task combination (``"myops+mscmr"`` or ``"myops+acdc"``); ``""`` for Tables 2-3.

    Returns:
        Index: the row labels; columns ``(target, structure, "ours" | "paper")``; :data:`MISSING` where a side
        has no number (a row not run, or a metric the paper does not report). An HD cell of ours over fewer
        volumes than its Dice ends with the count (:func:`~modelmix_lite.metrics.format_distance`).
    """
    spec = get_table(table)
    halves = list(dict.fromkeys(e.combo for e in spec.entries)) if spec.number == 1 else [""]
    if half not in halves:
        raise ConfigError(f"half: Table {spec.number} has {' and '.join(map(repr, halves))}, not {half!r}")
    if metric not in ("dice", "hd"):
        raise ConfigError(f"metric: expected 'dice' or 'hd', got {metric!r}")
    digits = 3 if metric == "dice" else 2
    paper = published(spec.number)
    paper = paper[(paper["half"] == half) & (paper["metric"] == metric)]
    paper_cells = {(r.method, r.target, r.structure): format_mean_std(r.mean, r.std, digits)
                   for r in paper.itertuples()}
    ours = rows[rows["table"] == spec.number]
    ours_cells = {}
    if len(ours):
        summary = summarize_results(ours)
        for r in summary[summary["half"] == half].itertuples():
            mean, std = getattr(r, f"{metric}_mean"), getattr(r, f"{metric}_std")
            ours_cells[(r.row, r.target, r.structure)] = format_mean_std(mean, std, digits) if metric == "dice" \
                else format_distance(mean, std, r.hd_n, r.dice_n, digits)
    targets = half.split("+") if half else [spec.entries[0].targets[0]]
    columns = [(SHORT_NAMES[t], s, side) for t in targets for s in table_structures(t) for side in ("ours", "paper")]
    index = _row_order(spec.number, half)
    data = [[(ours_cells if side == "ours" else paper_cells).get((row, t, s), MISSING)
             for t in targets for s in table_structures(t) for side in ("ours", "paper")] for row in index]
    return pd.DataFrame(data, index=pd.Index(index, name="method"), columns=pd.MultiIndex.from_tuples(columns))


ABLATION_ORDER: tuple[tuple[str, str], ...] = (("#2", "#1"), ("#3", "#2"), ("#4", "#3"), ("#2", "#5"))
"""The pattern of Table 1 (§3.2): each pair (better, worse) in average Dice."""


def ablation_pattern(rows: pd.DataFrame) -> pd.DataFrame:
    """Does #4 > #3 > #2 > #1 and #5 < #2 (average Dice) hold, per half and target of Table 1?

    Returns:
        One line per (half, target): the average Dice of #1-#5 (NaN if not run), one boolean column per pair
        of :data:`ABLATION_ORDER` (``pd.NA`` if a side was not run), and ``holds``: all pairs true (``pd.NA`` if
        none is false but some could not be checked).
    """
    ours = rows[rows["table"] == 1]
    columns = ["half", "target", "#1", "#2", "#3", "#4", "#5", *(f"{a} > {b}" for a, b in ABLATION_ORDER), "holds"]
    if not len(ours):
        return pd.DataFrame(columns=columns)
    summary = summarize_results(ours)
    avg = summary[summary["structure"] == "Avg"].pivot_table(
        index=["half", "target"], columns="row", values="dice_mean", sort=False)
    avg = avg.reindex(columns=["#1", "#2", "#3", "#4", "#5"])
    for better, worse in ABLATION_ORDER:
        known = avg[better].notna() & avg[worse].notna()
        avg[f"{better} > {worse}"] = (avg[better] > avg[worse]).astype(object).where(known, pd.NA)
    checks = avg[[f"{a} > {b}" for a, b in ABLATION_ORDER]]
    holds = [False if any(v is False for v in c) else (True if c.notna().all() else pd.NA)
             for _, c in checks.iterrows()]
    return avg.assign(holds=holds).reset_index()[columns]


def pattern_verdict(pattern: pd.DataFrame) -> str:
    """One sentence on :func:`ablation_pattern`'s frame: held, did not hold (where and by how much), or unchecked."""
    if not len(pattern):
        return "could not be checked: Table 1 was not run"
    failures, unchecked = [], set()
    for line in pattern.to_dict("records"):
        for better, worse in ABLATION_ORDER:
            a, b = line[better], line[worse]
            if pd.isna(a) or pd.isna(b):
                unchecked.update(m for m, v in ((better, a), (worse, b)) if pd.isna(v))
            elif not a > b:
                failures.append(f"{better} > {worse} fails on {SHORT_NAMES[line['target']]} of {line['half']} "
                                f"({a:.3f} vs {b:.3f})")
    if failures:
        return "did not hold: " + "; ".join(failures)
    if unchecked:
        return f"held where it could be checked ({', '.join(sorted(unchecked))} not run)"
    return f"held on all {len(pattern)} (combination, task) pairs"


def wilcoxon_table(rows: pd.DataFrame, table: int) -> pd.DataFrame:
    """Paired two-sided Wilcoxon signed-rank test of each ModelMix row against the best baseline, per structure.

    Per (half, target), the best baseline is the ``"baseline"`` row with the highest mean Dice over all its
    (case, structure, seed) values (FullSup references excluded). Dice values are paired by (case, seed) within
    a structure; ``"Avg"`` pairs every (case, structure, seed). ``statistic`` and ``p_value`` are NaN when there
    is no pair or every difference is zero.

    Returns:
        Columns ``table, half, target, modelmix, baseline, structure, n, mean_diff, statistic, p_value``.
    """
    columns = ["table", "half", "target", "modelmix", "baseline", "structure", "n", "mean_diff", "statistic",
               "p_value"]
    ours = rows[rows["table"] == get_table(table).number]
    out = []
    for (half, target), group in (annotate(ours).groupby(["half", "target"], sort=False) if len(ours) else []):
        baselines = group[group["role"] == "baseline"]
        if baselines.empty:
            continue
        best = baselines.groupby("row", sort=False)["dice"].mean().idxmax()
        reference = group[group["row"] == best]
        for row, mm in group[group["role"] == "modelmix"].groupby("row", sort=False):
            for test in _paired_dice(mm, reference, target):
                out.append({"table": int(table), "half": half, "target": target, "modelmix": row, "baseline": best,
                            **test})
    return pd.DataFrame(out, columns=columns)


def _paired_dice(rows: pd.DataFrame, reference: pd.DataFrame, target: str) -> list[dict]:
    """Dice of ``rows`` minus ``reference``, paired by (case, seed, structure), per structure of ``target``.

    ``"Avg"`` pairs every (case, structure, seed). Returns one dict per structure: ``structure, n, mean, mean_ref,
    mean_diff, std_diff, statistic, p_value`` (a two-sided Wilcoxon signed-rank test; NaN when there is no pair
    or every difference is zero).
    """
    keys = ["case", "seed", "structure"]
    pairs = rows[[*keys, "dice"]].merge(reference[[*keys, "dice"]], on=keys, suffixes=("", "_ref"))
    out = []
    for structure in table_structures(target):
        part = pairs if structure == "Avg" else pairs[pairs["structure"] == structure]
        diff = (part["dice"] - part["dice_ref"]).to_numpy()
        test = wilcoxon(diff) if np.any(diff != 0) else None
        out.append({
            "structure": structure, "n": len(diff),
            "mean": part["dice"].mean() if len(diff) else np.nan,
            "mean_ref": part["dice_ref"].mean() if len(diff) else np.nan,
            "mean_diff": diff.mean() if len(diff) else np.nan,
            "std_diff": diff.std(ddof=0) if len(diff) else np.nan,
            "statistic": np.nan if test is None else float(test.statistic),
            "p_value": np.nan if test is None else float(test.pvalue),
        })
    return out


def preset_comparison(rows: pd.DataFrame) -> pd.DataFrame:
    """Each ``"preset"`` row of Table 1 against the ``paper`` row of its method, paired by (case, seed), per target.

    The Reproducibility chapter's comparison: ``"#4 (released code)"`` (``#4@released_code``) against ``"#4"``,
    same tasks, profile and seeds. Dice values are paired by (case, seed) within a structure; ``"Avg"`` pairs
    every (case, structure, seed).

    Returns:
        Columns ``target, row, reference, structure, n, mean, mean_ref, mean_diff, std_diff, statistic, p_value``
        (``mean``: the preset row's mean Dice; ``mean_ref``: the paper row's over the same pairs).
    """
    columns = ["target", "row", "reference", "structure", "n", "mean", "mean_ref", "mean_diff", "std_diff",
               "statistic", "p_value"]
    ours = annotate(rows[rows["table"] == 1]) if len(rows) else rows
    out = []
    for (tasks, target), group in (ours.groupby(["tasks", "target"], sort=False) if len(ours) else []):
        for key in dict.fromkeys(group.loc[group["role"] == "preset", "method"]):
            method = key.partition("@")[0]
            reference = group[group["method"] == method]
            if reference.empty:
                continue
            variant = group[group["method"] == key]
            row = variant["row"].iloc[0]
            out += [{"target": target, "row": row, "reference": reference["row"].iloc[0], **test}
                    for test in _paired_dice(variant, reference, target)]
    return pd.DataFrame(out, columns=columns)


def head_to_head(rows: pd.DataFrame, table: int) -> pd.DataFrame:
    """ModelMix's best row against the best baseline on average Dice, ours and the paper's, per (half, target).

    Returns:
        Columns ``table, half, target, modelmix, dice, baseline, baseline_dice, gap`` (ours) and
        ``paper_dice, paper_baseline_dice, paper_gap``: the paper's numbers for the same two rows.
    """
    spec = get_table(table)
    columns = ["table", "half", "target", "modelmix", "dice", "baseline", "baseline_dice", "gap",
               "paper_dice", "paper_baseline_dice", "paper_gap"]
    ours = rows[rows["table"] == spec.number]
    if not len(ours):
        return pd.DataFrame(columns=columns)
    summary = summarize_results(ours)
    summary = summary[summary["structure"] == "Avg"]
    paper = published(spec.number)
    paper = paper[(paper["metric"] == "dice") & (paper["structure"] == "Avg")]
    out = []
    for (half, target), group in summary.groupby(["half", "target"], sort=False):
        best = {role: group[group["role"] == role].sort_values("dice_mean").tail(1) for role in ROLES[:2]}
        if any(b.empty for b in best.values()):
            continue
        mm, base = best["modelmix"].iloc[0], best["baseline"].iloc[0]
        lookup = paper[(paper["half"] == half) & (paper["target"] == target)].set_index("method")["mean"]
        paper_mm, paper_base = lookup.get(mm["row"], np.nan), lookup.get(base["row"], np.nan)
        out.append({
            "table": spec.number, "half": half, "target": target, "modelmix": mm["row"], "dice": mm["dice_mean"],
            "baseline": base["row"], "baseline_dice": base["dice_mean"], "gap": mm["dice_mean"] - base["dice_mean"],
            "paper_dice": paper_mm, "paper_baseline_dice": paper_base, "paper_gap": paper_mm - paper_base,
        })
    return pd.DataFrame(out, columns=columns)


def ours_vs_paper(rows: pd.DataFrame) -> pd.DataFrame:
    """Average Dice of every table row and target we ran, next to the paper's (NaN where it has none).

    Returns:
        Columns ``table, half, target, row, role, ours, paper``.
    """
    columns = ["table", "half", "target", "row", "role", "ours", "paper"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    summary = summarize_results(rows)
    summary = summary[summary["structure"] == "Avg"].rename(columns={"dice_mean": "ours"})
    paper = published()
    paper = paper[(paper["metric"] == "dice") & (paper["structure"] == "Avg")]
    paper = paper.rename(columns={"method": "row", "mean": "paper"})[["table", "half", "target", "row", "paper"]]
    return summary.merge(paper, on=["table", "half", "target", "row"], how="left")[columns]


def rank_agreement(pairs: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rank correlation of our and the paper's average Dice over the rows of each table.

    Args:
        pairs: :func:`ours_vs_paper`'s frame.

    Returns:
        Columns ``table, n, spearman`` (NaN with fewer than 3 rows having both numbers).
    """
    out = []
    for table, part in pairs.dropna(subset=["ours", "paper"]).groupby("table"):
        rho = spearmanr(part["ours"], part["paper"]).statistic if len(part) >= 3 else np.nan
        out.append({"table": int(table), "n": len(part), "spearman": float(rho)})
    return pd.DataFrame(out, columns=["table", "n", "spearman"])


def seed_spread(rows: pd.DataFrame) -> pd.DataFrame:
    """How much a row's average Dice moves between seeds: is a gap between two rows larger than that?

    Returns:
        One line per (table, half, target, row): ``n_seeds``, ``mean`` and ``sd`` (sample std, NaN for one seed)
        of the per-seed average Dice (over volumes and structures).
    """
    columns = ["table", "half", "target", "row", "n_seeds", "mean", "sd"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    keys = ["table", "half", "target", "row"]
    per_seed = annotate(rows).groupby([*keys, "seed"], sort=False)["dice"].mean()
    spread = per_seed.groupby(level=keys, sort=False).agg(n_seeds="count", mean="mean", sd="std")
    return spread.reset_index()[columns]


def qualitative_inputs(
    rows: pd.DataFrame, out_dir: str | Path, data_root: str | Path, table: int, target: str, half: str = "",
    seed: int | None = None,
) -> tuple[dict[str, Case], dict[str, dict[str, np.ndarray]], dict[str, dict[str, float]]]:
    """What :func:`~modelmix_lite.viz.results.plot_qualitative` needs for a Fig. 2/3-style figure of one table and target.

    The worst, median and best cases by average Dice over every row run
    (:func:`~modelmix_lite.evaluate.select_cases`), their volumes from ``data_root``, and each row's prediction
    (``predictions.npz`` of its run under ``out_dir``) and average Dice on them.

    Args:
        seed: the runs shown (default the smallest seed in ``rows``).

    Returns:
        ``(cases, predictions, dice)``: ``{"worst"|"median"|"best": Case}``, ``{row: {case: (X, Y, Z)}}`` and
        ``{row: {case: average Dice}}``.

    Raises:
        DataError: no rows for this table and target, rows made from other data than ``data_root`` (its
            images would not match the predictions), or a missing predictions file.
    """
    spec = get_table(table)
    rows = annotate(rows[rows["table"] == spec.number]) if len(rows) else rows
    if len(rows):
        rows = rows[(rows["target"] == target) & (rows["half"] == half)]
    if not len(rows):
        raise DataError(f"rows: no results of Table {spec.number} on {target} {half}".rstrip())
    seed = int(rows["seed"].min()) if seed is None else seed
    rows = rows[rows["seed"] == seed]
    if not len(rows):
        raise DataError(f"rows: no results of Table {spec.number} on {target} with seed {seed}")
    _check_same_data(rows, data_root)
    selection = select_cases(rows)
    by_subject = {c.subject: c for c in load_split(target, data_root, spec.split) if c.subject in selection.values()}
    predictions, dice = {}, {}
    for (row, method, tasks), part in rows.groupby(["row", "method", "tasks"], sort=False):
        run = load_predictions(run_dir(out_dir, part["profile"].iloc[0], spec.number, method, tasks, seed))
        predictions[row] = {subject: run[subject] for subject in by_subject}
        dice[row] = part.groupby("case")["dice"].mean().to_dict()
    return {title: by_subject[subject] for title, subject in selection.items()}, predictions, dice


def provenance(rows: pd.DataFrame) -> dict[str, str]:
    """Where results come from: profile, device, commit, seeds, data fingerprint, runs and training time."""
    if not len(rows):
        return {key: MISSING for key in ("profile", "device", "commit", "seeds", "data_fingerprint", "runs", "wall")}

    def values(column: str) -> str:
        return ", ".join(str(v) for v in sorted(set(rows[column].fillna("unknown"))))

    runs = rows.drop_duplicates(["table", "method", "tasks", "seed"])
    return {
        "profile": values("profile"), "device": values("device"), "commit": values("commit"),
        "seeds": values("seed"), "data_fingerprint": values("data_fingerprint"), "runs": str(len(runs)),
        "wall": f"{runs['wall_s'].sum() / 60:.1f} min",
    }


def minutes_to_dice(log_rows: Sequence[Mapping], key: str, threshold: float) -> float | None:
    """Training minutes until the validation score ``key`` (``"val_acdc"``, ``"val_dice"``) first reaches ``threshold``.

    From a run's ``log.jsonl`` rows: each training row covers the steps since the previous one at its
    ``steps_per_s``, so the sum is the time spent in optimizer steps (validation passes are not counted).

    Returns:
        The minutes, or None when the score never reaches ``threshold``.
    """
    minutes, last_step = 0.0, 0
    for row in log_rows:
        if "steps_per_s" in row:
            minutes += (row["step"] - last_step) / row["steps_per_s"] / 60
            last_step = row["step"]
        elif row.get(key, -math.inf) >= threshold:
            return round(minutes, 2)
    return None


def run_diagnostics(out_dir: str | Path, profile: str, table: int) -> pd.DataFrame:
    """What each run of a sweep did: its batch and input size, steps, best and final validation Dice, final loss.

    Reads ``config.json`` and ``log.jsonl`` of every run directory under ``out_dir/<profile>/runs/table<N>/``
    (none: an empty frame, e.g. for results committed without their runs).

    Returns:
        Columns ``method, tasks, seed, batch_size, size, steps, best_step, best_val_dice, final_val_dice,
        final_loss``.
    """
    columns = ["method", "tasks", "seed", "batch_size", "size", "steps", "best_step", "best_val_dice",
               "final_val_dice", "final_loss"]
    folder = Path(out_dir) / profile / "runs" / f"table{get_table(table).number}"
    out = []
    for run in sorted(folder.glob("*/config.json")):
        record = json.loads(run.read_text())
        log = run.parent / "log.jsonl"
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
        val = [r for r in lines if "val_dice" in r]
        losses = [r for r in lines if "loss" in r]
        best = max(val, key=lambda r: r["val_dice"]) if val else {}
        out.append({
            "method": record["method"], "tasks": "+".join(record["tasks"]), "seed": record["config"]["seed"],
            "batch_size": record["config"]["batch_size"], "size": record["config"]["size"],
            "steps": lines[-1]["step"] if lines else 0, "best_step": best.get("step", np.nan),
            "best_val_dice": best.get("val_dice", np.nan),
            "final_val_dice": val[-1]["val_dice"] if val else np.nan,
            "final_loss": losses[-1]["loss"] if losses else np.nan,
        })
    return pd.DataFrame(out, columns=columns)


def error_breakdown(
    rows: pd.DataFrame, out_dir: str | Path, data_root: str | Path, table: int, distance_mm: float = 20.0,
    real: bool = False,
) -> pd.DataFrame:
    """Every scored volume's Dice next to where its errors lie (:func:`~modelmix_lite.metrics.errors_by_distance`).

    Reads each run's ``predictions.npz`` under ``out_dir`` (``real``: a sweep of :data:`REAL_TABLES`) and the
    scored volumes from ``data_root``.

    Returns:
        Columns ``row, half, method, tasks, seed, target, case, structure, dice`` (as recorded), ``dice_near``
        (the prediction cut to within ``distance_mm`` of the heart) and ``remote`` (share of the predicted
        structure farther away).

    Raises:
        DataError: rows made from other data than ``data_root``, or a run without its predictions file.
    """
    spec = get_table(table, real)
    columns = ["row", "half", "method", "tasks", "seed", "target", "case", "structure", "dice", "dice_near",
               "remote"]
    rows = annotate(rows[rows["table"] == spec.number]) if len(rows) else rows
    if not len(rows):
        return pd.DataFrame(columns=columns)
    _check_same_data(rows, data_root)
    cases: dict[str, dict[str, Case]] = {}
    out = []
    keys = ["row", "half", "method", "tasks", "seed", "profile"]
    for (row, half, method, tasks, seed, profile), part in rows.groupby(keys, sort=False):
        predictions = load_predictions(run_dir(out_dir, sweep_folder(profile, real), spec.number, method, tasks, seed))
        for (target, subject), scored in part.groupby(["target", "case"], sort=False):
            if target not in cases:
                cases[target] = {c.subject: c for c in load_split(target, data_root, spec.split)}
            case, recorded = cases[target][subject], scored.set_index("structure")["dice"]
            split = errors_by_distance(predictions[subject], case.label, target, case.spacing, distance_mm)
            out.extend({"row": row, "half": half, "method": method, "tasks": tasks, "seed": seed, "target": target,
                        "case": subject, "structure": structure, "dice": recorded[structure], **values}
                       for structure, values in split.items())
    return pd.DataFrame(out, columns=columns)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _epilog() -> str:
    lines = ["tables (methods marked * are not implemented yet and are skipped):"]
    for spec in TABLES.values():
        rows = ", ".join(dict.fromkeys(
            f"{e.row}{'' if e.row == e.key else '=' + e.key}{'' if e.method in METHODS else '*'}"
            for e in spec.entries))
        combos = ", ".join(dict.fromkeys(e.combo for e in spec.entries))
        lines.append(f"  {spec.number} ({spec.split} split): {rows}\n     on {combos}")
    return "\n".join(lines)


def main_reproduce(argv: Sequence[str]) -> int:
    """``reproduce`` command: sweep one paper table, then print ours next to the paper's Dice; return 0."""
    parser = argparse.ArgumentParser(
        prog="python -m modelmix_lite reproduce",
        description="Train and score every row of a paper table for every seed (resumes where it stopped); "
        "results go to OUT/PROFILE/tableN.jsonl.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--table", required=True, help="paper table: 1, 2 or 3")
    parser.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data root (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0 for smoke, else 0,1,2)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="only these methods, e.g. ablation1 ablation4 pce (#N may be spelled ablationN; "
                        "a row under another preset: ablation4@released_code)")
    parser.add_argument("--combos", nargs="+", default=None, help="only these task combinations, e.g. myops+mscmr")
    parser.add_argument("--real", action="store_true",
                        help="the tables on the public data (ACDC + MSCMRseg; results in OUT/PROFILE-real/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(list(argv))
    spec = get_table(args.table, args.real)
    seeds = None if args.seeds is None else parse_seeds(args.seeds)
    path = run_table(spec.number, args.profile, args.data, args.out, seeds, args.methods, not args.quiet, args.combos,
                     real=args.real)
    if not path.is_file():
        print(f"results: none (every run of Table {spec.number} was skipped; see {path.parent / 'sweep.json'})")
        return 0
    rows = load_results(path)
    print(f"results: {path} ({len(rows)} rows)")
    if args.real:  # the paper has no numbers for these pairings: ours only
        summary = summarize_results(rows)
        with pd.option_context("display.width", 250, "display.max_columns", 40):
            print(summary.pivot_table(index="row", columns=["target", "structure"], values="dice_mean").round(3))
        return 0
    halves = list(dict.fromkeys(e.combo for e in spec.entries)) if spec.number == 1 else [""]
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        for half in halves:
            print(f"\nTable {spec.number} {half} Dice, ours vs paper:")
            print(comparison_table(rows, spec.number, "dice", half).to_string())
    return 0

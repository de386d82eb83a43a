"""Running a sweep: train every row × seed of a table spec, score it, and record the results.

What each table trains and scores is a :class:`~modelmix_lite.reproduce.specs.TableSpec` in
:data:`~modelmix_lite.reproduce.specs.TABLES`:

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

import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import TrainConfig, config_to_dict, device_name, pick_device, resolve_config
from ..data.fingerprint import data_fingerprint
from ..data.readers import load_split
from ..errors import ConfigError, DataError
from ..evaluate import predict_volume
from ..files import atomic_write, write_text_atomic
from ..methods import METHODS
from ..metrics import evaluate_volume
from ..provenance import git_commit
from ..rundir import Run, run_geometry, run_name
from ..train import train
from .specs import Entry, RESULT_COLUMNS, TableSpec, default_seeds, get_table, select_entries, sweep_folder


def results_path(out_dir: str | Path, profile: str, table: int) -> Path:
    """``out_dir/<profile>/table<N>.jsonl``."""
    return Path(out_dir) / profile / f"table{table}.jsonl"


def run_dir(out_dir: str | Path, profile: str, table: int, method: str, tasks: str, seed: int) -> Path:
    """``out_dir/<profile>/runs/table<N>/<method>__<tasks>__seed<k>`` (``#`` spelled ``ablation``, ``@`` as
    ``-``: ``ablation4-released_code``)."""
    name = f"{run_name(method)}__{tasks}__seed{seed}"
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


def _jsonl(rows: pd.DataFrame) -> str:
    """Rows as JSON lines; NaN (an HD with one empty mask) is written as ``null``."""
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return "".join(json.dumps(record) + "\n" for record in records)


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results file (or a run's ``evaluation.jsonl``) into a frame with :data:`~modelmix_lite.reproduce.specs.RESULT_COLUMNS`.

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
    record = Run(run).record
    device = pick_device(record["config"]["device"])
    models = Run(run).models("best.pt", device)
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


def _device_label(device: torch.device) -> str:
    """The ``device`` column: ``"cpu"``, or ``"cuda:0 (NVIDIA H200)"``."""
    return f"{device} ({device_name(device)})" if device.type == "cuda" else str(device)


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
        write_text_atomic(run / "trained_in.json", json.dumps({"run": str(source.relative_to(out))}) + "\n")
    scores, predictions = score_run(run if source is None else source, root, spec.split, entry.targets)
    meta = {
        "table": spec.number, "method": entry.key, "tasks": entry.combo, "seed": seed, "profile": profile,
        "device": _device_label(pick_device(config.device)), "commit": git_commit(),
        "wall_s": round(time.perf_counter() - tick, 2), "data_fingerprint": data_fingerprint(root, entry.tasks),
    }
    rows = scores.assign(**meta)[list(RESULT_COLUMNS)]
    with atomic_write(run / "predictions.npz", suffix=".npz") as tmp:
        np.savez_compressed(tmp, **{k: v.astype(np.uint8) for k, v in predictions.items()})
    write_text_atomic(evaluation, _jsonl(rows))  # written last: its presence marks the run finished
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
        record = Run(other).record
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
    write_text_atomic(path, json.dumps(status, indent=2) + "\n")


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
    (:func:`~modelmix_lite.reproduce.specs.select_entries`) and seed, scores its ``best.pt`` on the table's split of its targets
    (:func:`score_run`) and appends the rows to ``out_dir/<profile>/table<N>.jsonl``. Rows whose method
    is not in :data:`~modelmix_lite.methods.METHODS` are skipped with a warning and recorded in
    ``sweep.json`` as ``"skipped: not implemented"``. One progress bar covers the whole sweep.

    Args:
        seeds: default :func:`~modelmix_lite.reproduce.specs.default_seeds` of the profile.
        methods, combos: restrict the sweep to these methods (``"#4"``, ``"ablation4"``, ``"pce"``...) and task
            combinations (``"myops+mscmr"``).
        keep_checkpoints: False deletes a run's ``*.pt`` once it is scored (its rows and predictions stay).
        real: sweep :data:`~modelmix_lite.reproduce.specs.REAL_TABLES` (the public data) into ``out_dir/<profile>-real/``.

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


SMOKE_SWEEP: dict[int, dict[str, list[str]]] = {1: {"methods": ["#1", "#2", "#4"], "combos": ["myops+mscmr"]}}
"""What the smoke profile sweeps (a minimal Table 1: #1, #2 and #4 on MyoPS+MSCMRseg, one seed)."""


@dataclass(frozen=True)
class TableResults:
    """One table's rows, the sweep folder its runs live in (None: no runs at hand) and where they came from."""

    rows: pd.DataFrame
    out_dir: Path | None
    source: str


def load_or_sweep(
    numbers: Iterable[int], profile: str, data_root: str | Path, results_dir: str | Path, seed: int = 0,
    retrain: bool = False, sweep_missing: bool = False,
) -> dict[int, TableResults]:
    """Tables 1-3 as the tutorial shows them: recorded results where ``results_dir`` holds them, else a sweep.

    Per table: not in ``numbers`` -> empty, "not requested"; recorded in ``results_dir/<profile>/`` (and not
    ``retrain``) -> loaded; the smoke profile -> :data:`SMOKE_SWEEP` (one ``seed``) swept into a temporary
    folder; ``retrain`` -> swept into a temporary folder; ``sweep_missing`` -> swept into ``results_dir``;
    otherwise empty, with the command that records it.
    """
    empty = pd.DataFrame(columns=list(RESULT_COLUMNS))
    temporary = retrain or profile == "smoke"
    sweep_dir: Path | None = None if temporary else Path(results_dir)  # a temporary one is made when needed
    out: dict[int, TableResults] = {}
    for n in (1, 2, 3):
        committed = results_path(results_dir, profile, n)
        if n not in numbers:
            out[n] = TableResults(empty, None, "not requested")
        elif committed.is_file() and not retrain:
            out[n] = TableResults(load_results(committed), Path(results_dir), f"loaded from {committed}")
        elif profile == "smoke" and n not in SMOKE_SWEEP:
            out[n] = TableResults(empty, None, "not run (the smoke profile sweeps Table 1 only)")
        elif profile != "smoke" and not (retrain or sweep_missing):
            out[n] = TableResults(empty, None, f"no recorded results: python -m modelmix_lite reproduce --table {n} "
                                               f"--profile {profile}")
        else:
            sweep_dir = sweep_dir or Path(tempfile.mkdtemp(prefix="modelmix_sweep_"))
            options = SMOKE_SWEEP[n] if profile == "smoke" else {}
            path = run_table(n, profile, data_root, sweep_dir, [seed] if profile == "smoke" else None,
                             progress=False, keep_checkpoints=not temporary, **options)
            rows = load_results(path) if path.is_file() else empty
            out[n] = TableResults(rows, sweep_dir, f"trained now, in {path.parent}")
    return out

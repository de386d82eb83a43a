"""Small helpers the tutorial notebooks call, so the notebooks hold prose and calls, not logic."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .checkpoints import load_checkpoint
from .config import PROFILES, TrainConfig, config_to_dict
from .data.fingerprint import data_fingerprint
from .data.phantom import ensure_phantom
from .data.tasks import TASKS
from .errors import ConfigError, DataError
from .files import write_text_atomic
from .provenance import REPO_ROOT, describe_environment, display_path, in_colab, in_source_checkout
from .rundir import Run, finished_run
from .train import train

BOOK_TIMINGS = REPO_ROOT / "benchmarks" / "results" / "make_book_cpu.json"
"""The recorded ``make book`` timings (cpu profile, per notebook) that :func:`expected_runtime` reports."""


def expected_runtime(notebook: str, timings: Path = BOOK_TIMINGS) -> str:
    """One line for the top of a notebook: how long it ran in the latest recorded ``make book`` (cpu profile),
    with that record's commit and machine; the smoke profile takes seconds, the gpu profile is not measured."""
    try:
        record = json.loads(timings.read_text())
        run = record["runs"][0]
        seconds = run["notebooks_s"][notebook]
    except (OSError, KeyError, IndexError, json.JSONDecodeError):
        return "Expected runtime: not recorded for this notebook (smoke profile: seconds)."
    return (f"Expected runtime: cpu profile about {max(1, round(seconds / 60))} min, training included (make book at "
            f"commit {run['commit']}; {record['machine']}; a rerun that loads its runs is faster); smoke profile: "
            "seconds; gpu profile: not measured yet.")


def state_runtime(notebook: str) -> str:
    """Print :func:`expected_runtime` for Colab and Jupyter and glue it as ``runtime`` for the book's page."""
    from IPython.display import Markdown

    line = expected_runtime(notebook)
    glue("runtime", Markdown(f"*{line}*"))
    print(line)
    return line


def resolve_profile(profile: str | None) -> str:
    """Return the run profile: ``None``/``"auto"`` -> ``"gpu"`` when CUDA is available, else ``"cpu"``.

    Raises:
        ConfigError: on a name that is neither ``"auto"`` nor a key of :data:`~modelmix_lite.config.PROFILES`.
    """
    if profile is None or profile == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if profile not in PROFILES:
        raise ConfigError(f"profile: unknown profile {profile!r}; expected one of {', '.join(PROFILES)} or 'auto'")
    return profile


def phantom_dir(preset: str, seed: int = 0) -> Path:
    """The folder of the notebooks' phantom of ``preset`` and ``seed``.

    ``data/phantom`` for the ``default`` preset with seed 0, else ``data/phantom_<preset>[_seed<seed>]``, so
    a smoke phantom is never mistaken for the book's. ``data/`` is ``/content/data`` on Colab, the
    repository's in a source checkout, else ``./data``.
    """
    if in_colab():
        base = Path("/content/data")
    else:
        base = REPO_ROOT / "data" if in_source_checkout() else Path.cwd() / "data"
    name = "phantom" + ("" if preset == "default" else f"_{preset}") + ("" if seed == 0 else f"_seed{seed}")
    return base / name


def available_tasks(root: str | Path) -> list[str]:
    """The tasks whose dataset folder (``ACDC_dataset/``, ``MSCMR_dataset/``, ``MyoPS/``) is in ``root``."""
    return [name for name, spec in TASKS.items() if (Path(root) / spec.folder).is_dir()]


def resolve_data_root(data_root: str | Path | None, profile: str, seed: int = 0) -> Path:
    """Return the data root a notebook reads from.

    ``None`` means the synthetic phantom in :func:`phantom_dir`: preset ``"smoke"`` for the smoke profile,
    ``"default"`` otherwise; reused when that folder already holds a dataset, else generated there (into a
    temporary folder first, so an interrupted run never leaves half a phantom). A given path is returned
    after checking that it holds at least one dataset folder.

    Raises:
        DataError: when a given ``data_root`` does not exist or holds none of the dataset folders, or the
            phantom's folder is taken by something else.
        ConfigError: on an unknown ``profile``, or a ``data_root`` that is not a path (papermill ``-p data_root 5``).
    """
    if data_root is not None:
        if not isinstance(data_root, (str, Path)):
            raise ConfigError(f"data_root: expected a folder path (a string) or None, got {data_root!r}")
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DataError(f"data_root: {root} does not exist or is not a folder")
        if not available_tasks(root):
            folders = ", ".join(f"{spec.folder}/" for spec in TASKS.values())
            raise DataError(f"data_root: {root} holds none of the dataset folders {folders}")
        return root
    preset = "smoke" if resolve_profile(profile) == "smoke" else "default"
    root = phantom_dir(preset, seed)
    return ensure_phantom(root, preset, seed)


REAL_DATA_ENV = "MODELMIX_REAL_DATA"
"""Environment variable naming a data root of the public releases (``download``), which notebook 01 shows."""


def real_data_root() -> Path | None:
    """The real data root named by :data:`REAL_DATA_ENV` when it holds a dataset, else None (the book then shows
    the phantom only, and says so)."""
    value = os.environ.get(REAL_DATA_ENV)
    return Path(value) if value and available_tasks(value) else None


def real_data_note(root: Path | None) -> str:
    """A sentence for the page: which real data it shows, or that this build had none."""
    if root is None:
        return (f"This build had no real data (`{REAL_DATA_ENV}` unset, or its download failed), so the page shows "
                "the phantom only; set it to a data root that `download` filled to see the patients here.")
    return f"Below, one validation case of each public dataset in `{display_path(root)}`, drawn as the phantom above."


def with_label_and_scribble(cases: Sequence[Any]) -> list[Any]:
    """The cases that carry both a ground truth and a scribble (what scribble statistics need)."""
    return [case for case in cases if case.label is not None and case.scribble is not None]


def task_table() -> pd.DataFrame:
    """One row per task: dataset, input sequences, classes and the structures its results report."""
    rows = [
        {"task": spec.name, "dataset": spec.title, "sequences": ", ".join(spec.sequences),
         "classes": ", ".join(spec.classes), "evaluated": ", ".join(spec.structures)}
        for spec in TASKS.values()
    ]
    return pd.DataFrame(rows).set_index("task")


def glue(name: str, value: object, display: bool = False) -> None:
    """``myst_nb.glue`` when it is installed (the book build); nothing otherwise (Colab, plain Jupyter).

    NumPy scalars are glued as Python numbers: their NumPy 2 repr (``np.float64(0.1)``) defeats the
    format specs of ``{glue:text}`name:.1%```.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value.item() if isinstance(value, np.generic) else value, display=display)


def runs_dir(notebook: str, profile: str) -> Path:
    """The folder a notebook keeps its training runs in: ``runs/<notebook>/<profile>`` of the repository in a
    source checkout, else of the working folder."""
    return (REPO_ROOT if in_source_checkout() else Path.cwd()) / "runs" / notebook / profile


def train_or_load(
    config: TrainConfig, root: Path, run: Path, method: str, tasks: Sequence[str], retrain: bool = False,
) -> bool:
    """Train ``method`` on ``tasks`` into ``run`` unless it already holds that finished run; True if it trained.

    A run is reused when :func:`~modelmix_lite.evaluate.finished_run` finds its ``config.json`` equal to the one
    it would train with, its ``training_curves.png`` present and the data of the same
    :func:`~modelmix_lite.evaluate.data_fingerprint`. The check does not cover the library's code: after
    changing it, pass ``retrain``.
    """
    record = {"method": method, "tasks": list(tasks), "config": config_to_dict(config)}
    if not retrain and finished_run(run, record, data_fingerprint(root, tasks)):
        return False
    train(config, root, run, method, list(tasks), overwrite=True)
    return True


def write_provenance(folder: Path, runs: Mapping[str, Path], trained: Mapping[str, bool], **settings: object) -> dict:
    """Record what produced a notebook's numbers in ``folder/provenance.json``; return the record.

    The record holds ``settings`` (profile, seed, tasks, split, data root...), the environment
    (:func:`~modelmix_lite.provenance.describe_environment`) and, per run label, its directory, whether this
    session trained it, its :attr:`~modelmix_lite.rundir.Run.provenance` (data fingerprint, device, wall
    time), the step of its ``best.pt`` and its ``config.json`` record.
    """
    record = {
        **{key: display_path(value) if isinstance(value, Path) else value for key, value in settings.items()},
        "environment": describe_environment(),
        "runs": {
            label: {
                "dir": display_path(run),
                "trained_now": trained[label],
                **Run(run).provenance,
                "best_step": load_checkpoint(run / "best.pt")["step"],
                "config": Run(run).record,
            }
            for label, run in runs.items()
        },
    }
    write_text_atomic(folder / "provenance.json", json.dumps(record, indent=2))
    return record

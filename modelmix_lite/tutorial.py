"""Small helpers the tutorial notebooks call, so the notebooks hold prose and calls, not logic."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .checkpoints import load_checkpoint
from .config import PROFILES, TrainConfig, config_to_dict, pick_device
from .data.phantom import ensure_phantom
from .data.tasks import TASKS
from .errors import ConfigError, DataError
from .evaluate import RUN_PROVENANCE, data_fingerprint, finished_run
from .files import write_text_atomic
from .rundir import Run, read_json
from .train import train

REPO_ROOT = Path(__file__).resolve().parents[1]


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules


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


def in_source_checkout() -> bool:
    """True when the package is imported from a source checkout (editable install), not from site-packages."""
    return (REPO_ROOT / "pyproject.toml").is_file()


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


def _git(*args: str) -> str:
    command = ["git", "--no-optional-locks", "-C", str(REPO_ROOT), *args]  # never takes the index lock
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout.strip()


def git_state() -> tuple[str, bool] | None:
    """``(full commit hash, local changes?)`` of the source checkout, or ``None`` outside one.

    Changes under ``results/`` (where sweeps append their rows) do not count as local changes.
    """
    if not in_source_checkout():
        return None
    try:
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
        return _git("rev-parse", "HEAD"), bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str | None:
    """Short commit hash of the source checkout (``+dirty`` with local changes, :func:`git_state`), or ``None``."""
    state = git_state()
    return None if state is None else state[0][:7] + ("+dirty" if state[1] else "")


def describe_environment() -> dict[str, str | bool | None]:
    """Versions, device and commit, printed at the top of each notebook for provenance."""
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "modelmix_lite": version("modelmix_lite"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": "cuda" if cuda else "cpu",
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "colab": in_colab(),
        "commit": git_commit(),
    }


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
    :func:`~modelmix_lite.evaluate.data_fingerprint`. A trained run gets a
    :data:`~modelmix_lite.evaluate.RUN_PROVENANCE` file (data root and fingerprint, wall time, device,
    environment). The check does not cover the library's code: after changing it, pass ``retrain``.
    """
    fingerprint = data_fingerprint(root, tasks)
    record = {"method": method, "tasks": list(tasks), "config": config_to_dict(config)}
    if not retrain and finished_run(run, record, fingerprint):
        return False
    start = time.perf_counter()
    train(config, root, run, method, list(tasks), overwrite=True)
    info = {"data_root": str(root), "data_fingerprint": fingerprint, "wall_s": round(time.perf_counter() - start, 1),
            "device": str(pick_device(config.device)), "environment": describe_environment()}
    write_text_atomic(run / RUN_PROVENANCE, json.dumps(info, indent=2))
    return True


def write_provenance(folder: Path, runs: Mapping[str, Path], trained: Mapping[str, bool], **settings: object) -> dict:
    """Record what produced a notebook's numbers in ``folder/provenance.json``; return the record.

    The record holds ``settings`` (profile, seed, tasks, split, data root...), the environment
    (:func:`describe_environment`) and, per run label, its directory, whether this session trained it, its
    :data:`~modelmix_lite.evaluate.RUN_PROVENANCE` (data fingerprint, wall time, device), the step of its
    ``best.pt`` and its ``config.json`` record.
    """
    record = {
        **{key: str(value) if isinstance(value, Path) else value for key, value in settings.items()},
        "environment": describe_environment(),
        "runs": {
            label: {
                "dir": str(run),
                "trained_now": trained[label],
                **read_json(run / RUN_PROVENANCE),
                "best_step": load_checkpoint(run / "best.pt")["step"],
                "config": Run(run).record,
            }
            for label, run in runs.items()
        },
    }
    write_text_atomic(folder / RUN_PROVENANCE, json.dumps(record, indent=2))
    return record

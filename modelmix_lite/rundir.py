"""The run directory's guards: one training at a time (an OS file lock) and a marker that says ``train`` made it.

``train`` holds :func:`locked` for its whole run, so a second training into the same ``--out`` is refused
before it touches anything, and writes :data:`MARKER` when it creates the directory: ``--overwrite`` deletes
only folders that carry it (never, say, a folder that merely holds a file named ``config.json``).

It also reads what ``train`` wrote there: the run's configuration record (:func:`read_run_config`, checked
against a resume by :func:`check_run_dir`), its log (:func:`read_log`, :func:`truncate_log` on resume) and its
folder name (:func:`run_name`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .config import TrainConfig, config_from_dict, config_to_dict
from .data.fingerprint import data_fingerprint
from .errors import ConfigError, DataError
from .files import write_text_atomic
from .methods import get_method
from .models import TaskModelSet

LOCK = ".lock"
"""The lock file inside a run directory (``flock``-ed by the training that writes there)."""
MARKER = ".modelmix_run"
"""Written by ``train`` into every run directory it creates; ``--overwrite`` refuses a folder without it."""
CONFIG = "config.json"
"""A run's record: ``{"method", "tasks", "config"}`` (the resolved :class:`~modelmix_lite.config.TrainConfig`)."""
LOG = "log.jsonl"
"""A run's log: one JSON row per log interval (the loss terms) and per validation (``val_*``)."""
CURVES = "training_curves.png"
"""Drawn by ``train`` after its last step: a run without it did not finish."""
DATA_RECORD = "data.json"
"""A run's provenance, written by ``train``: ``{"data_root", "data_fingerprint", "device", "environment"}`` when it
starts (the environment of :func:`~modelmix_lite.provenance.describe_environment`: versions and commit), plus
``{"steps", "wall_s"}`` when it reaches its last step (``wall_s``: of the invocation that finished it)."""


def read_json(path: str | Path) -> dict:
    """A JSON file of a run directory; :class:`ConfigError` when it is missing, :class:`DataError` when it does
    not parse."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: not found (is {path.parent} a run directory?)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


class Run:
    """A run directory that ``train`` wrote: its record, typed configuration, log and whether it finished.

    The one reader of a run directory's files; ``train`` writes them (``config.json`` at the start, ``log.jsonl``
    as it goes, ``training_curves.png`` at the end). Reading is lazy: a missing or broken file is an error when
    its property is read, naming the file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def record(self) -> dict:
        """``config.json``: ``{"method", "tasks", "config"}`` as ``train`` wrote it."""
        return read_json(self.path / CONFIG)

    @property
    def method(self) -> str:
        return self.record["method"]

    @property
    def tasks(self) -> list[str]:
        return list(self.record["tasks"])

    @property
    def config(self) -> TrainConfig:
        """The run's :class:`~modelmix_lite.config.TrainConfig` (fields added since it was recorded take their
        defaults)."""
        return config_from_dict(self.record["config"])

    @property
    def log(self) -> list[dict]:
        """The rows of its :data:`LOG` (:func:`read_log`)."""
        return read_log(self.path)

    @property
    def provenance(self) -> dict:
        """Its :data:`DATA_RECORD` (data root and fingerprint, device, environment; steps and wall time once
        finished), ``{}`` for a run recorded before it existed."""
        path = self.path / DATA_RECORD
        return read_json(path) if path.is_file() else {}

    @property
    def data_root(self) -> Path | None:
        """The data root the run was trained on (:data:`DATA_RECORD`), or None for a run recorded before it."""
        root = self.provenance.get("data_root")
        return None if root is None else Path(root)

    @property
    def finished(self) -> bool:
        """Whether training reached its last step (``train`` draws :data:`CURVES` then)."""
        return (self.path / CURVES).is_file()

    def models(self, checkpoint: str = "best.pt", device: str | torch.device = "cpu") -> TaskModelSet:
        """The task models with the weights of ``checkpoint``, in eval mode on ``device``.

        The architecture is rebuilt from :attr:`config` and :attr:`method` (tasks, ``base``, ``norm``,
        ``core.dropout``, the method's shared encoder and ``core.encoder_bn``); the weights are the ``models.``
        entries of the checkpoint's ``model`` state (the training objective's ``state_dict``). The global RNG
        is left alone.

        Raises:
            ConfigError: ``config.json`` or the checkpoint is missing.
            DataError: the checkpoint holds no ``model`` state, or one that does not fit the architecture.
        """
        config, method, path = self.config, get_method(self.method), self.path / checkpoint
        if not path.is_file():
            raise ConfigError(f"{path}: checkpoint not found (is {self.path} a finished run?)")
        dropout = None if config.core.dropout == "none" else config.core.dropout
        models = TaskModelSet(self.tasks, config.base, dropout, config.norm, shared_encoder=method.shared_encoder,
                              aux_decoder=method.aux_decoder, generator=torch.Generator(),
                              encoder_bn=self.record["config"]["core"].get("encoder_bn", "shared"))  # older: one BN
        state = load_checkpoint(path)
        if "model" not in state:
            raise DataError(f"{path}: no 'model' state in this checkpoint")
        try:
            models.load_state_dict({k.removeprefix("models."): v for k, v in state["model"].items()})
        except RuntimeError as err:
            raise DataError(f"{path}: weights do not fit the run's config.json: {err}") from None
        return models.to(device).eval()


def run_name(method: str) -> str:
    """A method key as a folder name: ``"#4"`` -> ``"ablation4"``, ``"#4@released_code"`` ->
    ``"ablation4-released_code"`` (no ``#`` or ``@`` in paths)."""
    return method.replace("#", "ablation").replace("@", "-")


def read_log(run_or_log: str | Path) -> list[dict]:
    """The rows of a run's :data:`LOG` (a run directory or the file itself); ``[]`` when there is none yet."""
    path = Path(run_or_log)
    path = path / LOG if path.is_dir() else path
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def locked(out: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on run directory ``out`` (created if absent) until the block ends.

    The lock is ``flock`` on ``out/.lock``: the operating system releases it when the process exits or
    crashes, so a killed run never leaves a stale lock. A folder this call created is removed again when the
    block leaves it holding nothing but the lock (e.g. a refused ``--resume``).

    Raises:
        ConfigError: another process holds the lock, or ``out`` is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, not a run directory; choose another --out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{out}: another training is writing to this run directory (it is locked); "
                          "wait for it to finish or choose another --out") from None
    try:
        yield out
    finally:
        if created and [p.name for p in out.iterdir()] == [LOCK]:
            shutil.rmtree(out)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def has_content(out: Path) -> bool:
    """Whether ``out`` exists and holds anything besides the lock file."""
    return out.is_dir() and any(p.name != LOCK for p in out.iterdir())


def is_run_dir(out: Path) -> bool:
    """Whether ``out`` carries the :data:`MARKER` that ``train`` writes."""
    return (out / MARKER).is_file()


def reset(out: Path) -> None:
    """Empty ``out`` (keeping the held lock file) and write the :data:`MARKER`."""
    out.mkdir(parents=True, exist_ok=True)
    for path in out.iterdir():
        if path.name == LOCK:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    write_text_atomic(out / MARKER, json.dumps({"written_by": "modelmix_lite train"}) + "\n")


RESUME_FREE = ("steps", "epochs", "log_every", "val_every", "ckpt_every", "device", "compile")
"""Fields a resumed run may change: they do not alter the trajectory of the parameters (``steps`` and ``epochs``
only with the constant learning rate: the cosine schedule depends on the run's length)."""


def read_run_config(path: Path) -> dict:
    """A run's ``config.json`` record (``method``, ``tasks``, ``config``) to resume from; :class:`ConfigError`
    naming the file if it is missing (:func:`read_json`), not JSON or not such a record."""
    try:
        record = read_json(path)
    except DataError as err:
        raise ConfigError(f"{err}; cannot resume from it") from None
    if not (isinstance(record, dict) and isinstance(record.get("method"), str) and isinstance(record.get("tasks"), list)
            and isinstance(record.get("config"), dict)):
        raise ConfigError(f"{path}: not a run configuration (expected method, tasks and config); cannot resume")
    return record


def check_run_dir(out: Path, config: TrainConfig, method: str, tasks: list[str], overwrite: bool,
                     resume: bool) -> None:
    """Check run directory ``out`` against the flags of a training (every rank, no writes); ConfigError on a clash:
    nothing to resume, a resume with another method, tasks or trajectory (:data:`RESUME_FREE`), an existing
    directory without ``overwrite``, or one that :func:`is_run_dir` does not recognise."""
    exists = has_content(out)
    if resume:
        if not (out / "last.pt").is_file():
            raise ConfigError(f"{out}: nothing to resume (no last.pt)")
        recorded = read_run_config(out / "config.json")
        if (recorded["method"], recorded["tasks"]) != (method, tasks):
            raise ConfigError(
                f"{out}: run was {recorded['method']} on {','.join(recorded['tasks'])}, "
                f"not {method} on {','.join(tasks)}"
            )
        old, new = recorded["config"], config_to_dict(config)
        free = RESUME_FREE if config.lr_schedule == "constant" else RESUME_FREE[2:]  # the decay needs the length
        changed = [k for k in new if k not in free and old.get(k) != new[k]]
        if changed:
            raise ConfigError(f"{out}: cannot resume with changed {', '.join(changed)} (see config.json)")
    elif exists:
        if not overwrite:
            raise ConfigError(f"{out}: run directory exists; pass --overwrite to replace it or --resume to continue")
        if not is_run_dir(out):
            raise ConfigError(f"{out}: not a run directory written by train (no {MARKER}); "
                              "refusing to delete it")


def truncate_log(path: Path, step: int) -> None:
    """Drop the log rows after ``step`` (written between the last checkpoint and a kill: the resumed run redoes them)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def check_trained_data(run_dir: str | Path, data_root: str | Path, tasks: Sequence[str]) -> str | None:
    """``None`` if ``data_root`` holds the data the run was trained on (same :func:`data_fingerprint`), or a
    runs recorded before :data:`DATA_RECORD` existed; else a one-line message naming both roots and fingerprints."""
    recorded = Run(run_dir).provenance
    if not recorded:
        return None
    fingerprint = data_fingerprint(data_root, tasks)
    if recorded.get("data_fingerprint") == fingerprint:
        return None
    return (f"{run_dir}: trained on {recorded.get('data_root')} (data fingerprint {recorded.get('data_fingerprint')}), "
            f"but {data_root} holds other data (fingerprint {fingerprint})")


def finished_run(run_dir: str | Path, record: Mapping, fingerprint: str) -> bool:
    """Whether ``run_dir`` holds a finished run of ``record`` on the data of ``fingerprint`` (train-or-load).

    True when the run's ``config.json`` equals ``record`` (``{"method", "tasks", "config"}``, as
    :func:`modelmix_lite.train.train` writes it), ``training_curves.png`` exists (``train`` writes it after
    its last step, so an interrupted run has none) and its :data:`~modelmix_lite.rundir.DATA_RECORD` records
    ``fingerprint``.

    Raises:
        DataError: ``config.json`` or :data:`~modelmix_lite.rundir.DATA_RECORD` exists but is not valid JSON.
    """
    run = Run(run_dir)
    if not ((run.path / CONFIG).is_file() and run.finished):
        return False
    same_config = run.record == json.loads(json.dumps(record))
    return same_config and run.provenance.get("data_fingerprint") == fingerprint


def run_geometry(run_dir: str | Path, record: Mapping) -> dict[str, float]:
    """``{"size", "spacing_mm"}`` of a run's ``config.json`` record: the slice geometry to predict with.

    Raises:
        ConfigError: a run recorded before slices had a physical pixel size (no ``spacing_mm``).
    """
    config = record["config"]
    if "spacing_mm" not in config:
        raise ConfigError(f"{Path(run_dir) / 'config.json'}: recorded by modelmix_lite < 0.2 (no spacing_mm: "
                          "slices were fitted differently then); retrain the run")
    return {"size": config["size"], "spacing_mm": config["spacing_mm"]}

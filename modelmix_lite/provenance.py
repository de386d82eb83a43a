"""Where a number came from: the source commit, the software versions and the device.

Written into every run directory by ``train`` (its ``data.json``), into every sweep row by ``reproduce`` and
printed at the top of each notebook.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source checkout the package was imported from (meaningful when :func:`in_source_checkout`)."""


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules


def in_source_checkout() -> bool:
    """True when the package is imported from a source checkout (editable install), not from site-packages."""
    return (REPO_ROOT / "pyproject.toml").is_file()


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


def display_path(path: str | Path) -> str:
    """``path`` as a reader should see it: relative to the repository in a source checkout (``data/phantom``,
    ``../shared/data/real``), else to the working folder; never the build machine's absolute path."""
    base = REPO_ROOT if in_source_checkout() else Path.cwd()
    try:
        return os.path.relpath(Path(path).absolute(), base)
    except ValueError:  # another drive (Windows)
        return str(path)

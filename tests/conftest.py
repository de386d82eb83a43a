"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (where ``pyproject.toml`` lives)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the ``smoke`` phantom of every task (seed 0), generated once per session. Read-only."""
    from modelmix_lite.data.phantom import generate_phantom

    root = tmp_path_factory.mktemp("phantom")
    generate_phantom(root, "smoke", 0)
    return root


@pytest.fixture(scope="session", autouse=True)
def slice_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Training's slice cache goes to a session folder, not the user's ``~/.cache`` (notebook kernels inherit it)."""
    import os

    from modelmix_lite.data.slices import CACHE_ENV

    path = tmp_path_factory.mktemp("slice_cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session", autouse=True)
def matplotlib_font_cache() -> None:
    """Build matplotlib's font cache once, in this process, before any test starts a subprocess: on a machine
    that never ran matplotlib, the first import prints "Matplotlib is building the font cache" to stderr,
    which the CLI's one-line-error tests would read as part of the error."""
    import matplotlib.font_manager  # noqa: F401  (importing builds the cache)

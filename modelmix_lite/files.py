"""Writing files safely: every file the library writes goes through :func:`atomic_write`.

A reader never sees a half-written file (the new content replaces the old in one ``os.replace``), a failed
write (disk full, read-only folder, an exception while writing) leaves the old file and no temporary behind,
and new files get the permissions ``open()`` would give them under the umask (``mkstemp`` alone gives 0600).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def default_file_mode() -> int:
    """The mode ``open()`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on a clean exit it replaces ``path``, on an error it goes.

    Args:
        suffix: the temporary file's ending, for writers that choose a format by it (``".nii.gz"``, ``".npz"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)

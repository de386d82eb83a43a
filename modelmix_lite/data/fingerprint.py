"""A data root's fingerprint: what a run was trained on, checked before it is resumed, evaluated or reused."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from .layout import SPLITS, list_cases, split_present


def data_fingerprint(root: str | Path, tasks: Sequence[str]) -> str:
    """SHA-256 (first 16 hex digits) of all the data that runs on ``tasks`` read from ``root``.

    Every file of every split present (:func:`~modelmix_lite.data.layout.list_cases`) contributes its task,
    split, subject, file name and bytes, so the fingerprint changes when a file is added, removed, re-paired or
    edited, and not when the data root is moved. A split that is absent (the real ACDC test set) adds nothing.

    Raises:
        DataError: a task's dataset or one of its splits is missing or malformed.
    """
    digest = hashlib.sha256()
    for task in tasks:
        for split in (s for s in SPLITS if split_present(task, root, s)):
            for files in list_cases(task, root, split):
                for path in (*files.images, files.label, files.scribble):
                    if path is not None:
                        digest.update(f"{task}/{split}/{files.subject}/{path.name}\0".encode())
                        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]

"""Issue 13's small defects, each pinned by a test that failed before its fix."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from modelmix_lite.data.layout import _write_text
from modelmix_lite.data.nifti import save_nifti


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path, umask_022):
    nifti = save_nifti(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.uint8))
    _write_text(tmp_path / "list.txt", "x\n")
    for path in (nifti, tmp_path / "list.txt"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path


def test_ensure_phantom_with_a_bad_seed_leaves_no_temporary_folder(tmp_path):
    from modelmix_lite.data.phantom import ensure_phantom
    from modelmix_lite.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^seed: expected a non-negative integer, got -1$"):
        ensure_phantom(tmp_path / "phantom", seed=-1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_training_on_an_empty_train_split_names_the_folder(tmp_path):
    from modelmix_lite.data.phantom import generate_phantom
    from modelmix_lite.errors import DataError
    from modelmix_lite.train import resolve_config, train

    root = tmp_path / "data"
    generate_phantom(root, "smoke", seed=0, tasks=("mscmr",), progress=False)
    for path in (root / "MSCMR_dataset" / "train").rglob("*.nii.gz"):
        path.unlink()
    config = resolve_config("smoke", ["steps=1", "val_every=0"])
    with pytest.raises(DataError, match=r"MSCMR_dataset: the mscmr train split has no cases; training needs"):
        train(config, root, tmp_path / "run", "pce", ["mscmr"], progress=False, cache_dir=tmp_path / "cache")

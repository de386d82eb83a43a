"""Checkpoint files: written atomically, read with ``weights_only=True``, and a damaged one is one clear error.

``train`` writes ``last.pt`` (the whole training state, for ``--resume``) and ``best.pt`` (the weights with the
best validation Dice); ``evaluate``, ``predict`` and the notebooks read them back through :func:`load_checkpoint`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ConfigError, DataError
from .files import atomic_write


def save_checkpoint(state: Mapping, path: str | Path) -> None:
    """``torch.save`` atomically: write ``path.tmp``, then ``os.replace`` it onto ``path``.

    A failed write (disk full, a read-only folder) leaves no ``.tmp`` behind.
    """
    with atomic_write(path) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: tensors and plain types only).

    Raises:
        ConfigError: no file at ``path``.
        DataError: the file is empty, truncated, not a torch file, or holds objects beyond tensors and plain types
            (which ``weights_only`` refuses to unpickle): "not a checkpoint written by modelmix_lite".
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # noqa: BLE001 - an unpickling, zip, EOF or key error alike: the file is not ours
        state = None
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a checkpoint written by modelmix_lite (or corrupted)")
    return state


def rng_state(generators: Mapping[str, torch.Generator]) -> dict:
    """This process's random state: python, numpy, torch CPU (+ CUDA) and the named generators."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping, generators: Mapping[str, torch.Generator]) -> None:
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for key, g in generators.items():
        g.set_state(state["generators"][key])


def replica_digest(module: nn.Module) -> Tensor:
    """``(P,)`` float64: the sum of each parameter tensor — equal across DDP ranks that stayed in sync."""
    return torch.stack([p.detach().double().sum().cpu() for p in module.parameters()])

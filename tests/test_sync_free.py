"""The ModelMix training step never reads a device tensor back to the host (no host<->device sync).

Three detectors, strongest where a GPU is present:

* CUDA: one step (batch preparation, objective, backward, Adam) under ``torch.cuda.set_sync_debug_mode("error")``;
* meta device: the step's tensors have no data, so any read of them (``.item()``, ``bool``, boolean
  indexing, ``nonzero``, in Python or C++) fails, while the CPU generator's draws still work; and every
  copy of a CPU tensor to the device must be ``non_blocking``;
* CPU: ``Tensor.item``, ``__bool__``, ``tolist`` and ``cpu`` raise while the step runs.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from modelmix_lite.config import resolve_config
from modelmix_lite.methods import METHODS
from modelmix_lite.objective import ModelMixObjective, build_objective
from modelmix_lite.sampling import prepare_batch

TASKS = ["myops", "mscmr"]
CASES = [("paper", "modelmix"), ("released_code", "modelmix"), ("paper", "#2")]  # #2: the L_sup-alone path
READS = ("item", "__bool__", "tolist", "cpu")


def _config(preset: str):
    return resolve_config("smoke", ["size=32", "base=4", "batch_size=4"], preset)


def _cpu_batches(seed: int = 0) -> dict:
    """Valid CPU batches as ``TaskData.next_batch`` returns them: 2 scribbled + 2 unlabeled slices per task."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for task, channels, classes in (("myops", 3, 5), ("mscmr", 1, 4)):
        target = torch.randint(0, classes, (4, 32, 32), generator=gen)
        target[torch.rand(4, 32, 32, generator=gen) < 0.8] = 255
        target[2:] = 255
        out[task] = {"image": torch.rand(4, channels, 32, 32, generator=gen), "target": target, "n_scribbled": 2}
    return out


def _step(objective: ModelMixObjective, config, device: torch.device, amp: bool = False) -> torch.Tensor:
    """Batch preparation (transfer and augmentation), the objective and its backward, as in ``train``."""
    augment_rng = torch.Generator().manual_seed(1)
    batches = {t: prepare_batch(b, augment_rng, config, device) for t, b in _cpu_batches().items()}
    with torch.autocast(device.type, torch.bfloat16, enabled=amp):
        loss, _ = objective(batches)
    loss.backward()
    return loss


@contextlib.contextmanager
def _host_reads_raise(monkeypatch):
    """Make every listed host read of a tensor raise; monkeypatch restores them when the block ends."""

    def forbid(name):
        def read(self, *args, **kwargs):
            raise AssertionError(f"Tensor.{name} called inside the training step (a host<->device sync on a GPU)")
        return read

    with monkeypatch.context() as patch:
        for name in READS:
            patch.setattr(torch.Tensor, name, forbid(name))
        yield


def test_the_cpu_detector_is_armed_and_then_restored(monkeypatch):
    with _host_reads_raise(monkeypatch):
        for read in (lambda: torch.ones(1).item(), lambda: bool(torch.ones(1)), lambda: torch.ones(1).tolist(),
                     lambda: torch.ones(1).cpu()):
            with pytest.raises(AssertionError, match=r"inside the training step"):
                read()
    assert torch.ones(1).item() == 1.0 and bool(torch.ones(1)) and torch.ones(2).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("preset, method", CASES)
def test_cpu_step_makes_no_host_read(preset, method, monkeypatch):
    config = _config(preset)
    objective = build_objective(config, METHODS[method], TASKS, torch.device("cpu"))
    with _host_reads_raise(monkeypatch):
        loss = _step(objective, config, torch.device("cpu"))
    assert torch.isfinite(loss).item()
    grads = [p.grad for p in objective.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum().item() > 0 for g in grads)


@pytest.mark.parametrize("preset, method", CASES)
def test_meta_device_forward_reads_no_data_and_copies_without_blocking(preset, method, monkeypatch):
    config = _config(preset)
    objective = build_objective(config, METHODS[method], TASKS, torch.device("meta"))
    to, as_tensor, tensor = torch.Tensor.to, torch.as_tensor, torch.tensor

    def checked_to(self, *args, **kwargs):
        out = to(self, *args, **kwargs)
        if self.device.type == "cpu" and out.device.type == "meta" and not kwargs.get("non_blocking"):
            raise AssertionError(f"blocking host-to-device copy of a {tuple(self.shape)} tensor")
        return out

    def checked_new(make):
        def new(data, *args, **kwargs):
            out = make(data, *args, **kwargs)
            if out.device.type == "meta" and not (isinstance(data, torch.Tensor) and data.device.type == "meta"):
                raise AssertionError(f"{make.__name__} copies host data to the device (a blocking copy)")
            return out
        return new

    monkeypatch.setattr(torch.Tensor, "to", checked_to)
    monkeypatch.setattr(torch, "as_tensor", checked_new(as_tensor))
    monkeypatch.setattr(torch, "tensor", checked_new(tensor))
    augment_rng = torch.Generator().manual_seed(1)
    batches = {t: prepare_batch(b, augment_rng, config, torch.device("meta")) for t, b in _cpu_batches().items()}
    loss, terms = objective(batches)
    assert all(v.device.type == "meta" and v.shape == () for v in [loss, *terms.values()]) and len(terms) >= 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("preset, method", CASES)
def test_cuda_step_under_sync_debug_mode(preset, method):
    config = _config(preset)
    device = torch.device("cuda")
    objective = build_objective(config, METHODS[method], TASKS, device)
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-3)
    _step(objective, config, device, amp=True)  # warm-up: first-call allocations and lazy initialisation
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = _step(objective, config, device, amp=True)
        optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).item()

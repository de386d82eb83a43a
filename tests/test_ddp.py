"""DistributedDataParallel on CPU: two gloo processes (torch.multiprocessing spawn) train a few steps."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from modelmix_lite.checkpoints import load_checkpoint
from modelmix_lite.config import resolve_config
from modelmix_lite.data.phantom import generate_phantom
from modelmix_lite.methods import MethodConfig
from modelmix_lite.models import TaskModelSet
from modelmix_lite.train import train

TASKS = ["myops", "mscmr"]
TINY = ["steps=3", "batch_size=4", "size=32", "base=4", "val_every=0", "log_every=3", "ckpt_every=3"]
# pCE on full labels, no BatchNorm, no dropout, no augmentation: the loss of the global batch is the mean
# of the per-rank losses (equal pixel counts), so 2 ranks x 2 slices must equal 1 process x 4 slices.
PCE_ON_LABELS = MethodConfig("pce-label", "pCE on full labels", target="label")
EXACT = [*TINY, "norm=none", "dropout=none", "augment=false"]


def _worker(rank: int, world: int, init_file: str, root: str, out: str) -> None:
    torch.set_num_threads(1)  # two processes share the cores
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        train(resolve_config("smoke", TINY), root, f"{out}/modelmix", "modelmix", TASKS, progress=False)
        train(resolve_config("smoke", EXACT), root, f"{out}/exact", PCE_ON_LABELS, TASKS, progress=False)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    generate_phantom(root, "smoke", seed=0, tasks=tuple(TASKS), progress=False)
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(out / "init"), str(root), str(out)), nprocs=2, join=True)
    single = train(resolve_config("smoke", EXACT), root, out / "single", PCE_ON_LABELS, TASKS, progress=False)
    return out, single


def test_ranks_end_identical(runs):
    out, _ = runs
    ckpt = load_checkpoint(out / "modelmix" / "last.pt")
    assert ckpt["step"] == 3 and len(ckpt["rng"]) == 2
    first, second = ckpt["replicas"]
    assert torch.equal(first, second)  # every parameter tensor's sum, rank 0 vs rank 1
    # each rank drew its own augmentation / mixing randomness
    assert not torch.equal(ckpt["rng"][0]["generators"]["augment"], ckpt["rng"][1]["generators"]["augment"])


def test_two_ranks_match_one_process_on_the_same_global_batch(runs):
    out, single = runs
    ddp, one = load_checkpoint(out / "exact" / "last.pt")["model"], load_checkpoint(single / "last.pt")["model"]
    init = TaskModelSet(TASKS, base=4, dropout=None, norm="none", generator=torch.Generator().manual_seed(0))
    init = {f"models.{k}": v for k, v in init.state_dict().items()}
    moved = max((ddp[k] - init[k]).abs().max().item() for k in ddp)
    gap = max((ddp[k] - one[k]).abs().max().item() for k in ddp)
    # Same data, same init, same loss: only the order of float reductions differs (per-rank sums, then the
    # all-reduce). Three Adam steps of lr 1e-3 move parameters by ~3e-3; the two runs agree to 1e-5.
    assert moved > 1e-3
    assert gap < 1e-5

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.models import RELEASED_DROPOUT, TaskModelSet, UNet, as_model_input, encoder_parameter_names


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_unet_output_shape(size, in_channels):
    model = UNet(in_channels=in_channels, n_classes=5, base=4, generator=seeded())
    x = torch.randn(2, in_channels, size, size)
    assert model(x).shape == (2, 5, size, size)
    features = model.encode(x)
    assert [f.shape for f in features] == [(2, 4 * 2**k, size // 2**k, size // 2**k) for k in range(5)]


def test_encode_decode_is_forward():
    model = UNet(base=4, generator=seeded()).eval()
    x = torch.randn(2, 3, 32, 32, generator=seeded(1))
    assert torch.equal(model.decode(model.encode(x)), model(x))


def test_encoder_holds_only_the_five_blocks_with_named_convs():
    model = UNet(base=4)
    assert [name for name, _ in model.encoder.named_children()] == [f"block{k}" for k in range(1, 6)]
    for k in range(1, 6):
        block = model.encoder.get_submodule(f"block{k}")
        assert isinstance(block.conv1, nn.Conv2d) and isinstance(block.bn1, nn.BatchNorm2d)
        assert block.conv2.out_channels == 4 * 2 ** (k - 1)
        assert block.conv1.bias is not None


def test_encoder_parameter_names():
    names = encoder_parameter_names(UNet(base=4))
    assert len(names) == 40  # 5 blocks x (2 convs + 2 BN) x (weight, bias): the released code's 40 tensors
    assert names[:4] == [f"encoder.block1.{m}.{p}" for m in ("conv1", "bn1") for p in ("weight", "bias")]
    assert len(encoder_parameter_names(UNet(base=4, norm="none"))) == 20


@pytest.mark.parametrize("size", [(30, 32), (32, 40)])
def test_bad_spatial_size(size):
    with pytest.raises(DataError, match=r"UNet input: H, W = \(\d+, \d+\) must be divisible by 16"):
        UNet(base=4)(torch.zeros(1, 3, *size))


def test_wrong_channel_count():
    with pytest.raises(DataError, match=r"UNet input: expected \(B, 3, H, W\), got \(1, 1, 32, 32\)"):
        UNet(base=4)(torch.zeros(1, 1, 32, 32))


def test_as_model_input():
    x = torch.randn(2, 1, 8, 8)
    y = as_model_input(x)
    assert y.shape == (2, 3, 8, 8)
    for c in range(3):
        assert torch.equal(y[:, c], x[:, 0])
    three = torch.randn(2, 3, 8, 8)
    assert as_model_input(three) is three
    with pytest.raises(DataError, match=r"model input: expected \(B, 1, H, W\) or \(B, 3, H, W\), got \(2, 2, 8"):
        as_model_input(torch.zeros(2, 2, 8, 8))
    with pytest.raises(DataError, match=r"got \(2, 8, 8\)"):
        as_model_input(torch.zeros(2, 8, 8))


def dropouts(model: UNet) -> dict[str, float]:
    return {name: m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}


def test_dropout_modes():
    paper = {f"encoder.block{k}.drop_in": 0.5 for k in range(2, 6)}  # block 1's input (the image) is not dropped
    assert dropouts(UNet(base=4)) == paper
    assert dropouts(UNet(base=4, dropout=0.2)) == {name: 0.2 for name in paper}
    released = dropouts(UNet(base=4, dropout="released"))
    assert released == {f"encoder.block{k}.drop_mid": p for k, p in zip(range(1, 6), RELEASED_DROPOUT)}
    assert released["encoder.block5.drop_mid"] == pytest.approx(0.5 / 3)
    assert dropouts(UNet(base=4, dropout=None)) == {}
    assert dropouts(UNet(base=4, dropout=0)) == {}


@pytest.mark.parametrize("bad", ["Paper", 1.0, -0.1, True])
def test_bad_dropout(bad):
    with pytest.raises(ConfigError, match="dropout: expected 'paper', 'released', None or a float"):
        UNet(base=4, dropout=bad)


def test_norm_none_and_bad_norm():
    assert not any(isinstance(m, nn.BatchNorm2d) for m in UNet(base=4, norm="none").modules())
    with pytest.raises(ConfigError, match="norm: expected 'batch' or 'none', got 'group'"):
        UNet(base=4, norm="group")


def test_dropout_active_only_in_train_mode():
    model = UNet(base=4, generator=seeded())
    x = torch.randn(2, 3, 32, 32, generator=seeded(1))
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_init():
    model = UNet(base=16, generator=seeded())
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    conv = model.encoder.block5.conv1  # 256 x 128 x 3 x 3 weights: Kaiming std = sqrt(2 / fan_in)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.02)
    assert conv.weight.mean().item() == pytest.approx(0, abs=1e-3)


def test_init_uses_only_the_given_generator():
    state = torch.random.get_rng_state()
    a, b = UNet(base=4, generator=seeded(3)), UNet(base=4, generator=seeded(3))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    c = UNet(base=4, generator=seeded(4))
    assert not torch.equal(a.encoder.block1.conv1.weight, c.encoder.block1.conv1.weight)


def test_task_model_set_heads_and_forward():
    models = TaskModelSet(["myops", "ACDC"], base=4, generator=seeded())
    assert models.tasks == ["myops", "acdc"]
    x = torch.randn(2, 3, 32, 32)
    assert models("myops", x).shape == (2, 5, 32, 32)
    assert models("acdc", x).shape == (2, 4, 32, 32)
    with pytest.raises(ConfigError, match=r"task: 'mscmr' is not in this model set \(myops, acdc\)"):
        models("mscmr", x)


def test_identical_init():
    models = TaskModelSet(["myops", "mscmr"], base=4, generator=seeded())
    a, b = models.models["myops"], models.models["mscmr"]
    for part in ("encoder", "decoder"):
        for (name, p), q in zip(getattr(a, part).state_dict().items(), getattr(b, part).state_dict().values()):
            assert torch.equal(p, q), name
    assert a.encoder is not b.encoder  # equal values, separate parameters
    assert a.encoder.block1.conv1.weight.data_ptr() != b.encoder.block1.conv1.weight.data_ptr()
    separate = TaskModelSet(["myops", "mscmr"], base=4, identical_init=False, generator=seeded())
    a, b = separate.models["myops"], separate.models["mscmr"]
    assert not torch.equal(a.encoder.block1.conv1.weight, b.encoder.block1.conv1.weight)


def test_identical_init_heads_are_independent():
    models = TaskModelSet(["acdc", "mscmr"], base=4, generator=seeded())  # same head shapes
    assert not torch.equal(models.models["acdc"].head.weight, models.models["mscmr"].head.weight)


def test_shared_encoder():
    shared = TaskModelSet(["myops", "mscmr"], base=4, shared_encoder=True, generator=seeded(), encoder_bn="shared")
    a, b = shared.models["myops"], shared.models["mscmr"]
    assert a.encoder is b.encoder
    assert a.encoder.block3.conv2.weight is b.encoder.block3.conv2.weight
    n_encoder = sum(p.numel() for p in a.encoder.parameters())
    n_rest = sum(p.numel() for m in (a, b) for part in (m.decoder, m.head) for p in part.parameters())
    assert sum(p.numel() for p in shared.parameters()) == n_encoder + n_rest
    separate = TaskModelSet(["myops", "mscmr"], base=4, generator=seeded())
    assert sum(p.numel() for p in separate.parameters()) == 2 * n_encoder + n_rest


def test_shared_encoder_with_batchnorm_per_task():
    models = TaskModelSet(["acdc", "mscmr"], base=4, shared_encoder=True, generator=seeded())  # per_task default
    a, b = models.models["acdc"].encoder, models.models["mscmr"].encoder
    assert a is not b and a.block3.conv2.weight is b.block3.conv2.weight
    assert a.block3.bn2.weight is not b.block3.bn2.weight
    n_conv = sum(p.numel() for n, p in a.named_parameters() if ".conv" in n)
    n_bn = sum(p.numel() for n, p in a.named_parameters() if ".bn" in n)
    shared = TaskModelSet(["acdc", "mscmr"], base=4, shared_encoder=True, generator=seeded(), encoder_bn="shared")
    assert sum(p.numel() for p in models.parameters()) == sum(p.numel() for p in shared.parameters()) + n_bn
    assert n_conv > 0
    models.train()
    acdc_like, lge_like = torch.rand(2, 3, 32, 32), 5 + 3 * torch.rand(2, 3, 32, 32)  # two intensity domains
    models("acdc", acdc_like), models("mscmr", lge_like)
    assert not torch.allclose(a.block1.bn1.running_mean, b.block1.bn1.running_mean)  # statistics kept apart
    models("mscmr", lge_like).sum().backward()  # only the MSCMRseg model's loss
    assert a.block1.conv1.weight.grad.abs().sum() > 0  # reaches the kernel ACDC uses too
    assert a.block1.bn1.weight.grad is None and b.block1.bn1.weight.grad.abs().sum() > 0  # not ACDC's BN


def test_unknown_encoder_bn_is_one_clear_line():
    with pytest.raises(ConfigError, match=r"^encoder_bn: 'x' is not one of 'per_task', 'shared'$"):
        TaskModelSet(["acdc", "mscmr"], base=4, shared_encoder=True, encoder_bn="x")


@pytest.mark.parametrize(
    "tasks, message",
    [([], r"tasks: expected distinct task names, got \[\]"),
     (["acdc", "acdc"], "tasks: expected distinct task names"),
     (["acdc", "brats"], "task: unknown task 'brats'; known tasks: acdc, mscmr, myops")],
)
def test_bad_tasks(tasks, message):
    with pytest.raises(ConfigError, match=message):
        TaskModelSet(tasks, base=4)

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from modelmix_lite.errors import ConfigError
from modelmix_lite.mixing import (
    DRIFT_POINTS,
    MixableLayer,
    interpolate,
    layer_linearity,
    linearity_drift,
    mixable_layers,
    printed_bias_mix,
    random_layer,
    sample_lambda,
    virtual_forward,
    virtual_parameters,
)
from modelmix_lite.models import UNet

LAYER = MixableLayer(
    "encoder.block2.conv1", "conv", 2, ("encoder.block2.conv1.weight", "encoder.block2.conv1.bias")
)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pair(n_classes: int = 4, **kwargs) -> tuple[UNet, UNet, torch.Tensor]:
    """Two independently initialised tiny UNets (random biases, so bias mixing matters) and an input."""
    g = seeded()
    models = [UNet(n_classes=n_classes, base=4, generator=g, **kwargs) for _ in range(2)]
    with torch.no_grad():
        for model in models:
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.1, generator=g)
    return models[0], models[1], torch.randn(2, 3, 32, 32, generator=g)


def with_layer_from(model_i: UNet, model_j: UNet, layer: MixableLayer) -> UNet:
    """Reference for λ = 0: a copy of model_i whose ``layer`` parameters are copied from model_j."""
    reference = copy.deepcopy(model_i)
    params_j = dict(model_j.named_parameters())
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name in layer.params:
                p.copy_(params_j[name])
    return reference


def test_interpolate_hand_values():
    assert interpolate(torch.tensor([2.0]), torch.tensor([10.0]), 0.25).item() == 8.0  # 0.5 + 7.5
    a, b = torch.randn(5), torch.randn(5)
    assert torch.equal(interpolate(a, b, 1.0), a) and torch.equal(interpolate(a, b, 0.0), b)
    assert torch.equal(interpolate(a, b, torch.tensor(1.0)), a)


def test_printed_bias_breaks_linearity_by_hand():
    # 1x1 conv with one channel: g(x) = k x + b.
    x = torch.tensor([[[[1.0, -2.0, 3.0]]]], dtype=torch.float64)
    k_i, k_j = torch.tensor([[[[2.0]]]], dtype=torch.float64), torch.tensor([[[[-1.0]]]], dtype=torch.float64)
    b_i, b_j = torch.tensor([0.5], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)
    lam = 0.25
    target = lam * F.conv2d(x, k_i, b_i) + (1 - lam) * F.conv2d(x, k_j, b_j)
    k = interpolate(k_i, k_j, lam)
    assert torch.allclose(F.conv2d(x, k, interpolate(b_i, b_j, lam)), target, rtol=0, atol=1e-15)
    printed = F.conv2d(x, k, printed_bias_mix(b_i, b_j, lam))
    # printed − target = λ(1−λ)b_j − (1−λ)b_j = −(1−λ)² b_j = −0.5625 · 3 = −1.6875 everywhere
    assert torch.allclose(printed - target, torch.full_like(target, -1.6875), rtol=0, atol=1e-15)
    zero = torch.zeros(1, dtype=torch.float64)  # the special case b_j = 0 where the printed form agrees
    assert torch.allclose(
        F.conv2d(x, k, printed_bias_mix(b_i, zero, lam)),
        lam * F.conv2d(x, k_i, b_i) + (1 - lam) * F.conv2d(x, k_j, zero), rtol=0, atol=1e-15,
    )


def test_mixable_layers():
    model = UNet(base=4)
    convs = mixable_layers(model)
    assert [layer.name for layer in convs] == [f"encoder.block{k}.conv{c}" for k in range(1, 6) for c in (1, 2)]
    assert [layer.depth for layer in convs] == [k for k in range(1, 6) for _ in (1, 2)]
    assert convs[2] == LAYER
    with_bn = mixable_layers(model, include_bn=True)
    assert len(with_bn) == 20
    assert [layer.name.rsplit(".", 1)[1] for layer in with_bn[:4]] == ["conv1", "bn1", "conv2", "bn2"]
    names = dict(model.named_parameters())
    assert all(p in names for layer in with_bn for p in layer.params)
    assert len(mixable_layers(UNet(base=4, norm="none"), include_bn=True)) == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        convs[0].depth = 3


def test_eq5_exact_for_every_conv_in_float64():
    model_i, model_j, x = pair()
    table = layer_linearity(model_i, model_j, x)
    assert len(table) == 10 * 5
    assert set(table.layer) == {layer.name for layer in mixable_layers(model_i)}
    assert table.abs_err.max() < 1e-10
    assert table.rel_err.max() < 1e-10
    assert model_i.encoder.block1.conv1.weight.dtype == torch.float32  # worked on copies


def test_virtual_parameters_keeps_original_tensors():
    model_i, model_j, _ = pair()
    tensors = virtual_parameters(model_i, model_j, LAYER, 0.3)
    originals = {**dict(model_i.named_parameters()), **dict(model_i.named_buffers())}
    assert tensors.keys() == originals.keys()
    for name, t in tensors.items():
        if name in LAYER.params:
            assert not isinstance(t, torch.nn.Parameter)
            expected = 0.3 * originals[name] + 0.7 * model_j.get_parameter(name)
            assert torch.equal(t, expected)
        else:
            assert t is originals[name], name


def test_virtual_parameters_shape_mismatch():
    model_i, _, _ = pair()
    other = UNet(base=8)
    with pytest.raises(ConfigError, match="layer encoder.block2.conv1: encoder.block2.conv1.weight is missing"):
        virtual_parameters(model_i, other, LAYER, 0.5)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("index", [0, 3, 9, 12])  # block1.conv1, block1.bn2, block3.conv1, block4.conv1
def test_endpoints(mode, index):
    model_i, model_j, x = pair(dropout=None)
    layer = mixable_layers(model_i, include_bn=True)[index]
    reference = with_layer_from(model_i, model_j, layer)
    for m in (model_i, reference):
        m.train(mode == "train")
    with torch.no_grad():
        at_one = virtual_forward(model_i, model_j, layer, 1.0, x)
        at_zero = virtual_forward(model_i, model_j, layer, 0.0, x)
        expected_one, expected_zero = model_i(x), reference(x)
    assert torch.equal(at_one, expected_one)
    assert torch.equal(at_zero, expected_zero)
    assert not torch.allclose(at_zero, at_one)  # the layers of i and j really differ


def test_virtual_forward_keeps_bn_running_stats():
    model_i, model_j, x = pair(dropout=None)
    model_i.train()
    before = {name: b.clone() for name, b in model_i.named_buffers()}
    virtual_forward(model_i, model_j, LAYER, 0.4, x)
    for name, b in model_i.named_buffers():
        assert torch.equal(b, before[name]), name
    model_i(x)  # a normal train-mode pass does change them: the check above can fail
    assert not torch.equal(model_i.encoder.block1.bn1.running_mean, before["encoder.block1.bn1.running_mean"])
    assert model_i.encoder.block1.bn1.num_batches_tracked.item() == 1


def test_virtual_forward_with_sync_batchnorm():
    # DDP runs may convert BN to SyncBatchNorm, which insists on a num_batches_tracked counter.
    model_i, model_j, x = pair(dropout=None)
    sync_i = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model_i)).train()
    model_i.train()
    before = {name: b.clone() for name, b in sync_i.named_buffers()}
    out = virtual_forward(sync_i, model_j, LAYER, 0.4, x)
    assert all(torch.equal(b, before[name]) for name, b in sync_i.named_buffers())
    assert torch.equal(out, virtual_forward(model_i, model_j, LAYER, 0.4, x))
    assert len(mixable_layers(sync_i, include_bn=True)) == 20


def grads(model: UNet, prefix: str) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in model.named_parameters() if name.startswith(prefix)}


def test_gradients_reach_both_encoders_without_detach():
    model_i, model_j, x = pair(dropout=None)
    lam = 0.3
    virtual_forward(model_i, model_j, LAYER, lam, x).square().mean().backward()
    for name in LAYER.params:
        g_i, g_j = model_i.get_parameter(name).grad, model_j.get_parameter(name).grad
        assert g_i is not None and g_j is not None and g_i.abs().sum() > 0
        # d(λθ_i + (1−λ)θ_j): the two gradients are λG and (1−λ)G
        assert torch.allclose(g_i * (1 - lam), g_j * lam, rtol=1e-5, atol=1e-9)
    untouched_j = {n: g for n, g in grads(model_j, "").items() if n not in LAYER.params}
    assert all(g is None for g in untouched_j.values())
    assert all(g is not None for g in grads(model_i, "").values())  # all of f_i takes part


def test_detach_gives_gradient_to_the_head_only():
    model_i, model_j, x = pair(dropout=None)
    virtual_forward(model_i, model_j, LAYER, 0.3, x, detach=True).square().mean().backward()
    for model in (model_i, model_j):
        assert all(g is None for g in grads(model, "encoder.").values())
        assert all(g is None for g in grads(model, "decoder.").values())
    assert model_i.head.weight.grad is not None and model_i.head.weight.grad.abs().sum() > 0
    assert model_j.head.weight.grad is None


def test_sample_lambda_moments_and_reproducibility():
    g = seeded(7)
    draws = torch.stack([sample_lambda(0.5, "cpu", g) for _ in range(4000)])
    assert draws.shape == (4000,) and draws.dtype == torch.float32
    assert draws.min() >= 0 and draws.max() <= 1
    # Beta(α, α): mean 1/2, variance 1 / (4(2α + 1)) = 0.125 at α = 0.5 (standard error of the variance ≈ 0.0014)
    assert draws.mean().item() == pytest.approx(0.5, abs=0.02)
    assert draws.var().item() == pytest.approx(0.125, abs=0.007)
    wide = torch.stack([sample_lambda(2.0, "cpu", g) for _ in range(4000)])
    assert wide.var().item() == pytest.approx(0.05, abs=0.004)
    one = sample_lambda(0.5, torch.device("cpu"), seeded(1))
    assert one.ndim == 0 and torch.equal(one, sample_lambda(0.5, "cpu", seeded(1)))


@pytest.mark.parametrize("alpha", [0.0, -1.0, 0.01, float("nan")])
def test_sample_lambda_bad_alpha(alpha):
    with pytest.raises(ConfigError, match=r"alpha: the Beta\(α, α\) parameter must be >= 0.05"):
        sample_lambda(alpha, "cpu")


def test_random_layer():
    layers = mixable_layers(UNet(base=4), include_bn=True)
    g = seeded(0)
    counts = {layer.name: 0 for layer in layers}
    for _ in range(2000):
        counts[random_layer(layers, g).name] += 1
    assert min(counts.values()) > 60 and max(counts.values()) < 140  # expected 100 each
    assert random_layer(layers, seeded(5)) == random_layer(layers, seeded(5))
    with pytest.raises(ConfigError, match="layers: no mixable layers to choose from"):
        random_layer([], g)


def test_linearity_drift():
    model_i, model_j, x = pair()
    table = linearity_drift(model_i, model_j, x)
    assert len(table) == 10 * 2 * 5 * len(DRIFT_POINTS)
    endpoints = table[table.lam.isin([0.0, 1.0])]
    assert (endpoints.rel_err == 0).all()
    inner = table[~table.lam.isin([0.0, 1.0])]
    err = inner.groupby(["mode", "point"]).rel_err.max()
    assert err["train", "conv"] < 1e-10 and err["eval", "conv"] < 1e-10  # Eq. 5
    assert err["eval", "bn"] < 1e-10  # eval BN is affine
    assert err["train", "bn"] > 1e-3  # batch statistics depend on λ
    assert err["eval", "relu"] > 1e-3 and err["eval", "logits"] > 1e-3
    with pytest.raises(ConfigError, match="modes: expected 'train' or 'eval', got 'test'"):
        linearity_drift(model_i, model_j, x, modes=("test",))


def test_linearity_holds_through_a_block_without_norm_when_relu_is_inactive():
    # With norm="none" and all-positive pre-activations (ReLU = identity) the whole block stays linear.
    model_i, model_j, _ = pair(norm="none")
    x = torch.rand(2, 3, 32, 32, generator=seeded(2)) + 1
    with torch.no_grad():
        for model in (model_i, model_j):
            for conv in (model.encoder.block1.conv1, model.encoder.block1.conv2):
                conv.weight.abs_()
                conv.bias.abs_()
    table = linearity_drift(model_i, model_j, x, lams=(0.3,), modes=("eval",))
    block1 = table[table.layer == "encoder.block1.conv1"].set_index("point").rel_err
    assert block1["relu"] < 1e-10 and block1["block"] < 1e-10

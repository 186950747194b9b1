"""The fused inference form computes the trained network's function: every architecture variant
of PYSKL's STGCN family and the seed's ST-GCN, with BatchNorm statistics far from identity."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import build_model, count_parameters
from models.fused import fuse, max3
from models.layouts import LAYOUTS, Skeleton

ARCHS = [
    {},  # ST-GCN++
    {"tcn": "unit_tcn", "gcn_adaptive": "importance", "gcn_with_res": False, "graph": "stgcn_spatial"},
    {"gcn_adaptive": "offset", "data_bn": "MVC"},
    {"gcn_adaptive": "none", "data_bn": "none", "num_stages": 4, "inflate_stages": [2], "down_stages": [3]},
]


def _randomized(model: nn.Module) -> nn.Module:
    """BN statistics and affine drawn, learned graphs perturbed: folding must carry all of it."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 3 + 0.2)
                m.weight.copy_(torch.randn(m.num_features, generator=g))  # negative scales too
                m.bias.copy_(torch.randn(m.num_features, generator=g))
        for name, p in model.named_parameters():
            if name.endswith(".a") or name.endswith(".pa"):
                p.add_(torch.rand(p.shape, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("persons", [1, 2])
def test_fused_stgcn_family_gives_the_networks_logits(arch, persons):
    torch.manual_seed(0)
    skeleton = Skeleton(LAYOUTS["ntu25"], 3, False, persons)
    net = _randomized(build_model("stgcnpp", 7, skeleton=skeleton, arch=arch))
    x = torch.randn(5, *((persons,) if persons > 1 else ()), 24, 25, 3)
    lengths = torch.full((5,), 24)
    fused = fuse(net)
    assert fused is not net and not any(p.requires_grad for p in fused.parameters())
    with torch.no_grad():
        want, got = net(x, lengths), fused(x, lengths)
    assert want.abs().max() > 1  # the comparison is not between near-zero logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
    assert count_parameters(net) == count_parameters(build_model("stgcnpp", 7, skeleton=skeleton, arch=arch))


def test_fused_seed_stgcn_gives_the_networks_logits():
    torch.manual_seed(0)
    net = _randomized(build_model("stgcn", 4))
    x = torch.randn(3, 40, 17, 3)
    with torch.no_grad():
        want, got = net(x), fuse(net)(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_fused_form_under_bf16_autocast_stays_close():
    torch.manual_seed(0)
    net = _randomized(build_model("stgcnpp", 5))
    x = torch.randn(4, 16, 17, 3)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        want, got = net(x).float(), fuse(net)(x).float()
    assert (got - want).abs().max() < 0.1 * want.abs().max()


def test_other_models_are_returned_as_they_are():
    lstm = build_model("lstm", 3)
    assert fuse(lstm) is lstm


@pytest.mark.parametrize("stride", [1, 2])
def test_max3_is_the_temporal_max_pool(stride):
    x = torch.randn(2, 5, 9, 4).relu()  # ties at zero, as after the branch's ReLU
    want = F.max_pool2d(x, (3, 1), (stride, 1), (1, 0))
    assert torch.equal(max3(x, stride), want)

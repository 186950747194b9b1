"""ST-GCN++: the 3-partition graph, shapes, parameter count, a short learning test, and the
fused multi-scale TCN entry against the branches run apart."""

import copy

import numpy as np
import pytest
import torch

from models import build_model, count_parameters
from models.graph import INWARD, spatial_partitions
from models.stgcnpp import MultiScaleTCN


def test_spatial_partitions():
    a = spatial_partitions()
    assert a.shape == (3, 17, 17)
    np.testing.assert_array_equal(a[0], np.eye(17))
    # inward: A[j, i] = 1 for each edge (i, j), each column normalized to sum 1 (or 0)
    for k in (1, 2):
        cols = a[k].sum(axis=0)
        assert np.all((np.abs(cols - 1) < 1e-6) | (cols == 0))
    i, j = INWARD[0]  # (15, 13): left ankle -> left knee
    assert a[1, j, i] > 0 and a[1, i, j] == 0 and a[2, i, j] > 0
    assert len(INWARD) == 16  # a tree over 17 joints


def test_shapes_and_parameters():
    m = build_model("stgcnpp", 60)
    assert count_parameters(m) == 1_393_016  # MMAction2 reports 1.39 M for ST-GCN++
    for t in (1, 17, 100):
        assert m.eval()(torch.randn(2, t, 17, 3)).shape == (2, 60)
    assert count_parameters(build_model("stgcnpp", 101)) == 1_393_016 + 41 * 257


def test_learns_two_motions():
    torch.manual_seed(0)
    t = torch.linspace(0, 6.28, 24)[None, :, None]
    base = torch.rand(1, 1, 17)
    x0 = torch.stack([torch.sin(t + base), torch.cos(t + base), torch.ones(1, 24, 17)], -1)
    x1 = torch.stack([torch.sin(3 * t + base), -torch.cos(t + base), torch.ones(1, 24, 17)], -1)
    x = torch.cat([x0.repeat(8, 1, 1, 1), x1.repeat(8, 1, 1, 1)]) + 0.1 * torch.randn(16, 24, 17, 3)
    y = torch.tensor([0] * 8 + [1] * 8)
    m = build_model("stgcnpp", 2, dropout=0.0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():  # batch statistics: 15 steps are too few for BN's running averages
        assert (m(x).argmax(1) == y).float().mean() >= 0.9  # chance is 0.5
    assert losses[-1] < 0.5 * losses[0]


def per_branch(tcn: MultiScaleTCN, x: torch.Tensor) -> torch.Tensor:
    """The multi-scale TCN as PYSKL writes it: each branch on its own, concatenated."""
    return tcn.bn(tcn.transform(torch.cat([b(x) for b in tcn.branches], dim=1)))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(("channels", "stride"), [(64, 1), (128, 2), (256, 1)])
def test_the_fused_tcn_entry_matches_the_branches_run_apart(precision, channels, stride):
    """Outputs and every parameter's gradient of the one-conv entry against the six branches
    run apart, with the same weights (train mode: batch statistics)."""
    torch.manual_seed(0)
    tcn = MultiScaleTCN(channels, stride)
    ref = copy.deepcopy(tcn)
    x = torch.randn(4, channels, 16, 17)
    grads = []
    for fn, m in ((MultiScaleTCN.forward, tcn), (per_branch, ref)):
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            y = fn(m, x)
        y.float().square().mean().backward()
        grads.append((y.float(), {n: p.grad for n, p in m.named_parameters()}))
    (y, g), (y_ref, g_ref) = grads
    assert y.shape == (4, channels, 16 // stride, 17)
    tol = 1e-4 if precision == "fp32" else 5e-2
    torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
    assert g.keys() == g_ref.keys() and len(g) == len(list(tcn.parameters()))
    for name in g:
        torch.testing.assert_close(g[name], g_ref[name], rtol=tol, atol=tol, msg=name)

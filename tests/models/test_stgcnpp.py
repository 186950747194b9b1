"""ST-GCN++: the 3-partition graph, shapes, parameter count, and a short learning test."""

import numpy as np
import torch

from models import build_model, count_parameters
from models.graph import INWARD, spatial_partitions


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

"""Model shapes, parameter counts, the graph, and the LSTM's valid-length readout."""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from models import build_model, count_parameters
from models.graph import EDGES, adjacency, normalized_adjacency
from models.lstm import BiLSTM, reverse_within_length


@pytest.mark.parametrize("name, params", [("lstm", 672_357), ("stgcn", 935_973)])
def test_parameter_counts_at_101_classes(name, params):
    assert count_parameters(build_model(name, 101)) == params


@pytest.mark.parametrize("name", ["lstm", "stgcn"])
@pytest.mark.parametrize("t", [300, 37])
def test_forward_backward_shapes(name, t):
    torch.manual_seed(0)
    m = build_model(name, 7)
    x = torch.randn(4, t, 17, 3, requires_grad=True)
    out = m(x, torch.tensor([t, 5, 1, t // 2]))
    assert out.shape == (4, 7)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert all(p.grad is not None for p in m.parameters())


def test_unknown_model():
    with pytest.raises(KeyError, match="unknown model"):
        build_model("resnet", 3)


def test_graph():
    a = adjacency()
    assert a.shape == (17, 17) and (a == a.T).all() and (np.diag(a) == 1).all()
    assert a.sum() == 17 + 2 * len(EDGES) and len(set(EDGES)) == len(EDGES) == 18
    assert a[0, 1] == a[5, 7] == a[11, 12] == a[0, 5] == 1 and a[9, 10] == 0
    an = normalized_adjacency()
    d = a.sum(1)
    np.testing.assert_allclose(an[5, 7], 1 / np.sqrt(d[5] * d[7]), rtol=1e-6)
    np.testing.assert_allclose(an, an.T)
    eig = np.linalg.eigvalsh(an)
    assert eig.max() == pytest.approx(1.0, abs=1e-5) and eig.min() > -1
    # every joint is connected to the body: one connected component
    reach = np.linalg.matrix_power(a, 17) > 0
    assert reach.all()


def test_reverse_within_length():
    x = torch.arange(10.0).reshape(2, 5, 1)
    r = reverse_within_length(x, torch.tensor([3, 5]))
    assert r[0, :, 0].tolist() == [2, 1, 0, 3, 4] and r[1, :, 0].tolist() == [9, 8, 7, 6, 5]


def test_lstm_equals_packed_sequences_and_ignores_padding():
    """The padded two-direction implementation gives nn.LSTM's packed-sequence answer."""
    torch.manual_seed(0)
    m = BiLSTM(num_classes=5, dropout=0.0).eval()
    ref = torch.nn.LSTM(51, 128, num_layers=2, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer in range(2):
            for mine, sfx in ((m.forward_layers[layer], ""), (m.backward_layers[layer], "_reverse")):
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{w}_l{layer}{sfx}").copy_(getattr(mine, f"{w}_l0"))
    x = torch.randn(3, 20, 17, 3)
    lengths = torch.tensor([20, 7, 1])
    x[1, 7:] = 0
    x[2, 1:] = 0
    packed = pack_padded_sequence(x.reshape(3, 20, 51), lengths, batch_first=True, enforce_sorted=False)
    _, (h_n, _) = ref(packed)
    want = m.head(torch.cat([h_n[-2], h_n[-1]], dim=1))
    torch.testing.assert_close(m(x, lengths), want, rtol=1e-5, atol=1e-5)
    noisy = x.clone()
    noisy[1, 7:] = 5.0  # whatever lies past the valid length is ignored
    torch.testing.assert_close(m(noisy, lengths), m(x, lengths))
    assert not torch.allclose(m(x, torch.tensor([20, 20, 20])), m(x, lengths))

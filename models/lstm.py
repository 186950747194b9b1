"""The seed's bidirectional-LSTM baseline, reading each clip only up to its valid length."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class BiLSTM(nn.Module):
    """(B, T, V, C) -> (B, num_classes) logits.

    Frames are flattened to V*C = 51 features. The readout is the final hidden state of each
    direction over the clip's *valid* frames (packed sequences): the forward state after the
    last real frame and the backward state after running from that frame down to the first.
    A naive readout of the last padded step would read the forward state after up to 271
    frames of zeros, and a backward state that started in the padding.
    """

    def __init__(self, num_classes: int, in_features: int = 51, hidden: int = 128,
                 layers: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout)
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(2 * hidden, num_classes),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, t = x.shape[:2]
        x = x.reshape(b, t, -1)  # (B, T, V*C)
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.int64)
        packed = pack_padded_sequence(x, lengths.clamp(1, t).cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n: (layers * 2, B, H), in the batch's own order
        h = torch.cat([h_n[-2], h_n[-1]], dim=1)  # (B, 2H): last layer, forward and backward
        return self.head(h)  # (B, num_classes)

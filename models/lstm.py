"""The seed's bidirectional-LSTM baseline, reading each clip only up to its valid length."""

from __future__ import annotations

import torch
from torch import nn

from models.layouts import Skeleton
from models.persons import fold_persons, pool_persons


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, F) -> (B, T, F) with x[b, :L_b] reversed in time and the padding left after it."""
    b, t = x.shape[:2]
    steps = torch.arange(t, device=x.device).expand(b, t)  # (B, T)
    idx = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, idx[..., None].expand_as(x))


class BiLSTM(nn.Module):
    """(B, T, V, C) or (B, M, T, V, C) -> (B, num_classes) logits.

    Frames are flattened to V*C features (51 for the default COCO-17 2D skeleton); persons are
    read one at a time and their final states averaged before the head. The readout is the
    final state of each direction over the clip's *valid* frames: the forward state after the
    last real frame, and the
    backward state after running from that frame down to the first. A naive readout of the
    last padded step would read a forward state after up to 271 frames of zeros, and a
    backward state that started in the padding.

    Packed sequences give the same numbers but lose the fast oneDNN LSTM kernel on CPU
    (measured 17 vs ~240 samples/s at T = 300), so each direction runs on padded input:
    forward as is, backward on each clip reversed within its length. Parameters are those of
    `nn.LSTM(51, 128, num_layers=2, bidirectional=True)`, one unidirectional LSTM per
    (layer, direction): 672,357 in all at 101 classes.
    """

    def __init__(self, num_classes: int, dropout: float = 0.5, skeleton: Skeleton | None = None,
                 hidden: int = 128, layers: int = 2) -> None:
        super().__init__()
        skeleton = skeleton or Skeleton()
        sizes = [skeleton.num_joints * skeleton.channels] + [2 * hidden] * (layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(s, hidden, batch_first=True) for s in sizes)
        self.backward_layers = nn.ModuleList(nn.LSTM(s, hidden, batch_first=True) for s in sizes)
        self.between = nn.Dropout(dropout)  # between LSTM layers, as nn.LSTM(dropout=...) does
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(2 * hidden, num_classes),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x, lengths, m = fold_persons(x, lengths)  # (B * M, T, V, C)
        b, t = x.shape[:2]
        h = x.reshape(b, t, -1)  # (B * M, T, V*C)
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.int64, device=x.device)
        lengths = lengths.to(x.device).clamp(1, t)
        last = (lengths - 1)[:, None, None]  # (B, 1, 1): index of each clip's last valid frame
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if i > 0:
                h = self.between(h)
            out_f, _ = fwd(h)  # (B, T, H): valid at t < L, padding only after
            out_b_rev, _ = bwd(reverse_within_length(h, lengths))  # (B, T, H), reversed time
            h = torch.cat([out_f, reverse_within_length(out_b_rev, lengths)], dim=2)  # (B, T, 2H)
        hidden = out_f.shape[2]
        h_f = out_f.gather(1, last.expand(b, 1, hidden))[:, 0]  # (B, H) after frame L-1
        h_b = out_b_rev.gather(1, last.expand(b, 1, hidden))[:, 0]  # (B, H) after frame 0
        return self.head(pool_persons(torch.cat([h_f, h_b], dim=1), m))  # (B, num_classes)

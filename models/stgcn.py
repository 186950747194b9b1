"""The seed's ST-GCN: one fixed, normalized adjacency of the skeleton's layout (COCO-17 by
default); four spatial-temporal blocks."""

from __future__ import annotations

import torch
from torch import nn

from models.graph import layout_adjacency
from models.layouts import Skeleton
from models.persons import fold_persons, pool_persons


class GraphConv(nn.Module):
    """1x1 conv over channels, then mixing of joints by the normalized adjacency: (B,C,T,V)."""

    a: torch.Tensor

    def __init__(self, c_in: int, c_out: int, a: torch.Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=1)
        self.register_buffer("a", a, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.conv(x), self.a)  # (B, C', T, V) @ (V, V)


class STBlock(nn.Module):
    """Graph conv + BN + ReLU, temporal conv (kernel 9, stride s) + BN, residual, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, a: torch.Tensor, kernel: int = 9) -> None:
        super().__init__()
        self.gcn = nn.Sequential(GraphConv(c_in, c_out, a), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        self.tcn = nn.Sequential(
            nn.Conv2d(c_out, c_out, (kernel, 1), stride=(stride, 1), padding=(kernel // 2, 0)),
            nn.BatchNorm2d(c_out),
        )
        self.residual: nn.Module = nn.Identity()
        if c_in != c_out or stride != 1:
            self.residual = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=(stride, 1)), nn.BatchNorm2d(c_out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.tcn(self.gcn(x)) + self.residual(x))


class STGCN(nn.Module):
    """(B, T, V, C) or (B, M, T, V, C) -> (B, num_classes) logits; the graph is the skeleton's
    layout's (the seed's COCO-17 by default)."""

    BLOCKS = ((64, 64, 1), (64, 64, 2), (64, 128, 2), (128, 256, 2))

    def __init__(self, num_classes: int, dropout: float = 0.5, skeleton: Skeleton | None = None) -> None:
        super().__init__()
        skeleton = skeleton or Skeleton()
        in_channels = skeleton.channels
        a = torch.from_numpy(layout_adjacency(skeleton.layout))
        self.input = nn.Sequential(GraphConv(in_channels, 64, a), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(STBlock(i, o, s, a) for i, o, s in self.BLOCKS))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.BLOCKS[-1][1], num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x, _, m = fold_persons(x, lengths)  # (B * M, T, V, C)
        x = x.permute(0, 3, 1, 2).contiguous()  # (B * M, T, V, C) -> (B * M, C, T, V)
        x = self.blocks(self.input(x))  # (B * M, 256, T/8, V)
        x = pool_persons(x.mean(dim=(2, 3)), m)  # (B, 256): global average over T, V and M
        return self.fc(self.dropout(x))

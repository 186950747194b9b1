"""ST-GCN++ (Duan et al., PYSKL, 2022) for COCO-17: ten blocks, learnable 3-partition graph,
multi-scale temporal convolution, residual graph convolution, GCNHead.

The structure follows PYSKL's `STGCN(gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn',
graph_cfg=dict(layout='coco', mode='spatial'))`: a BatchNorm over the V*C input features, block 1
3 -> 64 without a residual, blocks 2-10 with 64 channels, doubling at blocks 5 and 8 where time
is also strided by 2, then a global average pool and a linear classifier.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from models.graph import layout_partitions
from models.layouts import Skeleton
from models.persons import fold_persons, pool_persons

# (kernel, dilation) temporal branches, a max-pool branch and a 1x1 branch: PYSKL's mstcn default
MS_BRANCHES: tuple[tuple[int, int] | str, ...] = ((3, 1), (3, 2), (3, 3), (3, 4), "max", "1x1")


class AdaptiveGraphConv(nn.Module):
    """1x1 conv to K partitions x C' channels, mixed over joints by a learnable (K, V, V) graph
    initialised from the partitions; BN; plus a residual (1x1 conv + BN when C changes); ReLU."""

    def __init__(self, c_in: int, c_out: int, a: torch.Tensor) -> None:
        super().__init__()
        self.k = a.shape[0]
        self.a = nn.Parameter(a.clone())
        self.conv = nn.Conv2d(c_in, c_out * self.k, 1)
        self.bn = nn.BatchNorm2d(c_out)
        self.down: nn.Module = nn.Identity()
        if c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        y = self.conv(x).view(n, self.k, -1, t, v)  # (B, K, C', T, V)
        y = torch.einsum("nkctv,kvw->nctw", y, self.a)  # (B, C', T, V)
        return self.relu(self.bn(y) + self.down(x))


class MultiScaleTCN(nn.Module):
    """Six parallel branches on C/6 channels each (dilated kernel-3 convs, max-pool, 1x1),
    concatenated, BN + ReLU + 1x1 conv, BN; temporal stride `stride`.

    The branches' six entry 1x1 convs all read x, so they run as one conv of their stacked
    weights (the same parameters): measured 1.09x (fp32) and 1.11x (bf16) clips/s per training
    step on the CPU (BENCHMARKS.md, issue 21)."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        mid = channels // len(MS_BRANCHES)
        first = channels - mid * (len(MS_BRANCHES) - 1)  # the first branch takes the remainder
        branches: list[nn.Module] = []
        for i, spec in enumerate(MS_BRANCHES):
            c = first if i == 0 else mid
            if spec == "1x1":
                branches.append(nn.Conv2d(channels, c, 1, stride=(stride, 1)))
                continue
            head = [nn.Conv2d(channels, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if isinstance(spec, str):  # "max"
                tail: nn.Module = nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0))
            else:
                kernel, dilation = spec
                pad = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
                tail = nn.Conv2d(c, c, (kernel, 1), stride=(stride, 1), padding=(pad, 0),
                                 dilation=(dilation, 1))
            branches.append(nn.Sequential(*head, tail))
        self.branches = nn.ModuleList(branches)
        self.transform = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                       nn.Conv2d(channels, channels, 1))
        self.bn = nn.BatchNorm2d(channels)

    def entry_convs(self) -> list[nn.Conv2d]:
        """Each branch's first conv (the 1x1 branch is that conv alone, with the stride)."""
        return [cast(nn.Conv2d, b[0] if isinstance(b, nn.Sequential) else b) for b in self.branches]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        entry = self.entry_convs()
        weight = torch.cat([e.weight for e in entry])  # (C, C, 1, 1)
        bias = torch.cat([cast(torch.Tensor, e.bias) for e in entry])
        y = F.conv2d(x, weight, bias)  # (B, C, T, V): every branch's entry at once
        parts = y.split([e.out_channels for e in entry], dim=1)
        outs = []
        for branch, part, e in zip(self.branches, parts, entry, strict=True):
            if isinstance(branch, nn.Sequential):  # BN, ReLU, then the temporal conv or max-pool
                outs.append(branch[3](branch[2](branch[1](part))))
            else:  # the strided 1x1 conv: its frames 0, s, 2s, ...
                outs.append(part[:, :, :: e.stride[0]])
        return self.bn(self.transform(torch.cat(outs, dim=1)))  # (B, C, T/stride, V)


class Block(nn.Module):
    """Graph conv, multi-scale temporal conv, block residual (identity or 1x1 conv + BN), ReLU."""

    def __init__(self, c_in: int, c_out: int, a: torch.Tensor, stride: int = 1, residual: bool = True
                 ) -> None:
        super().__init__()
        self.gcn = AdaptiveGraphConv(c_in, c_out, a)
        self.tcn = MultiScaleTCN(c_out, stride)
        self.residual: nn.Module | None = None
        if residual and (c_in != c_out or stride != 1):
            self.residual = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=(stride, 1)),
                                          nn.BatchNorm2d(c_out))
        elif residual:
            self.residual = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        return self.relu(y + self.residual(x)) if self.residual is not None else self.relu(y)


class STGCNPP(nn.Module):
    """(B, T, V, C) or (B, M, T, V, C) -> (B, num_classes) logits, on the skeleton's layout
    (COCO-17 by default). 1,393,016 parameters at 60 classes on COCO-17 (MMAction2 reports
    1.39 M for its ST-GCN++)."""

    # (in, out, temporal stride) of the ten blocks: PYSKL's base 64, inflate and down at 5 and 8
    BLOCKS = ((64, 64, 1),) * 4 + ((64, 128, 2), (128, 128, 1), (128, 128, 1),
                                   (128, 256, 2), (256, 256, 1), (256, 256, 1))

    def __init__(self, num_classes: int, dropout: float = 0.0, skeleton: Skeleton | None = None) -> None:
        super().__init__()
        skeleton = skeleton or Skeleton()
        in_channels = skeleton.channels
        a = torch.from_numpy(layout_partitions(skeleton.layout))  # (3, V, V)
        self.data_bn = nn.BatchNorm1d(in_channels * skeleton.num_joints)
        first = Block(in_channels, self.BLOCKS[0][0], a, residual=False)
        self.blocks = nn.Sequential(first, *(Block(i, o, a, s) for i, o, s in self.BLOCKS[1:]))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.BLOCKS[-1][1], num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x, _, m = fold_persons(x, lengths)  # (B * M, T, V, C)
        b, t, v, c = x.shape
        x = self.data_bn(x.permute(0, 2, 3, 1).reshape(b, v * c, t))  # (B * M, V*C, T)
        x = x.view(b, v, c, t).permute(0, 2, 3, 1).contiguous()  # (B * M, C, T, V)
        x = self.blocks(x)  # (B * M, 256, T/4, V)
        x = pool_persons(x.mean(dim=(2, 3)), m)  # (B, 256)
        return self.fc(self.dropout(x))  # (B, num_classes)

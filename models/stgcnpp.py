"""PYSKL's STGCN backbone with its GCNHead, its architecture as data (`GCNArch`): ST-GCN++
(Duan et al., 2022) by default, PYSKL's vanilla ST-GCN, and any checkpoint of either family.

The default follows PYSKL's `STGCN(gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn',
graph_cfg=dict(layout=..., mode='spatial'))`: a BatchNorm over the V*C input features, block 1
C -> 64 without a residual, blocks 2-10 with 64 channels, doubling at blocks 5 and 8 where time
is also strided by 2, then a global average pool over T, V and the persons, and a linear
classifier. Any number of stages, inflate and down stages, base channels, data BN over V*C or
M*V*C, and vanilla ST-GCN's kernel-9 TCN with its importance-weighted graph are the same code, so
an imported PYSKL or MMAction2 checkpoint (`pipeline.infer.zoo`) runs here exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from models.graph import layout_partitions, stgcn_spatial
from models.layouts import LayoutError, Skeleton
from models.persons import fold_persons, pool_persons

# (kernel, dilation) temporal branches, a max-pool branch and a 1x1 branch: PYSKL's mstcn default
MS_BRANCHES: tuple[tuple[int, int] | str, ...] = ((3, 1), (3, 2), (3, 3), (3, 4), "max", "1x1")
DATA_BNS = ("VC", "MVC", "none")
TCNS = ("mstcn", "unit_tcn")
ADAPTIVES = ("init", "importance", "offset", "none")
GRAPHS = ("spatial", "stgcn_spatial")
EPS = 1e-4  # PYSKL's rounding guard for inflated channel counts


@dataclass(frozen=True)
class GCNArch:
    """PYSKL's `STGCN(...)` arguments, as data: what a checkpoint's weights (and, where they cannot
    show it, its config) say the network is. Stages count from 1, as PYSKL's do."""

    base_channels: int = 64
    ch_ratio: float = 2.0
    num_stages: int = 10
    inflate_stages: tuple[int, ...] = (5, 8)
    down_stages: tuple[int, ...] = (5, 8)
    data_bn: str = "VC"  # BatchNorm1d over V*C, over M*V*C, or none
    tcn: str = "mstcn"  # ST-GCN++'s multi-scale TCN, or vanilla ST-GCN's kernel-9 unit_tcn
    gcn_adaptive: str = "init"  # init: A learned; importance: A * PA; offset: A + PA; none: A fixed
    gcn_with_res: bool = True  # a residual around each graph conv
    graph: str = "spatial"  # how a fresh A is built: PYSKL's `spatial` or `stgcn_spatial` mode

    def __post_init__(self) -> None:
        object.__setattr__(self, "inflate_stages", tuple(self.inflate_stages))
        object.__setattr__(self, "down_stages", tuple(self.down_stages))
        if not isinstance(self.num_stages, int) or max(len(self.inflate_stages), len(self.down_stages)) > min(
                64, max(self.num_stages, 1)):
            raise LayoutError("architecture: more inflate or down stages than the network has stages")
        ints = (self.base_channels, self.num_stages, *self.inflate_stages, *self.down_stages)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise LayoutError("architecture: channels and stages must be integers")
        if not (1 <= self.base_channels <= 4096 and 1 <= self.num_stages <= 64
                and isinstance(self.ch_ratio, int | float) and 0 < self.ch_ratio <= 8):
            raise LayoutError("architecture: base channels, stages or channel ratio out of range")
        if any(not 2 <= s <= self.num_stages for s in (*self.inflate_stages, *self.down_stages)):
            raise LayoutError(f"architecture: inflate and down stages must be in 2..{self.num_stages}")
        for name, allowed in (("data_bn", DATA_BNS), ("tcn", TCNS), ("gcn_adaptive", ADAPTIVES),
                              ("graph", GRAPHS)):
            if getattr(self, name) not in allowed:
                raise LayoutError(f"architecture: {name} must be one of {', '.join(allowed)}")
        if not isinstance(self.gcn_with_res, bool):
            raise LayoutError("architecture: gcn_with_res must be true or false")
        if max(c for _, c, _ in self.blocks(3)) > 8192:
            raise LayoutError("architecture: more than 8,192 channels")

    def blocks(self, in_channels: int) -> list[tuple[int, int, int]]:
        """(in, out, temporal stride) of each block, as PYSKL's STGCN builds them."""
        out = [(in_channels, self.base_channels, 1)]
        base, inflated = self.base_channels, 0
        for i in range(2, self.num_stages + 1):
            inflated += i in self.inflate_stages
            c = int(self.base_channels * self.ch_ratio ** inflated + EPS)
            out.append((base, c, 1 + (i in self.down_stages)))
            base = c
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inflate_stages": list(self.inflate_stages),
                "down_stages": list(self.down_stages)}

    @classmethod
    def from_dict(cls, data: Any, defaults: GCNArch | None = None) -> GCNArch:
        """`data` (a checkpoint's or config's) over `defaults`; unknown keys are refused."""
        if not isinstance(data, dict):
            raise LayoutError("architecture: not a table")
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise LayoutError(f"architecture: unknown key {sorted(set(data) - known)[0]!r}")
        base = (defaults or cls()).to_dict()
        try:
            return cls(**{**base, **data})
        except TypeError as e:
            raise LayoutError(f"architecture: {e}") from None


VANILLA = GCNArch(tcn="unit_tcn", gcn_adaptive="importance", gcn_with_res=False, graph="stgcn_spatial")


class AdaptiveGraphConv(nn.Module):
    """1x1 conv to K partitions x C' channels, mixed over joints by a (K, V, V) graph; BN; plus a
    residual (1x1 conv + BN when C changes) where `with_res`; ReLU. The graph is PYSKL's unit_gcn:
    learned (`init`), a fixed A times a learned importance PA, or plus a learned offset PA."""

    a: torch.Tensor

    def __init__(self, c_in: int, c_out: int, a: torch.Tensor, adaptive: str = "init",
                 with_res: bool = True) -> None:
        super().__init__()
        self.k, self.adaptive = a.shape[0], adaptive
        if adaptive == "init":
            self.a = nn.Parameter(a.clone())
        else:
            self.register_buffer("a", a.clone())
        if adaptive in ("importance", "offset"):
            self.pa = nn.Parameter(torch.ones_like(a) if adaptive == "importance" else torch.zeros_like(a))
        self.conv = nn.Conv2d(c_in, c_out * self.k, 1)
        self.bn = nn.BatchNorm2d(c_out)
        self.down: nn.Module | None = nn.Identity() if with_res else None
        if with_res and c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def graph(self) -> torch.Tensor:
        if self.adaptive == "importance":
            return self.a * self.pa
        if self.adaptive == "offset":
            return self.a + self.pa
        return self.a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        y = self.conv(x).view(n, self.k, -1, t, v)  # (B, K, C', T, V)
        y = torch.einsum("nkctv,kvw->nctw", y, self.graph())  # (B, C', T, V)
        y = self.bn(y)
        return self.relu(y + self.down(x) if self.down is not None else y)


class UnitTCN(nn.Module):
    """Vanilla ST-GCN's temporal conv: kernel 9 over time with the stride, then BN."""

    def __init__(self, channels: int, stride: int = 1, kernel: int = 9) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (kernel, 1), stride=(stride, 1),
                              padding=((kernel - 1) // 2, 0))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


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
    """Graph conv, temporal conv, block residual (identity or 1x1 conv + BN), ReLU."""

    def __init__(self, c_in: int, c_out: int, a: torch.Tensor, stride: int = 1, residual: bool = True,
                 arch: GCNArch = GCNArch()) -> None:
        super().__init__()
        self.gcn = AdaptiveGraphConv(c_in, c_out, a, arch.gcn_adaptive, arch.gcn_with_res)
        self.tcn: nn.Module = MultiScaleTCN(c_out, stride) if arch.tcn == "mstcn" else UnitTCN(c_out, stride)
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


def initial_graph(skeleton: Skeleton, arch: GCNArch) -> torch.Tensor:
    """A fresh network's (3, V, V) graph in the arch's PYSKL mode (an import overwrites it)."""
    layout = skeleton.layout
    if arch.graph == "stgcn_spatial":
        return torch.from_numpy(stgcn_spatial(layout))
    return torch.from_numpy(layout_partitions(layout))


class STGCNPP(nn.Module):
    """(B, T, V, C) or (B, M, T, V, C) -> (B, num_classes) logits, on the skeleton's layout
    (COCO-17 by default). 1,393,016 parameters at 60 classes on COCO-17 (MMAction2 reports
    1.39 M for its ST-GCN++). `arch` makes it any network of PYSKL's STGCN family."""

    def __init__(self, num_classes: int, dropout: float = 0.0, skeleton: Skeleton | None = None,
                 arch: GCNArch | None = None) -> None:
        super().__init__()
        skeleton = skeleton or Skeleton()
        self.arch = arch = arch or GCNArch()
        in_channels = skeleton.channels
        a = initial_graph(skeleton, arch)  # (K, V, V)
        persons = skeleton.persons if arch.data_bn == "MVC" else 1
        self.data_bn: nn.Module = (nn.BatchNorm1d(persons * in_channels * skeleton.num_joints)
                                   if arch.data_bn != "none" else nn.Identity())
        blocks = arch.blocks(in_channels)
        c_in, c_out, _ = blocks[0]
        first = Block(c_in, c_out, a, residual=False, arch=arch)
        self.blocks = nn.Sequential(first, *(Block(i, o, a, s, arch=arch) for i, o, s in blocks[1:]))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(blocks[-1][1], num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.arch.data_bn == "MVC":
            x, m = self._mvc_bn(x)  # (B * M, C, T, V)
        else:
            x, _, m = fold_persons(x, lengths)  # (B * M, T, V, C)
            b, t, v, c = x.shape
            x = self.data_bn(x.permute(0, 2, 3, 1).reshape(b, v * c, t))  # (B * M, V*C, T)
            x = x.view(b, v, c, t).permute(0, 2, 3, 1).contiguous()  # (B * M, C, T, V)
        x = self.blocks(x)  # (B * M, C_last, T / strides, V)
        x = pool_persons(x.mean(dim=(2, 3)), m)  # (B, C_last)
        return self.fc(self.dropout(x))  # (B, num_classes)

    def _mvc_bn(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """PYSKL's data_bn_type='MVC': one BatchNorm over each sample's M*V*C features."""
        if x.dim() == 4:
            x = x[:, None]  # (B, 1, T, V, C)
        b, m, t, v, c = x.shape
        x = self.data_bn(x.permute(0, 1, 3, 4, 2).reshape(b, m * v * c, t))  # (B, M*V*C, T)
        x = x.view(b, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(b * m, c, t, v)  # (B * M, C, T, V)
        return x.contiguous(), m

"""The inference form of PYSKL's STGCN family: the same function as the trained network, with
every BatchNorm folded into a neighbouring conv and every 1x1 conv run as a matmul.

Why: on a CPU, eager PyTorch ran an imported or trained ST-GCN++ at 0.75x the speed of its own
ONNX export under onnxruntime, which folds BatchNorms the same way. oneDNN's 1x1 convs whose
output is wider than their input (the graph conv's K * C' channels) reach 25-45 GFLOPS on an
AVX2 CPU where a matmul of the same shape reaches 100-140 (BENCHMARKS.md, issue 30). The graph
conv also mixes joints before channels: A is applied to the C input channels rather than the K *
C' outputs, and the (B, K, C', T, V) permute that einsum copies is gone.

`fuse(model)` returns a fused copy for inference (eval mode, no gradients); training keeps the
plain modules, whose layout and parameters checkpoints and exports hold. Any other model is
returned as it is.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from models.stgcn import STGCN, GraphConv, STBlock
from models.stgcnpp import STGCNPP, AdaptiveGraphConv, Block, MultiScaleTCN, UnitTCN


def _affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode BatchNorm as scale and shift per channel: bn(y) = y * scale + shift."""
    assert isinstance(bn, nn.BatchNorm2d | nn.BatchNorm1d)
    mean, var = bn.running_mean, bn.running_var
    assert mean is not None and var is not None
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -mean * scale
    return scale, shift + bn.bias if bn.bias is not None else shift


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """The conv's bias, zeros where it has none."""
    return conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, dtype=conv.weight.dtype,
                                                                 device=conv.weight.device)


def _folded(conv: nn.Conv2d, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv followed by a per-channel scale and shift as one conv's weight (O, I, kT, kV) and
    bias (O,)."""
    w, b = conv.weight, _bias(conv)
    if scale is None or shift is None:
        return w.clone(), b.clone()
    return w * scale[:, None, None, None], b * scale + shift


def _conv_bn(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv followed by an eval-mode BatchNorm as one conv's weight and bias."""
    return _folded(conv, *_affine(bn))


def _as_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """`conv` (its kernel, stride, padding, dilation) with other weights."""
    out = copy.deepcopy(conv)
    out.weight, out.bias = nn.Parameter(weight, False), nn.Parameter(bias, False)
    return out


class Pointwise(nn.Module):
    """A 1x1 conv (and the BN after it) over (B, C, T, V) as a matmul, every `stride`-th frame."""

    w: torch.Tensor
    b: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int = 1) -> None:
        super().__init__()
        self.register_buffer("w", weight.reshape(weight.shape[0], -1).contiguous())  # (O, I)
        self.register_buffer("b", bias.reshape(-1, 1).contiguous())  # (O, 1)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride]
        n, c, t, v = x.shape
        y = torch.baddbmm(self.b, self.w.expand(n, -1, -1), x.reshape(n, c, t * v))  # (B, O, T * V)
        return y.view(n, -1, t, v)  # (B, O, T, V)


def _residual(path: nn.Module | None) -> nn.Module | None:
    """A block's residual path: a `Sequential(Conv2d 1x1, BatchNorm2d)` as one Pointwise with
    the conv's temporal stride; an identity or none as it is."""
    if not isinstance(path, nn.Sequential):
        return path
    conv = path[0]
    assert isinstance(conv, nn.Conv2d)
    return Pointwise(*_conv_bn(conv, path[1]), conv.stride[0])


class FusedGraphConv(nn.Module):
    """AdaptiveGraphConv, joints first: z = x mixed by each partition's A, then one matmul of
    (C', K * C) weights (the conv's, scaled by its BN) and a (C', V) term for everything
    additive (the conv bias carried through A, the BN shift, the down path's bias); residual;
    ReLU."""

    a: torch.Tensor
    w: torch.Tensor
    extra: torch.Tensor
    wd: torch.Tensor | None

    def __init__(self, gcn: AdaptiveGraphConv) -> None:
        super().__init__()
        a = gcn.graph().detach()  # (K, V, V)
        k = a.shape[0]
        scale, shift = _affine(gcn.bn)
        c_out, c_in = gcn.bn.num_features, gcn.conv.in_channels
        w = gcn.conv.weight.reshape(k, c_out, c_in) * scale[None, :, None]  # (K, C', C)
        b = _bias(gcn.conv).reshape(k, c_out) * scale[None]  # (K, C')
        extra = torch.einsum("kc,kvw->cw", b, a) + shift[:, None]  # (C', V)
        self.residual = "none" if gcn.down is None else "identity"
        self.register_buffer("wd", None)
        if isinstance(gcn.down, nn.Sequential):  # 1x1 conv + BN where the channels change
            assert isinstance(gcn.down[0], nn.Conv2d)
            wd, bd = _conv_bn(gcn.down[0], gcn.down[1])
            self.wd = wd.reshape(c_out, c_in).contiguous()  # (C', C)
            extra = extra + bd[:, None]  # its bias joins the additive term
            self.residual = "conv"
        self.register_buffer("a", a.contiguous())
        self.register_buffer("w", w.permute(1, 0, 2).reshape(c_out, k * c_in).contiguous())  # (C', K * C)
        self.register_buffer("extra", extra[:, None, :].contiguous())  # (C', 1, V)
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        z = torch.matmul(x.reshape(n, 1, c * t, v), self.a)  # (B, K, C * T, V) = (B, K * C, T * V)
        y = torch.matmul(self.w, z.view(n, self.k * c, t * v))  # (B, C', T * V)
        if self.wd is not None:
            y = torch.baddbmm(y, self.wd.expand(n, -1, -1), x.reshape(n, c, t * v))
        elif self.residual == "identity":
            y = y + x.reshape(n, c, t * v)
        return (y.view(n, -1, t, v) + self.extra).relu_()  # (B, C', T, V)


def max3(x: torch.Tensor, stride: int) -> torch.Tensor:
    """MaxPool2d((3, 1), (stride, 1), (1, 0)) over (B, C, T, V) as the max of three shifted views:
    the same values, measured 13-24x faster than torch's CPU max-pool at these sizes, which
    spends about 3 ms a call whatever its size (BENCHMARKS.md, issue 30)."""
    p = F.pad(x, (0, 0, 1, 1), value=float("-inf"))  # (B, C, T + 2, V)
    return torch.maximum(torch.maximum(p[:, :, :-2:stride], p[:, :, 1:-1:stride]), p[:, :, 2::stride])


class FusedTCN(nn.Module):
    """MultiScaleTCN with its BNs folded: one entry matmul for the six branches (their BNs, and
    the 1x1 branch's share of the transform's BN, folded in), each temporal conv with its share
    of the transform's BN, the max-pool branch's share as scale and shift after the pool, ReLU,
    then the transform's 1x1 conv with the last BN as a matmul."""

    pool_scale: torch.Tensor
    pool_shift: torch.Tensor

    def __init__(self, tcn: MultiScaleTCN) -> None:
        super().__init__()
        t_scale, t_shift = _affine(tcn.transform[0])
        ws, bs, self.kinds, self.sizes = [], [], [], []
        self.tails = nn.ModuleList()
        self.pool_stride = self.stride = 1
        lo = 0
        for branch, entry in zip(tcn.branches, tcn.entry_convs(), strict=True):
            c = entry.out_channels
            part = slice(lo, lo + c)
            lo += c
            if isinstance(branch, nn.Sequential):
                w, b = _conv_bn(entry, branch[1])
                tail = branch[3]
                if isinstance(tail, nn.Conv2d):  # a dilated temporal conv and its transform BN share
                    self.tails.append(_as_conv(tail, *_folded(tail, t_scale[part], t_shift[part])))
                    self.kinds.append("conv")
                else:  # the max-pool: BN scales can be negative, so its share stays after the pool
                    assert isinstance(tail, nn.MaxPool2d)
                    self.register_buffer("pool_scale", t_scale[part].reshape(-1, 1, 1).clone())
                    self.register_buffer("pool_shift", t_shift[part].reshape(-1, 1, 1).clone())
                    self.pool_stride = int(tail.stride[0] if isinstance(tail.stride, tuple) else tail.stride)
                    self.tails.append(nn.Identity())
                    self.kinds.append("max")
            else:  # the strided 1x1 branch: its transform BN share folds into the entry rows
                w, b = _folded(entry, t_scale[part], t_shift[part])
                self.stride = entry.stride[0]
                self.tails.append(nn.Identity())
                self.kinds.append("1x1")
            ws.append(w)
            bs.append(b)
            self.sizes.append(c)
        self.entry = Pointwise(torch.cat(ws), torch.cat(bs))
        last = tcn.transform[2]
        assert isinstance(last, nn.Conv2d)
        self.transform = Pointwise(*_conv_bn(last, tcn.bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.entry(x)  # (B, C, T, V): every branch's entry at once
        outs = []
        for kind, tail, part in zip(self.kinds, self.tails, y.split(self.sizes, dim=1), strict=True):
            if kind == "conv":
                outs.append(tail(part.relu()))
            elif kind == "max":
                pooled = max3(part.relu(), self.pool_stride)
                outs.append(torch.addcmul(self.pool_shift, pooled, self.pool_scale))
            else:
                outs.append(part[:, :, :: self.stride])
        return self.transform(torch.cat(outs, dim=1).relu_())  # (B, C, T / stride, V)


class FusedSeedGraphConv(nn.Module):
    """The seed ST-GCN's `Sequential(GraphConv, BN, ReLU)`, joints first: (x @ A), one matmul of
    the conv's weights scaled by the BN, a (C', V) term for the conv bias carried through A and
    the BN shift, ReLU."""

    a: torch.Tensor
    w: torch.Tensor
    extra: torch.Tensor

    def __init__(self, seq: nn.Sequential) -> None:
        super().__init__()
        gcn, bn = seq[0], seq[1]
        assert isinstance(gcn, GraphConv)
        scale, shift = _affine(bn)
        w = gcn.conv.weight.reshape(gcn.conv.out_channels, -1) * scale[:, None]  # (C', C)
        extra = (_bias(gcn.conv) * scale)[:, None] * gcn.a.sum(0)[None] + shift[:, None]  # (C', V)
        self.register_buffer("a", gcn.a.clone())
        self.register_buffer("w", w.contiguous())
        self.register_buffer("extra", extra[:, None, :].contiguous())  # (C', 1, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        z = torch.matmul(x, self.a).reshape(n, c, t * v)  # (B, C, T * V)
        return (torch.matmul(self.w, z).view(n, -1, t, v) + self.extra).relu_()  # (B, C', T, V)


def _conv(seq: nn.Sequential) -> nn.Conv2d:
    """`Sequential(Conv2d, BatchNorm2d)` as one conv."""
    assert isinstance(seq[0], nn.Conv2d)
    return _as_conv(seq[0], *_conv_bn(seq[0], seq[1]))


def _fuse_seed(model: STGCN) -> STGCN:
    net = copy.deepcopy(model).eval()
    assert isinstance(net.input, nn.Sequential)
    net.input = FusedSeedGraphConv(net.input)  # type: ignore[assignment]
    for block in net.blocks:
        assert isinstance(block, STBlock) and isinstance(block.tcn, nn.Sequential)
        block.gcn, block.tcn = FusedSeedGraphConv(block.gcn), _conv(block.tcn)  # type: ignore[assignment]
        block.residual = _residual(block.residual)  # type: ignore[assignment]
    return net


@torch.no_grad()
def fuse(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` for inference: for the ST-GCNs, BNs folded and 1x1 convs as
    matmuls (the same function, to float rounding); any other model as it is."""
    if isinstance(model, STGCN):
        return _fuse_seed(model).requires_grad_(False)
    if not isinstance(model, STGCNPP):
        return model
    net = copy.deepcopy(model).eval()
    for block in net.blocks:
        assert isinstance(block, Block)
        block.gcn = FusedGraphConv(block.gcn)  # type: ignore[assignment]
        if isinstance(block.tcn, MultiScaleTCN):
            block.tcn = FusedTCN(block.tcn)
        else:  # vanilla ST-GCN's kernel-9 unit_tcn
            assert isinstance(block.tcn, UnitTCN)
            block.tcn = _conv(nn.Sequential(block.tcn.conv, block.tcn.bn))
        block.residual = _residual(block.residual)
    return net.requires_grad_(False)

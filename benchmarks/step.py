"""The model step against the machine's peak (issue 21), measured in one run on this machine.

(a) the peak: a 2048² matmul in fp32 and bf16 on the threads the step uses;
(b) each model's training step (T = 32, batch 32, 15 classes: the recommended recipe's shape),
    fp32 and bf16: clips/s, GFLOP per clip (torch.utils.flop_counter, forward + backward) and
    the share of the peak of its precision;
(c) candidates for ST-GCN++, each against the reference in the same round (interleaved, median
    of `--rounds`): channels-last memory format; the multi-scale TCN's branches each run apart
    (the model before issue 21, whose six entry 1x1 convs now run as one); every conv as one GEMM
    on (N, T, V, C) activations; torch.compile (with --compile:
    its compile time is minutes here); and for evaluation, BatchNorm folded into the convs;
(d) the loader (SkeletonDataset over a synthetic cache, the recipe's options) against the step;
(e) a shared machine: the step on 2 threads (under each OpenMP waiting policy) and on 1, alone
    and beside a one-core busy loop, each in a fresh process; and the threads skpipe's default
    picks in each case;
(f) with --cache: minutes per epoch of that cache's train subset at the measured step rates.

    python -m benchmarks.step [--rounds 3] [--steps 12] [--compile] [--cache DIR --split NAME]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

B, T, CLASSES = 32, 32, 15
ROOT = Path(__file__).resolve().parents[1]


def peak(dtype: torch.dtype, n: int = 2048, reps: int = 8) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def flop_per_clip(model: nn.Module) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x, lengths = torch.randn(B, T, 17, 3), torch.full((B,), T)
    with FlopCounterMode(display=False) as fc:
        model(x, lengths).sum().backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / B


def step_rate(forward: Callable[..., torch.Tensor], model: nn.Module, precision: str, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    x, y, lengths = torch.randn(B, T, 17, 3), torch.randint(0, CLASSES, (B,)), torch.full((B,), T)
    model.train()

    def one() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(forward(x, lengths), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        one()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    return B * steps / (time.perf_counter() - t)


# --- candidates: the same parameters, computed another way ------------------------------------

def _bn_last(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    return F.batch_norm(x.reshape(-1, x.shape[-1]), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        bn.training, bn.momentum or 0.1, bn.eps).view(x.shape)


def _lin(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.linear(x, conv.weight.view(conv.out_channels, conv.in_channels), conv.bias)


def _shift(x: torch.Tensor, offset: int, t_out: int, stride: int, fill: float = 0.0) -> torch.Tensor:
    idx = torch.arange(t_out) * stride + offset  # frames of x (N, T, V, C) to take
    ok = (idx >= 0) & (idx < x.shape[1])
    out = x.index_select(1, idx.clamp(0, x.shape[1] - 1))
    return out if bool(ok.all()) else out.masked_fill(~ok.view(1, -1, 1, 1), fill)


def gemm_forward(m: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """ST-GCN++ with (N, T, V, C) activations, every conv one GEMM (outputs equal the reference)."""
    from models.persons import fold_persons, pool_persons

    x, _, persons = fold_persons(x, lengths)
    b, t, v, c = x.shape
    x = m.data_bn(x.permute(0, 2, 3, 1).reshape(b, v * c, t)).view(b, v, c, t).permute(0, 3, 1, 2)
    x = x.contiguous()  # (N, T, V, C)
    for blk in m.blocks:
        g = blk.gcn
        y = _lin(x, g.conv)  # (N, T, V, K * C')
        n, tt = y.shape[:2]
        cc = y.shape[-1] // g.k
        a = g.a.permute(2, 1, 0).reshape(v, v * g.k)  # A'[w, v K + k] = A[k, v, w]
        y = torch.matmul(a, y.view(n * tt, v * g.k, cc)).view(n, tt, v, cc)
        res = x if isinstance(g.down, nn.Identity) else _bn_last(_lin(x, g.down[0]), g.down[1])
        h = F.relu(_bn_last(y, g.bn) + res)
        z = _tcn(blk.tcn, h)
        if blk.residual is None:
            x = F.relu(z)
        elif isinstance(blk.residual, nn.Identity):
            x = F.relu(z + x)
        else:
            conv, bn = blk.residual
            s = conv.stride[0]
            x = F.relu(z + _bn_last(_lin(x[:, ::s] if s > 1 else x, conv), bn))
    return m.fc(m.dropout(pool_persons(x.mean(dim=(1, 2)), persons)))


def _tcn(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    entry = [br[0] if isinstance(br, nn.Sequential) else br for br in m.branches]
    w = torch.cat([e.weight.view(e.out_channels, e.in_channels) for e in entry])
    y = F.linear(x, w, torch.cat([e.bias for e in entry]))
    stride, outs, lo = entry[-1].stride[0], [], 0
    t_out = (x.shape[1] - 1) // stride + 1
    for br, e in zip(m.branches, entry, strict=True):
        part, lo = y[..., lo : lo + e.out_channels], lo + e.out_channels
        if not isinstance(br, nn.Sequential):
            outs.append(part[:, ::stride])
            continue
        h, tail = F.relu(_bn_last(part, br[1])), br[3]
        if isinstance(tail, nn.MaxPool2d):
            taps = [_shift(h, j - 1, t_out, stride, float("-inf")) for j in range(3)]
            outs.append(torch.stack(taps).amax(0))
        else:
            d = tail.dilation[0]
            taps = torch.cat([_shift(h, (j - 1) * d, t_out, stride) for j in range(3)], dim=-1)
            outs.append(F.linear(taps, tail.weight[..., 0].permute(0, 2, 1).reshape(tail.out_channels, -1),
                                 tail.bias))
    z = F.relu(_bn_last(torch.cat(outs, dim=-1), m.transform[0]))
    return _bn_last(_lin(z, m.transform[2]), m.bn)


def branches_apart_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MultiScaleTCN.forward as it was before issue 21: each branch on its own (same weights)."""
    return self.bn(self.transform(torch.cat([b(x) for b in self.branches], dim=1)))


def candidates(steps: int, rounds: int, with_compile: bool) -> None:
    from models import build_model
    from models import stgcnpp as s

    torch.manual_seed(0)
    ref = build_model("stgcnpp", CLASSES)
    x, lengths = torch.randn(4, T, 17, 3), torch.full((4,), T)
    ref.eval()
    gemm = copy.deepcopy(ref)
    with torch.no_grad():
        diff = float((ref(x, lengths) - gemm_forward(gemm, x, lengths)).abs().max())
    print(f"(c) gemm layout: max |logit difference| vs the reference {diff:.1e} (eval)")
    cl = copy.deepcopy(ref).to(memory_format=torch.channels_last)
    original = s.MultiScaleTCN.forward
    variants: dict[str, tuple[Callable[..., torch.Tensor], nn.Module]] = {
        "reference": (ref, ref), "channels_last": (cl, cl),
        "branches apart (before)": (ref, ref),
        "gemm layout": (lambda a, b: gemm_forward(gemm, a, b), gemm)}
    if with_compile:
        compiled = torch.compile(copy.deepcopy(ref))
        t0 = time.perf_counter()
        step_rate(compiled, compiled, "bf16", 1)
        print(f"    torch.compile: first steps took {time.perf_counter() - t0:.0f} s")
        variants["torch.compile"] = (compiled, compiled)
    for precision in ("fp32", "bf16"):
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for name, (fwd, model) in variants.items():
                apart = name.startswith("branches apart")
                s.MultiScaleTCN.forward = branches_apart_forward if apart else original
                try:
                    rates[name].append(step_rate(fwd, model, precision, steps))
                finally:
                    s.MultiScaleTCN.forward = original
        base = statistics.median(rates["reference"])
        print(f"    {precision}: " + ", ".join(f"{k} {statistics.median(v):.1f}" + (
            f" ({statistics.median(v) / base:.2f}x)" if k != "reference" else "") for k, v in rates.items())
              + " clips/s")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval copy of ST-GCN++ with every BatchNorm that directly follows a conv folded into it
    (the conv + BN pairs of the TCN branches, the TCN's last conv, the residual convs)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from models.stgcnpp import MultiScaleTCN

    m = copy.deepcopy(model).eval()
    for mod in m.modules():
        if isinstance(mod, nn.Sequential):
            for i in range(len(mod) - 1):
                if isinstance(mod[i], nn.Conv2d) and isinstance(mod[i + 1], nn.BatchNorm2d):
                    mod[i], mod[i + 1] = fuse_conv_bn_eval(mod[i], mod[i + 1]), nn.Identity()
        if isinstance(mod, MultiScaleTCN):
            mod.transform[2], mod.bn = fuse_conv_bn_eval(mod.transform[2], mod.bn), nn.Identity()
    return m


def eval_candidates(rounds: int) -> None:
    """(c) evaluation as `evaluate` batches it (64 samples x the recipe's clips), each against
    the reference, interleaved, median of `rounds`: ST-GCN++ (5 clips of T = 32: 320 rows) with
    BN folded into the convs, and in skpipe's CPU pieces (`forward.piece_rows`) against the
    batch whole; the seed ST-GCN (1 clip of T = 300: 64 rows) in pieces against whole."""
    from models import build_model
    from pipeline.run import forward

    torch.manual_seed(0)
    pp, seed = build_model("stgcnpp", CLASSES).eval(), build_model("stgcn", CLASSES).eval()
    with torch.no_grad():
        for bn in pp.modules():  # statistics of a trained model, not the identity
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
    folded = fold_batchnorm(pp)
    whole = (1 << 30, 1 << 30)  # PIECE_ROWS that keep any batch whole

    def rate(model: nn.Module, rows: int, t: int, precision: str, pieces: tuple[int, int]) -> float:
        x, lengths = torch.randn(rows, t, 17, 3), torch.full((rows,), t)
        saved, forward.PIECE_ROWS = forward.PIECE_ROWS, pieces
        try:
            forward.clip_logits(model, x, lengths, 1, precision=precision)
            t0 = time.perf_counter()
            for _ in range(2):
                forward.clip_logits(model, x, lengths, 1, precision=precision)
            return 2 * rows / (time.perf_counter() - t0)
        finally:
            forward.PIECE_ROWS = saved

    variants = {"stgcnpp whole": (pp, 320, T, whole), "stgcnpp BN folded": (folded, 320, T, whole),
                "stgcnpp pieces": (pp, 320, T, forward.PIECE_ROWS),
                "stgcn whole": (seed, 64, 300, whole), "stgcn pieces": (seed, 64, 300, forward.PIECE_ROWS)}
    for precision in ("fp32", "bf16"):
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for name, (model, rows, t, pieces) in variants.items():
                rates[name].append(rate(model, rows, t, precision, pieces))
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"(c) eval {precision} clips/s: " + ", ".join(
            f"{k} {v:.0f}" + (f" ({v / med[k.split()[0] + ' whole']:.2f}x)" if "whole" not in k else "")
            for k, v in med.items()))


def loader_rate(batches: int = 30) -> dict[str, float]:
    """Samples/s of the recommended recipe's training loader over a synthetic cache, in memory
    mode as a small cache runs, in streaming mode (a cache larger than memory), and built by
    torch on the device (`--loader device`; here the CPU, on a GPU the device)."""
    from pipeline.data.cache import ingest, open_cache
    from pipeline.data.splits import write_splits
    from pipeline.inputs.dataset import SkeletonDataset
    from pipeline.run.options import TrainConfig
    from pipeline.run.recipes import recipe_options
    from pipeline.source.synth import SynthConfig, write_synth

    with tempfile.TemporaryDirectory() as d:
        write_synth(Path(d) / "raw.pkl", SynthConfig(classes=15, per_class=80, seed=0))
        ingest(Path(d) / "raw.pkl", Path(d) / "cache")
        cache = open_cache(Path(d) / "cache")
        write_splits(cache)
        out = {}
        for mode in ("memory", "stream", "device"):
            cfg = TrainConfig(model="stgcnpp", cache=str(Path(d) / "cache"), loader=mode,
                              **recipe_options("recommended", {}))
            ds = SkeletonDataset(cache, cfg.loader_config("train", cache.skeleton))
            n, t0 = 0, time.perf_counter()
            for i, (x, *_) in enumerate(ds):
                n += len(x)
                if i + 1 >= batches:
                    break
            out[mode] = n / (time.perf_counter() - t0)
    return out


SHARED_STEP = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from benchmarks.step import step_rate
from models import build_model
m = build_model("stgcnpp", 15)
print(step_rate(m, m, "bf16", int(sys.argv[2])))
"""
HOG = "import time\nt = time.time()\nwhile time.time() - t < 120: pass\n"


WAIT_POLICIES = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
                 "active": {"OMP_WAIT_POLICY": "ACTIVE"}}  # libgomp's, read when the process starts


def shared(steps: int) -> None:
    """(e) The bf16 step on 2 threads under each OpenMP waiting policy and on 1 thread, alone
    and beside a one-core busy loop, each in a fresh process; and skpipe's default threads."""
    import os

    from pipeline.run.runtime import default_threads

    def rate(threads: int, env: dict[str, str]) -> float:
        out = subprocess.run([sys.executable, "-c", SHARED_STEP, str(threads), str(steps)],
                             capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, **env}).stdout
        return float(out.split()[-1])

    for hog in (False, True):
        busy = subprocess.Popen([sys.executable, "-c", HOG]) if hog else None
        try:
            if busy is not None:
                time.sleep(1.0)
            picked = default_threads()
            two = {name: rate(2, env) for name, env in WAIT_POLICIES.items()}
            one = rate(1, {})
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        where = "beside a one-core busy loop" if hog else "alone"
        policies = ", ".join(f"{name} {r:.1f}" for name, r in two.items())
        print(f"(e) {where}: bf16 step clips/s on 2 threads by OpenMP wait policy: {policies}; "
              f"on 1 thread {one:.1f}; skpipe's default picks {picked} thread(s)")


def epoch_minutes(cache_dir: str, split: str, rates: dict[str, float]) -> None:
    """(f) minutes per epoch of the recommended recipe on a real cache, from the measured step
    rates: its train subset at the step's rate (T = 32 here; other frame counts scale it)."""
    from pipeline.data.cache import open_cache
    from pipeline.inputs.dataset import SkeletonDataset
    from pipeline.run.options import TrainConfig
    from pipeline.run.recipes import recipe_options

    cache = open_cache(cache_dir)
    cfg = TrainConfig(model="stgcnpp", cache=cache_dir, split=split, **recipe_options("recommended", {}))
    n = len(SkeletonDataset(cache, cfg.loader_config("train", cache.skeleton)).samples)
    for precision, rate in rates.items():
        print(f"(f) {cache_dir} split {split}: {n:,} train clips, stgcnpp {precision} at T = 32: "
              f"{n / rate / 60:.2f} min ({n / rate:.0f} s) per epoch (recipe frames {cfg.frames})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--cache", help="Also print minutes per epoch of this cache (recommended recipe).")
    ap.add_argument("--split", default="1")
    a = ap.parse_args()
    from models import build_model
    from pipeline.run.runtime import configure_cpu, usable_cores

    configure_cpu(usable_cores())
    peaks = {"fp32": peak(torch.float32), "bf16": peak(torch.bfloat16)}
    print(f"(a) peak on {torch.get_num_threads()} threads: fp32 {peaks['fp32']:.0f} GFLOPS, bf16 "
          f"{peaks['bf16']:.0f} GFLOPS")
    pp_rates: dict[str, float] = {}
    for name in ("lstm", "stgcn", "stgcnpp"):
        torch.manual_seed(0)
        m = build_model(name, CLASSES)
        f = flop_per_clip(m)
        for precision in ("fp32", "bf16"):
            r = step_rate(m, m, precision, a.steps)
            if name == "stgcnpp":
                pp_rates[precision] = r
            if f < 1e6:  # the counter sees no FLOPs in aten::lstm
                print(f"(b) {name:8s} {precision}: {r:6.1f} clips/s (FLOPs not counted for LSTMs)")
                continue
            print(f"(b) {name:8s} {precision}: {r:6.1f} clips/s x {f / 1e9:.2f} GFLOP = "
                  f"{r * f / 1e9:5.0f} GFLOPS, {r * f / 1e9 / peaks[precision]:.0%} of the {precision} peak")
    candidates(a.steps, a.rounds, a.compile)
    eval_candidates(a.rounds)
    rates = loader_rate()
    print(f"(d) loader, recommended recipe: {rates['memory']:.0f} samples/s in memory, "
          f"{rates['stream']:.0f} streaming, {rates['device']:.0f} built by torch on the CPU device")
    shared(a.steps)
    if a.cache:
        epoch_minutes(a.cache, a.split, pp_rates)


if __name__ == "__main__":
    main()

"""Training throughput benchmark (issue: training), measured in one run on this machine.

(a) the compute floor: model steps on in-memory tensors of the training shapes;
(b) `skpipe train`'s own loop: SkeletonDataset over the Zarr cache + train_one_epoch;
(c) a naive loader that deep-copies and preprocesses each clip from the in-memory pickle on
    every access, as the original study did, feeding the same loop;
(d) fp32 vs bf16; and the memory allocator (glibc, glibc tuned by mallopt, THP, tcmalloc when
    installed) on the floor, interleaved over rounds because these machines are noisy.
Epoch times for split 1 are extrapolated from the measured train and eval rates.

    python -m benchmarks.train [--workdir DIR] [--steps N] [--rounds R]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

FLOOR = r"""
import json, sys, time
from pipeline.run.runtime import configure_cpu
alloc, name, frames, prec, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
import os
if alloc != "mallopt":
    os.environ["SKPIPE_MALLOC"] = "default"
import torch
configure_cpu(2)
from models import build_model
torch.manual_seed(0)
m = build_model(name, 101)
opt = torch.optim.Adam(m.parameters(), 1e-3)
x, y, L = torch.randn(32, frames, 17, 3), torch.randint(0, 101, (32,)), torch.full((32,), frames)
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
        loss = torch.nn.functional.cross_entropy(m(x, L).float(), y)
    opt.zero_grad(); loss.backward(); opt.step()
step(); step()
t = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps(32 * steps / (time.perf_counter() - t)))
"""
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"


def floor(alloc: str, name: str, frames: int, prec: str, steps: int) -> float:
    env = dict(os.environ)
    if alloc == "thp":
        env["THP_MEM_ALLOC_ENABLE"] = "1"
    if alloc == "tcmalloc":
        env["LD_PRELOAD"] = TCMALLOC
    r = subprocess.run([sys.executable, "-c", FLOOR, alloc, name, str(frames), prec, str(steps)],
                       capture_output=True, text=True, env=env, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def loop_rate(name: str, frames: int, prec: str, batches, steps: int) -> float:
    """Samples/s of train_one_epoch over the first `steps` batches of `batches`."""
    import torch

    from models import build_model
    from pipeline.train.fit import train_one_epoch

    torch.manual_seed(0)
    m = build_model(name, 101)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    train_one_epoch(m, opt, itertools.islice(iter(batches), 2), prec)  # warm-up
    r = train_one_epoch(m, opt, itertools.islice(iter(batches), steps), prec)
    return r["samples"] / r["seconds"]


def eval_rate(name: str, frames: int, prec: str, batches, steps: int) -> float:
    import torch

    from models import build_model
    from pipeline.train.fit import evaluate

    m = build_model(name, 101)
    evaluate(m, itertools.islice(iter(batches), 1), prec)
    t = time.perf_counter()
    n = evaluate(m, itertools.islice(iter(batches), steps), prec)["samples"]
    del torch
    return n / (time.perf_counter() - t)


class NaiveDataset:
    """The original study's loader: deep-copy and preprocess the clip on every access."""

    def __init__(self, anns, frames: int) -> None:
        self.anns, self.frames = anns, frames

    def __len__(self) -> int:
        return len(self.anns)

    def __getitem__(self, i: int):
        import numpy as np
        import torch

        from pipeline.data.preprocess import preprocess

        a = copy.deepcopy(self.anns[i])
        x, info = preprocess(a["keypoint"], a["keypoint_score"], tuple(a["img_shape"]))
        if self.frames < 300:
            from pipeline.inputs.transforms import uniform_indices

            idx = uniform_indices(np.array([info.valid_frames]), self.frames, np.random.default_rng(i))
            x = x[idx[0]]  # (frames, V, C)
        return (torch.from_numpy(x), torch.tensor(a["label"]),
                torch.tensor(min(info.valid_frames, self.frames)), torch.tensor(i))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/skpipe-bench"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    raw, cache_dir = work / "ucf101_synth_full.pkl", work / "cache16"
    from pipeline.data.cache import ingest, open_cache
    from pipeline.data.splits import write_splits

    if not raw.exists():
        from pipeline.source.synth import SynthConfig, write_synth

        write_synth(raw, SynthConfig(full=True))
    if not (cache_dir / "manifest.json").exists():
        ingest(raw, cache_dir, force=True)
    cache = open_cache(cache_dir)
    if not (cache_dir / "splits.parquet").exists():
        write_splits(cache)
    import torch

    from pipeline.inputs.dataset import LoaderConfig, SkeletonDataset
    from pipeline.run.runtime import configure_cpu
    from pipeline.source.raw import read_raw

    configure_cpu(2)
    anns = read_raw(raw).annotations
    results = {}
    allocs = ["glibc", "mallopt", "thp"] + (["tcmalloc"] if Path(TCMALLOC).exists() else [])
    print(f"allocators on the ST-GCN T=300 fp32 floor, {args.rounds} interleaved rounds "
          f"of {args.steps} steps (samples/s):")
    rates: dict[str, list[float]] = {a: [] for a in allocs}
    for _ in range(args.rounds):
        for a in allocs:
            rates[a].append(floor(a, "stgcn", 300, "fp32", args.steps))
    for a in allocs:
        print(f"  {a:9s} median {statistics.median(rates[a]):6.1f}   runs {[round(r, 1) for r in rates[a]]}")
    configs = [("stgcn", 300, "fp32"), ("stgcn", 300, "bf16"), ("stgcn", 100, "bf16"),
               ("lstm", 300, "fp32"), ("lstm", 300, "bf16")]
    n_train = len(SkeletonDataset(cache, LoaderConfig(subset="train")).samples)
    n_val = len(SkeletonDataset(cache, LoaderConfig(subset="val", train=False)).samples)
    print(f"\nsplit 1 of the --full synthetic cache: {n_train} train + {n_val} val clips")
    print(f"{'model':6s} {'T':>4s} {'prec':5s} {'floor':>7s} {'train':>7s} {'ratio':>6s} "
          f"{'naive':>7s} {'train/naive':>11s} {'eval':>7s} {'epoch est.':>10s}")
    for name, frames, prec in configs:
        steps = args.steps if name == "stgcn" and frames == 300 else 3 * args.steps
        ds = SkeletonDataset(cache, LoaderConfig(subset="train", frames=frames))
        naive = torch.utils.data.DataLoader(NaiveDataset(anns, frames), batch_size=32, shuffle=True)
        fls, trs, nvs = [], [], []
        for _ in range(args.rounds):  # interleaved: the machine is shared and noisy
            fls.append(floor("mallopt", name, frames, prec, steps))
            trs.append(loop_rate(name, frames, prec, ds, steps))
            nvs.append(loop_rate(name, frames, prec, naive, steps))
        fl, tr, nv = (statistics.median(v) for v in (fls, trs, nvs))
        ev = eval_rate(name, frames, prec, SkeletonDataset(
            cache, LoaderConfig(subset="val", frames=frames, train=False, batch_size=64)), steps)
        epoch = n_train / tr + n_val / ev
        results[f"{name}-{frames}-{prec}"] = {"floor": fl, "train": tr, "naive": nv, "eval": ev,
                                              "epoch_s": epoch}
        print(f"{name:6s} {frames:4d} {prec:5s} {fl:7.1f} {tr:7.1f} {tr / fl:6.2f} {nv:7.1f} "
              f"{tr / nv:11.2f} {ev:7.1f} {epoch / 60:8.1f} min")
    (work / "train_bench.json").write_text(json.dumps({"allocators": rates, "configs": results}, indent=2))


if __name__ == "__main__":
    main()

"""Scale-out benchmark (issue: scale out), measured in one run on this machine.

(a) one epoch of `skpipe train` on split 1 of the --full synthetic cache: 1 process x 2 threads
    vs 2 processes x 1 thread (torchrun, gloo);
(b) peak resident memory (VmHWM) of a streaming training epoch on that cache and on a copy
    replicated 4x (4 x 13,320 clips), against the arrays' uncompressed size; memory mode as
    the contrast.

    python -m benchmarks.scale [--workdir DIR]   (run benchmarks.train first, or it builds the cache)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RSS_CHILD = r"""
import json, sys
from pipeline.train.fit import TrainConfig, fit
cfg = TrainConfig(model="lstm", cache=sys.argv[1], epochs=1, frames=16, batch_size=64,
                  loader=sys.argv[2], out=sys.argv[3], threads=2)
fit(cfg)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps(hwm * 1024))
"""


def replicate(src: Path, dst: Path, times: int) -> None:
    """A cache holding `times` copies of every clip of `src` (new sample ids, same splits)."""
    import zarr
    from zarr.codecs import ZstdCodec

    from data_manifest import manifest_hash
    from pipeline.data.cache import open_cache, read_manifest
    from pipeline.source.raw import file_sha256

    if (dst / "manifest.json").exists():
        return
    cache = open_cache(src)
    arr = cache.open_array()
    n = arr.shape[0]
    dst.mkdir(parents=True)
    out = zarr.create_array(store=str(dst / "skeletons.zarr"), shape=(n * times, *arr.shape[1:]),
                            chunks=arr.chunks, dtype=arr.dtype, compressors=ZstdCodec(level=1),
                            fill_value=0.0)
    step = arr.chunks[0] * 16
    for k in range(times):
        for lo in range(0, n, step):
            out[k * n + lo : k * n + min(lo + step, n)] = arr[lo : lo + step]
    idx, src_splits = cache.index, cache.source_splits
    pd.concat([idx.assign(sample=idx["sample"] + k * n, frame_dir=idx["frame_dir"] + f"#{k}")
               for k in range(times)]).to_parquet(dst / "index.parquet", index=False)
    src_splits.iloc[:0].to_parquet(dst / "source_splits.parquet", index=False)
    m = json.loads((src / "manifest.json").read_text())
    m["array"]["shape"][0] = n * times
    m["counts"]["samples"] = n * times
    m["tables"] = {name: file_sha256(dst / name) for name in ("index.parquet", "source_splits.parquet")}
    (dst / "manifest.json").write_text(json.dumps(m, indent=2))
    sp = pd.read_parquet(src / "splits.parquet")
    pd.concat([sp.assign(sample=sp["sample"] + k * n) for k in range(times)]).to_parquet(
        dst / "splits.parquet", index=False)
    meta = json.loads((src / "splits.json").read_text())
    meta["manifest_hash"] = manifest_hash(read_manifest(dst))
    meta["table_sha256"] = file_sha256(dst / "splits.parquet")
    (dst / "splits.json").write_text(json.dumps(meta))


def peak_rss(cache: Path, loader: str, out: Path) -> int:
    r = subprocess.run([sys.executable, "-c", RSS_CHILD, str(cache), loader, str(out)],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1])


def epoch_seconds(args: list[str], nproc: int, out: Path) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "cli.main", "train", *args, "--out", str(out)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "cli.main", "train", *args, "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    run = max(out.iterdir(), key=os.path.getmtime)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["seconds"], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/skpipe-bench"))
    args = ap.parse_args()
    work = args.workdir
    cache = work / "cache16"
    if not (cache / "splits.parquet").exists():
        raise SystemExit("run `python -m benchmarks.train` first: it builds the --full cache")
    common = ["stgcn", "--cache", str(cache), "--epochs", "1", "--frames", "100", "--precision",
              "bf16", "--loader", "stream"]
    print("(a) one ST-GCN epoch, T=100 bf16, split 1 train (seconds of the training pass; wall incl. val):")
    for label, extra, nproc in (("1 process x 2 threads", ["--threads", "2"], 1),
                                ("2 processes x 1 thread", [], 2)):
        secs, wall = epoch_seconds(common + extra, nproc, work / f"scale-{nproc}")
        print(f"    {label:24s} train {secs:6.1f} s   wall {wall:6.1f} s")
    big = work / "cache16x4"
    replicate(cache, big, 4)
    print("\n(b) peak RSS of one LSTM epoch (T=16) vs the cache's uncompressed array size:")
    for c in (cache, big):
        m = json.loads((c / "manifest.json").read_text())
        raw = int(np.prod(m["array"]["shape"])) * 2
        for loader in ("stream", "memory") if c == cache else ("stream",):
            rss = peak_rss(c, loader, work / "scale-rss")
            print(f"    {c.name:10s} {m['array']['shape'][0]:6d} clips, array {raw / 2**30:5.2f} GiB,"
                  f" loader {loader:6s}: peak RSS {rss / 2**30:5.2f} GiB")


if __name__ == "__main__":
    main()

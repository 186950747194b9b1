"""`skpipe predict` at scale (issue 10), measured in one run on this machine.

(a) peak resident memory of `skpipe predict RUN raw.pkl --json` on a synthetic pickle of 100
    clips and of 5,000 clips, each in a fresh process, beside the peak of a process that only
    reads the pickle (the pickle's own objects: unpickling holds the whole file);
(b) clips/s of predict (pickle -> ingest's preprocessing -> model) against `evaluate` (cache
    chunks -> model) on the same run, model, frames and clip count, in this process.

    python -m benchmarks.predict [--workdir DIR] [--clips 5000] [--model stgcn] [--frames 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PEAK = r"""
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""
READ_ONLY = "import sys; from pipeline.source.raw import read_raw; read_raw(sys.argv[1])"


def peak_rss(argv: list[str]) -> int:
    """Peak RSS in bytes of `argv` run in a fresh process."""
    out = subprocess.run([sys.executable, "-c", PEAK, *argv], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def build(work: Path, clips: int, model: str, frames: int) -> tuple[Path, Path, Path]:
    """Synthetic pickles of `clips` and of 100 clips, a cache of the large one, and a run
    trained on it for one epoch (the weights do not change the cost)."""
    from pipeline.data.cache import ingest, open_cache
    from pipeline.data.splits import SplitConfig, write_splits
    from pipeline.source.synth import SynthConfig, write_synth
    from pipeline.train.fit import TrainConfig, fit

    big, small = work / f"raw{clips}.pkl", work / "raw100.pkl"
    if not big.exists():
        write_synth(big, SynthConfig(classes=10, per_class=clips // 10, seed=1))
        write_synth(small, SynthConfig(classes=10, per_class=10, seed=1))
        ingest(big, work / "cache")
        write_splits(open_cache(work / "cache"), SplitConfig(val_fraction=0.1))
    runs = sorted((work / "runs").glob(f"*-{model}-*"))
    if not runs:
        fit(TrainConfig(model=model, cache=str(work / "cache"), out=str(work / "runs"), epochs=1,
                        frames=frames, batch_size=64, precision="bf16"))
        runs = sorted((work / "runs").glob(f"*-{model}-*"))
    return big, small, runs[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/skbench-predict"))
    ap.add_argument("--clips", type=int, default=5000)
    ap.add_argument("--model", default="stgcn")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from pipeline.run.runtime import configure_cpu

    configure_cpu(2)
    args.workdir.mkdir(parents=True, exist_ok=True)
    big, small, run = build(args.workdir, args.clips, args.model, args.frames)
    cli = [sys.executable, "-m", "cli.main", "predict", str(run)]
    mem = {
        "read_100": peak_rss([sys.executable, "-c", READ_ONLY, str(small)]),
        "read_big": peak_rss([sys.executable, "-c", READ_ONLY, str(big)]),
        "predict_100": peak_rss([*cli, str(small), "--json"]),
        "predict_big": peak_rss([*cli, str(big), "--json"]),
    }
    from pipeline.infer.evaluate import evaluate_run
    from pipeline.infer.predict import iter_predictions

    pred, ev = [], []
    for _ in range(args.repeat):  # alternated, so outside load hits both alike
        t0 = time.perf_counter()
        n_pred = sum(1 for _ in iter_predictions(run, big))
        pred.append(n_pred / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        n_eval = evaluate_run(run, "train", force=True).report.samples
        ev.append(n_eval / (time.perf_counter() - t0))
    mib = {k: v / 2**20 for k, v in mem.items()}
    result = {
        "clips": args.clips, "model": args.model, "frames": args.frames,
        "pickle_mib": round(big.stat().st_size / 2**20, 1),
        **{f"peak_{k}_mib": round(v, 1) for k, v in mib.items()},
        "peak_ratio_big_vs_100": round(mem["predict_big"] / mem["predict_100"], 3),
        "peak_beyond_reading_big_mib": round(mib["predict_big"] - mib["read_big"], 1),
        "peak_beyond_reading_100_mib": round(mib["predict_100"] - mib["read_100"], 1),
        "predict_clips_per_s": [round(v, 1) for v in pred], "evaluate_clips_per_s": [round(v, 1) for v in ev],
        "predict_vs_evaluate_median": round(statistics.median(pred) / statistics.median(ev), 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

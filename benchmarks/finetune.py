"""Fine-tuning against training from scratch on a small real set (issue 27), over seeds.

    python -m benchmarks.finetune --init RUN --workdir DIR [--seeds 0 1 2] [--epochs 30] [--threads 1]

JHMDB-14 split 1 with a quarter of each class's train clips (seeded, by whole clips; val is then
carved from those by `build-splits` as usual), the recommended recipe at fp32, the same options for
both arms; the only difference is `--init RUN` (a model trained on another real set, e.g.
NW-UCLA's 2D projection). Each run is scored on the whole split-1 test set with its last
epoch (the quarter's val is a handful of clips: nothing is chosen on it, nor on test). Prints
each run and mean +- std per arm.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def quarter_pickle(source: Path, out: Path, seed: int = 0) -> None:
    with open(source, "rb") as f:
        data = pickle.load(f)  # the shared set (the project's own file), not user input
    label = {a["frame_dir"]: a["label"] for a in data["annotations"]}
    rng = np.random.default_rng(seed)
    train = data["split"]["train1"]
    keep = []
    for c in sorted({label[n] for n in train}):
        names = sorted(n for n in train if label[n] == c)
        keep += list(rng.choice(names, max(2, len(names) // 4), replace=False))
    data["split"] = {"train1": sorted(keep), "test1": data["split"]["test1"]}
    with open(out, "wb") as f:
        pickle.dump(data, f)


def skpipe(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"skpipe {' '.join(args)} failed: {r.stderr.strip()[-400:]}")
    return r.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jhmdb", type=Path, default=SHARED / "jhmdb14_gt_coco17.pkl")
    a = ap.parse_args()
    w = a.workdir
    w.mkdir(parents=True, exist_ok=True)
    cache = w / "cache"
    if not (cache / "splits.parquet").exists():
        quarter_pickle(a.jhmdb, w / "jhmdb_quarter.pkl")
        skpipe("ingest", str(w / "jhmdb_quarter.pkl"), "--cache", str(cache), "--force")
        skpipe("build-splits", "--cache", str(cache), "--force")
    results: dict[str, list[float]] = {"scratch": [], "init": []}
    for seed in a.seeds:
        for arm in ("scratch", "init"):
            out = w / f"runs-{arm}"
            extra = ["--init", a.init] if arm == "init" else []
            skpipe("train", "stgcnpp", "--cache", str(cache), "--split", "1", "--recipe", "recommended",
                   "--precision", "fp32", "--epochs", str(a.epochs), "--seed", str(seed), "--threads",
                   str(a.threads), "--out", str(out), *extra)
            run = sorted(out.iterdir())[-1]
            skpipe("evaluate", str(run), "--checkpoint", "last", "--threads", str(a.threads))
            report = json.loads((run / "eval" / "test" / "report.json").read_text())
            acc = float(report["accuracy"] if "accuracy" in report else report["top1"])
            results[arm].append(acc)
            print(f"seed {seed} {arm:8s} test top-1 {acc:.2%}  ({run.name})", flush=True)
    for arm, accs in results.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"{arm:8s} {statistics.mean(accs):.2%} +- {sd:.2%} over seeds {a.seeds}")


if __name__ == "__main__":
    main()

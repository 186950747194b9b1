"""Small 3D sets: does a val of whole training views rank recipes as the test view does?

Reads finished runs (trained on a cache whose splits came from `build-splits --val-by view`,
evaluated with `skpipe evaluate RUN --subset test`) and prints, per run, its recipe variant, seed,
best val accuracy (what the run chose its checkpoint on) and test top-1, then per variant the
mean ± std over seeds, and Spearman's rank correlation of val against test over the runs.
Nothing here chooses anything on test: test is only reported beside val.

    python -m benchmarks.small3d RUNS_ROOT     # RUNS_ROOT/<variant>_s<seed>/<run>/

The runs behind docs/training.md's table were made by the command lines it lists (NW-UCLA 3D
`xview`, val = one of the two training views, 30 epochs of one pass: 15k sample passes).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy.stats import spearmanr

from pipeline.infer.report import Report, read_report


def runs(root: Path) -> list[dict[str, object]]:
    out = []
    for folder in sorted(root.iterdir()):
        for run in sorted(folder.glob("*/metrics.jsonl")):
            report = run.parent / "eval" / "test" / "report.json"
            if not report.is_file():
                continue
            rows = [json.loads(line) for line in run.read_text().splitlines() if line.strip()]
            val = max(r["val_acc"] for r in rows)
            variant, _, seed = folder.name.rpartition("_s")
            out.append({"variant": variant, "seed": int(seed), "val": val, "epochs": len(rows),
                        "test": read_report(report, Report).scores.accuracy,
                        "cpu_s": sum(r["seconds"] for r in rows)})
    return out


def _sd(xs: list[float]) -> str:
    return f" ± {statistics.stdev(xs):.1%}" if len(xs) > 1 else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    rows = runs(ap.parse_args().root)
    print("| variant | seed | epochs | best val | test top-1 | train s |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['seed']} | {r['epochs']} | {r['val']:.1%} | {r['test']:.1%} | "
              f"{r['cpu_s']:.0f} |")
    print("\n| variant | runs | val mean ± std | test mean ± std |\n|---|---:|---:|---:|")
    for v in dict.fromkeys(str(r["variant"]) for r in rows):
        vals = [float(r["val"]) for r in rows if r["variant"] == v]  # type: ignore[arg-type]
        tests = [float(r["test"]) for r in rows if r["variant"] == v]  # type: ignore[arg-type]
        print(f"| {v} | {len(vals)} | {statistics.mean(vals):.1%}{_sd(vals)} | "
              f"{statistics.mean(tests):.1%}{_sd(tests)} |")
    if len(rows) >= 3:
        rho = spearmanr([r["val"] for r in rows], [r["test"] for r in rows])
        print(f"\nSpearman's rho, val against test over {len(rows)} runs: {rho.statistic:.2f} "
              f"(p = {rho.pvalue:.2f})")


if __name__ == "__main__":
    main()

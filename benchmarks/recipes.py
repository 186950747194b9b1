"""Recipes and models on the real labelled sets (JHMDB-14, NW-UCLA): accuracy per CPU-minute.

    python -m benchmarks.recipes --work /tmp/skbench select     # candidates, val accuracy only
    python -m benchmarks.recipes --work /tmp/skbench report     # baselines, streams, ensembles
    python -m benchmarks.recipes --work /tmp/skbench fuse       # 2- and 4-stream ensembles of done runs
    python -m benchmarks.recipes --work /tmp/skbench table      # BENCHMARKS.md's table from results

Every finished run appends one JSON line to WORK/results.jsonl (so an interrupted benchmark keeps
what it measured, and a rerun skips what is done). `select` reports val accuracy only: the
recommended recipe is chosen on val, never on test. CPU-minutes are the process's CPU time
(both threads) spent in `fit`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from pipeline.data.cache import ingest, open_cache
from pipeline.data.splits import SplitConfig, write_splits
from pipeline.infer.evaluate import ensemble_runs, evaluate_run
from pipeline.run.config import open_run
from pipeline.run.recipes import recipe_options
from pipeline.run.runtime import configure_cpu
from pipeline.train.fit import TrainConfig, fit

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {  # name: (pickle, build-splits options)
    "jhmdb": ("jhmdb14_gt_coco17.pkl", SplitConfig()),
    # NW-UCLA: a01_s01_e00_v01 = action, subject, episode, view; keep the views of one
    # performance on one side of train / val
    "ucla": ("nw_ucla_coco17.pkl", SplitConfig(group_by=r"^(a\d+_s\d+_e\d+)_")),
}
NO_AUG = {"flip": 0.0, "rotate": 0.0, "scale": 0.0}


def prepare(work: Path, name: str) -> Path:
    cache = work / f"cache-{name}"
    if not (cache / "splits.json").exists():
        pkl, cfg = DATASETS[name]
        ingest(SHARED / pkl, cache, force=True)
        write_splits(open_cache(cache), cfg, force=True)
    return cache


def done(work: Path) -> dict[str, dict[str, Any]]:
    path = work / "results.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return {r["key"]: r for r in rows}


def run_one(work: Path, key: str, data: str, split: str, model: str, recipe: str, seed: int,
            subsets: tuple[str, ...], **options: Any) -> dict[str, Any]:
    """Train one config, evaluate it on `subsets`, append its row to results.jsonl."""
    cache = prepare(work, data)
    cfg = TrainConfig(model=model, cache=str(cache), out=str(work / "runs"), split=split, seed=seed,
                      threads=2, **recipe_options(recipe, options))
    c0, w0 = time.process_time(), time.perf_counter()
    s = fit(cfg)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    row: dict[str, Any] = {"key": key, "data": data, "split": split, "model": model, "recipe": recipe,
                           "seed": seed, "options": options, "run": str(s.run_dir),
                           "epochs": s.epochs, "cpu_min": cpu / 60, "wall_min": wall / 60,
                           "best_val_acc": s.best_val_acc}
    for subset in subsets:
        t0 = time.perf_counter()
        r = evaluate_run(s.run_dir, subset, force=True).report
        row[f"{subset}_acc"] = r.scores.accuracy
        row[f"{subset}_clips_per_s"] = r.samples * r.num_clips / (time.perf_counter() - t0)
    with open(work / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{key}: val {row.get('val_acc', float('nan')):.3f} test {row.get('test_acc', float('nan')):.3f} "
          f"cpu {row['cpu_min']:.1f} min", flush=True)
    return row


def select(work: Path) -> None:
    """Candidates for `recommended`, on JHMDB split 1 and NW-UCLA val (never test)."""
    have = done(work)
    jobs = [
        ("stgcnpp", "recommended", {}),
        ("stgcnpp", "recommended", NO_AUG),
        ("stgcn", "recommended", {}),
    ]
    for data, split in (("jhmdb", "1"),):
        for model, recipe, opts in jobs:
            key = f"select/{data}/{split}/{model}/{recipe}/{json.dumps(opts, sort_keys=True)}"
            if key not in have:
                run_one(work, key, data, split, model, recipe, 0, ("val",), **opts)


def report(work: Path, seeds: list[int], splits: dict[str, list[str]], baseline_epochs: int,
           streams: int = 4) -> None:
    """Seed baselines, the recommended recipe per stream, then 2- and 4-stream ensembles."""
    have = done(work)
    for seed in seeds:
        for data, names in splits.items():
            for split in names:
                jobs: list[tuple[str, str, dict[str, Any]]] = [
                    ("stgcnpp", "recommended", {"feats": "j"}),
                    ("stgcnpp", "recommended", {"feats": "b"}),
                ][: streams]
                if baseline_epochs:
                    jobs += [("stgcn", "seed", {"epochs": baseline_epochs}),
                             ("lstm", "seed", {"epochs": baseline_epochs})]
                if streams == 4:  # motion streams after the baselines
                    jobs += [("stgcnpp", "recommended", {"feats": "jm"}),
                             ("stgcnpp", "recommended", {"feats": "bm"})]
                for model, recipe, opts in jobs:
                    key = f"report/{data}/{split}/{model}/{recipe}/{json.dumps(opts, sort_keys=True)}/{seed}"
                    if key in have:
                        continue
                    earlier = reusable(have, data, split, model, recipe, seed, opts)
                    if earlier is not None:  # the same run, trained while choosing: test it now
                        have[key] = add_test(work, key, earlier)
                        continue
                    have[key] = run_one(work, key, data, split, model, recipe, seed, ("val", "test"), **opts)
                fuse(work, have, data, split, seed)


def reusable(have: dict[str, dict[str, Any]], data: str, split: str, model: str, recipe: str, seed: int,
             opts: dict[str, Any]) -> dict[str, Any] | None:
    """A `select` run trained with exactly this config (as its own config.json records it)."""
    want = asdict(TrainConfig(model=model, split=split, seed=seed, **recipe_options(recipe, opts)))
    ignore = ("cache", "out", "threads", "workers", "loader", "device")
    for r in have.values():
        if not r["key"].startswith("select/") or (r["data"], r["split"]) != (data, split):
            continue
        used = asdict(open_run(Path(r["run"])).config.train)
        if all(used[k] == v for k, v in want.items() if k not in ignore):
            return r
    return None


def add_test(work: Path, key: str, earlier: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    rep = evaluate_run(Path(earlier["run"]), "test", force=True).report
    row = {**earlier, "key": key, "options": {"feats": "j", **earlier["options"]},
           "test_acc": rep.scores.accuracy,
           "test_clips_per_s": rep.samples * rep.num_clips / (time.perf_counter() - t0)}
    with open(work / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{key}: reused {earlier['key']}; test {row['test_acc']:.3f}", flush=True)
    return row


def fuse(work: Path, have: dict[str, dict[str, Any]], data: str, split: str, seed: int) -> None:
    streams = {}
    for f in ("j", "b", "jm", "bm"):
        key = f"report/{data}/{split}/stgcnpp/recommended/{json.dumps({'feats': f})}/{seed}"
        if key in have:
            streams[f] = have[key]
    for name, feats in (("2s", ("j", "b")), ("4s", ("j", "b", "jm", "bm"))):
        key = f"report/{data}/{split}/ensemble-{name}/{seed}"
        if key in have or not all(f in streams for f in feats):
            continue
        runs = [Path(streams[f]["run"]) for f in feats]
        row: dict[str, Any] = {"key": key, "data": data, "split": split, "model": f"stgcnpp {name}",
                               "recipe": "recommended", "seed": seed,
                               "cpu_min": sum(streams[f]["cpu_min"] for f in feats)}
        for subset in ("val", "test"):
            r = ensemble_runs(runs, subset=subset, out=work / "ensembles" / f"{data}-{split}-{name}-{seed}"
                              / subset, force=True)
            row[f"{subset}_acc"] = r.report.scores.accuracy
        with open(work / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        have[key] = row
        print(f"{key}: val {row['val_acc']:.3f} test {row['test_acc']:.3f}", flush=True)


def table(work: Path) -> str:
    """Markdown: mean ± std over seeds (and JHMDB's splits) per data set and config."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in done(work).values():
        if not r["key"].startswith("report/"):
            continue
        feats = r.get("options", {}).get("feats", "j") if "ensemble" not in r["key"] else "fused"
        groups.setdefault((r["data"], r["model"], r["recipe"], feats), []).append(r)

    def ms(vals: list[float], scale: float = 100.0) -> str:
        if len(vals) == 1:
            return f"{scale * vals[0]:.1f}"
        return f"{scale * statistics.mean(vals):.1f} ± {scale * statistics.stdev(vals):.1f}"

    lines = ["| data | model | recipe | stream | runs | val acc % | test acc % | train CPU-min | "
             "eval clips/s |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for (data, model, recipe, feats), rows in sorted(groups.items()):
        speed = [r["test_clips_per_s"] for r in rows if "test_clips_per_s" in r]
        rate = f"{statistics.mean(speed):.0f}" if speed else "-"
        lines.append(f"| {data} | {model} | {recipe} | {feats} | {len(rows)} | "
                     f"{ms([r['val_acc'] for r in rows])} | {ms([r['test_acc'] for r in rows])} | "
                     f"{ms([r['cpu_min'] for r in rows], 1.0)} | {rate} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["select", "report", "fuse", "table"])
    p.add_argument("--work", type=Path, default=Path("/tmp/skpipe-bench"))
    p.add_argument("--seeds", default="0")
    p.add_argument("--jhmdb-splits", default="1,2,3")
    p.add_argument("--ucla", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--baseline-epochs", type=int, default=30, help="0: no seed baselines")
    p.add_argument("--streams", type=int, choices=[0, 1, 2, 4], default=4,
                   help="stgcnpp streams to train: j; j, b; or j, b, jm, bm (0: baselines only)")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    if not SHARED.exists():
        raise SystemExit(f"{SHARED} is absent: the real labelled sets are needed")
    configure_cpu(2)
    torch.manual_seed(0)
    if a.what == "select":
        select(a.work)
    elif a.what == "fuse":  # ensembles of whatever streams are done
        have = done(a.work)
        for r in list(have.values()):
            if r["key"].startswith("report/"):
                fuse(a.work, have, r["data"], r["split"], r["seed"])
    elif a.what == "report":
        splits = {"jhmdb": a.jhmdb_splits.split(",")} if a.jhmdb_splits else {}
        if a.ucla:
            splits["ucla"] = ["xview"]
        report(a.work, [int(s) for s in a.seeds.split(",")], splits, a.baseline_epochs, a.streams)
    print(table(a.work))


if __name__ == "__main__":
    main()

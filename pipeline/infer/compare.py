"""`skpipe compare`: one table of evaluated runs and ensembles (model, stream, accuracy, F1,
parameters, time); runs on other caches, protocols or clip counts are named, never mixed silently."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import SkpipeError
from pipeline.infer.report import EnsembleReport, Report, ensemble_dir, ensemble_report, read_report
from pipeline.run.config import is_run, open_run
from pipeline.run.metrics import read_metrics

COLUMNS = ["run", "dataset", "model", "feats", "recipe", "seed", "epochs", "accuracy", "weighted_f1",
           "macro_f1", "parameters", "train_s_per_epoch", "split", "subset", "num_clips", "config"]
# options that do not change what is learned: runs differing only in these (and the seed) are
# seeds of one config
RUNTIME_OPTIONS = ("seed", "out", "threads", "workers", "loader", "device", "cache", "patience")


def dataset_of(run_name: str, model: str) -> str:
    """The dataset a run's name starts with (`DATASET-MODEL-STREAM-SPLIT-time`), else ''."""
    head, found, _ = run_name.partition(f"-{model}-")
    return head if found else ""


def compare_runs(run_dirs: list[Path], subset: str = "test", split: str | None = None
                 ) -> tuple[pd.DataFrame, list[str]]:
    """One row per run, and warnings for runs on different splits or caches. With `split`,
    only the runs of that protocol (the others are named in a warning)."""
    if not run_dirs:
        raise SkpipeError("give at least one run directory")
    rows: list[dict[str, Any]] = []
    caches: dict[str, list[str]] = {}
    skipped: list[str] = []
    unevaluated: list[str] = []
    for d in run_dirs:
        if not is_run(Path(d)) and ensemble_dir(Path(d)):
            rows.append(_ensemble_row(Path(d), subset))
            caches.setdefault(rows[-1].pop("manifest_hash"), []).append(rows[-1]["run"])
            continue
        run = open_run(d)
        if split is not None and run.split != str(split):
            skipped.append(f"{run.directory.name} ({run.split})")
            continue
        report_path = run.report(subset)
        if not report_path.exists():  # named below, the others compared
            unevaluated.append(str(run.directory))
            continue
        rep = read_report(report_path, Report)
        metrics = read_metrics(run.directory)
        secs = [m.seconds for m in metrics]
        train = run.config.train
        config = {k: v for k, v in asdict(train).items() if k not in RUNTIME_OPTIONS}
        rows.append({
            "run": run.directory.name, "dataset": dataset_of(run.directory.name, run.model),
            "model": run.model, "feats": train.feats,
            "recipe": train.recipe, "seed": train.seed, "epochs": len(metrics),
            "accuracy": rep.scores.accuracy, "weighted_f1": rep.scores.weighted.f1,
            "macro_f1": rep.scores.macro.f1, "parameters": rep.parameters,
            "train_s_per_epoch": sum(secs) / len(secs) if secs else float("nan"),
            "split": run.split, "subset": subset, "num_clips": rep.num_clips,
            "config": json.dumps({**config, "manifest_hash": run.config.manifest_hash,
                                  "num_clips": rep.num_clips}, sort_keys=True),
        })
        caches.setdefault(run.config.manifest_hash, []).append(run.directory.name)
    first = f"skpipe evaluate {unevaluated[0]} --subset {subset}" if unevaluated else ""
    if not rows and unevaluated:
        raise SkpipeError(f"no run has a {subset} evaluation (run `{first}` first)")
    if not rows:
        raise SkpipeError(f"no run on protocol {split!r} among: {', '.join(skipped)}")
    df = pd.DataFrame(rows, columns=COLUMNS)
    warnings = [f"left out, other protocols: {', '.join(skipped)}"] if skipped else []
    if unevaluated:
        warnings.append(f"left out, no {subset} evaluation yet: {', '.join(unevaluated)} (run `{first}`)")
    if df["split"].nunique() > 1:
        warnings.append("runs use different splits ("
                        + ", ".join(f"{r}: {s}" for r, s in zip(df["run"], df["split"], strict=True))
                        + "): their accuracies are not comparable")
    if len(caches) > 1:
        warnings.append("runs were trained on different caches: "
                        + "; ".join(", ".join(v) for v in caches.values()))
    runs = df[df["model"] != "ensemble"]  # an ensemble's report fuses its runs' clips
    if runs["num_clips"].nunique() > 1:
        warnings.append("runs were evaluated with different --clips ("
                        + ", ".join(f"{r}: {c}" for r, c in zip(runs["run"], runs["num_clips"], strict=True))
                        + ")")
    return df, warnings


def _ensemble_row(d: Path, subset: str) -> dict[str, Any]:
    rep = read_report(ensemble_report(d), EnsembleReport)
    if rep.subset != subset:
        raise SkpipeError(f"{d} is an ensemble on {rep.subset}, not {subset}")
    first = Path(rep.runs[0]).name if rep.runs else ""
    return {"run": d.name, "dataset": first.split("-")[0] if first else "", "model": "ensemble",
            "feats": "+".join(rep.feats), "recipe": "", "seed": -1,
            "epochs": 0, "accuracy": rep.scores.accuracy, "weighted_f1": rep.scores.weighted.f1,
            "macro_f1": rep.scores.macro.f1, "parameters": 0, "train_s_per_epoch": float("nan"),
            "split": rep.split, "subset": subset, "num_clips": 0,
            "config": json.dumps({"ensemble": rep.runs, "weights": rep.weights}),
            "manifest_hash": rep.manifest_hash}


def seed_statistics(df: pd.DataFrame) -> pd.DataFrame:
    """One row per config (runs that differ only in --seed and runtime options): the number of
    seeds and the mean and sample standard deviation of accuracy, in the order first seen."""
    g = df.groupby("config", sort=False)
    out = g.agg(model=("model", "first"), feats=("feats", "first"), recipe=("recipe", "first"),
                split=("split", "first"), seeds=("seed", "nunique"), runs=("run", "size"),
                accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                weighted_f1_mean=("weighted_f1", "mean"))
    return out.reset_index(drop=True)


def to_markdown(df: pd.DataFrame, warnings: list[str]) -> str:
    head = "| model | stream | epochs | accuracy | weighted F1 | macro F1 | parameters | s / epoch | run |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.model} | {r.feats} | {r.epochs} | {r.accuracy:.2%} | {r.weighted_f1:.4f} | "
                     f"{r.macro_f1:.4f} | {r.parameters:,} | {r.train_s_per_epoch:.1f} | {r.run} |")
    return "\n".join(lines + [""] + [f"> **Warning:** {w}" for w in warnings]) + "\n"

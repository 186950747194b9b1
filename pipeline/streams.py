"""`skpipe train MODEL --feats j,b,jm,bm`: one run per input stream, trained one after another
with the same options, each evaluated on the protocol's test subset, then fused (the weighted
mean of their softmax, PYSKL's 2- and 4-stream ensembles) and evaluated there too. Each run
chooses its checkpoint on val only; test is read once, at the end, by the evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline import SkpipeError
from pipeline.infer.evaluate import ensemble_runs, evaluate_run
from pipeline.inputs.features import FEATS
from pipeline.train.fit import FitResult, TrainConfig, fit

Event = Callable[[str, dict[str, Any]], None]


def parse_streams(text: str) -> list[str]:
    """`j,b,jm,bm` -> the streams, each known and named once."""
    streams = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in streams if s not in FEATS]
    if unknown or not streams:
        raise SkpipeError(f"--feats takes {', '.join(FEATS)} or several of them separated by commas, "
                          f"got {text!r}")
    if len(set(streams)) != len(streams):
        raise SkpipeError(f"--feats {text}: a stream named twice")
    return streams


@dataclass(frozen=True)
class StreamRow:
    feats: str
    run_dir: Path
    best_val: float  # -1: no val
    test: float


@dataclass(frozen=True)
class StreamsResult:
    rows: list[StreamRow]
    fused_test: float
    ensemble_dir: Path


def train_streams(cfg: TrainConfig, streams: list[str], event_for: Callable[[str], Event | None]
                  ) -> StreamsResult:
    """Train `cfg` once per stream, evaluate each on test, fuse them (equal weights)."""
    if len(streams) < 2:
        raise SkpipeError("several streams are separated by commas, e.g. --feats j,b")
    done: list[FitResult] = []
    for feats in streams:
        r = fit(replace(cfg, feats=feats), event=event_for(feats))
        if r.interrupted:
            raise SkpipeError(f"interrupted while training stream {feats}; the finished runs are kept: "
                              + ", ".join(str(d.run_dir) for d in done))
        done.append(r)
    rows = []
    for feats, r in zip(streams, done, strict=True):
        ev = evaluate_run(r.run_dir, "test", force=True)
        rows.append(StreamRow(feats, r.run_dir, r.best_val_acc, ev.report.scores.accuracy))
    fused = ensemble_runs([r.run_dir for r in done], subset="test", force=True)
    return StreamsResult(rows, fused.report.scores.accuracy, fused.out)

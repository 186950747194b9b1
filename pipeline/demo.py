"""`skpipe demo`: the whole study end to end — data, cache, splits, both models, test, table.

Without `raw`, a synthetic UCF101-format dataset is generated (no download). With `raw` (a real
`ucf101_2d.pkl`), the seed's full protocol runs on split 1: T = 300, batch 32, 50 / 100 epochs.
Runs are always new directories; the cache is reused only when it was built from the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import SkpipeError
from pipeline.data.cache import ingest, is_cache, open_cache, source_status
from pipeline.data.splits import SPLITS_NAME, write_splits
from pipeline.files.atomic import atomic_write_text, ensure_dir
from pipeline.infer.compare import compare_runs, to_markdown
from pipeline.infer.evaluate import evaluate_run
from pipeline.source.synth import SynthConfig, write_synth
from pipeline.train.fit import TrainConfig, fit

Event = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class DemoConfig:
    workdir: str = "skpipe-demo"
    raw: str | None = None
    classes: int = 10
    per_class: int = 60
    frames: int = 32
    batch_size: int = 16
    epochs: dict[str, int] | None = None  # None: 15 each (synthetic) / the seed's (real data)
    clips: int = 5
    force: bool = False
    split: str = "1"  # the protocol to train and test on
    tag: str = ""  # "quick": its own data, cache and table beside a full demo's, never over them

    def path(self, name: str, suffix: str = "") -> Path:
        """A file or folder of the workdir: `cache`, or `cache-quick` for the quick demo."""
        return Path(self.workdir) / (f"{name}-{self.tag}{suffix}" if self.tag else f"{name}{suffix}")


def demo_config(workdir: str, quick: bool = False, raw: str | None = None, force: bool = False,
                split: str = "1") -> DemoConfig:
    if raw is not None:  # the seed's protocol
        return DemoConfig(workdir, raw, frames=300, batch_size=32, epochs={"lstm": 50, "stgcn": 100},
                          clips=1, force=force, split=split)
    if quick:
        return DemoConfig(workdir, None, classes=4, per_class=24, frames=16,
                          epochs={"lstm": 2, "stgcn": 2}, clips=2, force=force, split=split, tag="quick")
    return DemoConfig(workdir, None, epochs={"lstm": 15, "stgcn": 15}, force=force, split=split)


def _cache(cfg: DemoConfig, raw: Path, event: Event) -> Path:
    cache_dir = cfg.path("cache")
    if is_cache(cache_dir):
        if source_status(open_cache(cache_dir).manifest, path=raw)[0] == "ok":
            event("stage", {"name": "cache", "detail": f"reusing {cache_dir} (built from {raw})"})
            return cache_dir
        if not cfg.force:
            raise SkpipeError(f"{cache_dir} was built from another pickle (use --force to rebuild it)")
    event("stage", {"name": "ingest", "detail": f"{raw} -> {cache_dir}"})
    ingest(raw, cache_dir, force=True)
    return cache_dir


def run_demo(cfg: DemoConfig, event: Event | None = None) -> tuple[pd.DataFrame, list[str], Path]:
    emit = event or (lambda name, info: None)
    work = Path(cfg.workdir)
    ensure_dir(work, "the demo's --workdir")
    if cfg.raw is None:
        raw = cfg.path("raw", ".pkl")
        if not raw.exists():
            emit("stage", {"name": "synth", "detail": f"{cfg.classes} classes x {cfg.per_class} clips"})
            write_synth(raw, SynthConfig(classes=cfg.classes, per_class=cfg.per_class))
    else:
        raw = Path(cfg.raw)
    cache_dir = _cache(cfg, raw, emit)
    cache = open_cache(cache_dir)
    if not (cache_dir / SPLITS_NAME).exists():
        emit("stage", {"name": "build-splits", "detail": str(cache_dir / SPLITS_NAME)})
        write_splits(cache)
    runs = []
    epochs = cfg.epochs or {"lstm": 15, "stgcn": 15}
    clips = cfg.clips if cfg.frames < 300 else 1  # the runs' own --clips: evaluate's default
    for model in ("lstm", "stgcn"):
        emit("stage", {"name": f"train {model}", "detail": f"{epochs[model]} epochs, T = {cfg.frames}"})
        tcfg = TrainConfig(model=model, cache=str(cache_dir), split=cfg.split, epochs=epochs[model],
                           frames=cfg.frames, batch_size=cfg.batch_size, num_clips=clips,
                           out=str(work / "runs"))
        s = fit(tcfg, event=emit)
        if s.interrupted:
            raise KeyboardInterrupt
        runs.append(s.run_dir)
    for run in runs:
        emit("stage", {"name": "evaluate", "detail": f"{run.name} on test, {clips} clip(s)"})
        evaluate_run(run, "test", clips=clips)
    df, warnings = compare_runs(runs, "test")
    table = cfg.path("comparison", ".md")
    atomic_write_text(table, to_markdown(df, warnings))
    return df, warnings, table

"""`train --resume`: the one place that decides which options a resumed run takes.

A resumed run continues the same schedule, so it keeps its own options; only the runtime ones
(`RESUME_RUNTIME`) and a larger `--epochs` may change. The CLI passes the options the user gave
explicitly (never click's defaults), and `fit` passes the runtime fields of the config it was
handed: both go through `resume_options`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline import SkpipeError
from pipeline.run.config import open_run
from pipeline.run.options import RESUME_RUNTIME, TrainConfig, option


def resume_options(run_dir: Path, given: Mapping[str, Any]) -> tuple[TrainConfig, list[str]]:
    """The run's own options with the runtime ones in `given` applied, and the names applied.

    Any other option given with a value that differs from the run's is refused; `epochs` may
    only grow (train longer)."""
    saved = open_run(run_dir).config.train
    changes: dict[str, Any] = {}
    for key, value in given.items():
        if value is None or key not in saved.__dataclass_fields__:
            continue
        if key == "model":
            if value != saved.model:
                raise SkpipeError(f"{run_dir} is a {saved.model} run, not {value}")
            continue
        if value == getattr(saved, key):
            continue
        if key in RESUME_RUNTIME or (key == "epochs" and value > saved.epochs):
            changes[key] = value
        else:
            raise SkpipeError(
                f"{option(key)} {value} differs from the run's {getattr(saved, key)}; a "
                f"resumed run keeps its options (only --{', --'.join(RESUME_RUNTIME)} and a larger "
                "--epochs may change)")
    return replace(saved, **changes), sorted(changes)


def runtime_given(cfg: TrainConfig) -> dict[str, Any]:
    """What a config handed to `fit(cfg, resume=...)` asks of the resumed run: its runtime
    options, and its epochs when set."""
    given: dict[str, Any] = {"model": cfg.model, **{k: getattr(cfg, k) for k in RESUME_RUNTIME}}
    if cfg.epochs:
        given["epochs"] = cfg.epochs
    return given


def saved_world_size(run_dir: Path) -> int:
    """How many processes trained the run (1 for a run that cannot be read: resume says why)."""
    try:
        return open_run(run_dir).config.world_size
    except SkpipeError:
        return 1

"""A run directory as its readers see it: config.json, metrics.jsonl, its files by name.

Light on purpose (json and pathlib only): `compare` reads runs without importing torch.
Checkpoints and TensorBoard are written by `pipeline.runlog`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import SkpipeError

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class Run:
    """A training run directory, with its config and the cache it was trained on."""

    directory: Path
    config: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.config["train"]["model"])

    @property
    def split(self) -> str:
        return str(self.config["train"]["split"])

    @property
    def train(self) -> dict[str, Any]:
        return dict(self.config["train"])

    def checkpoint(self, name: str) -> Path:
        """`best` / `last` in the run's checkpoints, or any path."""
        return self.directory / "checkpoints" / f"{name}.pt" if name in ("best", "last") else Path(name)

    def report(self, subset: str) -> Path:
        return self.directory / "eval" / subset / "report.json"


def open_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_NAME
    if not path.exists():
        raise SkpipeError(f"{run_dir} is not a skpipe run ({CONFIG_NAME} missing)")
    try:
        config = json.loads(path.read_text())
        if not isinstance(config, dict) or not isinstance(config.get("train"), dict):
            raise ValueError
    except ValueError:
        raise SkpipeError(f"{path}: malformed run config") from None
    return Run(run_dir, config)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]

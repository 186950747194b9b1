"""metrics.jsonl: one `EpochRow` per finished epoch, written and read here, and nowhere else.

Light (json, dataclasses): `compare` reads it without importing torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pipeline import SkpipeError
from pipeline.files.atomic import atomic_write_text
from pipeline.files.location import read_bytes

METRICS_NAME = "metrics.jsonl"
MAX_METRICS_BYTES = 64 << 20  # ~200 bytes an epoch: far more epochs than any run has


@dataclass(frozen=True)
class EpochRow:
    """One epoch's sums over every rank: train and val loss and accuracy, the learning rate it
    ran at, its seconds, and whether its val accuracy was the best so far (best.pt)."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float
    samples_per_s: float
    best: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EpochRow:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        known = {f.name for f in fields(cls)}
        row = cls(**{k: v for k, v in data.items() if k in known})
        numbers = [getattr(row, f.name) for f in fields(cls) if f.name not in ("epoch", "best")]
        if (not isinstance(row.epoch, int) or isinstance(row.epoch, bool) or row.epoch < 0
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers)):
            raise ValueError("a field of the wrong type")
        return row

    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.train_loss, self.val_loss))


def metrics_file(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_NAME


def read_metrics(run_dir: Path) -> list[EpochRow]:
    """The run's epochs in order; a damaged file is one line naming the line that is."""
    path = metrics_file(run_dir)
    if not path.exists():
        return []
    text = read_bytes(path, MAX_METRICS_BYTES).decode("utf-8", errors="replace")
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(EpochRow.from_json(line))
        except (ValueError, TypeError, RecursionError):
            raise SkpipeError(f"{path}: line {n} is not an epoch of metrics (damaged or edited)") from None
    return rows


def append_epoch(run_dir: Path, row: EpochRow) -> None:
    with open(metrics_file(run_dir), "a") as f:
        f.write(row.to_json() + "\n")


def truncate_metrics(run_dir: Path, epoch: int) -> None:
    """Drop rows past the checkpoint's epoch (written before an interruption)."""
    if metrics_file(run_dir).exists():
        keep = [r for r in read_metrics(run_dir) if r.epoch <= epoch]
        atomic_write_text(metrics_file(run_dir), "".join(r.to_json() + "\n" for r in keep))

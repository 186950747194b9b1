"""report.json, an evaluation's summary: written and read here, and nowhere else.

`Report` is `evaluate`'s, `EnsembleReport` is `ensemble`'s; both carry the same `Scores`. The file
is flat JSON (the scores at the top level, as skpipe 0.1 wrote it), so pandas or jq read it as
they did. Light (json, dataclasses): `compare` reads reports without importing torch.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pipeline import SkpipeError
from pipeline.files.atomic import atomic_write_bytes
from pipeline.files.location import MAX_JSON_BYTES, read_bytes
from pipeline.run.config import REPORT_NAME

__all__ = ["REPORT_NAME", "Averages", "EnsembleReport", "Report", "Scores", "read_report", "to_json"]


@dataclass(frozen=True)
class Averages:
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Scores:
    """Every figure of an evaluation, from scikit-learn (`pipeline.infer.evaluate.compute_metrics`)."""

    accuracy: float
    top5_accuracy: float
    mean_class_accuracy: float
    macro: Averages
    weighted: Averages


@dataclass(frozen=True)
class Report:
    """One run evaluated on one subset of its protocol."""

    run: str
    model: str
    split: str
    subset: str
    checkpoint: str
    num_clips: int  # K temporal clips averaged
    samples: int
    parameters: int
    manifest_hash: str
    device: str
    frames: int
    feats: str
    scores: Scores
    inference_precision: str = "fp32"  # the arithmetic the model ran in (older reports: unrecorded)


@dataclass(frozen=True)
class EnsembleReport:
    """Runs fused on one subset: their weighted mean of class probabilities."""

    runs: list[str]
    weights: list[float]
    split: str
    subset: str
    samples: int
    manifest_hash: str
    feats: list[str]
    device: str
    scores: Scores
    inference_precision: str = "fp32"


R = TypeVar("R", Report, EnsembleReport)
RENAMED = {"clips": "num_clips"}  # reports written before the word table, read with today's names


def to_json(report: Report | EnsembleReport) -> str:
    """Flat JSON: the scores beside the report's other fields; NaN is refused (not JSON)."""
    data = asdict(report)
    data.update(data.pop("scores"))
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def from_json(cls: type[R], text: str | bytes) -> R:
    """A report of `cls` from its flat JSON; ValueError for anything else."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        parsed: Scores = Scores(data["accuracy"], data["top5_accuracy"], data["mean_class_accuracy"],
                        Averages(**data["macro"]), Averages(**data["weighted"]))
        data = {RENAMED.get(k, k): v for k, v in data.items()}
        rest = {f.name: data[f.name] for f in fields(cls)
                if f.name != "scores" and (f.name in data or f.default is MISSING)}
    except (KeyError, TypeError) as e:
        raise ValueError(f"a field is missing or malformed ({e})") from None
    numbers = [parsed.accuracy, parsed.top5_accuracy, parsed.mean_class_accuracy,
               *asdict(parsed.macro).values(), *asdict(parsed.weighted).values()]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
        raise ValueError("a score is not a finite number")
    kwargs: dict[str, Any] = {**rest, "scores": parsed}
    return cls(**kwargs)


def read_report(path: Path, cls: type[R]) -> R:
    """The report at `path`, checked; one line naming the file when it is not one."""
    try:
        return from_json(cls, read_bytes(path, MAX_JSON_BYTES))
    except ValueError as e:
        raise SkpipeError(f"{path}: not a skpipe {cls.__name__.replace('Report', ' report').strip()} "
                          f"({str(e)[:100]}); evaluate again with --force") from None


def ensemble_report(d: Path) -> Path:
    return Path(d) / REPORT_NAME


def ensemble_dir(d: Path) -> bool:
    """Whether `d` is an `ensemble` report directory (its report lists the runs it fused)."""
    path = Path(d) / REPORT_NAME
    if not path.is_file():
        return False
    try:
        from_json(EnsembleReport, read_bytes(path, MAX_JSON_BYTES))
    except (ValueError, SkpipeError):
        return False
    return True


PROBS_NAME = "probs.npz"  # the class probabilities behind a report: what `ensemble` fuses


def write_probs(out: Path, probs: np.ndarray, samples: np.ndarray) -> None:
    """probs (N, C) float32 and the cache rows they belong to (N,), beside report.json."""
    buf = io.BytesIO()
    np.savez(buf, probs=probs.astype(np.float32), samples=samples.astype(np.int64))
    atomic_write_bytes(Path(out) / PROBS_NAME, buf.getvalue())


def read_probs(out: Path, classes: int, limit: int = 1 << 30) -> tuple[np.ndarray, np.ndarray] | None:
    """The probabilities an evaluation saved, checked (shapes, finite, rows summing to 1), or
    None where there are none usable (then they are computed again)."""
    path = Path(out) / PROBS_NAME
    try:
        with np.load(io.BytesIO(read_bytes(path, limit)), allow_pickle=False) as z:
            probs, samples = z["probs"], z["samples"]
    except (OSError, ValueError, KeyError, EOFError, SkpipeError):
        return None
    if (probs.ndim != 2 or probs.shape[1] != classes or samples.shape != probs.shape[:1]
            or probs.dtype != np.float32 or samples.dtype != np.int64 or not np.isfinite(probs).all()
            or not np.allclose(probs.sum(1), 1.0, atol=1e-3)):
        return None
    return probs, samples

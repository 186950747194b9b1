"""A run directory's files: checkpoints, metrics.jsonl, TensorBoard scalars, curves.png.

Written by rank 0 of `fit`; read by `evaluate`, `compare` and `--resume`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import platform
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import SkpipeError, __version__
from pipeline.atomic import atomic_write_text
from pipeline.run import curves_file, metrics_file, read_metrics


def library_versions() -> dict[str, str]:
    import pandas
    import zarr

    return {"skpipe": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "zarr": zarr.__version__, "pandas": pandas.__version__,
            "python": platform.python_version()}


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """torch.save through a temporary sibling: a full disk leaves the previous checkpoint intact
    and no temporary behind."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch reports a full disk as RuntimeError
        tmp.unlink(missing_ok=True)
        raise SkpipeError(f"cannot write {path}: {str(e).splitlines()[0][:120]} (the previous "
                          "checkpoint is unchanged)") from None


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an advisory lock on the run directory while training in it: a second `train
    --resume` of the same run is refused. The lock dies with the process."""
    import fcntl

    f = open(run_dir / ".lock", "a+")  # noqa: SIM115 - held open for the whole block
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SkpipeError(f"{run_dir} is being trained by another process; wait for it or "
                              "stop it first") from None
        yield
    finally:
        f.close()


CHECKPOINT_KEYS = ("model", "model_name", "num_classes")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's dict, loaded with `weights_only=True`: tensors, numbers, strings and plain
    containers only, so a `.pt` that someone hands over can never run code."""
    path = Path(path)
    if not path.is_file():
        raise SkpipeError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; we refuse instead
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SkpipeError(f"{path}: refused: the checkpoint holds objects other than tensors, numbers, "
                          "strings and plain containers (it could run code)") from None
    except Exception as e:  # torch raises many types for a damaged file
        raise SkpipeError(f"{path}: unreadable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CHECKPOINT_KEYS):
        raise SkpipeError(f"{path}: not a skpipe checkpoint (expected a dict with "
                          f"{', '.join(CHECKPOINT_KEYS)})")
    return ckpt


def write_epoch(run_dir: Path, row: dict[str, Any], writer: Any) -> None:
    with open(metrics_file(run_dir), "a") as f:
        f.write(json.dumps(row) + "\n")
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "samples_per_s"):
        writer.add_scalar(k.replace("_", "/", 1), row[k], row["epoch"])
    writer.flush()


def truncate_metrics(path: Path, epoch: int) -> None:
    """Drop metric rows past the checkpoint's epoch (written before an interruption)."""
    if path.exists():
        rows = [ln for ln in path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in rows if json.loads(ln)["epoch"] <= epoch]
        atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def plot_curves(run_dir: Path) -> Path:
    """curves.png: loss and accuracy per epoch, train vs val."""
    from matplotlib.figure import Figure  # no pyplot: no process-wide backend or figure registry

    rows = read_metrics(run_dir)
    ep = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 4))
    a1, a2 = fig.subplots(1, 2)
    a1.plot(ep, [r["train_loss"] for r in rows], label="train")
    a1.plot(ep, [r["val_loss"] for r in rows], label="val")
    a1.set(xlabel="epoch", ylabel="loss", title="Loss")
    a2.plot(ep, [100 * r["train_acc"] for r in rows], label="train")
    a2.plot(ep, [100 * r["val_acc"] for r in rows], label="val")
    if rows:  # the epoch best.pt holds
        best = max(rows, key=lambda r: r["val_acc"])
        for a, y in ((a1, best["val_loss"]), (a2, 100 * best["val_acc"])):
            a.axvline(best["epoch"], color="0.6", linestyle="--", linewidth=1)
            a.plot([best["epoch"]], [y], "o", color="C1")
        a2.annotate(f"best {100 * best['val_acc']:.1f}% (epoch {best['epoch']})", (best["epoch"],
                    100 * best["val_acc"]), textcoords="offset points", xytext=(6, -14), fontsize=9)
    a2.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(Path(run_dir).name)
    fig.tight_layout()
    out = curves_file(run_dir)
    fig.savefig(out, dpi=100)
    return out

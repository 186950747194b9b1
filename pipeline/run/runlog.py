"""What training logs beside its metrics: TensorBoard scalars, curves.png, the library versions,
and the lock that keeps two processes from training one run. Written by rank 0 of `fit`."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import SkpipeError, __version__
from pipeline.run.config import curves_file
from pipeline.run.metrics import EpochRow, append_epoch, read_metrics


def library_versions() -> dict[str, str]:
    import pandas
    import zarr

    return {"skpipe": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "zarr": zarr.__version__, "pandas": pandas.__version__,
            "python": platform.python_version()}


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an advisory lock on the run directory while training in it: a second `train
    --resume` of the same run is refused. The lock dies with the process, and its file is
    removed when the block ends (a finished run holds no `.lock`); a lock taken on a file that
    was removed meanwhile is no lock, so it is refused too."""
    import fcntl
    import os

    path = run_dir / ".lock"
    f = open(path, "a+")  # noqa: SIM115 - held open for the whole block
    held = False
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except OSError:
            pass
        if not held:
            raise SkpipeError(f"{run_dir} is being trained by another process; wait for it or "
                              "stop it first")
        yield
    finally:
        if held:
            with contextlib.suppress(OSError):
                path.unlink()
        f.close()


def write_epoch(run_dir: Path, row: EpochRow, writer: Any) -> None:
    """metrics.jsonl and TensorBoard, for one finished epoch."""
    append_epoch(run_dir, row)
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "samples_per_s"):
        writer.add_scalar(name.replace("_", "/", 1), getattr(row, name), row.epoch)
    writer.flush()


def plot_curves(run_dir: Path) -> Path:
    """curves.png: loss and accuracy per epoch, train vs val."""
    out = curves_file(run_dir)
    curves_figure(read_metrics(run_dir), Path(run_dir).name).savefig(out, dpi=100)
    return out


def curves_figure(rows: list[EpochRow], title: str) -> Any:
    """The Figure of curves.png: two panels over whole epochs."""
    from matplotlib.figure import Figure  # no pyplot: no process-wide backend or figure registry
    from matplotlib.ticker import MaxNLocator

    ep = [r.epoch for r in rows]
    fig = Figure(figsize=(10, 4))
    a1, a2 = fig.subplots(1, 2)
    a1.plot(ep, [r.train_loss for r in rows], label="train")
    a1.plot(ep, [r.val_loss for r in rows], label="val")
    a1.set(xlabel="epoch", ylabel="loss", title="Loss")
    a2.plot(ep, [100 * r.train_acc for r in rows], label="train")
    a2.plot(ep, [100 * r.val_acc for r in rows], label="val")
    if rows:  # the epoch best.pt holds
        best = max(rows, key=lambda r: r.val_acc)
        for a, y in ((a1, best.val_loss), (a2, 100 * best.val_acc)):
            a.axvline(best.epoch, color="0.6", linestyle="--", linewidth=1)
            a.plot([best.epoch], [y], "o", color="C1")
        a2.annotate(f"best {100 * best.val_acc:.1f}% (epoch {best.epoch})", (best.epoch,
                    100 * best.val_acc), textcoords="offset points", xytext=(6, -14), fontsize=9)
    a2.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for a in (a1, a2):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: no 1.5 on a short run
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig

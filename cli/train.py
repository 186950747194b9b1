"""`skpipe train` and `skpipe models`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.data import cache_option
from cli.ui import console, user_errors


class EpochView:
    """Rich rendering of fit()'s events: a bar per epoch, a row per finished epoch."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.1%}  "
                       "{task.fields[sps]:.0f} samples/s"),
            TimeElapsedColumn(), console=console, transient=True,
        )
        self.task: Any = None
        self.started = False
        self.rows: list[dict[str, Any]] = []

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name == "start":
            c = info["config"]
            console.print(
                f"[bold]{c['train']['model']}[/bold] · {c['parameters']:,} parameters · split "
                f"{c['train']['split']} · {c['train_samples']:,} train / {c['val_samples']:,} val · "
                f"loader: {c['loader_mode']} · {c['train']['precision']} · "
                f"{c['train']['threads']} threads · {c['device']}"
                + (f" · {c['world_size']} processes, effective batch {c['effective_batch_size']}, "
                   f"lr {c['effective_lr']:g}" if c["world_size"] > 1 else "")
                + f" → {info['run_dir']}")
            if info["start_epoch"]:
                console.print(f"resuming after epoch {info['start_epoch']}")
            console.print("[dim]per epoch: loss and accuracy train/val, lr, seconds, samples/s; "
                          "* best val[/dim]")
            self.bar.start()
            self.started = True
        elif name == "epoch_start":
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task("", total=info["steps"], epoch=info["epoch"], loss=0.0,
                                          acc=0.0, sps=0.0)
        elif name == "step":
            self.bar.update(self.task, completed=info["step"], loss=info["loss"], acc=info["acc"],
                            sps=info["samples_per_s"])
        elif name == "epoch_end":
            self.rows.append(info)
            star = " *" if info["best"] else ""
            self.bar.console.print(
                f"epoch {info['epoch']:3d}  loss {info['train_loss']:.3f}/{info['val_loss']:.3f}  "
                f"acc {info['train_acc']:6.1%}/{info['val_acc']:6.1%}  lr {info['lr']:.0e}  "
                f"{info['seconds']:.0f} s  {info['samples_per_s']:.0f}/s{star}")
        elif name == "early_stop":
            self.bar.console.print(f"early stop: no better val accuracy for {info['patience']} epochs")

    def close(self) -> None:
        if self.started:  # a display that never started would still print a blank line
            self.bar.stop()
            self.started = False


def without_option(argv: list[str], name: str) -> list[str]:
    """argv minus `name VALUE` and `name=VALUE`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


@click.command()
@click.argument("model", type=click.Choice(["lstm", "stgcn"]))
@cache_option
@click.option("--split", default="1", show_default=True,
              help="Evaluation protocol: 1, 2, 3, xsub, xview, default, ... (`skpipe info` lists them).")
@click.option("--epochs", default=0, help="Default: 50 for lstm, 100 for stgcn.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--weight-decay", default=1e-4, show_default=True)
@click.option("--dropout", default=0.5, show_default=True)
@click.option("--frames", default=300, show_default=True,
              help="Frames fed to the model; below 300, sampled uniformly over the valid frames.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32",
              show_default=True, help="bf16: autocast (CPU or CUDA); fp16: CUDA only, with loss scaling.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--nproc", default=1, show_default=True,
              help="Processes on this machine (DDP through torchrun's launcher).")
@click.option("--lr-scaling", type=click.Choice(["linear", "none"]), default="linear", show_default=True,
              help="Distributed: multiply --lr by the number of processes (the effective batch grows).")
@click.option("--threads", default=0, help="Torch threads (default: all usable cores).")
@click.option("--workers", default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--loader", type=click.Choice(["auto", "memory", "stream"]), default="auto",
              show_default=True, help="Hold the subset in memory, or stream chunks.")
@click.option("--seed", default=0, show_default=True)
@click.option("--patience", default=0, show_default=True, help="Early stop after N epochs without "
              "a better val accuracy (0: off).")
@click.option("--out", default="runs", show_default=True, type=click.Path(path_type=Path))
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory.")
@user_errors
def train(model: str, cache_dir: str, split: str, epochs: int, batch_size: int, lr: float,
          weight_decay: float, dropout: float, frames: int, precision: str, device: str, nproc: int,
          lr_scaling: str, threads: int, workers: int, loader: str, seed: int, patience: int,
          out: Path, resume: Path | None) -> None:
    """Train MODEL (lstm or stgcn) on a split of the cache; choose on val, never touch test.

    Under torchrun, each process trains on its share of the cache's chunks (DDP)."""
    import os
    import sys

    from pipeline.distributed import env_rank, launch
    from pipeline.runlog import read_metrics
    from pipeline.train import TrainConfig, fit

    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        # relaunch the same command, minus --nproc, under torchrun
        raise SystemExit(launch(nproc, without_option(sys.argv[1:], "--nproc")))
    cfg = TrainConfig(model=model, cache=str(cache_dir), split=split, epochs=epochs,
                      batch_size=batch_size, lr=lr, weight_decay=weight_decay, dropout=dropout,
                      frames=frames, precision=precision, threads=threads, workers=workers,
                      seed=seed, patience=patience, loader=loader, out=str(out), device=device,
                      lr_scaling=lr_scaling)
    if env_rank() != 0:  # other ranks train quietly; rank 0 reports
        fit(cfg, resume=resume)
        return
    view = EpochView()
    try:
        s = fit(cfg, resume=resume, event=view)
    finally:
        view.close()
    rows = read_metrics(s["run_dir"])
    t = Table(title=f"{model} · {s['run_dir']}")
    for col in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "s", "samples/s"):
        t.add_column(col, justify="right")
    for r in rows[-20:]:
        t.add_row(str(r["epoch"]), f"{r['train_loss']:.3f}", f"{r['train_acc']:.1%}",
                  f"{r['val_loss']:.3f}", f"{r['val_acc']:.1%}" + (" *" if r["best"] else ""),
                  f"{r['lr']:.1e}", f"{r['seconds']:.0f}", f"{r['samples_per_s']:.0f}")
    console.print(t)
    if s["interrupted"]:
        console.print(f"[yellow]Interrupted. checkpoints/last.pt holds epoch {s['epochs']}; continue "
                      f"with: skpipe train {model} --resume {s['run_dir']}[/yellow]")
        raise SystemExit(130)
    console.print(f"best val accuracy {s['best_val_acc']:.2%} at epoch {s['best_epoch']} "
                  f"(checkpoints/best.pt). Next: skpipe evaluate {s['run_dir']}")


@click.command()
@cache_option
@user_errors
def models(cache_dir: str) -> None:
    """List the models and their parameter counts for the cache's classes (101 without one)."""
    from models import MODELS, build_model, count_parameters
    from pipeline.cache import open_cache
    from pipeline.location import exists, join

    classes, where = 101, "no cache: UCF101's 101 classes"
    if exists(join(cache_dir, "manifest.json")):
        classes, where = open_cache(cache_dir).manifest.num_classes, f"cache {cache_dir}"
    t = Table(title=f"Models at {classes} classes ({where})")
    t.add_column("model")
    t.add_column("parameters", justify="right")
    t.add_column("")
    for name, builder in MODELS.items():
        t.add_row(name, f"{count_parameters(build_model(name, classes)):,}",
                  (builder.__doc__ or "").strip().splitlines()[0])
    console.print(t)

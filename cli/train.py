"""`skpipe train` and `skpipe models`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli.options import (
    FINITE,
    cache_option,
    device_option,
    model_argument,
    threads_option,
    train_clips_option,
)
from cli.ui import QUIET_SECONDS, ThreadTuner, configure_process, console, shown, user_errors
from pipeline import SkpipeError
from pipeline.inputs.augment import NORMALIZATIONS, ROTATE_AXES, SAMPLINGS
from pipeline.inputs.features import FEATS
from pipeline.run.options import LOADERS, LR_SCALINGS, OPTIMIZERS, PRECISIONS, SCHEDULES
from pipeline.run.recipes import RECIPES


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else (
        f"{seconds / 3600:.1f} h")


def rate(per_s: float) -> str:
    """Samples per second with the digits that matter: a fine-tuning run's 0.4/s is not 0/s."""
    return f"{per_s:.0f}" if per_s >= 10 else f"{per_s:.1f}" if per_s >= 1 else f"{per_s:.2f}"


class EpochView:
    """Rich rendering of fit()'s events: a bar per epoch, a row per finished epoch."""

    def __init__(self, retune: bool = False) -> None:
        self.tuner = ThreadTuner() if retune else None  # threads follow the free cores, per epoch
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.1%}  "
                       "{task.fields[sps]} samples/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        )
        self.task: Any = None
        self.started = False
        self.rows: list[Any] = []  # pipeline.run.metrics.EpochRow
        self.epochs = 0
        self.last_line = time.monotonic()

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name == "start":
            c = info["config"]  # pipeline.run.config.RunConfig
            t = c.train
            self.epochs = t.epochs
            console.print(f"[bold]{t.model}[/bold] · {c.parameters:,} parameters · split "
                          f"{shown(t.split)} · {c.train_samples:,} train / {c.val_samples:,} val")
            if not c.val_samples:
                console.print("[yellow]no val clips in this protocol: nothing to choose on, so the last "
                              "epoch is kept as best.pt[/yellow]")
            if c.skeleton:  # not the seed's COCO-17 2D single person
                console.print(f"skeleton {shown(c.input.describe())}")
            why = info["precision_why"]
            if why.startswith("warning"):
                console.print(f"[yellow]{why}[/yellow]")
            console.print(f"recipe {t.recipe} · stream {t.feats} · {t.frames} frames · {t.precision}"
                          + (f" [dim]({why})[/dim]" if why.startswith("auto") else ""))
            passes = f"{t.repeat} pass{'es' if t.repeat > 1 else ''}"
            samples = c.train_samples * t.repeat * t.epochs
            console.print(f"budget {c.train_samples:,} clips x {passes} x {t.epochs} epochs = "
                          f"{samples:,} samples")
            console.print(f"loader {c.loader_mode} · {t.threads} thread{'s' if t.threads > 1 else ''} · "
                          f"{c.device}")  # two lines: each fits 80 columns
            if c.world_size > 1:
                console.print(f"{c.world_size} processes · effective batch {c.effective_batch_size} "
                              f"· lr {c.effective_lr:g}")
            if c.source.get("kind") == "init":
                from pipeline.train.init import describe

                console.print(shown(describe(c.source)), soft_wrap=True)
            if info.get("few"):
                from pipeline.train.fit import FEW_CLIPS

                few = info["few"]
                name, n = min(few.items(), key=lambda kv: kv[1])
                some = f"{len(few)} class{'es' if len(few) != 1 else ''}"
                console.print(f"[yellow]warning: {some} with fewer than {FEW_CLIPS} training clips "
                              f"({shown(name)}: {n}): expect val and test accuracy to swing by whole "
                              "clips and the model to learn those clips more than the action; add "
                              "clips, or start from a trained model (--init)[/yellow]")
            console.print(f"run: {shown(str(info['run_dir']))}", soft_wrap=True)
            if info["start_epoch"]:
                console.print(f"resuming after epoch {info['start_epoch']}")
            console.print("[dim]per epoch: loss and accuracy train/val, lr, seconds, samples/s; "
                          "* best val[/dim]")
            self.bar.start()
            self.started = True
        elif name == "epoch_start":
            self.last_line = time.monotonic()
            changed = self.tuner.retune() if self.tuner is not None and self.task is not None else None
            if changed is not None:
                why = "another process took a core" if changed[1] < changed[0] else "a core is free again"
                self.bar.console.print(f"[dim]threads {changed[0]} -> {changed[1]}: {why}[/dim]")
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task("", total=info["steps"], epoch=info["epoch"], loss=0.0,
                                          acc=0.0, sps="-")
        elif name == "step":
            self.bar.update(self.task, completed=info["step"], loss=info["loss"], acc=info["acc"],
                            sps=rate(info["samples_per_s"]))
            self._quiet_line(info)
        elif name == "epoch_end":  # a pipeline.run.metrics.EpochRow
            self.rows.append(info)
            if self.tuner is not None:
                self.tuner.epoch_done(info.samples_per_s)
            star = " *" if info.best else ""
            seen = info.val_acc == info.val_acc  # NaN: no val
            val_loss, val_acc = (f"{info.val_loss:.3f}", f"{info.val_acc:6.1%}") if seen else ("-", "     -")
            self.bar.console.print(
                f"epoch {info.epoch:3d} loss {info.train_loss:.3f}/{val_loss} "
                f"acc {info.train_acc:6.1%}/{val_acc} lr {info.lr:.0e} "
                f"{info.seconds:.0f} s {rate(info.samples_per_s)}/s{star}{self._left(info.epoch)}")
        elif name == "early_stop":
            self.bar.console.print(f"early stop: no better val accuracy for {info['patience']} epochs")

    def _left(self, epoch: int) -> str:
        """The run's expected remaining time, from the mean of its epochs so far."""
        left = (self.epochs - epoch) * sum(r.seconds for r in self.rows) / max(len(self.rows), 1)
        return f" ~{_duration(left)} left" if left > 0 else ""

    def _quiet_line(self, info: dict[str, Any]) -> None:
        """Without a terminal the bar is not drawn: a line every QUIET_SECONDS instead, so a log
        of a long epoch shows it moving."""
        now = time.monotonic()
        if console.is_terminal or now - self.last_line < QUIET_SECONDS:
            return
        self.last_line = now
        total = self.bar.tasks[-1].total if self.bar.tasks else None
        console.print(f"  step {info['step']:,}/{total or '?'}  loss {info['loss']:.3f}  "
                      f"acc {info['acc']:.1%}  {rate(info['samples_per_s'])} samples/s")

    def close(self) -> None:
        if self.started:  # a display that never started would still print a blank line
            self.bar.stop()
            self.started = False


def explicit_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave on the command line or through the environment, never click's
    defaults: only these may differ from a resumed run's."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {k: v for k, v in options.items() if ctx.get_parameter_source(k) in given}


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
@model_argument
@cache_option
@click.option("--recipe", type=click.Choice(list(RECIPES)), default="seed", show_default=True,
              help="seed: the study's table; recommended: the best val accuracy per CPU-minute "
                   "measured on real data (docs/training.md). Options given here override it.")
@click.option("--split", help="Evaluation protocol: 1, 2, 3, xsub, xview, default, ... (`skpipe info` lists "
              "them). Default: 1, or the cache's only protocol.")
@click.option("--epochs", type=int, help="Default: 50 lstm, 100 stgcn, 80 stgcnpp (seed recipe).")
@click.option("--batch-size", type=int, help="Default: 32.")
@click.option("--lr", type=FINITE, help="Default: 1e-3.")
@click.option("--weight-decay", type=FINITE, help="Default: 1e-4.")
@click.option("--dropout", type=FINITE, help="Default: 0.5.")
@click.option("--frames", type=int,
              help="Frames fed to the model (default 300); fewer are sampled uniformly over valid frames.")
@click.option("--precision", type=click.Choice(PRECISIONS),
              help="Default: the recipe's (seed fp32; the others auto: bf16 where the CPU (avx512_bf16, "
                   "amx_bf16) or GPU has it natively, else fp32). bf16: autocast; fp16: CUDA only, with loss "
                   "scaling. Inference runs fp32 whatever the run trained in.")
@click.option("--feats", metavar="|".join(FEATS) + "|j,b,jm,bm",
              help="Input stream: joints (default), bones, joint motion, bone motion; several separated by "
                   "commas train one run each, one after another, and fuse them on test in one table.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS),
              help="Default adam; sgd: Nesterov momentum 0.9.")
@click.option("--schedule", type=click.Choice(SCHEDULES),
              help="Default plateau (on val loss); cosine: per step, after --warmup epochs.")
@click.option("--warmup", type=int, help="Epochs of linear warm-up before the cosine (default 0).")
@click.option("--label-smoothing", type=FINITE, help="Default 0.")
@click.option("--normalize", type=click.Choice(NORMALIZATIONS),
              help="Default none (x / width, y / height); pyskl: to [-1, 1]; body: centred on the body; "
                   "minmax: each axis of each clip to [-1, 1] after augmentation (CTR-GCN's NW-UCLA).")
@click.option("--flip", type=FINITE, help="Train-time horizontal flip probability (left/right swapped).")
@click.option("--rotate", type=FINITE, help="Train-time random rotation, degrees.")
@click.option("--rotate-axes", type=click.Choice(ROTATE_AXES),
              help="3D: the axes --rotate turns about (default xyz; CTR-GCN's NW-UCLA recipe: xy).")
@click.option("--sampling", type=click.Choice(SAMPLINGS),
              help="Training frames: uniform (default: one per segment, PYSKL) or random (a sorted draw "
                   "with repetition, CTR-GCN). Evaluation always takes evenly spaced frames.")
@click.option("--scale", type=FINITE, help="Train-time random scale, +- this fraction.")
@click.option("--shift", type=FINITE, help="Train-time random shift, +- this (normalized units).")
@train_clips_option
@click.option("--repeat", type=int, help="Passes over the train clips per epoch (default 1): a small "
              "set gets the steps of a large one, counted in the header's sample budget.")
@click.option("--budget", type=int, help="Sample passes over the whole run (e.g. 65000): sets --repeat from "
              "the train set's size, so a small set gets the optimizer steps of a large one.")
@click.option("--init", help="Start from this run's weights (one trained, or `skpipe import`ed): every "
              "weight that fits, a new head for the cache's classes (fine-tuning).")
@click.option("--freeze", type=int, help="With --init: keep the first N blocks (and the data BN) fixed.")
@device_option(None)
@click.option("--nproc", default=1, show_default=True,
              help="Processes on this machine (DDP through torchrun's launcher).")
@click.option("--lr-scaling", type=click.Choice(LR_SCALINGS),
              help="Distributed: multiply --lr by the number of processes (the effective batch grows).")
@threads_option
@click.option("--workers", type=int, help="DataLoader worker processes (default 0; not used by "
              "--loader device).")
@click.option("--loader", type=click.Choice(LOADERS),
              help="Hold the subset in memory, stream chunks, or hold it on the device and build "
              "batches there (default auto: device on a GPU it fits, else memory or stream by size).")
@click.option("--seed", type=int, help="Default 0.")
@click.option("--patience", type=int, help="Early stop after N epochs without a better val accuracy "
              "(default 0: off).")
@click.option("--out", default="runs", show_default=True, type=click.Path(path_type=Path))
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory, with its own options and cache.")
@user_errors
def train(model: str | None, cache_dir: str, recipe: str, nproc: int, resume: Path | None, out: Path,
          **options: Any) -> None:
    """Train MODEL on a protocol of the cache; choose on val, never touch test.

    Under torchrun, each process trains on its share of the cache's chunks (DDP)."""
    import sys

    from pipeline.run.recipes import recipe_options
    from pipeline.train.distributed import launch, launch_env
    from pipeline.train.fit import TrainConfig, fit
    from pipeline.train.resume import resume_options, saved_world_size

    at = launch_env()
    if resume is not None and nproc == 1 and not at.under_torchrun:
        nproc = saved_world_size(resume)  # a distributed run resumes on as many processes
    if nproc > 1 and not at.under_torchrun:
        # relaunch the same command, minus --nproc, under torchrun
        raise SystemExit(launch(nproc, without_option(sys.argv[1:], "--nproc")))
    if options["epochs"] is not None and options["epochs"] < 1:  # 0 means "the model's default" inside
        raise SkpipeError(f"--epochs must be >= 1, got {options['epochs']}")
    if resume is not None:
        given = explicit_options({**options, "cache_dir": cache_dir})
        if "cache_dir" in given:  # --cache or $SKPIPE_CACHE: the run knows its cache
            from pipeline.run.config import open_run

            saved = open_run(resume).config.cache
            if str(cache_dir) != saved:
                raise SkpipeError(f"--cache {cache_dir} differs from the run's {saved}; a resumed run "
                                  "keeps its cache")
        given.pop("cache_dir", None)
        cfg, applied = resume_options(resume, {"model": model, **given})
        if applied and at.rank == 0:
            console.print("resuming with " + ", ".join(f"--{k} {getattr(cfg, k)}" for k in applied))
    elif model is None:
        from models import MODELS

        raise SkpipeError(f"name a model ({', '.join(MODELS)}), or --resume RUN_DIR")
    else:
        streams = None
        if options["feats"] is not None and "," in options["feats"]:
            from pipeline.streams import parse_streams

            streams = parse_streams(options["feats"])
            options = {**options, "feats": streams[0]}
        cfg = TrainConfig(model=model, cache=str(cache_dir), out=str(out), **recipe_options(recipe, options))
        if streams is not None:
            if nproc > 1 or at.under_torchrun:
                raise SkpipeError("several --feats streams train in one process; run them one by one "
                                  "under torchrun")
            configure_process(cfg.threads)
            _train_streams(cfg, streams, options["threads"] is None)
            return
    configure_process(cfg.threads)
    if at.rank != 0:  # other ranks train quietly; rank 0 reports
        fit(cfg, resume=resume)
        return
    view = EpochView(retune=options["threads"] is None and at.local_world == 1)
    try:
        s = fit(cfg, resume=resume, event=view)
    finally:
        view.close()
    if s.interrupted:
        console.print(f"[yellow]Interrupted: checkpoints/last.pt holds epoch {s.epochs}.[/yellow]")
        console.print(f"continue: skpipe train --resume {shown(str(s.run_dir))}", soft_wrap=True)
        raise SystemExit(130)
    if s.best_val_acc < 0:  # never validated: no val clip
        console.print(f"no val: checkpoints/best.pt is the last epoch, {s.best_epoch} of {s.epochs}")
    else:
        console.print(f"best val accuracy {s.best_val_acc:.2%} at epoch {s.best_epoch} of {s.epochs} "
                      "(checkpoints/best.pt)")
    console.print(f"next: skpipe evaluate {shown(str(s.run_dir))}", soft_wrap=True)


def _train_streams(cfg: Any, streams: list[str], retune: bool) -> None:
    from pipeline.streams import train_streams

    views: list[EpochView] = []

    def event_for(feats: str) -> Any:
        console.rule(f"stream {feats}")
        views.append(EpochView(retune=retune))
        return views[-1]

    try:
        r = train_streams(cfg, streams, event_for)
    finally:
        for v in views:
            v.close()
    t = Table(title=f"{cfg.model} · {len(streams)} streams · split {shown(cfg.split or 'default')}",
              caption="each run chose its checkpoint on val; test was read once, here")
    for col in ("stream", "run", "best val", "test top-1"):
        t.add_column(col, justify="right" if col in ("best val", "test top-1") else "left")
    for row in r.rows:
        t.add_row(row.feats, shown(row.run_dir.name), "-" if row.best_val < 0 else f"{row.best_val:.2%}",
                  f"{row.test:.2%}")
    t.add_row("fused", shown(r.ensemble_dir.name), "", f"{r.fused_test:.2%}")
    console.print(t)


@click.command()
@cache_option
@user_errors
def models(cache_dir: str) -> None:
    """List the models, with parameters and cost for the cache's skeleton and classes (COCO-17 2D
    and UCF101's 101 classes without one)."""
    from models import MODELS, build_model, count_parameters
    from models.layouts import Skeleton
    from pipeline.data.cache import is_cache, open_cache

    classes, skeleton, where = 101, Skeleton(), "no cache: UCF101's 101 classes"
    if is_cache(cache_dir):
        cache = open_cache(cache_dir)
        classes, skeleton, where = cache.manifest.num_classes, cache.skeleton, f"cache {cache_dir}"
    t = Table(title=f"Models at {classes} classes ({where})",
              caption=f"input {skeleton.describe()}; GFLOP: one clip's forward pass at T = 100 frames "
                      "(a training step costs about 3x)")
    for col in ("model", "what it is", "parameters", "GFLOP / clip"):
        t.add_column(col, justify="left" if col in ("model", "what it is") else "right")
    for name, entry in MODELS.items():
        net = build_model(name, classes, skeleton=skeleton)
        t.add_row(name, entry.note, f"{count_parameters(net):,}", f"{forward_gflop(net, 100, skeleton):.2f}")
    console.print(t)


def forward_gflop(net: Any, frames: int, skeleton: Any = None) -> float:
    """Floating-point operations of one clip's forward pass, counted by PyTorch, plus the LSTMs'
    gate matmuls, which its counter leaves out (it showed the BiLSTM at 0.00)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        sk = skeleton
        shape = (1, frames, 17, 3) if sk is None else (
            1, *((sk.persons,) if sk.persons > 1 else ()), frames, sk.num_joints, sk.channels)
        net.eval()(torch.zeros(*shape))
    return (counter.get_total_flops() + lstm_flops(net, frames)) / 1e9


def lstm_flops(net: Any, steps: int) -> int:
    """2 x (4H x (I + H)) per step, layer and direction: the four gates' matmuls on the input and
    the hidden state (the elementwise gate arithmetic, under 1 %, left out)."""
    from torch import nn

    total = 0
    for m in net.modules():
        if isinstance(m, nn.LSTM):
            dirs = 2 if m.bidirectional else 1
            for layer in range(m.num_layers):
                i = m.input_size if layer == 0 else m.hidden_size * dirs
                total += 2 * 4 * m.hidden_size * (i + m.hidden_size) * steps * dirs
    return total

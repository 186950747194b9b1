"""`skpipe train`: fit a model on a split's train subset, choose on its val subset.

torchvision-style `train_one_epoch` / `evaluate`, and `fit` around them: the run's optimizer
(Adam or SGD) and schedule (plateau on validation loss, or cosine per step after a warm-up), the
best checkpoint by validation accuracy, `last.pt` every epoch and `epoch_NNN.pt` every
`TrainConfig.checkpoint_every` epochs, resume, early stop, fine-tuning from `--init`. The test subset is never
opened here.

The data order of epoch e is a function of (seed, e) alone and `last.pt` holds the RNG state at
the end of its epoch, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributed.algorithms import Join, Joinable

from models import build_model, count_parameters
from pipeline import SkpipeError
from pipeline.data.cache import Cache, open_cache
from pipeline.inputs.dataset import Batch, SkeletonDataset
from pipeline.run.checkpoint import Checkpoint, TrainState, load_checkpoint, save_checkpoint
from pipeline.run.config import (
    RunConfig,
    checkpoint_file,
    create_run,
    is_run,
    open_run,
    run_name,
    tensorboard_dir,
    write_config,
)
from pipeline.run.forward import clip_logits
from pipeline.run.metrics import EpochRow, truncate_metrics
from pipeline.run.options import TrainConfig
from pipeline.run.runlog import library_versions, plot_curves, run_lock, write_epoch
from pipeline.run.runtime import CPU, allocator_in_use, autocast, choose_precision
from pipeline.train.distributed import (
    DistInfo,
    all_sum,
    broadcast,
    gather,
    setup,
    sync_buffers,
    teardown,
)
from pipeline.train.init import freeze_blocks, read_init, transfer
from pipeline.train.resume import resume_options, runtime_given

__all__ = ["FitResult", "TrainConfig", "evaluate", "fit", "train_one_epoch"]

Event = Callable[[str, Any], None]  # (name, a dict of details, or the EpochRow of epoch_end)


def _to(batch: Batch, device: torch.device) -> Batch:
    if device.type == "cpu":
        return batch
    x, y, lengths, s = batch  # pinned by the DataLoader when workers > 0
    return (x.to(device, non_blocking=True), y.to(device, non_blocking=True),
            lengths.to(device, non_blocking=True), s)


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Batch],
                    precision: str, device: torch.device = CPU,
                    on_step: Callable[[dict[str, float]], None] | None = None,
                    scaler: torch.amp.GradScaler | None = None, label_smoothing: float = 0.0,
                    per_step: Any = None) -> dict[str, float]:
    """One pass over `batches`; returns this process's sums (loss_sum, correct, samples).
    `per_step`: a scheduler stepped after every optimizer step (cosine)."""
    model.train()
    loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    for step, batch in enumerate(batches):
        x, y, lengths, _ = _to(batch, device)
        with autocast(precision, device):
            logits = model(x, lengths)
            loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # fp16 on CUDA
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if per_step is not None:
            per_step.step()
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if on_step is not None:
            on_step({"step": step + 1, "loss": loss_sum / seen, "acc": correct / seen,
                     "samples_per_s": seen / (time.perf_counter() - t0)})
    seconds = time.perf_counter() - t0
    return {"loss_sum": loss_sum, "correct": correct, "samples": seen, "seconds": seconds}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], precision: str,
             device: torch.device = CPU) -> dict[str, float]:
    """This process's sums over `batches` (one clip per sample): loss_sum, correct, samples."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y, lengths, _ in batches:
        logits = clip_logits(model, x, lengths, 1, device, precision)[:, 0]  # (B, classes)
        y = y.to(device)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return {"loss_sum": loss_sum, "correct": correct, "samples": seen}


def _loaders(cache: Cache, cfg: TrainConfig, d: DistInfo) -> tuple[SkeletonDataset, SkeletonDataset | None]:
    """The train and val loaders; val None where the protocol has no val clip (a tiny set of
    one's own videos: every class one clip), and then the last epoch is the one kept."""
    from pipeline.data.splits import read_splits_meta

    on = str(d.device)
    train = SkeletonDataset(cache, cfg.loader_config("train", cache.skeleton, train=True, rank=d.rank,
                                                     world=d.world, device=on))
    if not read_splits_meta(cache).protocol(cfg.split).counts.get("val", 0):
        return train, None
    val = SkeletonDataset(cache, cfg.loader_config("val", cache.skeleton, rank=d.rank, world=d.world,
                                                   device=on))
    return train, val


def _batches(ds: SkeletonDataset, workers: int, device: torch.device) -> Iterable[Batch]:
    """The dataset itself, or a DataLoader of `workers` processes (not for batches built on the
    device, which need none)."""
    if workers == 0 or ds.mode == "device":
        return ds
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                       pin_memory=device.type == "cuda")


def _resume_state(run_dir: Path, cfg: TrainConfig, d: DistInfo) -> tuple[TrainConfig, Checkpoint]:
    """The resumed run's options (`resume_options`, as the CLI applies them: its own cache, not
    the caller's) and its last.pt, checked: a checkpoint that holds what a resume restores, and
    epochs left."""
    cfg, _ = resume_options(run_dir, runtime_given(cfg))
    run = open_run(run_dir)
    path = checkpoint_file(run_dir, "last")
    ckpt = load_checkpoint(path)
    ckpt.check_resumable(path)
    if ckpt.args != run.config.model_args:
        raise SkpipeError(f"{path} holds a {ckpt.args.name} model of {ckpt.args.num_classes} classes; "
                          f"the run is {run.model} with {run.config.num_classes}")
    return cfg, ckpt


def _saved_source(run_dir: Path) -> dict[str, Any]:
    """A resumed run keeps the record of where its weights came from."""
    return dict(open_run(run_dir).config.source)


@dataclass(frozen=True)
class FitResult:
    """What `fit` returns: where the run is and how it ended."""

    run_dir: Path
    epochs: int  # the last completed epoch
    best_val_acc: float
    best_epoch: int
    parameters: int
    interrupted: bool
    loader_mode: str
    rank: int = 0
    world: int = 1


def fit(cfg: TrainConfig, resume: Path | None = None, event: Event | None = None) -> FitResult:
    """Train `cfg.model`; return a summary.

    With `resume`, the run's own options continue (`pipeline.train.resume.resume_options`):
    only the runtime options of `cfg` and a larger `cfg.epochs` are applied. `event(name, info)`
    reports progress (rank 0 only).

    Under torchrun (WORLD_SIZE > 1) each rank trains on its share of the chunks through DDP;
    metrics are summed over ranks and rank 0 alone writes the run directory.
    """
    d = setup(cfg.device)
    try:
        with contextlib.ExitStack() as locks:
            if resume is not None and d.main and is_run(Path(resume)):
                locks.enter_context(run_lock(Path(resume)))  # before anything in it changes
            return _fit(cfg, d, resume, event if d.main else None, locks)
    finally:
        teardown(d)


def _fit(cfg: TrainConfig, d: DistInfo, resume: Path | None, event: Event | None,
         locks: contextlib.ExitStack) -> FitResult:
    emit = event or (lambda name, info: None)
    ckpt: Checkpoint | None = None
    if resume is not None:  # the run's own options, its cache included, read once
        cfg, ckpt = _resume_state(Path(resume), cfg, d)
    cache = open_cache(cfg.cache)
    if resume is not None and ckpt is not None:
        if not cache.built_as(open_run(Path(resume)).config.manifest_hash):
            raise SkpipeError(f"{resume} was trained on another cache (manifest hash differs)")
        if ckpt.state.epoch >= cfg.epochs:
            raise SkpipeError(f"{resume} has finished its {cfg.epochs} epochs; give a larger --epochs to "
                              "train it longer")
    if cfg.precision == "fp16" and d.device.type != "cuda":
        raise SkpipeError("--precision fp16 needs a CUDA device; on CPU use bf16")
    # the threads that run, as the CLI set them (`configure_process`): fit itself sets none
    cfg = replace(cfg, threads=torch.get_num_threads()).resolved()
    if not cfg.split:  # the cache's own: `1`, or its only protocol
        from pipeline.data.splits import read_splits_meta

        cfg = replace(cfg, split=read_splits_meta(cache).default_name())
    precision, why = choose_precision(cfg.precision, d.device)
    cfg = replace(cfg, precision=precision)  # the run records what ran
    s = _Session.start(cfg, d, cache, resume if ckpt is not None else None, ckpt, locks)
    emit("start", {"run_dir": s.run_dir, "config": s.config, "start_epoch": s.state.epoch,
                   "train_batches": len(s.train_ds), "precision_why": why,
                   "few": few_clips(s.train_ds.labels, s.config.class_names)})
    interrupted = False
    try:
        for epoch in range(s.state.epoch + 1, cfg.epochs + 1):
            row = s.epoch(epoch, emit)
            emit("epoch_end", row)
            if cfg.patience and s.state.stale >= cfg.patience:
                emit("early_stop", {"epoch": epoch, "patience": cfg.patience})
                break
    except KeyboardInterrupt:
        interrupted = True  # last.pt already holds the last completed epoch
    finally:
        if s.writer is not None:
            s.writer.close()
    return FitResult(s.run_dir, s.state.epoch, s.state.best_val_acc, s.state.best_epoch,
                     s.config.parameters, interrupted, s.train_ds.mode, d.rank, d.world)


FEW_CLIPS = 5  # training clips per class below which a run learns little more than those clips


def few_clips(labels: np.ndarray, class_names: tuple[str, ...]) -> dict[str, int]:
    """The classes with fewer than FEW_CLIPS training clips (on this rank), and their counts."""
    counts = np.bincount(labels, minlength=len(class_names))  # (K,)
    return {name: int(n) for name, n in zip(class_names, counts, strict=False) if n < FEW_CLIPS}


@dataclass
class _Session:
    """What one training process holds from its first epoch to its last."""

    cfg: TrainConfig
    d: DistInfo
    config: RunConfig
    run_dir: Path
    net: nn.Module  # the network; `model` is the same one wrapped in DDP when distributed
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    train_ds: SkeletonDataset
    val_ds: SkeletonDataset | None  # None: no val clip, the last epoch is kept as best
    state: TrainState
    writer: Any = None

    @classmethod
    def start(cls, cfg: TrainConfig, d: DistInfo, cache: Cache, resume: Path | None,
              ckpt: Checkpoint | None, locks: contextlib.ExitStack) -> _Session:
        """Build the network, optimizer and loaders; restore `ckpt` or create the run directory."""
        train_ds, val_ds = _loaders(cache, cfg, d)
        cfg = cfg.budgeted(len(train_ds.samples) * d.world)  # --budget: the repeat it implies
        torch.manual_seed(cfg.seed)
        init = read_init(cfg.init, cfg.model, cache.skeleton) if cfg.init and ckpt is None else None
        arch = ckpt.args.arch if ckpt is not None else (init.arch if init is not None else {})
        net = build_model(cfg.model, cache.manifest.num_classes, cfg.dropout, cache.skeleton, arch)
        source = (transfer(net, init, tuple(cache.manifest.class_names), cache.skeleton.channels)
                  if init is not None else {})
        if cfg.freeze:
            if not cfg.init:
                raise SkpipeError("--freeze keeps --init's weights fixed; give --init RUN")
            freeze_blocks(net, cfg.freeze)
        net = net.to(d.device)
        lr = cfg.lr * d.world if cfg.lr_scaling == "linear" else cfg.lr  # effective batch x world
        optimizer = build_optimizer(net, cfg, lr)
        scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=len(train_ds) * cfg.repeat)
        state = TrainState()
        if ckpt is not None and resume is not None:
            run_dir = resume
            _restore(ckpt, net, optimizer, scheduler, d, checkpoint_file(run_dir, "last"))
            state = ckpt.state
            if d.main:
                truncate_metrics(run_dir, state.epoch)
        else:
            name = run_name(Path(str(cache.manifest.source.get("path", ""))).stem, cfg.model, cfg.feats,
                            cfg.split)
            run_dir = broadcast(create_run(cfg.out, name) if d.main else None, d)
            if d.main:
                locks.enter_context(run_lock(run_dir))
        model: nn.Module = net
        if d.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        config = RunConfig(
            train=cfg, cache=str(cache.directory), manifest_hash=cache.manifest_hash,
            num_classes=cache.manifest.num_classes, class_names=tuple(cache.manifest.class_names),
            cache_dtype=cache.manifest.array["dtype"], parameters=count_parameters(net),
            skeleton=cache.skeleton.to_dict(), arch=dict(arch),
            source=source or (_saved_source(resume) if resume is not None else {}),
            loader_mode=train_ds.mode, device=str(d.device), world_size=d.world,
            effective_batch_size=cfg.batch_size * d.world, effective_lr=lr,
            train_samples=len(train_ds.samples), val_samples=len(val_ds.samples) if val_ds else 0,
            allocator=allocator_in_use(), versions=library_versions())
        scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        s = cls(cfg, d, config, run_dir, net, model, optimizer, scheduler, scaler, train_ds, val_ds, state)
        if d.main:
            write_config(run_dir, config)
            from torch.utils.tensorboard import SummaryWriter

            s.writer = SummaryWriter(str(tensorboard_dir(run_dir)), purge_step=state.epoch + 1)
        rngs = gather(torch.get_rng_state(), d)
        if ckpt is None and d.main:
            s.checkpoint("last", rngs)  # epoch 0: an interrupted first epoch resumes from scratch
        return s

    @property
    def per_step(self) -> Any:
        """The scheduler stepped after every optimizer step (cosine), else None."""
        return self.scheduler if self.cfg.schedule == "cosine" else None

    def checkpoint(self, name: str, rngs: list[torch.Tensor]) -> None:
        args = self.config.model_args
        save_checkpoint(Checkpoint.of(
            self.net, args, state=self.state, optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(), rng=rngs if self.d.distributed else rngs[0],
            manifest_hash=self.config.manifest_hash, config=asdict(self.cfg)),
            checkpoint_file(self.run_dir, name))

    def _passes(self, epoch: int) -> Iterable[Batch]:
        """The epoch's `repeat` passes over the train subset, each shuffled and augmented anew
        (pass r of epoch e draws as epoch (e - 1) * repeat + r + 1 would: one pass is as before)."""
        for r in range(self.cfg.repeat):
            self.train_ds.set_epoch((epoch - 1) * self.cfg.repeat + r + 1)
            yield from _batches(self.train_ds, self.cfg.workers, self.d.device)

    def epoch(self, epoch: int, emit: Event) -> EpochRow:
        """Train one epoch, validate, step the plateau schedule, write and checkpoint (rank 0)."""
        cfg, d = self.cfg, self.d
        emit("epoch_start", {"epoch": epoch, "steps": len(self.train_ds) * cfg.repeat})
        joined = Join([self.model]) if isinstance(self.model, Joinable) else contextlib.nullcontext()
        with joined:  # ranks may hold unequal numbers of batches
            tr = train_one_epoch(self.model, self.optimizer, self._passes(epoch), cfg.precision, d.device,
                                 functools.partial(_step_event, emit, epoch), self.scaler,
                                 cfg.label_smoothing, self.per_step)
        sync_buffers(self.net, d)
        va = (None if self.val_ds is None else
              evaluate(self.net, _batches(self.val_ds, cfg.workers, d.device), cfg.precision, d.device))
        row = _epoch_row(epoch, tr, va, d, self.optimizer.param_groups[0]["lr"], self.state.best_val_acc)
        if self.per_step is None:
            self.scheduler.step(row.train_loss if va is None else row.val_loss)
        self.state = replace(self.state, epoch=epoch, stale=0 if row.best else self.state.stale + 1)
        if row.best:
            best = self.state.best_val_acc if va is None else row.val_acc
            self.state = replace(self.state, best_val_acc=best, best_epoch=epoch)
        rngs = gather(torch.get_rng_state(), d)
        if d.main:
            write_epoch(self.run_dir, row, self.writer)
            if row.best:
                self.checkpoint("best", rngs)
            if epoch % cfg.checkpoint_every == 0:
                self.checkpoint(f"epoch_{epoch:03d}", rngs)
            self.checkpoint("last", rngs)
            plot_curves(self.run_dir)
        return row


def _restore(ckpt: Checkpoint, net: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             d: DistInfo, path: Path) -> None:
    """Weights, optimizer, scheduler and this rank's RNG from a checked checkpoint; a state that
    does not fit this model is one line."""
    try:
        net.load_state_dict(ckpt.weights)
        optimizer.load_state_dict(ckpt.optimizer or {})
        scheduler.load_state_dict(ckpt.scheduler or {})
        torch.set_rng_state(ckpt.rank_rng(d.rank))
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError):
        raise SkpipeError(f"{path}: its weights or optimizer state do not fit the run's "
                          f"{ckpt.args.name} model (damaged or edited)") from None


def _epoch_row(epoch: int, tr: dict[str, float], va: dict[str, float] | None, d: DistInfo, lr: float,
               best_so_far: float) -> EpochRow:
    """One metrics.jsonl row: this epoch's sums over every rank. Without val (`va` None) its
    loss and accuracy are NaN, never a made-up 0, and every epoch is the best so far."""
    v = va or {"loss_sum": 0.0, "correct": 0.0, "samples": 0.0}
    t_loss, t_ok, t_n, v_loss, v_ok, v_n = all_sum(
        [tr["loss_sum"], tr["correct"], tr["samples"], v["loss_sum"], v["correct"], v["samples"]], d)
    seconds = max(all_sum([tr["seconds"]], d)[0] / d.world, 1e-9)
    nan = float("nan")
    val_acc = v_ok / max(v_n, 1) if va is not None else nan
    return EpochRow(epoch, train_loss=t_loss / max(t_n, 1), train_acc=t_ok / max(t_n, 1),
                    val_loss=v_loss / max(v_n, 1) if va is not None else nan, val_acc=val_acc, lr=lr,
                    seconds=seconds, samples_per_s=t_n / seconds, best=va is None or val_acc > best_so_far)


def build_optimizer(net: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """Adam (the seed's), or SGD with Nesterov momentum (PYSKL's recipes)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)


def cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1 over `warmup_steps`, then half a cosine down to 0 at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Any:
    """ReduceLROnPlateau on val loss (stepped per epoch), or cosine with warm-up (per step)."""
    if cfg.schedule == "cosine":
        steps = max(1, steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
            cosine_factor, warmup_steps=cfg.warmup * steps, total_steps=cfg.epochs * steps))
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience)


def _step_event(emit: Event, epoch: int, info: dict[str, float]) -> None:
    emit("step", {"epoch": epoch, **info})

"""`skpipe train`'s options as one frozen, validated dataclass: the `train` block of a run's
config.json (owned by `pipeline.run.config`).

Plain Python (no torch), so that reading a run directory, as `compare` does, stays light.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from models import MODELS
from models.layouts import Skeleton
from pipeline import MAX_CLIPS, MAX_FED_FRAMES, SkpipeError
from pipeline.inputs.augment import Augment
from pipeline.inputs.features import InputSpec
from pipeline.inputs.loader import MODES, LoaderConfig

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("plateau", "cosine")
LOADERS = MODES
LR_SCALINGS = ("linear", "none")
DEVICES = ("auto", "cpu", "cuda")
RESUME_RUNTIME = ("device", "threads", "workers", "loader")  # what a resumed run may change
_KINDS: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str}
_MAXIMA = {"epochs": 100_000, "batch_size": 65_536, "frames": MAX_FED_FRAMES, "threads": 4096,
           "workers": 1024, "num_clips": MAX_CLIPS, "checkpoint_every": 100_000, "warmup": 100_000,
           "patience": 100_000, "freeze": 64, "repeat": 10_000, "budget": 10**9}


OPTION_NAMES = {"num_clips": "--clips", "cache": "--cache"}  # fields whose option is not --field-name
RENAMED = {"test_clips": "num_clips"}  # options of runs written before the word table


def option(name: str) -> str:
    """The command-line option of a TrainConfig field, for messages."""
    return OPTION_NAMES.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True)
class TrainConfig:
    model: str
    cache: str = "cache"
    split: str = ""  # protocol name: "1".."3", "xsub", "xview", "default", ...; "": the cache's default
    epochs: int = 0  # 0: the model's default (its registry entry: 50 lstm, 100 stgcn, 80 stgcnpp)
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.5
    frames: int = 300
    precision: str = "fp32"  # the seed's; the other recipes say auto (bf16 where native); records what ran
    threads: int = 0  # applied by the CLI (0: the cores other processes leave idle); records what ran
    workers: int = 0
    seed: int = 0
    patience: int = 0  # early stop after this many epochs without a better val acc; 0: off
    lr_patience: int = 5  # ReduceLROnPlateau
    lr_factor: float = 0.5
    loader: str = "auto"
    checkpoint_every: int = 10
    out: str = "runs"
    device: str = "auto"
    lr_scaling: str = "linear"  # distributed: lr x world size (the effective batch grows as much)
    # beyond the seed (each one recorded in the run; the seed recipe leaves them as here)
    feats: str = "j"  # input stream: j, b, jm, bm
    normalize: str = "none"  # none | pyskl | body
    flip: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0
    shift: float = 0.0
    optimizer: str = "adam"  # adam | sgd (Nesterov momentum)
    momentum: float = 0.9
    schedule: str = "plateau"  # plateau | cosine (per step, after `warmup` epochs of linear warm-up)
    warmup: int = 0
    label_smoothing: float = 0.0
    num_clips: int = 1  # K temporal clips `evaluate` averages by default (--clips)
    recipe: str = "seed"
    repeat: int = 1  # passes over the train subset per epoch (a small set gets more steps per epoch)
    budget: int = 0  # sample passes over the whole run; > 0 sets `repeat` from the train set's size
    rotate_axes: str = "xyz"  # 3D: the axes --rotate turns about
    sampling: str = "uniform"  # training frames: uniform (one per segment) | random (sorted draw)
    init: str = ""  # a run (or checkpoint) whose fitting weights the network starts from
    freeze: int = 0  # blocks (from the first) whose parameters --init's weights keep fixed

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", str(self.split))  # runs of skpipe <= 0.1 stored an int
        for f in fields(self):  # values from a config.json are checked before anything uses them
            value, kind = getattr(self, f.name), _KINDS.get(str(f.type))
            if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                what = {"int": "an integer", "float": "a number", "str": "text"}[str(f.type)]
                raise SkpipeError(f"{option(f.name)} must be {what}, got {value!r}"[:200])
        for name, top in _MAXIMA.items():
            if getattr(self, name) > top:
                raise SkpipeError(f"{option(name)} must be <= {top:,}, got {getattr(self, name)}")
        if self.model not in MODELS:
            raise SkpipeError(f"unknown model {self.model!r}; choose from {', '.join(MODELS)}")
        for name, allowed in (("precision", PRECISIONS), ("optimizer", OPTIMIZERS),
                              ("schedule", SCHEDULES), ("loader", LOADERS), ("device", DEVICES),
                              ("lr_scaling", LR_SCALINGS)):
            if getattr(self, name) not in allowed:
                raise SkpipeError(f"{option(name)} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, name)!r}")
        for name, ok, rule in (
            ("epochs", self.epochs >= 0, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"), ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("dropout", 0 <= self.dropout < 1, "in [0, 1)"), ("frames", self.frames >= 1, ">= 1"),
            ("threads", self.threads >= 0, ">= 0"), ("workers", self.workers >= 0, ">= 0"),
            ("patience", self.patience >= 0, ">= 0"), ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("warmup", self.warmup >= 0, ">= 0"), ("num_clips", self.num_clips >= 1, ">= 1"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("checkpoint_every", self.checkpoint_every >= 1, ">= 1"), ("freeze", self.freeze >= 0, ">= 0"),
            ("repeat", self.repeat >= 1, ">= 1"), ("budget", self.budget >= 0, ">= 0"),
        ):
            if not ok:
                raise SkpipeError(f"{option(name)} must be {rule}, got {getattr(self, name)}")
        self.input_spec()  # refuses an unknown stream, normalisation or augmentation range

    def input_spec(self, train: bool = True, skeleton: Skeleton | None = None) -> InputSpec:
        aug = (Augment(self.flip, self.rotate, self.scale, self.shift, self.rotate_axes, self.sampling)
               if train else Augment())
        return InputSpec(self.frames, self.feats, self.normalize, aug, skeleton or Skeleton())

    def loader_config(self, subset: str, skeleton: Skeleton, *, train: bool = False,
                      batch_size: int | None = None, clips: int = 1, rank: int = 0, world: int = 1,
                      device: str = "cpu") -> LoaderConfig:
        """The one way a run's options become a loader: its protocol, frames, stream and
        normalisation always; augmentation and shuffling only for training. `device`: where
        the batches go (a GPU holds the subset when it fits, `--loader auto`)."""
        return LoaderConfig(split=self.split, subset=subset, batch_size=batch_size or self.batch_size,
                            frames=self.frames, train=train, seed=self.seed, mode=self.loader,
                            num_clips=clips, rank=rank, world=world, feats=self.feats,
                            normalize=self.normalize, augment=self.input_spec(train).augment,
                            skeleton=skeleton, device=device)

    def budgeted(self, train_clips: int) -> TrainConfig:
        """With a `budget` of sample passes, the `repeat` that spends about that many over the
        run's epochs: a 226-clip set gets the optimizer steps a 1,000-clip set gets."""
        if not self.budget:
            return self
        passes = self.budget / (max(1, self.epochs) * max(1, train_clips))
        return replace(self, repeat=max(1, min(_MAXIMA["repeat"], round(passes))))

    def resolved(self) -> TrainConfig:
        threads = self.threads or len(os.sched_getaffinity(0))
        return replace(self, epochs=self.epochs or MODELS[self.model].epochs, threads=threads)

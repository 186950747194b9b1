"""`LoaderConfig`: what one pass over a subset of the cache feeds a model. Light (no torch), so
that a run's options can build it (`TrainConfig.loader`) without importing the loader."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.data.protocols import SUBSETS
from pipeline.inputs.augment import Augment
from pipeline.inputs.features import InputSpec

MODES = ("auto", "memory", "stream", "device")  # hold the subset in memory, stream chunks, or
# hold it on the model's device and build batches there (`pipeline.inputs.batch`)


@dataclass(frozen=True)
class LoaderConfig:
    split: str = "1"  # protocol name (splits.parquet's `split`)
    subset: str = "train"
    batch_size: int = 32
    frames: int = 300  # T fed to the model; < 300 samples frames uniformly over valid ones
    train: bool = True  # shuffle and random frame offsets; False: fixed order and offsets
    seed: int = 0
    mode: str = "auto"
    buffer_chunks: int = 16
    memory_limit: int = 2 << 30  # bytes: `auto` holds a subset up to this size in memory
    num_clips: int = 1  # evaluation: K fixed temporal clips per sample, folded into the batch
    rank: int = 0  # DDP: this process's share of the chunks
    world: int = 1
    feats: str = "j"  # input stream: j, b, jm, bm
    normalize: str = "none"
    augment: Augment = field(default_factory=Augment)  # train only
    skeleton: Skeleton = field(default_factory=Skeleton)  # the cache's
    device: str = "cpu"  # where batches go; `auto` holds a subset that fits on a GPU there

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS:
            raise SkpipeError(f"unknown subset {self.subset!r}; choose from {', '.join(SUBSETS)}")
        if self.mode not in MODES:
            raise SkpipeError(f"unknown loader mode {self.mode!r}; choose from {', '.join(MODES)}")
        if not self.frames >= 1:
            raise SkpipeError(f"--frames must be >= 1, got {self.frames}")
        if self.batch_size < 1:
            raise SkpipeError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.num_clips < 1:
            raise SkpipeError(f"--clips must be >= 1, got {self.num_clips}")
        self.spec  # noqa: B018 - refuses an unknown stream or normalisation now

    @property
    def spec(self) -> InputSpec:
        return InputSpec(self.frames, self.feats, self.normalize, self.augment, self.skeleton)

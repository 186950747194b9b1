"""What a model is fed: the input stream, its frames and normalisation (`InputSpec`).

Light (numpy, no torch), so that options and model cards can build it; the arithmetic that turns
cached rows into this input is `pipeline.inputs.batch`, written once in torch for every loader
and for inference. Streams: `j` joints, `b` bones, `jm` joint motion, `bm` bone motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.inputs.augment import NORMALIZATIONS, Augment

FEATS = ("j", "b", "jm", "bm")


@dataclass(frozen=True)
class InputSpec:
    """How cached rows become a model's input: the run's frames, stream and normalisation."""

    frames: int = 300
    feats: str = "j"
    normalize: str = "none"
    augment: Augment = field(default_factory=Augment)
    skeleton: Skeleton = field(default_factory=Skeleton)  # the cache's: layout, dims, score, persons

    def __post_init__(self) -> None:
        if self.feats not in FEATS:
            raise SkpipeError(f"--feats must be one of {', '.join(FEATS)}, got {self.feats!r}")
        if self.normalize not in NORMALIZATIONS:
            raise SkpipeError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, "
                              f"got {self.normalize!r}")

"""Input streams (PYSKL's GenSkeFeat) and the one path from cached rows to a model's input.

Streams, from joints x (B, T, V, C = x, y, score):
    j   joints as cached
    b   bones: each joint minus its parent on the COCO tree; score = the pair's mean
    jm  joint motion: frame t+1 minus frame t over a clip's valid frames; score = the mean
    bm  bone motion
Motion is taken between consecutive frames of the clip, before frames are sampled for the
model, as PYSKL computes it, and is zero from a clip's last valid frame on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.graph import PARENTS
from pipeline import SkpipeError
from pipeline.inputs.augment import Augment, augment, normalize
from pipeline.inputs.transforms import take_frames, uniform_indices

FEATS = ("j", "b", "jm", "bm")


def bones(x: np.ndarray) -> np.ndarray:
    """(B, T, V, C) joints -> bones: joint minus parent; score channel = mean of the two scores."""
    parent = np.asarray(PARENTS)
    out = x - x[:, :, parent]
    out[..., 2] = (x[..., 2] + x[:, :, parent, 2]) / 2
    return out


def motion(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, T, V, C) -> frame-to-frame differences within each clip's `valid` (B,) frames."""
    out = np.zeros_like(x)
    out[:, :-1] = x[:, 1:] - x[:, :-1]
    out[:, :-1, :, 2] = (x[:, 1:, :, 2] + x[:, :-1, :, 2]) / 2
    t = np.arange(x.shape[1])[None, :]  # (1, T)
    out[t >= (np.asarray(valid)[:, None] - 1)] = 0  # the last valid frame and the padding
    return out


def stream(x: np.ndarray, valid: np.ndarray, feats: str) -> np.ndarray:
    """The `feats` stream of joints x (B, T, V, C)."""
    if feats not in FEATS:
        raise SkpipeError(f"--feats must be one of {', '.join(FEATS)}, got {feats!r}")
    y = bones(x) if feats.startswith("b") else x
    return motion(y, valid) if feats.endswith("m") else y


@dataclass(frozen=True)
class InputSpec:
    """How cached rows become a model's input: the run's frames, stream and normalisation."""

    frames: int = 300
    feats: str = "j"
    normalize: str = "none"
    augment: Augment = field(default_factory=Augment)

    def __post_init__(self) -> None:
        if self.feats not in FEATS:
            raise SkpipeError(f"--feats must be one of {', '.join(FEATS)}, got {self.feats!r}")
        normalize(np.zeros((1, 1, 1, 3), np.float32), self.normalize)  # refuses an unknown name


def model_input(x: np.ndarray, valid: np.ndarray, spec: InputSpec, rng: np.random.Generator | None,
                clip: int = 0, num_clips: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cached rows x (B, T_cache, V, C) and valid lengths (B,) -> (input (B, frames, V, C) float32,
    lengths (B,)). `rng` set: training (random frames, augmentation); None: fixed clip `clip`."""
    return sample_frames(_streamed(x, valid, spec, rng), valid, spec.frames, rng, clip, num_clips)


def clips_input(x: np.ndarray, valid: np.ndarray, spec: InputSpec, num_clips: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The `num_clips` K fixed temporal clips of every row, folded into the batch (as PYSKL
    tests): rows (B, T_cache, V, C) -> (input (B * K, frames, V, C), lengths (B * K,)), where
    rows b * K .. b * K + K - 1 are the clips of row b."""
    y = _streamed(x, valid, spec, None)  # (B, T_cache, V, C): once for all K clips
    parts = [sample_frames(y, valid, spec.frames, None, k, num_clips) for k in range(num_clips)]
    xs = np.stack([p[0] for p in parts], axis=1)  # (B, K, frames, V, C)
    lengths = np.stack([p[1] for p in parts], axis=1)  # (B, K)
    return xs.reshape(-1, *xs.shape[2:]), lengths.reshape(-1)  # (B * K, frames, V, C), (B * K,)


def _streamed(x: np.ndarray, valid: np.ndarray, spec: InputSpec, rng: np.random.Generator | None
              ) -> np.ndarray:
    """Normalized, augmented (with `rng`) and turned into the spec's stream: (B, T, V, C)."""
    x = normalize(x.astype(np.float32), spec.normalize)
    if rng is not None:
        x = augment(x, spec.augment, rng)
    return stream(x, valid, spec.feats) if spec.feats != "j" else x


def sample_frames(x: np.ndarray, valid: np.ndarray, frames: int, rng: np.random.Generator | None,
                  clip: int = 0, num_clips: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(B, T, V, C) -> (B, frames, V, C) spread over each row's valid frames, and lengths (B,)."""
    if frames < x.shape[1]:
        idx = uniform_indices(valid, frames, rng, clip, num_clips)  # (B, frames)
        return take_frames(x, idx), np.full(len(x), frames)  # looped: every frame is real
    return x, np.asarray(valid, np.int64)

"""Input streams (PYSKL's GenSkeFeat) and the one path from cached rows to a model's input.

Streams, from joints x (B, T, V, C = coordinates, then a score where the skeleton has one):
    j   joints as cached
    b   bones: each joint minus its parent on the layout's tree; score = the pair's mean
    jm  joint motion: frame t+1 minus frame t over a clip's valid frames; score = the mean
    bm  bone motion
Motion is taken between consecutive frames of the clip, before frames are sampled for the
model, as PYSKL computes it, and is zero from a clip's last valid frame on.

Rows of a two-person cache are (B, M, T, V, C): normalisation and augmentation see a sample's
persons together, streams are taken per person, and every person of a sample gets the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.inputs.augment import Augment, augment, normalize
from pipeline.inputs.transforms import take_frames, uniform_indices

FEATS = ("j", "b", "jm", "bm")


DEFAULT = Skeleton()


def bones(x: np.ndarray, skeleton: Skeleton = DEFAULT) -> np.ndarray:
    """(B, T, V, C) joints -> bones: joint minus parent; score channel = mean of the two scores."""
    parent = np.asarray(skeleton.layout["parents"])
    out = x - x[:, :, parent]
    if skeleton.score:
        out[..., -1] = (x[..., -1] + x[:, :, parent, -1]) / 2
    return out


def motion(x: np.ndarray, valid: np.ndarray, skeleton: Skeleton = DEFAULT) -> np.ndarray:
    """(B, T, V, C) -> frame-to-frame differences within each clip's `valid` (B,) frames."""
    out = np.zeros_like(x)
    out[:, :-1] = x[:, 1:] - x[:, :-1]
    if skeleton.score:
        out[:, :-1, :, -1] = (x[:, 1:, :, -1] + x[:, :-1, :, -1]) / 2
    t = np.arange(x.shape[1])[None, :]  # (1, T)
    out[t >= (np.asarray(valid)[:, None] - 1)] = 0  # the last valid frame and the padding
    return out


def stream(x: np.ndarray, valid: np.ndarray, feats: str, skeleton: Skeleton = DEFAULT) -> np.ndarray:
    """The `feats` stream of joints x (B, T, V, C)."""
    if feats not in FEATS:
        raise SkpipeError(f"--feats must be one of {', '.join(FEATS)}, got {feats!r}")
    y = bones(x, skeleton) if feats.startswith("b") else x
    return motion(y, valid, skeleton) if feats.endswith("m") else y


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
        normalize(np.zeros((1, 1, 1, 3), np.float32), self.normalize)  # refuses an unknown name


def model_input(x: np.ndarray, valid: np.ndarray, spec: InputSpec, rng: np.random.Generator | None,
                clip: int = 0, num_clips: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cached rows x (B, [M,] T_cache, V, C) and valid lengths (B,) -> (input (B, [M,] frames, V, C)
    float32, lengths (B,)). `rng` set: training (random frames, augmentation); None: fixed clip."""
    return sample_frames(_streamed(x, valid, spec, rng), valid, spec.frames, rng, clip, num_clips)


def clips_input(x: np.ndarray, valid: np.ndarray, spec: InputSpec, num_clips: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The `num_clips` K fixed temporal clips of every row, folded into the batch (as PYSKL
    tests): rows (B, [M,] T_cache, V, C) -> (input (B * K, [M,] frames, V, C), lengths (B * K,)),
    where rows b * K .. b * K + K - 1 are the clips of row b."""
    y = _streamed(x, valid, spec, None)  # (B, [M,] T_cache, V, C): once for all K clips
    parts = [sample_frames(y, valid, spec.frames, None, k, num_clips) for k in range(num_clips)]
    xs = np.stack([p[0] for p in parts], axis=1)  # (B, K, [M,] frames, V, C)
    lengths = np.stack([p[1] for p in parts], axis=1)  # (B, K)
    return xs.reshape(-1, *xs.shape[2:]), lengths.reshape(-1)  # (B * K, [M,] frames, V, C), (B * K,)


def _streamed(x: np.ndarray, valid: np.ndarray, spec: InputSpec, rng: np.random.Generator | None
              ) -> np.ndarray:
    """Normalized, augmented (with `rng`) and turned into the spec's stream: (B, [M,] T, V, C)."""
    shape, sk = x.shape, spec.skeleton
    flat = x.astype(np.float32).reshape(len(x), -1, *shape[-2:])  # (B, [M *] T, V, C): persons together
    flat = normalize(flat, spec.normalize, sk)
    if rng is not None:
        flat = augment(flat, spec.augment, rng, sk)
    if spec.feats == "j":
        return flat.reshape(shape)
    if len(shape) == 4:
        return stream(flat, valid, spec.feats, sk)
    b, m = shape[:2]
    per = flat.reshape(b * m, *shape[2:])  # (B * M, T, V, C): streams per person
    return stream(per, np.repeat(np.asarray(valid), m), spec.feats, sk).reshape(shape)


def sample_frames(x: np.ndarray, valid: np.ndarray, frames: int, rng: np.random.Generator | None,
                  clip: int = 0, num_clips: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(B, [M,] T, V, C) -> (B, [M,] frames, V, C) spread over each row's valid frames (the same
    for every person of a row), and lengths (B,)."""
    if frames < x.shape[-3]:
        idx = uniform_indices(valid, frames, rng, clip, num_clips)  # (B, frames)
        return take_frames(x, idx), np.full(len(x), frames)  # looped: every frame is real
    return x, np.asarray(valid, np.int64)

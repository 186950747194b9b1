"""The seed's preprocessing, as pure numpy functions (array in, array out).

For each annotation, in this order (DESIGN.md):
1. person: the slot with the highest mean score over all T x V (ties: lowest slot);
2. normalize: x / width, y / height from img_shape (not clipped);
3. truncate to the first `max_frames` frames, or zero-pad at the end;
4. features (x, y, score).
Non-finite values become 0 with score 0, and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_FRAMES = 300
NUM_JOINTS = 17  # V
NUM_FEATURES = 3  # C: x, y, score


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that decides the numbers in the cache; recorded in the manifest."""

    max_frames: int = MAX_FRAMES
    person: str = "max_mean_score"
    normalize: str = "img_shape"
    features: tuple[str, ...] = ("x", "y", "score")


def choose_person(score: np.ndarray) -> int:
    """Slot with the highest mean score over T x V; -1 when there is no slot (M = 0).

    score: (M, T, V). Non-finite scores count as 0, so a NaN cannot win the argmax.
    """
    if score.shape[0] == 0:
        return -1
    s = score.astype(np.float32)  # (M, T, V), float32 accumulation of float16 input
    if not np.isfinite(s).all():
        s = np.where(np.isfinite(s), s, np.float32(0))
    return int(np.argmax(s.reshape(s.shape[0], -1).mean(axis=1)))  # argmax: lowest slot on ties


def normalize(xy: np.ndarray, img_shape: tuple[int, int]) -> np.ndarray:
    """(T, V, 2) pixels -> (T, V, 2) float32 as x / width, y / height; values past the edge kept."""
    h, w = img_shape
    return xy.astype(np.float32) / np.array([w, h], dtype=np.float32)


def fit_frames(x: np.ndarray, length: int) -> np.ndarray:
    """First `length` frames of x (T, ...), zero-padded at the end when T < length."""
    if x.shape[0] >= length:
        return x[:length]
    out = np.zeros((length, *x.shape[1:]), dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


def to_features(xy: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, int]:
    """(T, V, 2) + (T, V) -> (T, V, 3) float32 (x, y, score); non-finite joints zeroed.

    Returns the features and how many joints were zeroed for a non-finite value.
    """
    feat = np.concatenate([xy, score[..., None].astype(np.float32)], axis=-1)  # (T, V, 3)
    bad = ~np.isfinite(feat).all(axis=-1)  # (T, V)
    n_bad = int(bad.sum())
    if n_bad:
        feat[bad] = 0.0
    return feat, n_bad


@dataclass(frozen=True)
class SampleInfo:
    """What preprocessing learned about one clip; becomes a row of index.parquet."""

    n_persons: int
    person: int
    mean_score: float
    frames: int
    valid_frames: int
    nonfinite: int


def preprocess(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    img_shape: tuple[int, int],
    max_frames: int = MAX_FRAMES,
) -> tuple[np.ndarray, SampleInfo]:
    """One annotation -> (max_frames, V, 3) float32 features and its SampleInfo.

    keypoint: (M, T, V, 2) pixels; keypoint_score: (M, T, V).
    """
    m_count, t_count = keypoint.shape[:2]
    valid = min(t_count, max_frames)
    m = choose_person(keypoint_score)
    if m < 0:
        out = np.zeros((max_frames, keypoint.shape[2], NUM_FEATURES), dtype=np.float32)
        return out, SampleInfo(0, -1, 0.0, t_count, valid, 0)
    score = keypoint_score[m, :valid]  # (T', V), T' = min(T, max_frames)
    xy = normalize(keypoint[m, :valid], img_shape)  # (T', V, 2)
    feat, n_bad = to_features(xy, score)  # (T', V, 3)
    s = keypoint_score[m].astype(np.float32)
    mean = float(np.where(np.isfinite(s), s, 0).mean())
    return fit_frames(feat, max_frames), SampleInfo(m_count, m, mean, t_count, valid, n_bad)

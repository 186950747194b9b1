"""The seed's preprocessing, as pure numpy functions (array in, array out).

For each annotation, in this order (shared/DESIGN.md):
1. person: the slot with the highest mean score over all T x V (ties: lowest slot);
2. scale to the image: x / width, y / height from img_shape (not clipped);
3. truncate to the first `max_frames` frames, or zero-pad at the end;
4. features (x, y, score).
Non-finite values become 0 with score 0, and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from models.graph import NUM_JOINTS  # V

__all__ = ["DTYPES", "MAX_FRAMES", "NUM_FEATURES", "NUM_JOINTS", "RawClip", "preprocess_batch"]

MAX_FRAMES = 300
NUM_FEATURES = 3  # C: x, y, score
DTYPES = ("float16", "float32")  # the cache's: float16 is the source's own precision


class RawClip(NamedTuple):
    """One annotation's arrays as preprocessing reads them."""

    keypoint: np.ndarray  # (M, T, V, 2) pixels, or (M, T, V, 3) coordinates
    score: np.ndarray | None  # (M, T, V); None for 3D pickles without scores
    img_shape: tuple[int, int]  # (height, width); (1, 1) for 3D (not scaled)

    @classmethod
    def of(cls, ann: dict[str, Any]) -> RawClip:
        """From a validated PYSKL annotation dict."""
        hw = ann.get("img_shape")
        h, w = (int(v) for v in hw) if hw is not None else (1, 1)
        return cls(ann["keypoint"], ann.get("keypoint_score"), (h, w))


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that decides the numbers in the cache; recorded in the manifest."""

    max_frames: int = MAX_FRAMES
    person: str = "max_mean_score"
    normalize: str = "img_shape"
    features: tuple[str, ...] = ("x", "y", "score")


def person_means(score: np.ndarray) -> np.ndarray:
    """Mean score of each slot over T x V: (M, T, V) -> (M,) float32; non-finite scores count as 0."""
    flat = score.reshape(score.shape[0], -1)  # (M, T*V)
    means = flat.mean(axis=1, dtype=np.float32)
    if not np.isfinite(means).all():  # rare: only then pay for a sanitized copy
        means = np.where(np.isfinite(flat), flat, 0).mean(axis=1, dtype=np.float32)
    return means


def choose_person(score: np.ndarray) -> int:
    """Slot with the highest mean score over T x V; -1 when there is no slot (M = 0).

    score: (M, T, V). Non-finite scores count as 0, so a NaN cannot win the argmax.
    """
    if score.shape[0] == 0:
        return -1
    return int(np.argmax(person_means(score)))  # argmax: the lowest slot on ties


def scale_to_image(xy: np.ndarray, img_shape: tuple[int, int]) -> np.ndarray:
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
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, SampleInfo]:
    """One annotation -> (max_frames, V, 3) float32 features and its SampleInfo.

    keypoint: (M, T, V, 2) pixels; keypoint_score: (M, T, V). The same numbers as
    choose_person -> scale_to_image -> fit_frames -> to_features, computed straight into `out`
    (allocated when None), since ingest runs this once per clip of a 13k-clip pickle.
    """
    m_count, t_count, v_count = keypoint.shape[:3]
    valid = min(t_count, max_frames)
    if out is None:
        out = np.zeros((max_frames, v_count, NUM_FEATURES), dtype=np.float32)
    else:
        out[valid:] = 0.0  # the zero padding at the end
    if m_count == 0:
        out[:] = 0.0
        return out, SampleInfo(0, -1, 0.0, t_count, valid, 0)
    means = person_means(keypoint_score)  # (M,)
    m = int(np.argmax(means))
    h, w = img_shape
    head = out[:valid]  # (T', V, 3), T' = min(T, max_frames)
    np.divide(keypoint[m, :valid], np.array([w, h], np.float32), out=head[..., :2])  # x/w, y/h
    head[..., 2] = keypoint_score[m, :valid]
    n_bad = 0
    if not np.isfinite(head.sum(dtype=np.float64)):  # rare: find and zero the bad joints
        bad = ~np.isfinite(head).all(axis=-1)  # (T', V)
        n_bad = int(bad.sum())
        head[bad] = 0.0
    return out, SampleInfo(m_count, m, float(means[m]), t_count, valid, n_bad)


def preprocess_batch(
    clips: list[RawClip],
    out: np.ndarray,
    max_frames: int = MAX_FRAMES,
) -> list[SampleInfo]:
    """`preprocess` for a block of clips, written into out[:len(clips)] (B, T, V, 3) float32.

    The same numbers as `preprocess` clip by clip, but the source-dtype -> float32 conversion,
    the division by (width, height) and the finiteness check run once over the whole block:
    done per clip, float16 arithmetic costs ~100 us a clip and dominates ingest.
    """
    b = len(clips)
    src = np.result_type(*(kp.dtype for kp, _, _ in clips),
                         *(sc.dtype for _, sc, _ in clips if sc is not None))
    stage = np.zeros((b, max_frames, out.shape[2], NUM_FEATURES), dtype=src)  # (B, T, V, 3)
    scale = np.ones((b, 1, 1, NUM_FEATURES), np.float32)  # (B, 1, 1, 3): width, height, 1
    infos = []
    for j, (kp, sc, (h, w)) in enumerate(clips):
        assert sc is not None  # the seed's path: 2D with scores
        m_count, t_count = kp.shape[:2]
        valid = min(t_count, max_frames)
        if m_count == 0:
            infos.append(SampleInfo(0, -1, 0.0, t_count, valid, 0))
            continue
        means = person_means(sc)  # (M,)
        m = int(np.argmax(means))
        stage[j, :valid, :, :2] = kp[m, :valid]
        stage[j, :valid, :, 2] = sc[m, :valid]
        scale[j, 0, 0, :2] = (w, h)
        infos.append(SampleInfo(m_count, m, float(means[m]), t_count, valid, 0))
    block = out[:b]
    np.divide(stage, scale, out=block, dtype=np.float32)  # x / width, y / height, score / 1
    if not np.isfinite(block.sum()):  # rare: zero and count the bad joints
        bad = ~np.isfinite(block).all(axis=-1)  # (B, T, V)
        block[bad] = 0.0
        counts = bad.sum(axis=(1, 2))
        infos = [SampleInfo(i.n_persons, i.person, i.mean_score, i.frames, i.valid_frames, int(c))
                 for i, c in zip(infos, counts, strict=True)]
    return infos


def person_motion(keypoint: np.ndarray) -> np.ndarray:
    """How much each slot moves: (M, T, V, C) -> (M,) float32, the sum over joints and
    coordinates of the standard deviation over the frames where the slot is seen (PYSKL's NTU
    preparation keeps the bodies with the most)."""
    x = np.where(np.isfinite(keypoint), keypoint, 0).astype(np.float32)  # (M, T, V, C)
    seen = np.any(x != 0, axis=(2, 3))  # (M, T)
    out = np.zeros(len(x), np.float32)
    for m in range(len(x)):
        if seen[m].sum() > 1:
            out[m] = x[m, seen[m]].std(axis=0).sum()
    return out


def choose_persons(clip: RawClip, persons: int) -> list[int]:
    """The `persons` slots to keep, best first: by mean score where there are scores (the
    seed's rule for the first), else by motion; ties go to the lower slot."""
    if clip.keypoint.shape[0] == 0:
        return []
    rank = person_means(clip.score) if clip.score is not None else person_motion(clip.keypoint)
    order = np.argsort(-rank, kind="stable")  # stable: the lowest slot wins a tie
    return [int(m) for m in order[:persons]]


def preprocess_skeleton(clips: list[RawClip], out: np.ndarray, max_frames: int = MAX_FRAMES
                        ) -> list[SampleInfo]:
    """Any skeleton into out[:len(clips)]: (B, T, V, C) for one person or (B, M, T, V, C) for
    M persons, C = the coordinates (2D scaled to x / width, y / height; 3D as given) then the
    score where the pickle has one. Missing persons and non-finite joints are zeros.

    The seed's 2D single-person case is `preprocess_batch` (same numbers, faster); this is the
    general path for other layouts, 3D and two persons."""
    block = out[: len(clips)]
    block[:] = 0.0
    persons = out.shape[1] if out.ndim == 5 else 1
    infos = []
    for j, clip in enumerate(clips):
        kp, sc, (h, w) = clip
        m_count, t_count, _, dims = kp.shape
        valid = min(t_count, max_frames)
        chosen = choose_persons(clip, persons)
        scale = np.array([w, h], np.float32) if dims == 2 else np.ones(dims, np.float32)
        dest = block[j] if out.ndim == 5 else block[j][None]  # (M, T, V, C)
        for slot, m in enumerate(chosen):
            dest[slot, :valid, :, :dims] = kp[m, :valid] / scale
            if sc is not None:
                dest[slot, :valid, :, dims] = sc[m, :valid]
        bad = ~np.isfinite(dest).all(axis=-1)  # (M, T, V)
        n_bad = int(bad.sum())
        if n_bad:
            dest[bad] = 0.0
        mean = float(person_means(sc)[chosen[0]]) if chosen and sc is not None else 0.0
        infos.append(SampleInfo(m_count, chosen[0] if chosen else -1, mean, t_count, valid, n_bad))
    return infos

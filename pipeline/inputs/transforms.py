"""Frame sampling: which frames a model sees, drawn on the host in numpy (randomness from an
explicit Generator) and taken on any device by `pipeline.inputs.batch.take_frames`.

With `frames` below the cached 300, each clip is read at `frames` frames spread uniformly over
its *valid* frames (PYSKL's UniformSampleFrames): the valid span is cut into `frames` equal
segments and one frame is taken from each, at a random place when training and at a fixed
place when evaluating (clip k of K at fraction (k + 0.5) / K of each segment). A clip shorter
than `frames` is looped from a random (train) or fixed (eval) start, so no compute is spent on
zero padding.

`random_indices` is CTR-GCN's training draw for NW-UCLA (`random.sample(range(L) * 100, F)`,
sorted): any frames, in order, repeated where the clip is short; its test frames are evenly
spaced, which `uniform_indices` with a fixed place already gives.
"""

from __future__ import annotations

import numpy as np


def uniform_indices(valid: np.ndarray, frames: int, rng: np.random.Generator | None = None,
                    clip: int = 0, num_clips: int = 1) -> np.ndarray:
    """Frame indices (B, frames) into each clip, given valid lengths (B,); rng None = fixed."""
    valid = np.maximum(np.asarray(valid, dtype=np.int64), 1)[:, None]  # (B, 1)
    seg = np.arange(frames, dtype=np.float64)[None]  # (1, F)
    if rng is None:
        frac = np.full((len(valid), frames), (clip + 0.5) / num_clips)  # (B, F)
        start = (valid * clip) // num_clips  # (B, 1): loop offset of short clips
    else:
        frac = rng.random((len(valid), frames))
        start = rng.integers(0, valid)  # (B, 1)
    long_idx = np.floor((seg + frac) * valid / frames).astype(np.int64)  # one per segment
    short_idx = (start + np.arange(frames)[None]) % valid  # looped
    return np.where(valid >= frames, np.minimum(long_idx, valid - 1), short_idx)



def random_indices(valid: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Frame indices (B, frames): a sorted random draw of each clip's valid frames, with
    repetition (a frame appears more than once mostly where the clip has fewer than `frames`)."""
    valid = np.maximum(np.asarray(valid, dtype=np.int64), 1)[:, None]  # (B, 1)
    idx = np.floor(rng.random((len(valid), frames)) * valid).astype(np.int64)  # (B, F)
    return np.sort(np.minimum(idx, valid - 1), axis=1)

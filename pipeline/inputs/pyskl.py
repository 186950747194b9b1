"""PYSKL's test pipeline, exactly, for models imported from PYSKL or MMAction2.

An imported model was trained on what PYSKL's pipeline makes of an annotation, not on skpipe's
cache, so it is fed that: `PreNormalize2D` (both modes, with its threshold) or `PreNormalize3D`,
`GenSkeFeat` (j, b, jm, bm with PYSKL's own bone pairs per dataset), `UniformSample(clip_len,
num_clips)` in test mode (numpy's legacy generator seeded with 255, the same draws in the same
order, from a local `RandomState`: no global state is touched), `PoseDecode` and
`FormatGCNInput(num_person)`. Each function is array in, array out.

Axes: M persons, T frames, V joints, C channels (coordinates, then the score where there is one),
K the temporal clips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from pipeline import MAX_CLIPS, MAX_FED_FRAMES, SkpipeError

# PYSKL's graph layouts -> skpipe's
PYSKL_LAYOUTS = {"coco": "coco17", "nturgb+d": "ntu25", "openpose": "openpose18", "handmp": "handmp"}
# JointToBone's pairs (joint, its bone's other end) per dataset, as PYSKL lists them: NTU's hand
# joints differ from the graph's tree (joint 21's bone ends at 22)
BONE_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    "nturgb+d": ((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8),
                 (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17),
                 (19, 18), (21, 22), (20, 20), (22, 7), (23, 24), (24, 11)),
    "openpose": ((0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9),
                 (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14), (17, 15)),
    "coco": ((0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7), (10, 8),
             (11, 0), (12, 0), (13, 11), (14, 12), (15, 13), (16, 14)),
    "handmp": ((0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 0), (6, 5), (7, 6), (8, 7), (9, 0), (10, 9),
               (11, 10), (12, 11), (13, 0), (14, 13), (15, 14), (16, 15), (17, 0), (18, 17), (19, 18),
               (20, 19)),
}
BONE_SCORE = ("openpose", "coco", "handmp")  # JointToBone averages the score channel for these
MOTION_SCORE = ("openpose", "coco")  # ToMotion does for these only
NORMALIZE = ("2d", "3d", "none")
AVERAGES = ("prob", "score")
FEATS = ("j", "b", "jm", "bm")
ORIGINS = ("pyskl", "mmaction2")


@dataclass(frozen=True)
class PysklPipeline:
    """An imported model's test pipeline: what its config's `test_pipeline` says (or PYSKL's
    defaults), the contract stored in its run's config.json and its exports' card."""

    normalize: str = "2d"  # PreNormalize2D, PreNormalize3D, or none
    img_shape: tuple[int, int] = (1080, 1920)  # PreNormalize2D's, where an annotation has none
    threshold: float = 0.01
    mode: str = "fix"  # PreNormalize2D: fix (by img_shape) or auto (by the clip's own box)
    zaxis: tuple[int, int] = (0, 1)  # PreNormalize3D
    xaxis: tuple[int, int] = (8, 4)
    align_spine: bool = True
    align_center: bool = True
    align_shoulder: bool = True  # MMAction2's own switch; PYSKL aligns the shoulders with the spine
    dataset: str = "coco"  # GenSkeFeat's dataset: which bone pairs
    feats: str = "j"
    clip_len: int = 100
    num_clips: int = 1
    seed: int = 255
    p_interval: tuple[float, float] = (1.0, 1.0)
    num_person: int = 2
    person_mode: str = "zero"  # FormatGCNInput: pad missing persons with zeros, or loop person 0
    average: str = "prob"  # the recognizer's average over clips: of softmax, or of scores
    # 2D coordinates as the model saw them: pixels, or fractions of the frame (x / width, y / height:
    # MediaPipe's own output, which PYSKL's hand demo feeds and auto mode leaves unchanged)
    units: str = "pixels"
    # the two projects differ: PYSKL's PreNormalize2D zeroes points scored at or below the threshold
    # and its UniformSample draws a ratio and an offset before each clip; MMAction2 1.x does neither
    origin: str = "pyskl"

    def __post_init__(self) -> None:
        for name in ("img_shape", "zaxis", "xaxis", "p_interval"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        ints = (*self.img_shape, *self.zaxis, *self.xaxis, self.clip_len, self.num_clips, self.seed,
                self.num_person)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise SkpipeError("pipeline: shapes, axes, clip_len, num_clips, seed and num_person are integers")
        checks = ((self.normalize in NORMALIZE, f"normalize one of {NORMALIZE}"),
                  (self.mode in ("fix", "auto"), "PreNormalize2D mode fix or auto"),
                  (self.dataset in BONE_PAIRS, f"GenSkeFeat dataset one of {', '.join(BONE_PAIRS)}"),
                  (self.feats in FEATS, f"one feature of {', '.join(FEATS)}"),
                  (1 <= self.clip_len <= MAX_FED_FRAMES, f"clip_len in 1..{MAX_FED_FRAMES:,}"),
                  (1 <= self.num_clips <= MAX_CLIPS, f"num_clips in 1..{MAX_CLIPS}"),
                  (self.num_person in (1, 2), "num_person 1 or 2"),
                  (self.person_mode in ("zero", "loop"), "FormatGCNInput mode zero or loop"),
                  (self.average in AVERAGES, "average_clips prob or score"),
                  (len(self.img_shape) == 2 and min(self.img_shape) >= 1, "img_shape (h, w)"),
                  (len(self.p_interval) == 2 and 0 < min(self.p_interval) <= max(self.p_interval) <= 1,
                   "p_interval in (0, 1]"),
                  (isinstance(self.threshold, int | float), "a numeric threshold"),
                  (self.units in ("pixels", "frame"), "units pixels or frame"),
                  (self.origin in ORIGINS, f"origin one of {', '.join(ORIGINS)}"))
        for ok, rule in checks:
            if not ok:
                raise SkpipeError(f"pipeline: expected {rule}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Any) -> PysklPipeline:
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            raise SkpipeError("pipeline: malformed")
        try:
            return cls(**data)
        except TypeError as e:
            raise SkpipeError(f"pipeline: {e}") from None


def prenormalize_2d(kp: np.ndarray, score: np.ndarray | None, img_shape: tuple[int, int],
                    p: PysklPipeline) -> np.ndarray:
    """PreNormalize2D: (M, T, V, 2) pixels [and (M, T, V) scores] -> (M, T, V, 2 or 3) float32."""
    x = kp.astype(np.float32)
    if score is not None:
        x = np.concatenate([x, score.astype(np.float32)[..., None]], axis=-1)
    mask = x[..., 2] > p.threshold if x.shape[-1] == 3 and p.origin == "pyskl" else None
    if p.mode == "auto" and p.origin == "pyskl":
        if mask is not None:
            pts = x[mask] if mask.any() else np.zeros((1, 3), np.float32)
        else:
            pts = x.reshape(-1, x.shape[-1])
        x_max, x_min = pts[:, 0].max(), pts[:, 0].min()
        y_max, y_min = pts[:, 1].max(), pts[:, 1].min()
        if (x_max - x_min) > 10 and (y_max - y_min) > 10:
            x[..., 0] = (x[..., 0] - (x_max + x_min) / 2) / (x_max - x_min) * 2
            x[..., 1] = (x[..., 1] - (y_max + y_min) / 2) / (y_max - y_min) * 2
    else:
        h, w = img_shape
        x[..., 0] = (x[..., 0] - (w / 2)) / (w / 2)
        x[..., 1] = (x[..., 1] - (h / 2)) / (h / 2)
    if mask is not None:
        x[..., 0][~mask] = 0
        x[..., 1][~mask] = 0
    return x


def _rotation(axis: np.ndarray, theta: float) -> np.ndarray:
    """PreNormalize3D's rotation_matrix (its sign convention)."""
    if np.abs(axis).sum() < 1e-6 or np.abs(theta) < 1e-6:
        return np.eye(3)
    axis = np.asarray(axis, np.float64)
    axis = axis / np.sqrt(np.dot(axis, axis))
    a = np.cos(theta / 2.0)
    b, c, d = -axis * np.sin(theta / 2.0)
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    return np.array([[aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)],
                     [2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)],
                     [2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc]])


def _angle(v1: np.ndarray, v2: np.ndarray) -> float:
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0.0
    u1, u2 = v1 / np.linalg.norm(v1), v2 / np.linalg.norm(v2)
    return float(np.arccos(np.clip(np.dot(u1, u2), -1.0, 1.0)))


def prenormalize_3d(kp: np.ndarray, p: PysklPipeline) -> np.ndarray:
    """PreNormalize3D: (M, T, V, 3) -> (M, T', V, 3), dropping the frames where the main body
    (the person seen in more frames) is all zeros, centred on its first frame's centre joint
    (NTU's joint 1; the last joint for other layouts, as PYSKL does), spine onto z, shoulders
    onto x."""
    x = kp.astype(np.float32)
    if x.sum() == 0:
        return x
    m, t = x.shape[:2]
    index0 = [i for i in range(t) if not np.all(np.isclose(x[0, i], 0))]
    if m >= 2:
        index1 = [i for i in range(t) if not np.all(np.isclose(x[1, i], 0))]
        if len(index0) < len(index1):
            x = x[:, np.array(index1)][[1, 0, *range(2, m)]]
        else:
            x = x[:, np.array(index0)]
    else:
        x = x[:, np.array(index0)]
    if p.align_center:
        centre = x[0, 0, 1].copy() if x.shape[2] == 25 else x[0, 0, -1].copy()
        x = (x - centre) * ((x != 0).sum(-1) > 0)[..., None]
    if p.align_spine:
        bottom, top = x[0, 0, p.zaxis[0]], x[0, 0, p.zaxis[1]]
        rz = _rotation(np.cross(top - bottom, [0, 0, 1]), _angle(top - bottom, np.array([0, 0, 1])))
        x = np.einsum("abcd,kd->abck", x, rz)
    if p.align_spine if p.origin == "pyskl" else p.align_shoulder:
        right, left = x[0, 0, p.xaxis[0]], x[0, 0, p.xaxis[1]]
        rx = _rotation(np.cross(right - left, [1, 0, 0]), _angle(right - left, np.array([1, 0, 0])))
        x = np.einsum("abcd,kd->abck", x, rx)
    return x.astype(np.float32)


def skeleton_feature(x: np.ndarray, dataset: str, feats: str) -> np.ndarray:
    """GenSkeFeat with one feature: joints (M, T, V, C) -> j, b, jm or bm, as PYSKL computes
    them (over all frames, before sampling)."""
    c = x.shape[-1]
    if feats.startswith("b"):
        bone = np.zeros_like(x, dtype=np.float32)
        for v1, v2 in BONE_PAIRS[dataset]:
            if max(v1, v2) >= x.shape[2]:
                raise SkpipeError(f"{dataset} bones need {max(v1, v2) + 1} joints, the clip has {x.shape[2]}")
            bone[..., v1, :] = x[..., v1, :] - x[..., v2, :]
            if c == 3 and dataset in BONE_SCORE:
                bone[..., v1, 2] = (x[..., v1, 2] + x[..., v2, 2]) / 2
        x = bone
    if feats.endswith("m"):
        motion = np.zeros_like(x)
        motion[:, :-1] = np.diff(x, axis=1)
        if c == 3 and dataset in MOTION_SCORE:
            motion[:, :-1, :, 2] = (x[:, :-1, :, 2] + x[:, 1:, :, 2]) / 2
        x = motion
    return x


def uniform_test_indices(total: int, clip_len: int, num_clips: int, seed: int = 255,
                 p_interval: tuple[float, float] = (1.0, 1.0), origin: str = "pyskl") -> np.ndarray:
    """UniformSampleFrames' test-mode frame indices (num_clips * clip_len,), its draws taken from
    RandomState(seed) in the order of `origin`'s code (PYSKL draws a ratio and an offset before
    each clip, MMAction2 1.x does not); short clips loop (the indices wrap modulo `total`)."""
    rng = np.random.RandomState(seed)
    out = []
    for i in range(num_clips):
        n, off = total, 0
        if origin == "pyskl":
            ratio = rng.rand() * (p_interval[1] - p_interval[0]) + p_interval[0]
            n = int(ratio * total)
            off = rng.randint(total - n + 1)
        if n < clip_len:
            start = i if n < num_clips else i * n // num_clips
            inds = np.arange(start, start + clip_len)
        elif n < 2 * clip_len:
            chosen = rng.choice(clip_len + 1, n - clip_len, replace=False)
            offset = np.zeros(clip_len + 1, dtype=np.int64)
            offset[chosen] = 1
            inds = np.arange(clip_len) + np.cumsum(offset)[:-1]
        else:
            bids = np.array([j * n // clip_len for j in range(clip_len + 1)])
            inds = bids[:clip_len] + rng.randint(np.diff(bids))
        out.append(inds + off)
    return np.mod(np.concatenate(out), total).astype(np.int64)


def format_gcn_input(x: np.ndarray, num_person: int, num_clips: int, mode: str = "zero") -> np.ndarray:
    """FormatGCNInput: (M, K * L, V, C) -> (K, num_person, L, V, C): the first `num_person`
    persons, missing ones zeros (or person 0 again, `loop`)."""
    m = x.shape[0]
    if m < num_person:
        pad = np.zeros((num_person - m, *x.shape[1:]), x.dtype)
        x = np.concatenate([x, pad], axis=0)
        if mode == "loop" and m == 1:
            x[1:] = x[0]
    x = x[:num_person]
    _, t, v, c = x.shape
    x = x.reshape(num_person, num_clips, t // num_clips, v, c)  # (M, K, L, V, C)
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3, 4))  # (K, M, L, V, C)


def pyskl_input(kp: np.ndarray, score: np.ndarray | None, img_shape: tuple[int, int] | None,
                p: PysklPipeline) -> np.ndarray:
    """One annotation's keypoint (M, T, V, 2|3) [and score (M, T, V)] -> the model's input
    (K, num_person, clip_len, V, C) float32, through the whole test pipeline."""
    if kp.shape[1] < 1:
        raise SkpipeError("a clip of 0 frames")
    if p.units == "frame" and img_shape is not None and kp.shape[-1] == 2:
        kp = kp.astype(np.float32) / np.array([img_shape[1], img_shape[0]], np.float32)
    if p.normalize == "2d":
        x = prenormalize_2d(kp, score, img_shape or p.img_shape, p)
    elif p.normalize == "3d":
        x = prenormalize_3d(kp, p)
    else:
        x = kp.astype(np.float32)
        if score is not None:
            x = np.concatenate([x, score.astype(np.float32)[..., None]], axis=-1)
    x = skeleton_feature(x, p.dataset, p.feats)  # (M, T', V, C)
    inds = uniform_test_indices(x.shape[1], p.clip_len, p.num_clips, p.seed, p.p_interval,
                                p.origin)  # (K * L,)
    x = x[:, inds].astype(np.float32)  # PoseDecode: (M, K * L, V, C)
    return format_gcn_input(x, p.num_person, p.num_clips, p.person_mode)  # (K, M, L, V, C)

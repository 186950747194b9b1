"""Normalisation and train-time augmentation of 2D joints, as pure numpy functions.

Every function takes x (B, T, V, C) with C = (x, y, score) and returns a new array; randomness
comes from an explicit `np.random.Generator`, one draw per clip. Joints that are missing
(x = y = score = 0: no detection, or zero padding after a clip's end) stay exactly zero, so no
transform invents a body where there was none. Evaluation never augments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.graph import LEFT_RIGHT, NUM_JOINTS
from pipeline import SkpipeError

NORMALIZATIONS = ("none", "pyskl", "body")


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation: each clip draws its own parameters."""

    flip: float = 0.0  # probability of a horizontal flip (left / right joints swapped)
    rotate: float = 0.0  # degrees: uniform in [-rotate, rotate], about the body's centre
    scale: float = 0.0  # factor uniform in [1 - scale, 1 + scale], about the body's centre
    shift: float = 0.0  # offset uniform in [-shift, shift] per axis, in normalized units

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip <= 1.0:
            raise SkpipeError(f"--flip must be a probability in [0, 1], got {self.flip}")
        for name in ("rotate", "scale", "shift"):
            if getattr(self, name) < 0:
                raise SkpipeError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.scale >= 1:
            raise SkpipeError(f"--scale must be < 1, got {self.scale}")

    @property
    def active(self) -> bool:
        return bool(self.flip or self.rotate or self.scale or self.shift)


def present(x: np.ndarray) -> np.ndarray:
    """(B, T, V, 1) bool: the joints that hold a detection."""
    return np.any(x != 0, axis=-1, keepdims=True)


def body_centre(x: np.ndarray) -> np.ndarray:
    """(B, 1, 1, 2): mean (x, y) of each clip's present joints (0.5, 0.5 for an empty clip)."""
    m = present(x)  # (B, T, V, 1)
    count = m.sum(axis=(1, 2), keepdims=True)  # (B, 1, 1, 1)
    total = (x[..., :2] * m).sum(axis=(1, 2), keepdims=True)  # (B, 1, 1, 2)
    return np.where(count > 0, total / np.maximum(count, 1), 0.5)


def normalize(x: np.ndarray, how: str) -> np.ndarray:
    """`none`: the cache's x / width, y / height; `pyskl`: mapped to [-1, 1] about the image
    centre (PYSKL's PreNormalize2D); `body`: each clip's body centre moved to the origin."""
    if how not in NORMALIZATIONS:
        raise SkpipeError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got {how!r}")
    if how == "none":
        return x
    centre = 0.5 if how == "pyskl" else body_centre(x)
    out = x.copy()
    out[..., :2] = (x[..., :2] - centre) * (2.0 if how == "pyskl" else 1.0)
    return np.where(present(x), out, 0.0).astype(x.dtype)


def flip(x: np.ndarray, mask: np.ndarray, centre: np.ndarray | float = 0.5) -> np.ndarray:
    """Mirror x about `centre` (per clip) and swap left / right joints, for clips where `mask`."""
    perm = np.arange(NUM_JOINTS)
    for left, right in LEFT_RIGHT:
        perm[left], perm[right] = right, left
    mirrored = x[:, :, perm].copy()  # (B, T, V, C): joints swapped
    cx = np.broadcast_to(np.asarray(centre, dtype=x.dtype), (len(x), 1, 1, 2))[..., 0]  # (B, 1, 1)
    mirrored[..., 0] = 2 * cx - mirrored[..., 0]
    mirrored = np.where(present(x[:, :, perm]), mirrored, 0.0)
    return np.where(mask[:, None, None, None], mirrored, x).astype(x.dtype)


def affine(x: np.ndarray, angle: np.ndarray, scale: np.ndarray, shift: np.ndarray,
           centre: np.ndarray) -> np.ndarray:
    """Rotate by `angle` (B,) radians and scale by (B,) about `centre` (B, 1, 1, 2), then shift
    by (B, 2); scores and missing joints untouched."""
    c, s = np.cos(angle) * scale, np.sin(angle) * scale  # (B,)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (B, 2, 2)
    xy = x[..., :2] - centre  # (B, T, V, 2)
    xy = np.einsum("btvj,bij->btvi", xy, rot) + centre + shift[:, None, None, :]
    out = x.copy()
    out[..., :2] = xy
    return np.where(present(x), out, 0.0).astype(x.dtype)


def augment(x: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Apply `aug` with parameters drawn per clip from `rng`."""
    if not aug.active:
        return x
    b = len(x)
    centre = body_centre(x)  # (B, 1, 1, 2)
    if aug.flip:
        x = flip(x, rng.random(b) < aug.flip, centre)
    if aug.rotate or aug.scale or aug.shift:
        angle = np.deg2rad(rng.uniform(-aug.rotate, aug.rotate, b))
        scale = rng.uniform(1 - aug.scale, 1 + aug.scale, b)
        shift = rng.uniform(-aug.shift, aug.shift, (b, 2))
        x = affine(x, angle, scale, shift, centre)
    return x

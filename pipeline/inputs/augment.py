"""Normalisation of joints, 2D or 3D, and the draws of train-time augmentation, in numpy.

Every function takes x (B, T, V, C) with C = the skeleton's coordinates (x, y or x, y, z), then
its score where it has one, and returns a new array. A sample's persons travel together, as
(B, M * T, V, C): one centre, one rotation, one flip per sample. Augmentation parameters are
drawn here, from an explicit `np.random.Generator`, one draw per clip, and applied by
`pipeline.inputs.batch` in torch. Joints that are missing (x = y = score = 0: no detection, or
zero padding after a clip's end) stay exactly zero, so no transform invents a body where there
was none. Evaluation never augments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.layouts import Skeleton
from pipeline import SkpipeError

NORMALIZATIONS = ("none", "pyskl", "body", "minmax")
ROTATE_AXES = ("xyz", "xy", "x", "y", "z")  # 3D: the axes --rotate turns about (2D: the image plane)
SAMPLINGS = ("uniform", "random")  # training frames: one per segment (PYSKL), a sorted random draw (CTR-GCN)


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation: each clip draws its own parameters."""

    flip: float = 0.0  # probability of a horizontal flip (left / right joints swapped)
    rotate: float = 0.0  # degrees: uniform in [-rotate, rotate], about the body's centre
    scale: float = 0.0  # factor uniform in [1 - scale, 1 + scale], about the body's centre
    shift: float = 0.0  # offset uniform in [-shift, shift] per axis, in normalized units
    rotate_axes: str = "xyz"  # 3D: the axes turned about (CTR-GCN's NW-UCLA recipe: x and y)
    sampling: str = "uniform"  # training frames: see `pipeline.inputs.transforms`

    def __post_init__(self) -> None:
        if self.rotate_axes not in ROTATE_AXES:
            raise SkpipeError(f"--rotate-axes must be one of {', '.join(ROTATE_AXES)}, "
                              f"got {self.rotate_axes!r}")
        if self.sampling not in SAMPLINGS:
            raise SkpipeError(f"--sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if not 0.0 <= self.flip <= 1.0:
            raise SkpipeError(f"--flip must be a probability in [0, 1], got {self.flip}")
        for name in ("rotate", "scale", "shift"):
            if getattr(self, name) < 0:
                raise SkpipeError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.rotate > 180:
            raise SkpipeError(f"--rotate must be at most 180 degrees, got {self.rotate}")
        if self.scale >= 1:
            raise SkpipeError(f"--scale must be < 1, got {self.scale}")

    @property
    def active(self) -> bool:
        return bool(self.flip or self.rotate or self.scale or self.shift)


def present(x: np.ndarray) -> np.ndarray:
    """(B, T, V, 1) bool: the joints that hold a detection."""
    return np.any(x != 0, axis=-1, keepdims=True)


DEFAULT = Skeleton()


def body_centre(x: np.ndarray, dims: int = 2) -> np.ndarray:
    """(B, 1, 1, dims): mean coordinates of each clip's present joints (0.5 for an empty 2D clip,
    0 for an empty 3D one)."""
    m = present(x)  # (B, T, V, 1)
    count = m.sum(axis=(1, 2), keepdims=True)  # (B, 1, 1, 1)
    total = (x[..., :dims] * m).sum(axis=(1, 2), keepdims=True)  # (B, 1, 1, dims)
    return np.where(count > 0, total / np.maximum(count, 1), 0.5 if dims == 2 else 0.0)


def normalize(x: np.ndarray, how: str, skeleton: Skeleton = DEFAULT) -> np.ndarray:
    """`none`: as cached (2D: x / width, y / height; 3D: as given); `pyskl`: PYSKL's
    pre-normalisation (2D: mapped to [-1, 1] about the image centre, PreNormalize2D; 3D:
    PreNormalize3D, `prenormalize_3d`); `body`: each clip's body centre moved to the origin;
    `minmax`: centred on the first seen frame's spine joint here, then each axis of each clip
    min-max scaled to [-1, 1] after augmentation (`pipeline.inputs.batch.minmax`), as CTR-GCN's
    NW-UCLA feeder does."""
    if how not in NORMALIZATIONS:
        raise SkpipeError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got {how!r}")
    d = skeleton.dims
    if how == "none":
        return x
    if how == "pyskl" and d == 3:
        return prenormalize_3d(x, skeleton)
    if how == "minmax":
        return first_frame_centred(x, skeleton)
    centre = 0.5 if how == "pyskl" else body_centre(x, d)
    out = x.copy()
    out[..., :d] = (x[..., :d] - centre) * (2.0 if how == "pyskl" else 1.0)
    return np.where(present(x), out, 0.0).astype(x.dtype)


def first_frame_centred(x: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Each clip x (B, T, V, C) moved so that its spine joint (the upper end of the layout's
    `spine`, else its `center`) in the first frame where the body is seen is the origin; missing
    joints stay zero."""
    layout, d = skeleton.layout, skeleton.dims
    joint = layout["spine"][1] if "spine" in layout else layout["center"]
    seen = present(x)  # (B, T, V, 1)
    frame = np.argmax(seen[..., joint, 0], axis=1)  # (B,): the first frame holding the joint
    origin = x[np.arange(len(x)), frame, joint, :d]  # (B, d): zero where the joint is never seen
    out = x.astype(np.float32, copy=True)
    out[..., :d] -= origin[:, None, None, :]
    # the spine joint itself lands on the origin, which reads as a missing joint: keep it seen,
    # a micrometre off (min-max scaling and rotation do not notice)
    at_origin = seen[..., 0] & ~np.any(out != 0, axis=-1)  # (B, T, V)
    out[..., 0][at_origin] = 1e-6
    return np.where(seen, out, 0.0).astype(x.dtype)


def rotation_onto(v: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (3, 3) rotation taking direction `v` onto `target` (Rodrigues; identity when `v` is
    zero or already along `target`)."""
    norm = np.linalg.norm(v)
    if norm < 1e-8:
        return np.eye(3)
    a = v / norm
    axis = np.cross(a, target)
    s, c = np.linalg.norm(axis), float(np.dot(a, target))
    if s < 1e-8:  # already along target, or opposite: a half turn about an axis across it
        if c > 0:
            return np.eye(3)
        return np.diag([1.0, -1.0, -1.0]) if abs(target[0]) < 0.5 else np.diag([-1.0, -1.0, 1.0])
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def prenormalize_3d(x: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """PYSKL's PreNormalize3D for each clip x (B, T, V, C): centre on the layout's `center` joint
    in the first frame where the body is seen, then rotate so `spine` (bottom -> top) lies
    along +z and, turning about z, `shoulders` (right -> left) into the x-z plane towards +x.
    Missing joints stay zero."""
    layout = skeleton.layout
    if "spine" not in layout or "shoulders" not in layout:
        raise SkpipeError(f"--normalize pyskl on 3D needs the layout's spine and shoulders "
                          f"({layout['name']} has none)")
    out = x.astype(np.float32, copy=True)
    seen = present(x)[..., 0]  # (B, T, V)
    for b in range(len(x)):
        frames = np.flatnonzero(seen[b].any(axis=1))
        if not len(frames):
            continue
        first = out[b, frames[0], :, :3]  # (V, 3)
        xyz = out[b, :, :, :3] - first[layout["center"]]  # (T, V, 3)
        bottom, top = layout["spine"]
        rz = rotation_onto(first[top] - first[bottom], np.array([0.0, 0.0, 1.0]))
        right, left = layout["shoulders"]
        shoulders = rz @ (first[left] - first[right])
        shoulders[2] = 0.0  # turn about z only, so the spine stays on it (PYSKL's tilts it a little)
        rx = rotation_onto(shoulders, np.array([1.0, 0.0, 0.0]))
        out[b, :, :, :3] = xyz @ (rx @ rz).T
    return np.where(present(x), out, 0.0).astype(x.dtype)


def flip_order(skeleton: Skeleton = DEFAULT) -> np.ndarray:
    """(V,) joint order of the mirrored body: each left joint swapped with its right one."""
    perm = np.arange(skeleton.num_joints)
    for left, right in skeleton.layout["pairs"]:
        perm[left], perm[right] = right, left
    return perm


def rotations_2d(angle: np.ndarray) -> np.ndarray:
    """(B,) angles (radians) -> (B, 2, 2) rotations in the image plane."""
    c, s = np.cos(angle), np.sin(angle)  # (B,)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def rotations_3d(angles: np.ndarray) -> np.ndarray:
    """(B, 3) angles about x, y, z (radians) -> (B, 3, 3) rotations Rz Ry Rx."""
    cx, cy, cz = np.cos(angles).T
    sx, sy, sz = np.sin(angles).T
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


@dataclass(frozen=True)
class Draw:
    """One batch's augmentation parameters. They are drawn on the host from the loader's
    generator, so that a seed gives the same batches on any device (`pipeline.inputs.batch`)."""

    flip: np.ndarray | None  # (B,) bool: the clips mirrored
    linear: np.ndarray | None  # (B, d, d): rotation times scale, about each clip's body centre
    shift: np.ndarray | None  # (B, d)


def draw(aug: Augment, rng: np.random.Generator, batch: int, dims: int) -> Draw | None:
    """`aug`'s parameters for `batch` clips of `dims` coordinates (None when `aug` does nothing):
    in 2D a rotation in the image plane; in 3D one about each axis (PYSKL's RandomRot), each
    within +-`rotate` degrees."""
    if not aug.active:
        return None
    mask = rng.random(batch) < aug.flip if aug.flip else None
    if not (aug.rotate or aug.scale or aug.shift):
        return Draw(mask, None, None)
    if dims == 2:
        angle = np.deg2rad(rng.uniform(-aug.rotate, aug.rotate, batch))
        scale = rng.uniform(1 - aug.scale, 1 + aug.scale, batch)
        shift = rng.uniform(-aug.shift, aug.shift, (batch, 2))
        return Draw(mask, rotations_2d(angle) * scale[:, None, None], shift)
    angles = np.deg2rad(rng.uniform(-aug.rotate, aug.rotate, (batch, 3)))  # (B, 3): about x, y, z
    angles *= np.array([axis in aug.rotate_axes for axis in "xyz"], np.float64)  # the others stay
    scale = rng.uniform(1 - aug.scale, 1 + aug.scale, batch)
    shift = rng.uniform(-aug.shift, aug.shift, (batch, 3))
    return Draw(mask, rotations_3d(angles) * scale[:, None, None], shift)

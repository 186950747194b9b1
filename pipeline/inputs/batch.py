"""The one path from cached rows to a model's input, in torch on any device.

Both loaders call it: the host loader (`--loader memory` / `stream`) on CPU tensors made from the
rows it read, and the device loader (`--loader device`) on rows held on the model's device, where
the numpy loader, not the GPU, bounded training (BENCHMARKS.md: about 390 clips/s on an H200 at
batch 32). Inference (`pipeline.infer.feed`) calls `clips_input` too, so a stream or an
augmentation is written once.

Streams (PYSKL's GenSkeFeat), from joints x (B, T, V, C = coordinates, then a score where the
skeleton has one):
    j   joints as cached
    b   bones: each joint minus its parent on the layout's tree; score = the pair's mean
    jm  joint motion: frame t+1 minus frame t over a clip's valid frames; score = the mean
    bm  bone motion
Motion is taken between consecutive frames of the clip, before frames are sampled for the
model, as PYSKL computes it, and is zero from a clip's last valid frame on.

Rows of a two-person cache are (B, M, T, V, C): normalisation and augmentation see a sample's
persons together, as (B, M * T, V, C), streams are taken per person, and every person of a
sample gets the same frames.

Normalisation is fixed per clip, so it is done once in numpy (`augment.normalize`, `normalized`)
before rows become tensors. Every random number is drawn on the host, from the loader's numpy
generator (`augment.draw`, then `transforms.uniform_indices`): a few hundred numbers per batch.
A seed so gives the same batches, flips, angles and frames on any device.
"""

from __future__ import annotations

import numpy as np
import torch

from models.layouts import Skeleton
from pipeline.inputs.augment import Draw, draw, flip_order, normalize
from pipeline.inputs.features import InputSpec
from pipeline.inputs.transforms import random_indices, uniform_indices

HOLD_ROWS = 1024  # rows normalized on the host at a time while the subset moves to the device


def normalized(rows: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Cached rows (n, [M,] T, V, C) -> float32, normalized as the spec says, persons together."""
    part = rows.astype(np.float32, copy=False)  # (n, [M,] T, V, C): no copy of float32 rows
    if spec.normalize == "none":
        return part
    flat = part.reshape(len(part), -1, *part.shape[-2:])  # (n, [M *] T, V, C): persons together
    return normalize(flat, spec.normalize, spec.skeleton).reshape(part.shape)


def held_bytes(rows: int, row_shape: tuple[int, ...], itemsize: int, spec: InputSpec) -> int:
    """Bytes the held subset takes on the device: the cache dtype, or float32 once normalized."""
    return rows * int(np.prod(row_shape)) * (itemsize if spec.normalize == "none" else 4)


def fits(device: torch.device, nbytes: int, host_limit: int) -> bool:
    """Whether `nbytes` may be held on `device`: up to half its free memory on a GPU (the rest is
    the model's), up to the loader's memory limit on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 2
    return nbytes <= host_limit


def hold(rows: np.ndarray, spec: InputSpec, device: torch.device) -> torch.Tensor:
    """Cached rows (n, [M,] T, V, C) -> the same rows on `device`, normalized (float32), or as
    cached when the spec does not normalize; moved `HOLD_ROWS` at a time to bound host memory."""
    if spec.normalize == "none":
        return torch.from_numpy(np.ascontiguousarray(rows)).to(device)
    out = torch.empty(rows.shape, dtype=torch.float32, device=device)
    for i in range(0, len(rows), HOLD_ROWS):
        part = normalized(rows[i : i + HOLD_ROWS], spec)  # (k, [M,] T, V, C)
        out[i : i + len(part)] = torch.from_numpy(part).to(device)
    return out


def present(x: torch.Tensor) -> torch.Tensor:
    """(B, T, V, 1) bool: the joints that hold a detection (missing ones are exactly zero)."""
    return (x != 0).any(-1, keepdim=True)


def body_centre(x: torch.Tensor, dims: int) -> torch.Tensor:
    """(B, 1, 1, dims): mean coordinates of each clip's present joints (0.5 for an empty 2D
    clip, 0 for an empty 3D one)."""
    m = present(x)  # (B, T, V, 1)
    count = m.sum((1, 2), keepdim=True)  # (B, 1, 1, 1)
    total = (x[..., :dims] * m).sum((1, 2), keepdim=True)  # (B, 1, 1, dims)
    return torch.where(count > 0, total / count.clamp(min=1), 0.5 if dims == 2 else 0.0)


def flip(x: torch.Tensor, mask: torch.Tensor, centre: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """Mirror x (B, T, V, C) about `centre` (B, 1, 1, d) and swap left / right joints, for the
    clips where `mask` (B,) is set."""
    perm = torch.as_tensor(flip_order(skeleton), device=x.device)
    swapped = x[:, :, perm]  # (B, T, V, C): joints swapped
    mirrored = swapped.clone()
    mirrored[..., 0] = 2 * centre[..., 0] - swapped[..., 0]  # centre (B, 1, 1, d) -> (B, 1, 1)
    mirrored = torch.where(present(swapped), mirrored, 0.0)
    return torch.where(mask[:, None, None, None], mirrored, x)


def transform(x: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor, centre: torch.Tensor
              ) -> torch.Tensor:
    """Coordinates about `centre` (B, 1, 1, d) times `linear` (B, d, d), plus `shift` (B, d);
    scores and missing joints untouched."""
    d = linear.shape[-1]
    xy = x[..., :d] - centre  # (B, T, V, d)
    xy = torch.einsum("btvj,bij->btvi", xy, linear) + centre + shift[:, None, None, :]
    out = x.clone()
    out[..., :d] = xy
    return torch.where(present(x), out, 0.0)


def apply(x: torch.Tensor, params: Draw | None, skeleton: Skeleton) -> torch.Tensor:
    """x (B, T, V, C) float32 with the drawn flips, then rotation, scale and shift, about each
    clip's body centre (measured before the flip, which keeps it)."""
    if params is None:
        return x
    centre = body_centre(x, skeleton.dims)  # (B, 1, 1, d)
    if params.flip is not None:
        x = flip(x, torch.as_tensor(params.flip, device=x.device), centre, skeleton)
    if params.linear is not None and params.shift is not None:
        linear, shift = (torch.as_tensor(a, dtype=x.dtype, device=x.device)
                         for a in (params.linear, params.shift))
        x = transform(x, linear, shift, centre)
    return x


def minmax(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Each clip's coordinates x (B, T, V, C), axis by axis, min-max scaled over its present
    joints to [-1, 1] (CTR-GCN's NW-UCLA normalisation: scale and translation disappear, the
    aspect changes); scores and missing joints untouched, a flat axis to 0."""
    seen = present(x)  # (B, T, V, 1)
    xy = x[..., :dims]
    big = torch.finfo(x.dtype).max
    lo = torch.where(seen, xy, big).amin((1, 2), keepdim=True)  # (B, 1, 1, dims)
    hi = torch.where(seen, xy, -big).amax((1, 2), keepdim=True)
    span = (hi - lo).clamp(min=1e-6)
    out = x.clone()
    out[..., :dims] = torch.where(hi > lo, (xy - lo) / span * 2 - 1, 0.0)
    return torch.where(seen, out, 0.0)


def bones(x: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """(B, T, V, C) joints -> joint minus parent; score = the pair's mean."""
    parent = torch.as_tensor(skeleton.layout["parents"], device=x.device)
    out = x - x[:, :, parent]
    if skeleton.score:
        out[..., -1] = (x[..., -1] + x[:, :, parent, -1]) / 2
    return out


def motion(x: torch.Tensor, valid: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """(B, T, V, C) -> frame-to-frame differences within each clip's `valid` (B,) frames."""
    out = torch.zeros_like(x)
    out[:, :-1] = x[:, 1:] - x[:, :-1]
    if skeleton.score:
        out[:, :-1, :, -1] = (x[:, 1:, :, -1] + x[:, :-1, :, -1]) / 2
    t = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    out[t >= (valid[:, None] - 1)] = 0  # the last valid frame and the padding
    return out


def stream(x: torch.Tensor, valid: torch.Tensor, feats: str, skeleton: Skeleton) -> torch.Tensor:
    """The `feats` stream of joints x (B, T, V, C)."""
    y = bones(x, skeleton) if feats.startswith("b") else x
    return motion(y, valid, skeleton) if feats.endswith("m") else y


def streamed(x: torch.Tensor, valid: torch.Tensor, spec: InputSpec, params: Draw | None
             ) -> torch.Tensor:
    """Normalized rows (B, [M,] T, V, C) -> augmented with `params` and turned into the spec's
    stream, float32."""
    shape, sk = x.shape, spec.skeleton
    flat = apply(x.float().reshape(len(x), -1, *shape[-2:]), params, sk)  # (B, [M *] T, V, C)
    if spec.normalize == "minmax":  # after the rotation, as CTR-GCN's feeder does
        flat = minmax(flat, sk.dims)
    if spec.feats == "j":
        return flat.reshape(shape)
    if len(shape) == 4:
        return stream(flat, valid, spec.feats, sk)
    b, m = shape[:2]
    per = flat.reshape(b * m, *shape[2:])  # (B * M, T, V, C): streams per person
    return stream(per, valid.repeat_interleave(m), spec.feats, sk).reshape(shape)


def take_frames(x: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
    """x (B, [M,] T, V, C), host indices (B, F) -> (B, [M,] F, V, C), every person at the same frames."""
    i = torch.from_numpy(idx).to(x.device)
    if x.dim() == 5:
        return torch.take_along_dim(x, i[:, None, :, None, None], dim=2)
    return torch.take_along_dim(x, i[:, :, None, None], dim=1)


def from_rows(x: torch.Tensor, valid: np.ndarray, spec: InputSpec, rng: np.random.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: normalized rows (B, [M,] T_cache, V, C) and their valid lengths (B,) on
    the host -> (input (B, [M,] frames, V, C), lengths (B,)), augmented and at random frames.
    A clip shorter than `frames` is looped, so every frame fed is real."""
    params = draw(spec.augment, rng, len(x), spec.skeleton.dims)  # first, then the frames
    lengths = torch.from_numpy(np.asarray(valid, np.int64)).to(x.device)
    y = streamed(x, lengths, spec, params)
    if spec.frames < x.shape[-3]:
        sample = random_indices if spec.augment.sampling == "random" else uniform_indices
        idx = sample(valid, spec.frames, rng)  # (B, frames), drawn on the host
        return take_frames(y, idx), torch.full_like(lengths, spec.frames)
    return y, lengths


def clips_input(x: torch.Tensor, valid: np.ndarray, spec: InputSpec, num_clips: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """An evaluation batch: the `num_clips` K fixed temporal clips of every normalized row, folded
    into the batch (as PYSKL tests): (B, [M,] T_cache, V, C) -> (B * K, [M,] frames, V, C) and
    lengths (B * K,), where rows b * K .. b * K + K - 1 are the clips of row b."""
    lengths = torch.from_numpy(np.asarray(valid, np.int64)).to(x.device)
    y = streamed(x, lengths, spec, None)  # (B, [M,] T_cache, V, C): once for all K clips
    if spec.frames < x.shape[-3]:
        parts = [take_frames(y, uniform_indices(valid, spec.frames, None, k, num_clips))
                 for k in range(num_clips)]
        lengths = torch.full_like(lengths, spec.frames)
    else:
        parts = [y] * num_clips
    xs = torch.stack(parts, 1)  # (B, K, [M,] frames, V, C)
    return xs.reshape(-1, *xs.shape[2:]), lengths.repeat_interleave(num_clips)

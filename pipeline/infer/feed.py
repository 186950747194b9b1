"""From annotations to a model's input, for every model skpipe runs: the one feed.

A model skpipe trained reads what `ingest` would have cached (`prepare`), then the run's stream,
normalisation and K fixed temporal clips (`pipeline.inputs.batch`, as the loaders make them). A
model imported from PYSKL or MMAction2 reads what PYSKL's test pipeline makes of the annotation
(`pipeline.inputs.pyskl`). Both give x (N * K, [M,] frames, V, C) float32 and lengths (N * K,),
rows n * K .. n * K + K - 1 the K clips of clip n, so one engine and one average serve both.
A window of frames is a clip of its own: a ring buffer of poses (live) or a slice of a long clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.data.preprocess import MAX_FRAMES, RawClip, preprocess_batch, preprocess_skeleton
from pipeline.infer.card import ModelCard
from pipeline.inputs.pyskl import pyskl_input
from pipeline.source.raw import RawData, read_raw, skeleton_kind


def prepare(anns: list[dict[str, Any]], max_frames: int, dtype: str, skeleton: Skeleton | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Annotations -> (N, [M,] max_frames, V, C) as stored in a cache of `dtype` built for
    `skeleton` (the seed's by default), and valid lengths: exactly ingest's preprocessing."""
    skeleton = skeleton or Skeleton()
    persons = (skeleton.persons,) if skeleton.persons > 1 else ()
    out = np.zeros((len(anns), *persons, max_frames, skeleton.num_joints, skeleton.channels), np.float32)
    clips = [RawClip.of(a) for a in anns]
    if skeleton.is_default:
        infos = preprocess_batch(clips, out, max_frames)
    else:
        infos = preprocess_skeleton(clips, out, max_frames)
    out = out.astype(dtype).astype(np.float32)  # the cache's rounding, as training saw it
    return out, np.array([i.valid_frames for i in infos], np.int64)


def model_input(anns: list[dict[str, Any]], card: ModelCard, clips: int
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated annotations that fit the card -> (x (N * K, [M,] frames, V, C) float32,
    lengths (N * K,) int64, K). An imported model takes its own pipeline's K."""
    if card.pyskl:
        return _pyskl_rows(anns, card)
    import torch

    from pipeline.inputs import batch

    spec = card.input_spec()
    x, valid = prepare(anns, MAX_FRAMES, card.cache_dtype, card.input)  # (N, [M,] 300, V, C)
    xk, lengths = batch.clips_input(torch.from_numpy(batch.normalized(x, spec)), valid, spec, clips)
    return np.ascontiguousarray(xk.numpy()), lengths.numpy(), clips  # (N * K, [M,] frames, V, C)


def _pyskl_rows(anns: list[dict[str, Any]], card: ModelCard) -> tuple[np.ndarray, np.ndarray, int]:
    from pipeline.inputs.pyskl import PysklPipeline

    p = PysklPipeline.from_dict(card.pyskl)
    sk = card.input
    rows = []
    for a in anns:
        score = a.get("keypoint_score") if sk.score else None
        shape = a.get("img_shape")
        x = pyskl_input(np.asarray(a["keypoint"]), None if score is None else np.asarray(score),
                        tuple(shape) if shape is not None else None, p)  # (K, M, L, V, C)
        rows.append(x[:, 0] if sk.persons == 1 else x)  # (K, [M,] L, V, C)
    xs = np.concatenate(rows)  # (N * K, [M,] L, V, C)
    return xs, np.full(len(xs), p.clip_len, np.int64), p.num_clips


def window_starts(valid: int, window: int, stride: int) -> list[int]:
    """First frames of the windows of `window` frames every `stride` frames over `valid` frames;
    the last window ends at the clip's last frame, so every frame is covered."""
    if valid <= window:
        return [0]
    starts = list(range(0, valid - window + 1, stride))
    return starts if starts[-1] == valid - window else [*starts, valid - window]


def window_annotation(ann: dict[str, Any], start: int, window: int) -> dict[str, Any]:
    """Frames start .. start + window of an annotation, as an annotation of its own."""
    part = dict(ann)
    part["keypoint"] = np.asarray(ann["keypoint"])[:, start : start + window]
    if ann.get("keypoint_score") is not None:
        part["keypoint_score"] = np.asarray(ann["keypoint_score"])[:, start : start + window]
    part["total_frames"] = int(part["keypoint"].shape[1])
    return part


def read_source(path: Path, skeleton: Skeleton, what: str, left_out: list[tuple[str, str]] | None = None
                ) -> RawData:
    """A pickle as it is, or videos extracted in memory into the model's layout, as `extract`
    would write them. With `left_out`, a folder's videos that cannot be used are listed there
    (frame_dir, why) and the others read; without it any such video is an error."""
    from pipeline.source.video import EXTRACT_LAYOUTS, is_video

    if not (is_video(path) or path.is_dir()):
        return read_raw(path)
    name = skeleton.layout["name"]
    if name not in EXTRACT_LAYOUTS or skeleton.dims != 2:
        raise SkpipeError(f"{what} reads {skeleton.describe()}; videos give 2D poses as "
                          f"{' or '.join(EXTRACT_LAYOUTS)}")
    from pipeline.source.extract import extract_raw, extract_some

    persons = skeleton.persons  # a model of two persons is fed both persons of the video
    if left_out is None or not path.is_dir():
        return extract_raw(path, layout=name, persons=persons)
    raw, failed = extract_some(path, layout=name, persons=persons)
    left_out.extend(failed)
    if raw is None:
        first = failed[0][1] if failed else "none found"
        raise SkpipeError(f"no video in {path} could be used; first: {first}")
    return raw


def check_fits(raw: RawData, skeleton: Skeleton, what: str) -> None:
    """Refuse a pickle whose skeletons are not the model's, in one line naming both."""
    theirs = (raw.joints, raw.dims, raw.scores)
    ours = (skeleton.num_joints, skeleton.dims, skeleton.score)
    scoreless_2d = skeleton.dims == 2 and not skeleton.score  # an imported model of x, y only
    if theirs[:2] != ours[:2] or (theirs[2] != ours[2] and not scoreless_2d):
        raise SkpipeError(f"the pickle holds {skeleton_kind(*theirs)}; {what} reads "
                          f"{skeleton_kind(*ours)} ({skeleton.layout['name']})")

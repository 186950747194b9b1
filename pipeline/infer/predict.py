"""`skpipe predict`: a trained run on clips from any pickle, through ingest's own preprocessing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.data.preprocess import RawClip, preprocess_batch, preprocess_skeleton
from pipeline.files.atomic import check_target
from pipeline.infer.inference import clip_probs, load_run_model, prefetch
from pipeline.inputs.features import InputSpec, clips_input, model_input
from pipeline.run.config import open_run
from pipeline.run.runtime import inference_precision, resolve_device
from pipeline.source.extract import extract_raw
from pipeline.source.raw import RawData, parse_frame_dir, read_raw, skeleton_kind
from pipeline.source.render import render_annotation
from pipeline.source.video import EXTRACT_LAYOUTS, is_video, video_fps

DEFAULT = Skeleton()


def prepare(anns: list[dict[str, Any]], max_frames: int, dtype: str, skeleton: Skeleton = DEFAULT
            ) -> tuple[np.ndarray, np.ndarray]:
    """Annotations -> (N, [M,] max_frames, V, C) as stored in a cache of `dtype` built for
    `skeleton`, and valid lengths: exactly ingest's preprocessing."""
    persons = (skeleton.persons,) if skeleton.persons > 1 else ()
    out = np.zeros((len(anns), *persons, max_frames, skeleton.num_joints, skeleton.channels), np.float32)
    clips = [RawClip.of(a) for a in anns]
    if skeleton.is_default:
        infos = preprocess_batch(clips, out, max_frames)
    else:
        infos = preprocess_skeleton(clips, out, max_frames)
    out = out.astype(dtype).astype(np.float32)  # the cache's rounding, as training saw it
    return out, np.array([i.valid_frames for i in infos], np.int64)


def predict_file(run_dir: Path, raw_path: Path, top: int = 5, checkpoint: str = "best",
                 clips: int | None = None, batch_size: int = 64, window: int | None = None,
                 stride: int | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Top-`top` classes with probabilities for every clip of `raw_path`."""
    return list(iter_predictions(run_dir, raw_path, top, checkpoint, clips, batch_size, window, stride,
                                 device))


def read_source(path: Path, skeleton: Skeleton, run_dir: Path) -> RawData:
    """A pickle as it is, or videos extracted in memory into the run's layout, as `extract`
    would write them."""
    if not (is_video(path) or path.is_dir()):
        return read_raw(path)
    name = skeleton.layout["name"]
    if name not in EXTRACT_LAYOUTS or skeleton.dims != 2 or skeleton.persons != 1:
        raise SkpipeError(f"{run_dir} was trained on {skeleton.describe()}; videos give one person in "
                          f"2D as {' or '.join(EXTRACT_LAYOUTS)}")
    return extract_raw(path, layout=name)


def frame_captions(result: dict[str, Any], ann: dict[str, Any]) -> list[str]:
    """The top-1 label at every frame of the clip: the latest window that covers it."""
    captions = [""] * int(ann["keypoint"].shape[1])
    for w in result.get("windows", []):
        best = w["top"][0]
        for f in range(w["start"], min(w["end"] + 1, len(captions))):
            captions[f] = f"{best['class']} {best['probability']:.0%}"
    return captions


def window_starts(valid: int, window: int, stride: int) -> list[int]:
    """First frames of the windows of `window` frames every `stride` frames over `valid` frames;
    the last window ends at the clip's last frame, so every frame is covered."""
    if valid <= window:
        return [0]
    starts = list(range(0, valid - window + 1, stride))
    return starts if starts[-1] == valid - window else [*starts, valid - window]


@dataclass(frozen=True)
class _Setup:
    """What every batch of a prediction needs from the run."""

    model: torch.nn.Module
    spec: InputSpec
    device: torch.device
    precision: str
    names: list[str]
    dtype: str
    top: int
    skeleton: Skeleton
    batch_size: int


def iter_predictions(run_dir: Path, raw_path: Path, top: int = 5, checkpoint: str = "best",
                     clips: int | None = None, batch_size: int = 64, window: int | None = None,
                     stride: int | None = None, device: str = "cpu", render: Path | None = None,
                     force: bool = False) -> Iterator[dict[str, Any]]:
    """One result per clip of `raw_path` (a pickle, a video, or a folder of videos), computed
    `batch_size` clips at a time: the preprocessed tensors and the model's activations never grow
    with the number of clips. With `window`, also the top classes of each window of `window`
    frames every `stride` frames, over the whole clip. With `render`, the one clip is drawn with
    the label of the latest window at each frame (over the video's frames when it is a video)."""
    if batch_size < 1:
        raise SkpipeError(f"--batch-size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    run = open_run(run_dir)
    t = run.config.train
    if window is not None and not 1 <= window <= t.frames:
        raise SkpipeError(f"--window must be in 1..{t.frames} (the run's frames), got {window}")
    if stride is not None and stride < 1:
        raise SkpipeError(f"--stride must be >= 1, got {stride}")
    clips = clips or t.test_clips
    model, _ = load_run_model(run, checkpoint)
    skeleton = run.config.input
    raw = read_source(Path(raw_path), skeleton, run_dir)
    check_fits(raw, skeleton, run_dir)
    if render is not None:
        if len(raw.annotations) != 1:
            raise SkpipeError(f"--render draws one clip; {raw_path} holds {len(raw.annotations):,}")
        check_target(Path(render), force, "output")
        window = window or t.frames
    setup = _Setup(model.to(dev), run.config.input_spec(), dev, inference_precision(t.precision, dev),
                   run.class_names, run.config.cache_dtype, top, skeleton, batch_size)
    batches = (raw.annotations[lo : lo + batch_size] for lo in range(0, len(raw.annotations), batch_size))
    for anns, (xk, lengths) in prefetch(((a, _inputs(a, setup, clips)) for a in batches), depth=2):
        probs = clip_probs(setup.model, xk, lengths, clips, dev, setup.precision)  # (B, classes)
        for a, p in zip(anns, probs, strict=True):
            result = {"frame_dir": a["frame_dir"], "label": int(a["label"]),
                      "label_class": _label_class(raw, a), "top": _top(p, setup)}
            if window is not None:
                result["windows"] = _windows(setup, a, window, stride or max(1, window // 4))
            if render is not None:
                video = Path(raw_path) if is_video(Path(raw_path)) else None
                drawn = render_annotation(a, skeleton.layout, Path(render), frame_captions(result, a),
                                          video, video_fps(video) if video else 25.0, force)
                result["render"] = str(drawn.path)
            yield result


def _inputs(anns: list[dict[str, Any]], setup: _Setup, clips: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of annotations as the model's input: (B * clips, frames, V, C), lengths (B * clips,)."""
    x, valid = prepare(anns, 300, setup.dtype, setup.skeleton)  # (B, [M,] 300, V, C)
    xk, lengths = clips_input(x, valid, setup.spec, clips)  # (B * clips, [M,] frames, V, C)
    return torch.from_numpy(np.ascontiguousarray(xk)), torch.from_numpy(lengths)


def _label_class(raw: RawData, ann: dict[str, Any]) -> str | None:
    """The name the pickle gives its label (its `classes` list, else a `v_<Class>_gNN_cNN`
    frame_dir), None when it names none: label numbers of two datasets are not comparable."""
    label = int(ann["label"])
    if raw.classes is not None:
        return raw.classes[label] if label < len(raw.classes) else None
    return parse_frame_dir(ann["frame_dir"])[0]


def _top(p: np.ndarray, setup: _Setup) -> list[dict[str, Any]]:
    return [{"class": setup.names[i], "label": int(i), "probability": float(p[i])}
            for i in np.argsort(-p)[: setup.top]]


def _windows(setup: _Setup, ann: dict[str, Any], window: int, stride: int) -> list[dict[str, Any]]:
    """Top classes of each window over the clip's whole length (not cut at the cache's 300),
    `batch_size` windows at a time: memory does not grow with the clip's length."""
    x, valid = prepare([ann], int(ann["keypoint"].shape[1]), setup.dtype, setup.skeleton)  # (1, [M,] T, V, C)
    clip = x[0]  # ([M,] T_clip, V, C)
    starts = window_starts(int(valid[0]), window, stride)
    out = []
    for lo in range(0, len(starts), setup.batch_size):
        some = starts[lo : lo + setup.batch_size]
        xs = np.stack([_frames(clip, s, window) for s in some])  # (W, [M,] window, V, C)
        lengths = np.array([min(window, int(valid[0]) - s) for s in some])  # (W,)
        xw, lw = model_input(xs, lengths, setup.spec, None)  # (W, [M,] frames, V, C)
        p = clip_probs(setup.model, torch.from_numpy(np.ascontiguousarray(xw)), torch.from_numpy(lw), 1,
                       setup.device, setup.precision)  # (W, classes)
        out += [{"start": s, "end": s + int(n) - 1, "top": _top(q, setup)}
                for s, n, q in zip(some, lengths, p, strict=True)]
    return out


def _frames(clip: np.ndarray, start: int, window: int) -> np.ndarray:
    """Frames start .. start + window of clip ([M,] T, V, C), zero-padded past its end."""
    part = clip[..., start : start + window, :, :]
    short = window - part.shape[-3]
    if short <= 0:
        return part
    pad = [(0, 0)] * part.ndim
    pad[-3] = (0, short)
    return np.pad(part, pad)


def check_fits(raw: RawData, skeleton: Skeleton, run_dir: Path) -> None:
    """Refuse a pickle whose skeletons are not the run's, in one line naming both."""
    theirs = (raw.joints, raw.dims, raw.scores)
    ours = (skeleton.num_joints, skeleton.dims, skeleton.score)
    if theirs != ours:
        raise SkpipeError(f"the pickle holds {skeleton_kind(*theirs)}; {run_dir} was trained on "
                          f"{skeleton_kind(*ours)} ({skeleton.layout['name']})")

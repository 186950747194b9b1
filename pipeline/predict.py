"""`skpipe predict`: a trained run on clips from any pickle, through ingest's own preprocessing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import SkpipeError
from pipeline.evaluate import load_model, open_run
from pipeline.features import InputSpec, model_input
from pipeline.preprocess import NUM_FEATURES, preprocess_batch
from pipeline.raw import read_raw
from pipeline.train import CPU, autocast


def prepare(anns: list[dict[str, Any]], max_frames: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Annotations -> (N, max_frames, V, 3) as stored in a cache of `dtype`, and valid lengths."""
    out = np.zeros((len(anns), max_frames, 17, NUM_FEATURES), np.float32)  # (N, T, V, C)
    clips = [(a["keypoint"], a["keypoint_score"], tuple(int(v) for v in a["img_shape"])) for a in anns]
    infos = preprocess_batch(clips, out, max_frames)  # type: ignore[arg-type]
    out = out.astype(dtype).astype(np.float32)  # the cache's rounding, as training saw it
    return out, np.array([i.valid_frames for i in infos], np.int64)


def predict_file(run_dir: Path, raw_path: Path, top: int = 5, checkpoint: str = "best",
                 clips: int | None = None, batch_size: int = 64, window: int | None = None,
                 stride: int | None = None) -> list[dict[str, Any]]:
    """Top-`top` classes with probabilities for every clip of `raw_path`."""
    return list(iter_predictions(run_dir, raw_path, top, checkpoint, clips, batch_size, window, stride))


def window_starts(valid: int, window: int, stride: int) -> list[int]:
    """First frames of the windows of `window` frames every `stride` frames over `valid` frames;
    the last window ends at the clip's last frame, so every frame is covered."""
    if valid <= window:
        return [0]
    starts = list(range(0, valid - window + 1, stride))
    return starts if starts[-1] == valid - window else [*starts, valid - window]


def iter_predictions(run_dir: Path, raw_path: Path, top: int = 5, checkpoint: str = "best",
                     clips: int | None = None, batch_size: int = 64, window: int | None = None,
                     stride: int | None = None) -> Iterator[dict[str, Any]]:
    """One result per clip, computed `batch_size` clips at a time: the preprocessed tensors and
    the model's activations never grow with the number of clips. With `window`, also the top
    classes of each window of `window` frames every `stride` frames, over the whole clip."""
    if batch_size < 1:
        raise SkpipeError(f"--batch-size must be >= 1, got {batch_size}")
    run = open_run(run_dir)
    frames = int(run.config["train"]["frames"])
    if window is not None and not 1 <= window <= frames:
        raise SkpipeError(f"--window must be in 1..{frames} (the run's frames), got {window}")
    if stride is not None and stride < 1:
        raise SkpipeError(f"--stride must be >= 1, got {stride}")
    model, _ = load_model(run, checkpoint)
    raw = read_raw(Path(raw_path))
    t = run.config["train"]
    clips = clips or int(t.get("test_clips", 1))
    names = list(run.config["class_names"])
    spec = InputSpec(t["frames"], t.get("feats", "j"), t.get("normalize", "none"))
    precision = t["precision"] if t["precision"] != "fp16" else "fp32"
    for lo in range(0, len(raw.annotations), batch_size):
        anns = raw.annotations[lo : lo + batch_size]
        x, valid = prepare(anns, 300, run.config.get("cache_dtype", "float16"))  # (B, 300, V, C)
        probs = np.zeros((len(anns), len(names)))
        for k in range(clips):
            xk, lengths = model_input(x, valid, spec, None, k, clips)
            with torch.no_grad(), autocast(precision, CPU):
                logits = model(torch.from_numpy(np.ascontiguousarray(xk)), torch.from_numpy(lengths))
            probs += torch.softmax(logits.float(), 1).numpy() / clips
        for a, p in zip(anns, probs, strict=True):
            result = {"frame_dir": a["frame_dir"], "label": int(a["label"]), "top": _top(p, names, top)}
            if window is not None:
                result["windows"] = _windows(model, a, window, stride or max(1, window // 4), spec,
                                             precision, names, top, run.config.get("cache_dtype", "float16"))
            yield result


def _top(p: np.ndarray, names: list[str], top: int) -> list[dict[str, Any]]:
    return [{"class": names[i], "label": int(i), "probability": float(p[i])} for i in np.argsort(-p)[:top]]


def _windows(model: torch.nn.Module, ann: dict[str, Any], window: int, stride: int, spec: InputSpec,
             precision: str, names: list[str], top: int, dtype: str) -> list[dict[str, Any]]:
    """Top classes of each window over the clip's whole length (not cut at the cache's 300)."""
    x, valid = prepare([ann], int(ann["keypoint"].shape[1]), dtype)  # (1, T_clip, V, C)
    starts = window_starts(int(valid[0]), window, stride)
    xs = np.stack([x[0, s : s + window] if s + window <= x.shape[1] else
                   np.pad(x[0, s:], ((0, s + window - x.shape[1]), (0, 0), (0, 0))) for s in starts])
    lengths = np.array([min(window, int(valid[0]) - s) for s in starts])  # (W,)
    xw, lw = model_input(xs, lengths, spec, None)  # (W, frames, V, C)
    with torch.no_grad(), autocast(precision, CPU):
        p = torch.softmax(model(torch.from_numpy(np.ascontiguousarray(xw)), torch.from_numpy(lw)).float(), 1)
    return [{"start": s, "end": s + int(n) - 1, "top": _top(q, names, top)}
            for s, n, q in zip(starts, lengths, p.numpy(), strict=True)]

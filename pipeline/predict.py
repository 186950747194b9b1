"""`skpipe predict`: a trained run on clips from any pickle, through ingest's own preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.evaluate import load_model, open_run
from pipeline.preprocess import NUM_FEATURES, preprocess_batch
from pipeline.raw import read_raw
from pipeline.train import CPU, autocast
from pipeline.transforms import take_frames, uniform_indices


def prepare(anns: list[dict[str, Any]], max_frames: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Annotations -> (N, max_frames, V, 3) as stored in a cache of `dtype`, and valid lengths."""
    out = np.zeros((len(anns), max_frames, 17, NUM_FEATURES), np.float32)  # (N, T, V, C)
    clips = [(a["keypoint"], a["keypoint_score"], tuple(int(v) for v in a["img_shape"])) for a in anns]
    infos = preprocess_batch(clips, out, max_frames)  # type: ignore[arg-type]
    out = out.astype(dtype).astype(np.float32)  # the cache's rounding, as training saw it
    return out, np.array([i.valid_frames for i in infos], np.int64)


@torch.no_grad()
def predict_file(run_dir: Path, raw_path: Path, top: int = 5, checkpoint: str = "best",
                 clips: int = 1) -> list[dict[str, Any]]:
    """Top-`top` classes with probabilities for every clip of `raw_path`."""
    run = open_run(run_dir)
    model, _ = load_model(run, checkpoint)
    raw = read_raw(Path(raw_path))
    t = run.config["train"]
    manifest_dtype = run.config.get("cache_dtype", "float16")
    x, valid = prepare(raw.annotations, 300, manifest_dtype)
    names = list(run.config["class_names"])
    probs = np.zeros((len(x), len(names)))
    for k in range(clips):
        xk, lengths = x, valid
        if t["frames"] < x.shape[1]:
            idx = uniform_indices(valid, t["frames"], None, k, clips)  # (N, frames)
            xk, lengths = take_frames(x, idx), np.full(len(x), t["frames"])
        with autocast(t["precision"] if t["precision"] != "fp16" else "fp32", CPU):
            logits = model(torch.from_numpy(np.ascontiguousarray(xk)), torch.from_numpy(lengths))
        probs += torch.softmax(logits.float(), 1).numpy() / clips
    results = []
    for a, p in zip(raw.annotations, probs, strict=True):
        order = np.argsort(-p)[:top]
        results.append({"frame_dir": a["frame_dir"], "label": int(a["label"]),
                        "top": [{"class": names[i], "label": int(i), "probability": float(p[i])}
                                for i in order]})
    return results

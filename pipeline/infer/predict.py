"""`skpipe predict`: a run (trained or imported) on clips from any pickle or videos, through the
one predictor (`pipeline.infer.shipped.ShippedModel`), plus what only the command shows: the
pickle's own class for each clip, and a rendering of the one clip with its labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import SkpipeError
from pipeline.files.atomic import check_target
from pipeline.infer.feed import check_fits, model_input, read_source
from pipeline.infer.inference import prefetch
from pipeline.infer.shipped import load
from pipeline.source.raw import RawData, parse_frame_dir, short_repr
from pipeline.source.render import render_annotation
from pipeline.source.video import is_video, video_fps


def predict_file(run_dir: Path, raw_path: Path, top: int = 5, checkpoint: str = "best",
                 clips: int | None = None, batch_size: int = 64, window: int | None = None,
                 stride: int | None = None, device: str = "cpu", precision: str = "fp32"
                 ) -> list[dict[str, Any]]:
    """Top-`top` classes with probabilities for every clip of `raw_path`."""
    return list(iter_predictions(run_dir, raw_path, top, checkpoint, clips, batch_size, window, stride,
                                 device, precision=precision))


def frame_captions(result: dict[str, Any], ann: dict[str, Any]) -> list[str]:
    """The top-1 label at every frame of the clip: the latest window that covers it."""
    captions = [""] * int(ann["keypoint"].shape[1])
    for w in result.get("windows", []):
        best = w["top"][0]
        for f in range(w["start"], min(w["end"] + 1, len(captions))):
            captions[f] = f"{best['class']} {best['probability']:.0%}"
    return captions


def iter_predictions(run_dir: Path, raw_path: Path, top: int = 5, checkpoint: str = "best",
                     clips: int | None = None, batch_size: int = 64, window: int | None = None,
                     stride: int | None = None, device: str = "cpu", render: Path | None = None,
                     force: bool = False, frame_dir: str | None = None, precision: str = "fp32"
                     ) -> Iterator[dict[str, Any]]:
    """One result per clip of `raw_path` (a pickle, a video, or a folder of videos), computed
    `batch_size` clips at a time (the next batch preprocessed in a thread while the model runs
    this one): memory never grows with the number of clips. Each result is the predictor's
    (frame_dir, top, windows) plus the pickle's `label` and, where it names its classes,
    `label_class`. With `render`, one clip (the only one, or `frame_dir`) is drawn with the label
    of the latest window at each frame."""
    model = load(run_dir, checkpoint, device=device, precision=precision)
    card = model.card
    model.check_options(top, clips, batch_size, window, stride)
    left_out: list[tuple[str, str]] = []
    raw = read_source(Path(raw_path), card.input, str(run_dir), left_out)
    check_fits(raw, card.input, str(run_dir))
    if render is not None:
        names = [a["frame_dir"] for a in raw.annotations]
        if frame_dir is None and len(names) != 1:
            raise SkpipeError(f"--render draws one clip; {raw_path} holds {len(names):,}: name it with "
                              f"--frame-dir (e.g. {short_repr(names[0])})")
        if frame_dir is not None and frame_dir not in names:
            raise SkpipeError(f"{raw_path}: no clip named {short_repr(frame_dir)}")
        frame_dir = frame_dir if frame_dir is not None else names[0]
        check_target(Path(render), force, "output")
        window = window or card.frames

    def prepared() -> Iterator[tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray, int]]]:
        """In the prefetch thread: each batch's annotations and the model's input, preprocessed
        while the model runs the previous batch."""
        for lo in range(0, len(raw.annotations), batch_size):
            anns = raw.annotations[lo : lo + batch_size]
            yield anns, model_input(anns, card, clips or card.num_clips)  # x (B * K, [M,] T, V, C)

    video = Path(raw_path) if is_video(Path(raw_path)) else None
    labelled = video is None and not Path(raw_path).is_dir()  # a video has no label
    for anns, (x, lengths, k) in prefetch(prepared(), depth=2):
        results = model.results(anns, model.fed_probabilities(x, lengths, k), top, window, stride, batch_size)
        for a, result in zip(anns, results, strict=True):
            result = {"frame_dir": result["frame_dir"], "label": int(a["label"]) if labelled else None,
                      "label_class": _label_class(raw, a), **result}
            if render is not None and a["frame_dir"] == frame_dir:
                drawn = render_annotation(a, card.input.layout, Path(render), frame_captions(result, a),
                                          video, video_fps(video) if video else 25.0, force)
                result["render"] = str(drawn.path)
            yield result
    if left_out:  # after every prediction that could be made
        n = len(left_out)
        raise SkpipeError(f"{n} video{'s' if n > 1 else ''} left out (first: {left_out[0][1]})")


def _label_class(raw: RawData, ann: dict[str, Any]) -> str | None:
    """The name the pickle gives its label (its `classes` list, else a `v_<Class>_gNN_cNN`
    frame_dir), None when it names none: label numbers of two datasets are not comparable."""
    if raw.classes is None and not str(ann["frame_dir"]).startswith("v_"):
        return None
    label = int(ann["label"])
    if raw.classes is not None:
        return raw.classes[label] if label < len(raw.classes) else None
    return parse_frame_dir(ann["frame_dir"])[0]

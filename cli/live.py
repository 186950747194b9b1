"""`skpipe live`: a run's labels on a camera, a stream or a playing video, as it runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from cli.options import (
    Finite,
    checkpoint_option,
    confidence_options,
    force_option,
    inference_precision_option,
    persons_option,
    run_dir_argument,
    threads_option,
)
from cli.ui import configure_process, console, shown, user_errors
from pipeline.infer.live import MAX_TIMEOUT, Shown

OVERLAY_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}
MAX_HELD_S = 10  # a frame is held at most this long in --out (a stream that stalls is not padded)


@click.command()
@run_dir_argument
@click.option("--source", default="0", show_default=True,
              help="A webcam index, a device (/dev/video2), a video file, or an rtsp:// / http:// stream.")
@click.option("--realtime", is_flag=True,
              help="Play a file as a camera would deliver it (frames dropped when labelling falls behind); "
                   "without it a file is read as fast as possible and no frame is dropped.")
@click.option("--window", type=int, help="Frames per label (default: the run's frames).")
@click.option("--stride", type=int, help="Frames between labels (default: a quarter window).")
@click.option("--top", default=3, show_default=True, type=click.IntRange(min=1), help="Classes per label.")
@click.option("--smooth", default=1, show_default=True, type=click.IntRange(min=1),
              help="Average the last K windows' probabilities.")
@click.option("--timeout", default=10.0, show_default=True, type=Finite(0.1, MAX_TIMEOUT),
              help="Seconds without a frame before the source counts as stopped.")
@click.option("--max-frames", default=0, type=click.IntRange(min=0), help="Stop after N frames (0: never).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the frames with the skeleton and labels (.mp4 or .avi).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per label on stdout, then a summary line.")
@persons_option(None)
@confidence_options
@checkpoint_option
@inference_precision_option
@threads_option
@force_option("an existing --out")
@user_errors
def live(run_dir: Path, source: str, realtime: bool, window: int | None, stride: int | None, top: int,
         smooth: int, timeout: float, max_frames: int, out: Path | None, as_json: bool, persons: int | None,
         min_detection: float,
         min_tracking: float, checkpoint: str, precision: str, threads: int | None, force: bool) -> None:
    """Label what a camera (or stream, or video) shows, live: pose per frame, the run's model on
    the latest window every stride frames. q or Esc closes the window; Ctrl-C ends cleanly."""
    from pipeline import SkpipeError
    from pipeline.infer.live import LiveConfig, check_live, run_live
    from pipeline.infer.shipped import load

    configure_process(threads or 1)  # the model gets one thread: the pose workers take the other cores
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and not (as_json or out)
    if not (as_json or out or display):
        raise SkpipeError("no display to show the labels on: give --json or --out FILE.mp4")
    model = load(run_dir, checkpoint, precision=precision)
    cfg = LiveConfig(source, window or 0, stride or 0, realtime, timeout, top, smooth, max_frames,
                     (min_detection, min_tracking), persons or 0)
    check_live(model, cfg)
    writer = _Overlay(out, force, model.card.input.layout) if out is not None else None
    shown_window = _Window() if display else None

    def on_label(label: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(label))
        elif not display:
            best = label["top"][0]
            console.print(f"frame {label['frame']:>6}  {shown(best['class'])} {best['probability']:.0%}  "
                          f"({label['latency_ms']:.0f} ms)")

    def on_frame(frame: Shown) -> bool:
        if writer is not None:
            writer.write(frame)
        return shown_window.show(frame, model.card.input.layout) if shown_window else True

    from pipeline.source.pose import quiet_native_logs

    try:
        with quiet_native_logs():  # MediaPipe's C++ lines; skpipe's own come after
            summary = run_live(model, cfg, on_label, on_frame)
    finally:
        if writer is not None:
            writer.close()
        if shown_window is not None:
            shown_window.close()
    if as_json:
        click.echo(json.dumps({"summary": summary}))
    else:
        s = summary
        console.print(f"{s['processed']:,} of {s['frames']:,} frames labelled at {s['fps']} frames/s, "
                      f"{s['dropped']:,} dropped; median latency {s['latency_ms_median']} ms; someone "
                      f"found in {s['found']:.0%}")
    if writer is not None and out is not None and out.is_file() and writer.frames:
        click.echo(f"wrote {out} ({writer.frames:,} frames)", err=True)
    elif writer is not None:
        click.echo(f"wrote nothing to {out} (no frame was labelled)", err=True)


def draw(rgb: Any, pose: Any, label: dict[str, Any] | None, layout: dict[str, Any]) -> Any:
    """The frame (BGR, for OpenCV) with the skeleton's bones and the top classes."""
    from pipeline.source.pose import import_cv2

    cv2 = import_cv2()
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    colours = ((0, 200, 255), (255, 160, 0), (120, 255, 120), (255, 80, 200))
    for m, person in enumerate([] if pose is None else pose.reshape(-1, *pose.shape[-2:])):  # (M, V, 2)
        pts = [(int(x), int(y)) for x, y in person]
        drawn = [p for p in pts if p != (0, 0)]
        for j, p in enumerate(layout["parents"]):
            if j != p and (pts[j] != (0, 0) and pts[p] != (0, 0)):
                cv2.line(img, pts[j], pts[p], colours[m % len(colours)], 2)
        if drawn and len(pose.shape) == 3 and pose.shape[0] > 1:  # several persons: each slot's number
            x, y = min(drawn, key=lambda p: p[1])
            cv2.putText(img, f"#{m + 1}", (x, max(12, y - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                        colours[m % len(colours)], 2)
    if label is not None:
        for i, t in enumerate(label["top"]):
            text = f"{t['class']} {t['probability']:.0%}"
            cv2.putText(img, text, (10, 30 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        cv2.putText(img, f"{label['latency_ms']:.0f} ms", (10, img.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, (200, 200, 200), 1)
    return img


class _Overlay:
    """--out: frames with the overlay at the source's rate, each held until the next processed one
    (so a run that dropped frames still plays in the source's time), written to a temporary
    sibling and renamed when the run ends (Ctrl-C and SIGTERM included): the file is always a
    whole, playable video. Checked before the camera starts: suffix, folder, overwrite."""

    def __init__(self, out: Path, force: bool, layout: dict[str, Any]) -> None:
        from pipeline import SkpipeError
        from pipeline.files.atomic import check_target, sweep_stale

        if out.suffix.lower() not in OVERLAY_SUFFIXES:
            raise SkpipeError(f"--out {out}: write a {' or '.join(OVERLAY_SUFFIXES)} video")
        check_target(out, force, "--out")
        sweep_stale(out)  # what a killed run left behind
        self.out, self.layout = out, layout
        self.tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{out.suffix}")
        try:
            self.tmp.touch()
        except OSError as e:
            raise SkpipeError(f"cannot write --out {out}: {e.strerror or e}") from None
        self.writer: Any = None
        self.frames = 0  # frames written, held ones included
        self.last = -1  # the source index of the last frame written

    def write(self, frame: Shown) -> None:
        from pipeline.source.pose import import_cv2

        cv2 = import_cv2()
        img = draw(frame.rgb, frame.pose, frame.label, self.layout)
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*OVERLAY_SUFFIXES[self.out.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, frame.fps, (img.shape[1], img.shape[0]))
            self.last = frame.index - 1
        held = min(max(frame.index - self.last, 1), int(frame.fps * MAX_HELD_S) + 1)  # this one, and the gap
        for _ in range(held):
            self.writer.write(img)
        self.frames += held
        self.last = frame.index

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.frames and self.tmp.exists() and self.tmp.stat().st_size > 0:
            os.replace(self.tmp, self.out)
        else:
            self.tmp.unlink(missing_ok=True)


class _Window:
    def show(self, frame: Shown, layout: dict[str, Any]) -> bool:
        from pipeline.source.pose import import_cv2

        cv2 = import_cv2()
        cv2.imshow("skpipe live (q or Esc quits)", draw(frame.rgb, frame.pose, frame.label, layout))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        from pipeline.source.pose import import_cv2

        import_cv2().destroyAllWindows()

"""Draw a clip's skeleton, frame by frame, as an animated GIF or a video: people would rather look
at a skeleton than read its numbers.

The drawing is plain numpy and Pillow (the bones of the layout's graph over each person's joints,
an optional caption per frame, e.g. the current top label); a `.gif` needs nothing more, a video
(`.mp4`, `.avi`) needs OpenCV (the video extra). The background is the source video's frames when
given, else black at the clip's `img_shape`. Sizes from a file are bounded: the canvas is scaled
to at most `MAX_SIDE` pixels, a GIF holds at most `MAX_GIF_FRAMES` frames, and at most
`MAX_PERSONS_DRAWN` person slots are drawn (the best-scored).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.layouts import Layout, LayoutError, detect_layout
from pipeline import SkpipeError
from pipeline.files.atomic import atomic_file
from pipeline.source.pose import import_cv2
from pipeline.source.raw import RawData, read_raw, short_repr
from pipeline.source.video import capture, is_video, read_frames, video_fps

GIF = ".gif"
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
RENDER_SUFFIXES = (GIF, *VIDEO_CODECS)
MAX_SIDE = {GIF: 480, ".mp4": 1280, ".avi": 1280}  # the longer side of what is drawn, pixels
MAX_GIF_FRAMES = 1000
MAX_VIDEO_RENDER_FRAMES = 18_000  # ten minutes at 30 fps: a render's time is bounded by its frames
MIN_SCORE = 0.05  # joints scored lower are not drawn (missing, or a guess)
COLOURS = [(255, 80, 80), (80, 170, 255), (120, 230, 120), (255, 200, 60)]  # per person
MAX_PERSONS_DRAWN = len(COLOURS)  # a crowd's slots beyond these (by mean score) are not drawn


@dataclass(frozen=True)
class Rendered:
    path: Path
    frame_dir: str
    frames: int
    fps: float
    size: tuple[int, int]  # (height, width) drawn


def draw_frame(canvas: np.ndarray, people: np.ndarray, scores: np.ndarray, edges: Sequence[Sequence[int]],
               caption: str | None = None) -> np.ndarray:
    """canvas (H, W, 3) uint8 with each person's bones and joints drawn: people (M, V, 2) in the
    canvas's pixels, scores (M, V)."""
    img = Image.fromarray(canvas)
    pen = ImageDraw.Draw(img)
    width = max(2, min(img.size) // 160)
    for m, (xy, sc) in enumerate(zip(people, scores, strict=True)):
        colour = COLOURS[m % len(COLOURS)]
        for a, b in edges:
            if sc[a] > MIN_SCORE and sc[b] > MIN_SCORE:
                pen.line([tuple(xy[a]), tuple(xy[b])], fill=colour, width=width)
        for j in np.flatnonzero(sc > MIN_SCORE):
            x, y = xy[j]
            pen.ellipse([x - width, y - width, x + width, y + width], fill=(255, 255, 255))
    if caption:
        font = ImageFont.load_default(size=max(12, min(img.size) // 18))
        box = pen.textbbox((8, 8), caption, font=font)
        pen.rectangle([box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4], fill=(0, 0, 0))
        pen.text((8, 8), caption, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def _backgrounds(video: Path | None, shape: tuple[int, int], frames: int) -> Iterator[np.ndarray]:
    """The video's frames (RGB) when given, then black; black at `shape` without one."""
    n = 0
    if video is not None:
        for rgb in read_frames(video, frames):
            n += 1
            yield rgb
    while n < frames:
        n += 1
        yield np.zeros((*shape, 3), np.uint8)


def _scale(shape: tuple[int, int], suffix: str) -> float:
    return min(1.0, MAX_SIDE[suffix] / max(shape))


VIEWS = {"front": (0.0, 0.0), "side": (90.0, 0.0), "top": (0.0, 90.0)}  # azimuth, elevation
CANVAS_3D = 480  # pixels: a 3D clip is drawn on a square canvas


def parse_view(text: str) -> tuple[float, float]:
    """--view: front, side, top, or AZIMUTH,ELEVATION in degrees -> (azimuth, elevation)."""
    if text in VIEWS:
        return VIEWS[text]
    try:
        azimuth, elevation = (float(v) for v in text.split(","))
    except ValueError:
        azimuth = elevation = float("nan")
    if not (np.isfinite(azimuth) and np.isfinite(elevation) and -90 <= elevation <= 90):
        raise SkpipeError(f"--view must be {', '.join(VIEWS)} or AZIMUTH,ELEVATION in degrees (elevation "
                          f"in -90..90), got {short_repr(text)}")
    return azimuth, elevation


def project_3d(kp: np.ndarray, azimuth: float, elevation: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """3D joints (M, T, V, 3) (x right, y up, z depth: Kinect's and NTU's axes) seen from `azimuth`
    degrees about the vertical axis and `elevation` degrees above -> pixels (M, T, V, 2) of a
    `size` square canvas, the whole clip fitted into it, and scores (M, T, V): 1 where a joint
    is present (missing joints are zero)."""
    present = (kp != 0).any(-1)  # (M, T, V)
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])  # about y
    tilt = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])  # about x
    seen = kp.astype(np.float64) @ (tilt @ turn).T  # (M, T, V, 3)
    screen = np.stack([seen[..., 0], -seen[..., 1]], -1)  # (M, T, V, 2): image y points down
    points = screen[present]  # (P, 2)
    if not len(points):
        return np.zeros(screen.shape, np.float32), present.astype(np.float32)
    lo, hi = points.min(0), points.max(0)
    scale = 0.9 * size / max(float((hi - lo).max()), 1e-6)
    xy = (screen - (lo + hi) / 2) * scale + size / 2
    return xy.astype(np.float32), present.astype(np.float32)


def render_annotation(ann: dict[str, Any], layout: Layout, out: Path, captions: Sequence[str] | None = None,
                      video: Path | None = None, fps: float = 25.0, force: bool = False,
                      view: tuple[float, float] | None = None) -> Rendered:
    """Draw one PYSKL annotation (every person slot): 2D in pixels of `img_shape` (on its video
    where given), or 3D from `view` (azimuth, elevation; front by default)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in RENDER_SUFFIXES:
        raise SkpipeError(f"--render / --out must end in {', '.join(RENDER_SUFFIXES)}, got {out.name!r}")
    kp = np.nan_to_num(np.asarray(ann["keypoint"], np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if kp.ndim != 4 or kp.shape[-1] not in (2, 3) or (kp.shape[-1] == 2 and "keypoint_score" not in ann):
        raise SkpipeError("only 2D clips in pixels (with scores) and 3D clips can be drawn")
    if kp.shape[2] != len(layout["joints"]):
        raise SkpipeError(f"the clip has {kp.shape[2]} joints; the layout {layout['name']} has "
                          f"{len(layout['joints'])}")
    frames = min(kp.shape[1], MAX_GIF_FRAMES if suffix == GIF else MAX_VIDEO_RENDER_FRAMES)
    kp = kp[:, :frames]  # (M, frames, V, C): only what is drawn is projected and fitted
    if kp.shape[-1] == 3:  # (M, T, V, 3)
        if video is not None:
            raise SkpipeError("--video draws on a video's frames: a 3D clip has none")
        kp, sc = project_3d(kp, *(view or VIEWS["front"]), CANVAS_3D)
        h = w = CANVAS_3D
    else:
        if view is not None:
            raise SkpipeError("--view turns 3D clips; this one is 2D")
        sc = np.nan_to_num(np.asarray(ann["keypoint_score"], np.float32))  # (M, T, V)
        h, w = (int(v) for v in ann["img_shape"])
    keep = np.argsort(-sc.mean(axis=(1, 2)), kind="stable")[:MAX_PERSONS_DRAWN]  # best-scored slots
    kp, sc = kp[keep], sc[keep]
    if video is not None:
        cv2 = import_cv2()
        with capture(video) as cap:
            vh, vw = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        if (vh, vw) != (h, w):
            raise SkpipeError(f"{video} is {vw}x{vh}; the clip was extracted from {w}x{h} frames")
    s = _scale((h, w), suffix)
    size = (max(2, round(h * s)) // 2 * 2, max(2, round(w * s)) // 2 * 2)  # even sides: codecs need them
    edges = layout["edges"]
    drawn = (draw_frame(_resize(bg, size), kp[:, t] * np.array([size[1] / w, size[0] / h], np.float32),
                        sc[:, t], edges, captions[t] if captions is not None else None)
             for t, bg in enumerate(_backgrounds(video, (h, w) if video is not None else size, frames)))
    _write(out, drawn, size, fps, force)
    return Rendered(out, str(ann["frame_dir"]), frames, fps, size)


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _write(out: Path, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float, force: bool) -> None:
    """Frames to `out` through a temporary sibling: nothing half-written under the final name."""
    with atomic_file(out, force, "output") as tmp:
        if out.suffix.lower() == GIF:
            images = [Image.fromarray(f).quantize(colors=64) for f in frames]
            images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        else:
            _write_video(tmp, frames, size, fps, VIDEO_CODECS[out.suffix.lower()])


def _write_video(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float, codec: str
                 ) -> None:
    cv2 = import_cv2()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (size[1], size[0]))
    if not writer.isOpened():
        raise SkpipeError(f"OpenCV cannot write {path.suffix} video here (codec {codec})")
    written = 0
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            written += 1
    finally:
        writer.release()
    _check_written(path, written)


def _check_written(path: Path, frames: int) -> None:
    """OpenCV's writer reports no error (a full disk leaves a file of 0 or 2 of 600 frames): read
    back how many frames the file holds."""
    cv2 = import_cv2()
    with capture(path) as cap:
        held = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    if held < frames:
        raise OSError(errno.ENOSPC, f"{held} of {frames} frames written (a full disk?)")


def clip_of(raw: RawData, frame_dir: str | None) -> dict[str, Any]:
    if frame_dir is None:
        return raw.annotations[0]
    for a in raw.annotations:
        if a["frame_dir"] == frame_dir:
            return a
    raise SkpipeError(f"{raw.path}: no clip named {short_repr(frame_dir)}")


def render_clip(source: Path, out: Path, frame_dir: str | None = None, video: Path | None = None,
                layout: Layout | None = None, force: bool = False, view: str | None = None,
                persons: int = 1) -> Rendered:
    """`skpipe render`: one clip of a pickle (or of a video, extracted first, with up to
    `persons` tracked persons) drawn to `out`."""
    source = Path(source)
    if is_video(source):
        from pipeline.source.extract import extract_raw

        raw, video = extract_raw(source, persons=persons), source
    else:
        raw = read_raw(source)
    ann = clip_of(raw, frame_dir)
    if layout is None:
        try:
            layout = detect_layout(raw.joints)
        except LayoutError as e:
            raise SkpipeError(str(e)) from None
    fps = video_fps(video) if video is not None else 25.0
    angles = None if view is None else parse_view(view)
    return render_annotation(ann, layout, out, None, video, fps, force, angles)

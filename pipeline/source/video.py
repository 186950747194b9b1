"""One video -> one PYSKL 2D annotation: decode its frames, find the person in each, keep the
landmarks in the backend's layout or map them to COCO-17.

What a video may claim is bounded before anything is decoded: its frame size (`MAX_PIXELS`),
and the frames read (`max_frames`, counted as they are read, not taken from the header). A
video that cannot be opened, holds no frame or shows nobody is an error naming it: it is never
written as zeros.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.layouts import MEDIAPIPE33_TO_COCO17
from pipeline import SkpipeError
from pipeline.source.pose import PoseBackend, import_cv2

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
EXTRACT_LAYOUTS = ("coco17", "mediapipe33", "handmp")
MAX_PIXELS = 8192 * 8192  # a frame larger than 8K in both directions is not a real video
MAX_VIDEO_FRAMES = 100_000  # about an hour at 30 fps: bounds one video's time
FramesFn = Callable[[int], None]  # called with frames decoded so far


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoPose:
    """What extraction found in one video, in the PYSKL fields."""

    keypoint: np.ndarray  # (M, T, V, 2) float16 pixels: M = 1, or --persons tracked persons
    keypoint_score: np.ndarray  # (M, T, V) float16
    img_shape: tuple[int, int]  # (height, width)
    missing: int  # frames in which nobody was found (zeros, score 0)

    @property
    def total_frames(self) -> int:
        return int(self.keypoint.shape[1])

    def annotation(self, frame_dir: str, label: int) -> dict[str, Any]:
        """The PYSKL annotation dict, exactly as `ingest` reads it."""
        return {"frame_dir": frame_dir, "label": int(label), "img_shape": self.img_shape,
                "original_shape": self.img_shape, "total_frames": self.total_frames,
                "keypoint": self.keypoint, "keypoint_score": self.keypoint_score}


@contextlib.contextmanager
def capture(path: Path) -> Iterator[Any]:
    """An OpenCV capture of the file `path`, released at the end. OpenCV crashes the process on a
    file name that is not UTF-8 (a str with surrogates), so such a file is opened through a link
    of a plain name in a temporary folder. A FIFO or a device is refused: OpenCV would block on it."""
    if not Path(path).is_file():
        raise SkpipeError(f"{path}: not a regular file")
    cv2 = import_cv2()
    with contextlib.ExitStack() as stack:
        name = str(path)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="skpipe-video-"))
            link = Path(folder) / f"video{os.fsencode(Path(path).suffix).decode('ascii', 'replace')}"
            link.symlink_to(Path(path).resolve())
            name = str(link)
        cap = cv2.VideoCapture(name)
        try:
            yield cap
        finally:
            cap.release()


def read_frames(path: Path, max_frames: int = MAX_VIDEO_FRAMES) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8 of `path`, at most `max_frames` of them."""
    cv2 = import_cv2()
    with capture(path) as cap:
        if not cap.isOpened():
            raise SkpipeError(f"{path}: cannot be decoded (not a video, or a codec OpenCV lacks)")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > MAX_PIXELS:
            raise SkpipeError(f"{path}: declares {w}x{h} frames, larger than any real video")
        for _ in range(max_frames):
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            if frame.ndim != 3 or frame.shape[0] * frame.shape[1] > MAX_PIXELS:
                raise SkpipeError(f"{path}: a frame of shape {frame.shape} is not a colour video frame")
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


# the first bytes of the containers behind VIDEO_SUFFIXES: (offset, bytes)
_MAGIC = ((4, b"ftyp"), (0, b"RIFF"), (0, b"\x1a\x45\xdf\xa3"), (0, b"\x00\x00\x01\xba"),
          (0, b"\x00\x00\x01\xb3"), (0, b"\x30\x26\xb2\x75"), (4, b"moov"),
          (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"))


def video_problem(path: Path) -> str | None:
    """Why `path` cannot be a video, from its first bytes (None: it may be one): junk is refused
    in microseconds, before a decoder or a pose worker is started for it."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"{path}: cannot be read ({e.strerror})"
    if len(head) < 12:
        return f"{path}: {len(head)} bytes, too short to be a video"
    if not any(head[o : o + len(m)] == m for o, m in _MAGIC):
        return (f"{path}: not a video container (its first bytes are no MP4 / MOV, AVI, MKV / WebM, MPEG "
                "or ASF header)")
    return None


def video_fps(path: Path) -> float:
    """Frames per second from the header (25 when it claims none or nonsense)."""
    cv2 = import_cv2()
    with capture(path) as cap:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 1.0 <= fps <= 240.0 else 25.0


def _joints_of(backend: PoseBackend) -> int:
    from models.layouts import LAYOUTS

    return len(LAYOUTS[backend.layout]["joints"])


def to_layout(keypoint: np.ndarray, score: np.ndarray, source: str, layout: str
              ) -> tuple[np.ndarray, np.ndarray]:
    """(..., V_source, 2), (..., V_source) in the backend's layout -> the same in `layout`."""
    if layout == source:
        return keypoint, score
    if (source, layout) == ("mediapipe33", "coco17"):
        return keypoint[..., MEDIAPIPE33_TO_COCO17, :], score[..., MEDIAPIPE33_TO_COCO17]
    raise SkpipeError(f"no mapping from the backend's {source} landmarks to {layout}; "
                      f"choose --layout from {', '.join(EXTRACT_LAYOUTS)}")


def frame_pose(backend: PoseBackend, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The best-scoring person (or hand) of one frame in the backend's layout: keypoints (V, 2)
    pixels and scores (V,), or None when nobody is there. `extract` and `live` both call this."""
    xy, sc = backend(rgb)  # (P, V_b, 2), (P, V_b)
    if len(xy) == 0:
        return None
    best = int(np.argmax(sc.mean(axis=1)))  # the seed's rule, per frame
    return xy[best], sc[best]


def _frames(path: Path, max_frames: int, on_frames: FramesFn | None) -> Iterator[np.ndarray]:
    """The video's RGB frames, every one the first one's size, `on_frames` told every 16; one
    line for a video that holds none or changes size."""
    shape: tuple[int, ...] | None = None
    n = 0
    for rgb in read_frames(path, max_frames):
        if shape is None:
            shape = rgb.shape[:2]
        elif rgb.shape[:2] != shape:
            raise SkpipeError(f"{path}: frame {n} is {rgb.shape[1]}x{rgb.shape[0]}, the first was "
                              f"{shape[1]}x{shape[0]}")
        yield rgb
        n += 1
        if on_frames is not None and n % 16 == 0:
            on_frames(16)
    if shape is None:
        raise SkpipeError(f"{path}: holds no frame that could be decoded")
    if on_frames is not None and n % 16:
        on_frames(n % 16)


def extract_video(path: Path, backend: PoseBackend, layout: str = "coco17",
                  max_frames: int = MAX_VIDEO_FRAMES, on_frames: FramesFn | None = None, persons: int = 1
                  ) -> VideoPose:
    """The best-scoring person of every frame of `path` (M = 1), in `layout`; with `persons` > 1
    and a tracking backend, the `persons` tracks of the highest total score (PYSKL's rule), each
    in its own slot, zeros (score 0) where it is absent."""
    if persons > 1:
        return _extract_tracked(path, backend, layout, max_frames, on_frames, persons)
    kps: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    missing = 0
    for rgb in _frames(path, max_frames, on_frames):
        shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        found = frame_pose(backend, rgb)
        if found is None:
            missing += 1
            v = len(kps[0]) if kps else _joints_of(backend)
            kps.append(np.zeros((v, 2), np.float32))
            scores.append(np.zeros(v, np.float32))
        else:
            kps.append(found[0])
            scores.append(found[1])
    if missing == len(kps):
        raise SkpipeError(f"{path}: nobody was found in any of its {len(kps):,} frames")
    kp, sc = to_layout(np.stack(kps)[None], np.stack(scores)[None], backend.layout, layout)
    kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)  # (1, T, V, 2)
    return VideoPose(kp.astype(np.float16), sc.astype(np.float16), shape, missing)


def _extract_tracked(path: Path, backend: PoseBackend, layout: str, max_frames: int,
                     on_frames: FramesFn | None, persons: int) -> VideoPose:
    """Every tracked person of every frame, then the `persons` ids of the highest total score,
    ordered by it: keypoint (M, T, V, 2)."""
    seen: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []  # per frame: id -> (V, 2), (V,)
    for rgb in _frames(path, max_frames, on_frames):
        shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        xy, sc = backend(rgb)  # (P, V_b, 2), (P, V_b)
        ids = getattr(backend, "ids", np.arange(len(xy)))
        seen.append({int(i): (xy[k], sc[k]) for k, i in enumerate(ids)})
    totals: dict[int, float] = {}
    for frame in seen:
        for i, (_, sc) in frame.items():
            totals[i] = totals.get(i, 0.0) + float(sc.sum())
    if not totals:
        raise SkpipeError(f"{path}: nobody was found in any of its {len(seen):,} frames")
    kept = sorted(totals, key=lambda i: -totals[i])[:persons]  # PYSKL: the highest total score first
    v = _joints_of(backend)
    kp = np.zeros((persons, len(seen), v, 2), np.float32)  # (M, T, V_b, 2)
    score = np.zeros((persons, len(seen), v), np.float32)
    for t, frame in enumerate(seen):
        for m, i in enumerate(kept):
            if i in frame:
                kp[m, t], score[m, t] = frame[i]
    missing = sum(1 for frame in seen if not any(i in frame for i in kept))
    kp, score = to_layout(kp, score, backend.layout, layout)
    kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)
    return VideoPose(kp.astype(np.float16), score.astype(np.float16), shape, missing)

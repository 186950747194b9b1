"""`skpipe live`: labels from a camera, a network stream or a playing video, as it runs.

A reader thread takes frames from OpenCV (a webcam index or device, a file, an RTSP / HTTP
stream) into a hand-over of bounded size; pose workers run the pose backend of the run's layout
on the frames (`video.frame_pose`, as `extract` does; in real time two backends side by side on
alternate frames, `pose_workers`); the main loop takes their poses in frame order into a ring
buffer of the last `window`, and every `stride` frames the one predictor (`ShippedModel.windows`,
as `predict --window` does) labels the buffer while the workers go on with the next frames.

Real time: a camera or stream, or a file with `realtime`, delivers frames at its own pace; when
pose and model fall behind, the reader replaces the frame not yet taken with the newer one and
counts the older as dropped, so nothing queues without bound and a shown label is never older
than one stride plus the model's latency. A file without `realtime` is read as fast as the loop
takes frames and none is dropped: its labels then equal `predict FILE --window W --stride S`'s
for the windows that end at the same frames. A source that stops delivering ends the run after
`timeout` seconds, even one that accepted the connection and then sends nothing.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import MAX_FED_FRAMES, SkpipeError
from pipeline.infer.shipped import ShippedModel, top_classes
from pipeline.source.pose import (
    BACKENDS,
    CONFIDENCE,
    MAX_PERSONS,
    MULTI_BACKEND,
    PoseBackend,
    backend_for,
    check_confidence,
    import_cv2,
)
from pipeline.source.stream import open_capture
from pipeline.source.video import MAX_PIXELS, frame_pose, to_layout, video_problem

MAX_TIMEOUT = 3600.0  # seconds a source may stay silent: an hour, never forever
SPAWN_S = 10.0  # beyond --timeout, for a stream's decoder child to start (import OpenCV)


@dataclass(frozen=True)
class LiveConfig:
    """What `skpipe live` was asked: the source and how it is labelled."""

    source: str = "0"
    window: int = 0  # frames per label (0: the model's frames)
    stride: int = 0  # frames between labels (0: a quarter window)
    realtime: bool = False  # play a file as a camera would deliver it
    timeout: float = 10.0  # seconds without a frame before the source counts as stopped
    top: int = 3
    smooth: int = 1  # labels averaged over the last k windows
    max_frames: int = 0  # stop after this many frames (0: at the source's end)
    confidence: tuple[float, float] = CONFIDENCE  # the pose backend's minimum detection, tracking
    persons: int = 0  # persons tracked and fed (0: the model's); above 1, the multi-person backend


@dataclass
class LiveStats:
    """What the run saw: frames read, processed and dropped, and the latencies measured."""

    read: int = 0
    processed: int = 0
    dropped: int = 0
    found: int = 0
    pose_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> dict[str, Any]:
        seconds = max(1e-9, time.monotonic() - self.started)

        def q(values: list[float], p: float) -> float | None:
            return round(float(np.percentile(values, p)), 1) if values else None

        return {"frames": self.read, "processed": self.processed, "dropped": self.dropped,
                "fps": round(self.processed / seconds, 2), "latency_ms_median": q(self.latency_ms, 50),
                "latency_ms_p95": q(self.latency_ms, 95), "pose_ms_median": q(self.pose_ms, 50),
                "pose_ms_p95": q(self.pose_ms, 95), "model_ms_median": q(self.model_ms, 50),
                "model_ms_p95": q(self.model_ms, 95),
                "found": round(self.found / self.processed, 4) if self.processed else 0.0}


def is_file_source(source: str) -> bool:
    return not source.isdigit() and "://" not in source and not source.startswith("/dev/")


def _capture_target(source: str) -> int | str:
    return int(source) if source.isdigit() else source


class FrameReader:
    """OpenCV frames of `source` in a thread, handed over one at a time with their index and
    arrival time. `live` (a camera, a stream, or a file played in real time) keeps only the
    newest frame not yet taken; otherwise the reader waits for the loop (bounded: two frames)."""

    def __init__(self, source: str, realtime: bool, timeout: float, max_frames: int = 0) -> None:
        self.source, self.timeout = source, timeout
        self.live = realtime or not is_file_source(source)
        self.pace = realtime and is_file_source(source)
        self.max_frames = max_frames
        self.dropped = self.read = 0
        self.fps = 0.0
        self.size: tuple[int, int] | None = None  # (width, height)
        self._cond = threading.Condition()
        self._slots: collections.deque[tuple[int, float, np.ndarray]] = collections.deque()
        self._done = False
        self._error: str | None = None
        self._stop = threading.Event()
        self._cap: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="skpipe-live-reader")

    def open(self) -> None:
        """Open the source, at most `timeout` seconds (a stalled server cannot hang this)."""
        cv2 = import_cv2()
        if is_file_source(self.source) and not Path(self.source).is_file():
            raise SkpipeError(f"--source {self.source}: no such file")
        if is_file_source(self.source) and (problem := video_problem(Path(self.source))) is not None:
            raise SkpipeError(f"--source {problem}")  # predict's and extract's words
        box: dict[str, Any] = {}

        def opener() -> None:
            try:
                box["cap"] = open_capture(_capture_target(self.source), self.timeout, MAX_PIXELS)
            except Exception as e:  # OpenCV raises its own error for a bad target
                box["error"] = e

        t = threading.Thread(target=opener, daemon=True, name="skpipe-live-open")
        t.start()
        t.join(self.timeout + (0.0 if is_file_source(self.source) else SPAWN_S))
        cap = box.get("cap")
        if t.is_alive() or cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            why = f"nothing answered in {self.timeout:g} s" if t.is_alive() else getattr(
                cap, "why", "it cannot be opened")
            kind = "camera" if self.source.isdigit() or self.source.startswith("/dev/") else "source"
            raise SkpipeError(f"--source {self.source}: no {kind} there ({why})")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > MAX_PIXELS:
            cap.release()
            raise SkpipeError(f"--source {self.source}: declares {w}x{h} frames, larger than any real video")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self._cap = cap
        self._thread.start()

    def _run(self) -> None:
        cv2 = import_cv2()
        start = time.monotonic()
        try:
            while not self._stop.is_set() and not (self.max_frames and self.read >= self.max_frames):
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    break
                if frame.ndim != 3 or frame.shape[0] * frame.shape[1] > MAX_PIXELS:
                    self._error = f"a frame of shape {frame.shape} is not a colour video frame"
                    break
                if self.pace:  # a file as a camera would deliver it
                    due = start + self.read / self.fps
                    time.sleep(max(0.0, due - time.monotonic()))
                self._put((self.read, time.monotonic(), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
                self.read += 1
        except SkpipeError as e:  # a stream's decoder died in its child
            self._error = str(e)
        except Exception as e:  # a decoder failure ends the source, in one line
            self._error = f"{type(e).__name__}: {e}"
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _put(self, item: tuple[int, float, np.ndarray]) -> None:
        with self._cond:
            if self.live:
                if self._slots:  # the loop is behind: the older frame is dropped
                    self._slots.clear()
                    self.dropped += 1
                self._slots.append(item)
                self._cond.notify_all()
                return
            while len(self._slots) >= 2 and not self._stop.is_set():
                self._cond.wait(0.1)
            self._slots.append(item)
            self._cond.notify_all()

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """(source index, arrival time, RGB frame) until the source ends; one line when it stops
        delivering for `timeout` seconds."""
        while True:
            with self._cond:
                deadline = time.monotonic() + self.timeout
                while not self._slots and not self._done:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise SkpipeError(f"--source {self.source}: no frame for {self.timeout:g} s "
                                          "(the stream stopped delivering)")
                    self._cond.wait(min(left, 0.25))
                if self._slots:
                    item = self._slots.popleft()
                    self._cond.notify_all()
                elif self._error:
                    raise SkpipeError(f"--source {self.source}: {self._error}")
                else:
                    return
            yield item

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(2.0)
        if self._cap is not None and not self._thread.is_alive():
            self._cap.release()


Label = dict[str, Any]


@dataclass(frozen=True)
class Shown:
    """One processed frame as `on_frame` gets it. `index` counts the source's frames (dropped ones
    too) at `fps`, so a recording can keep the source's time: a frame held until the next."""

    index: int
    fps: float
    rgb: np.ndarray  # (H, W, 3) uint8
    pose: np.ndarray | None  # (M, V, 2) float32, None where nobody was found
    label: Label | None  # the latest label


FrameFn = Callable[[Shown], bool]  # False: stop


def check_live(model: ShippedModel, cfg: LiveConfig) -> tuple[int, int, str]:
    """(window, stride, backend) for `model`, or one line: a layout no backend gives, a window
    larger than the run's frames, bad numbers."""
    card = model.card
    layout = card.input.layout["name"]
    try:
        backend = backend_for(layout)
    except SkpipeError:
        raise SkpipeError(f"no pose backend gives the run's {layout} skeletons from a camera; live needs "
                          "coco17, mediapipe33 or handmp") from None
    persons = live_persons(model, cfg)
    if not 1 <= persons <= MAX_PERSONS:
        raise SkpipeError(f"--persons must be in 1..{MAX_PERSONS}, got {persons}")
    if persons > 1:
        if backend != "mediapipe":
            raise SkpipeError(f"--persons {persons}: the {layout} backend follows one hand; several "
                              "persons apply to body layouts (coco17, mediapipe33)")
        backend = MULTI_BACKEND
    if card.input.dims != 2:
        raise SkpipeError(f"the run reads {card.input.describe()}; a camera gives 2D poses")
    window = cfg.window or card.frames
    limit = MAX_FED_FRAMES if card.pyskl else card.frames
    if not 1 <= window <= limit:
        raise SkpipeError(f"--window must be in 1..{limit} (the run's frames), got {window}")
    stride = cfg.stride or max(1, window // 4)
    if not 0 < cfg.timeout <= MAX_TIMEOUT:  # false for nan too
        raise SkpipeError(f"--timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], got {cfg.timeout}")
    if stride < 1 or cfg.top < 1 or cfg.smooth < 1 or cfg.max_frames < 0:
        raise SkpipeError("--stride, --top and --smooth must be positive")
    return window, stride, backend


def live_persons(model: ShippedModel, cfg: LiveConfig) -> int:
    """The persons tracked: as asked, else as many as the model reads."""
    return cfg.persons or model.card.input.persons


def pose_workers(source: str, realtime: bool, persons: int = 1) -> int:
    """Pose backends run side by side, each on every k-th frame: MediaPipe releases the GIL, and
    two of them on alternate frames took 48 frames/s at 640x480 against 25 for one (measured on 2
    cores). A file read as fast as possible keeps one, so its poses are `extract`'s exactly, and
    so does a tracker of several persons (it follows each person from one frame to the next)."""
    if (is_file_source(source) and not realtime) or persons > 1:
        return 1
    return max(1, min(2, len(os.sched_getaffinity(0))))


def run_live(model: ShippedModel, cfg: LiveConfig, on_label: Callable[[Label], None],
             on_frame: FrameFn | None = None,
             backend_factory: Callable[[], PoseBackend] | None = None, stats: LiveStats | None = None
             ) -> dict[str, Any]:
    """Label `cfg.source` with `model` until it ends (or `on_frame` returns False, or Ctrl-C);
    `on_label(label)` for each labelled window, `on_frame(Shown(...))` for each processed frame.
    Returns the summary."""
    window, stride, backend_name = check_live(model, cfg)
    layout = model.card.input.layout["name"]
    stats = stats or LiveStats()
    confidence = check_confidence(*cfg.confidence)
    persons = live_persons(model, cfg)
    k = pose_workers(cfg.source, cfg.realtime, persons)
    extra = (persons,) if persons > 1 else ()
    make = backend_factory or (lambda: BACKENDS[backend_name](*confidence, *extra))
    with contextlib.ExitStack() as stack:  # closed in reverse: reader, workers, backends
        backends = [make() for _ in range(k)]  # one per worker: each tracks its own frames
        for b in backends:
            stack.callback(b.close)
        workers = [ThreadPoolExecutor(1, thread_name_prefix=f"skpipe-pose{i}") for i in range(k)]
        for w in workers:
            stack.callback(w.shutdown, wait=True, cancel_futures=True)
        slots = [Slots(persons) for _ in backends]  # each backend's ids -> the ring's M slots
        _warm(model, backends, slots, workers, window, layout)  # before the first frame arrives, not on it
        reader = FrameReader(cfg.source, cfg.realtime, cfg.timeout, cfg.max_frames)
        reader.open()
        stack.callback(reader.close)
        try:
            _loop(model, cfg, reader, backends, slots, workers, window, stride, layout, stats, on_label,
                  on_frame)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the run cleanly: the caller prints the summary and closes its outputs
        finally:
            stats.read, stats.dropped = reader.read, reader.dropped
    return stats.summary()


def _loop(model: ShippedModel, cfg: LiveConfig, reader: FrameReader, backends: list[PoseBackend],
          slots: list[Slots], workers: list[ThreadPoolExecutor], window: int, stride: int, layout: str,
          stats: LiveStats,
          on_label: Callable[[Label], None],
          on_frame: FrameFn | None) -> None:
    """Frames to the pose workers round-robin (at most one in flight each), their poses taken back
    in frame order into the ring, the model every `stride` frames."""
    ring: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque(maxlen=window)
    recent: collections.deque[np.ndarray] = collections.deque(maxlen=cfg.smooth)
    pending: collections.deque[Future[Posed]] = collections.deque()  # in frame order
    latest: Label | None = None
    stats.started = time.monotonic()

    def take(posed: Posed) -> bool:
        """One frame's pose into the ring; the model every stride frames; False: stop."""
        nonlocal latest
        index, arrived, rgb, kp, sc, seen, ms = posed
        stats.found += seen
        stats.pose_ms.append(ms)
        ring.append((kp, sc))
        stats.processed += 1
        if len(ring) == window and (stats.processed - window) % stride == 0:
            latest = _label(model, ring, (int(rgb.shape[0]), int(rgb.shape[1])), index, arrived, cfg,
                            recent, stats)
            on_label(latest)
        pose = kp.astype(np.float32) if seen else None
        return on_frame is None or on_frame(Shown(index, reader.fps, rgb, pose, latest))

    k = len(workers)
    for j, (index, arrived, rgb) in enumerate(reader.frames()):
        pending.append(workers[j % k].submit(_pose, backends[j % k], slots[j % k], layout, index, arrived,
                                             rgb))
        if len(pending) >= k and not take(pending.popleft().result()):
            return
    while pending:
        if not take(pending.popleft().result()):
            return


def _warm(model: ShippedModel, backends: list[PoseBackend], slots: list[Slots],
          workers: list[ThreadPoolExecutor], window: int, layout: str) -> None:
    """One blank frame through every pose backend and one blank window through the model: their
    first calls load and plan (measured: the first 10 s of a run dropped 13-22 % of a 30 fps
    source without this, later ones 1-4 %), and a camera's first seconds should not pay for it."""
    blank = np.zeros((480, 640, 3), np.uint8)
    done = [w.submit(_pose, b, s, layout, -1, time.monotonic(), blank)
            for w, b, s in zip(workers, backends, slots, strict=True)]
    v, m = _joints(layout), slots[0].persons
    ann = {"frame_dir": "warm", "label": 0, "keypoint": np.zeros((m, window, v, 2), np.float16),
           "keypoint_score": np.zeros((m, window, v), np.float16), "img_shape": (480, 640),
           "original_shape": (480, 640), "total_frames": window}
    list(model.windows(ann, window, window))
    for f in done:
        f.result()


Posed = tuple[int, float, np.ndarray, np.ndarray, np.ndarray, bool, float]  # index, arrival, rgb,
# keypoints (M, V, 2) and scores (M, V) float16 in the run's layout, whether someone was found, pose ms


class Slots:
    """The ring's M person slots for a tracking backend's ids: a new id takes a free slot (or the
    one whose id was seen longest ago), so a person keeps a slot while tracked."""

    def __init__(self, persons: int) -> None:
        self.persons = persons
        self.ids: list[int | None] = [None] * persons
        self.last: list[int] = [-1] * persons
        self.frame = 0

    def place(self, ids: np.ndarray) -> list[tuple[int, int]]:
        """(index in this frame's persons, slot) for the persons kept this frame."""
        self.frame += 1
        out: list[tuple[int, int]] = []
        for k, i in enumerate(int(v) for v in ids):
            if i in self.ids:
                s = self.ids.index(i)
            elif len(out) < self.persons:
                taken = {s for _, s in out}
                free = [s for s in range(self.persons) if s not in taken and self.ids[s] not in ids]
                if not free:
                    continue
                s = min(free, key=lambda s: self.last[s])
                self.ids[s] = i
            else:
                continue
            self.last[s] = self.frame
            out.append((k, s))
        return out


def _pose(backend: PoseBackend, slots: Slots, layout: str, index: int, arrived: float, rgb: np.ndarray
          ) -> Posed:
    """In a pose worker: one frame's person (the best, or with a tracking backend every tracked
    one in its slot) in `layout`, as `extract` stores it: (M, V, 2), zeros where nobody is."""
    t0 = time.monotonic()
    v, m = _joints(layout), slots.persons
    kp, sc = np.zeros((m, v, 2), np.float32), np.zeros((m, v), np.float32)
    if m == 1:
        found = frame_pose(backend, rgb)
        if found is not None:
            kp[0], sc[0] = to_layout(found[0], found[1], backend.layout, layout)
        seen = found is not None
    else:
        xy, score = backend(rgb)  # (P, V_b, 2), (P, V_b)
        for k, s in slots.place(getattr(backend, "ids", np.arange(len(xy)))):
            kp[s], sc[s] = to_layout(xy[k], score[k], backend.layout, layout)
        seen = len(xy) > 0
    kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)  # as extract does
    ms = (time.monotonic() - t0) * 1e3
    return index, arrived, rgb, kp.astype(np.float16), sc.astype(np.float16), seen, ms


def _joints(layout: str) -> int:
    from models.layouts import LAYOUTS

    return len(LAYOUTS[layout]["joints"])


Ring = collections.deque[tuple[np.ndarray, np.ndarray]]


def _label(model: ShippedModel, ring: Ring, shape: tuple[int, int], index: int, arrived: float,
           cfg: LiveConfig, recent: collections.deque[np.ndarray],
           stats: LiveStats) -> Label:
    """The predictor on the ring buffer as one annotation (the window ending at frame `index`)."""
    t0 = time.monotonic()
    kp = np.stack([k for k, _ in ring], axis=1)  # (M, W, V, 2)
    sc = np.stack([s for _, s in ring], axis=1)  # (M, W, V)
    ann = {"frame_dir": "live", "label": 0, "keypoint": kp, "keypoint_score": sc, "img_shape": shape,
           "original_shape": shape, "total_frames": len(ring)}
    ((_, _, p),) = list(model.windows(ann, len(ring), len(ring)))
    recent.append(p)
    p = np.mean(recent, axis=0)
    now = time.monotonic()
    stats.model_ms.append((now - t0) * 1e3)
    latency = (now - arrived) * 1e3
    stats.latency_ms.append(latency)
    return {"frame": int(index), "time": round(now - stats.started, 3),
            "top": top_classes(p, model.card.class_names, cfg.top), "latency_ms": round(latency, 1)}

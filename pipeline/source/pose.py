"""Pose backends: one RGB frame in, the people's landmarks out, on a CPU, with nothing downloaded.

A backend is a small object (`PoseBackend`): its native layout, and a call that takes an RGB
frame (H, W, 3) uint8 and returns keypoints (P, V, 2) in pixels and scores (P, V) in 0..1 for
the P people it found (P = 0 when nobody). A multi-person backend (an ONNX detector plus a pose
model) fits the same interface; `BACKENDS` names the ones built in. A backend keeps state
between the frames of one video (tracking), so `extract` opens a fresh one for every video.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from pipeline import SkpipeError

# MediaPipe's minimum detection and tracking confidences, chosen on the shared videos: on hand.mp4
# at 320x180, 0.5 / 0.5 found a hand in 134 of 180 frames, 0.3 / 0.3 in 146 (0.2 / 0.2: 148); the
# body video finds its person at every setting; a 340x256 body video went from 80 % to 89 %
CONFIDENCE = (0.3, 0.3)

VIDEO_EXTRA = "pip install 'skpipe[onnx,video]' (the extras together keep protobuf below 5)"


class PoseBackend(Protocol):
    layout: str  # the layout its landmarks are in (models.layouts)
    max_persons: int

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 -> keypoints (P, V, 2) float32 pixels, scores (P, V) float32. A
        tracking backend also sets `ids` (P,): each person's id, stable across frames."""
        ...

    def close(self) -> None: ...


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Silence what MediaPipe's C++ (TFLite, absl) prints on file descriptor 2 while `block`
    runs: users should see skpipe's lines, not 'Created TensorFlow Lite XNNPACK delegate'.
    Only worker processes of `extract` call this: it swaps the process's stderr descriptor."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipePose:
    """MediaPipe's pose landmarker (the `solutions.pose` graph of mediapipe 0.10.14, whose model
    ships inside the wheel): one person per frame, 33 landmarks, visibility as the score."""

    layout = "mediapipe33"
    max_persons = 1

    def __init__(self, detection: float = CONFIDENCE[0], tracking: float = CONFIDENCE[1]) -> None:
        mp = import_mediapipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protobuf's deprecation notes from inside mediapipe
            self._pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                                enable_segmentation=False, min_detection_confidence=detection,
                                                min_tracking_confidence=tracking)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = self._pose.process(rgb).pose_landmarks
        if found is None:
            return np.zeros((0, 33, 2), np.float32), np.zeros((0, 33), np.float32)
        lm = np.array([(p.x, p.y, p.visibility) for p in found.landmark], np.float32)  # (33, 3)
        xy = lm[None, :, :2] * np.array([w, h], np.float32)  # (1, 33, 2) pixels
        return xy, np.clip(lm[None, :, 2], 0.0, 1.0)  # (1, 33)

    def close(self) -> None:
        self._pose.close()


class MediaPipeHands:
    """MediaPipe Hands (its models ship inside the mediapipe 0.10.14 wheel): up to `max_hands`
    hands per frame, 21 landmarks each (PYSKL's `handmp`), the hand's handedness confidence as
    every landmark's score (Hands gives no per-landmark visibility)."""

    layout = "handmp"

    def __init__(self, detection: float = CONFIDENCE[0], tracking: float = CONFIDENCE[1],
                 max_hands: int = 2, static: bool = False) -> None:
        mp = import_mediapipe()
        self.max_persons = max_hands
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._hands = mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=max_hands,
                                                   model_complexity=1, min_detection_confidence=detection,
                                                   min_tracking_confidence=tracking)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = self._hands.process(rgb)
        hands = found.multi_hand_landmarks or []
        if not hands:
            return np.zeros((0, 21, 2), np.float32), np.zeros((0, 21), np.float32)
        xy = np.array([[(p.x, p.y) for p in hand.landmark] for hand in hands], np.float32)  # (P, 21, 2)
        conf = [c.classification[0].score for c in (found.multi_handedness or [])]
        conf = conf if len(conf) == len(hands) else [1.0] * len(hands)
        scores = np.repeat(np.clip(np.array(conf, np.float32), 0.0, 1.0)[:, None], 21, axis=1)  # (P, 21)
        return xy * np.array([w, h], np.float32), scores

    def close(self) -> None:
        self._hands.close()


def import_mediapipe() -> Any:
    """mediapipe, or one line naming the extra that brings it, or what in the environment breaks
    it (a protobuf another install upgraded: mediapipe then fails on every video with an
    AttributeError that reads as if the video were at fault)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mediapipe
    except ImportError:
        raise SkpipeError(f"pose extraction needs the video extra: {VIDEO_EXTRA}") from None
    problem = protobuf_problem()
    if problem:
        raise SkpipeError(problem)
    return mediapipe


def protobuf_problem(version: Callable[[str], str] | None = None,
                     requires: Callable[[str], list[str] | None] | None = None) -> str:
    """'' when the installed protobuf is one mediapipe accepts, else one line saying what to do."""
    import importlib.metadata as meta

    version, requires = version or meta.version, requires or meta.requires
    try:
        from packaging.requirements import Requirement

        wanted = [Requirement(r) for r in requires("mediapipe") or [] if r.startswith("protobuf")]
        found = version("protobuf")
        bad = [r for r in wanted if not r.specifier.contains(found, prereleases=True)]
        if not bad:
            return ""
        mp = version("mediapipe")
    except Exception:  # no packaging, no metadata: nothing to say
        return ""
    return (f"mediapipe {mp} needs protobuf {bad[0].specifier}, found {found} (another "
            "install upgraded it): pip install 'protobuf<5', or install the extras together, "
            "pip install 'skpipe[onnx,video]'")


def import_cv2() -> Any:
    """OpenCV (video decoding and writing), or one line naming the extra that brings it."""
    try:
        import cv2
    except ImportError:
        raise SkpipeError(f"reading or writing videos needs the video extra: {VIDEO_EXTRA}") from None
    return cv2


def _blazepose(detection: float = CONFIDENCE[0], tracking: float = CONFIDENCE[1], persons: int = 2
               ) -> PoseBackend:
    from pipeline.source.blazepose import BlazePoseMulti

    return BlazePoseMulti(detection, tracking, max_persons=persons)


# name -> backend(detection, tracking[, persons])
BACKENDS: dict[str, Callable[..., PoseBackend]] = {"mediapipe": MediaPipePose,
                                                   "mediapipe-hands": MediaPipeHands,
                                                   "blazepose-multi": _blazepose}
MULTI_BACKEND = "blazepose-multi"  # several persons per frame, tracked (`--persons N`, body layouts)
MAX_PERSONS = 8  # --persons: the tracker's cost grows with each person kept
DEFAULT_BACKEND = "mediapipe"
# the backend that gives each extractable layout (its own, or one mapped from it)
LAYOUT_BACKENDS = {"coco17": "mediapipe", "mediapipe33": "mediapipe", "handmp": "mediapipe-hands"}


def check_confidence(detection: float, tracking: float) -> tuple[float, float]:
    """--min-detection / --min-tracking, each in [0, 1]."""
    for name, v in (("--min-detection", detection), ("--min-tracking", tracking)):
        if not 0.0 <= v <= 1.0:
            raise SkpipeError(f"{name} must be in [0, 1], got {v}")
    return float(detection), float(tracking)


def backend_for(layout: str) -> str:
    """The pose backend of a layout, or one line naming the layouts videos can give."""
    if layout not in LAYOUT_BACKENDS:
        raise SkpipeError(f"no pose backend gives {layout} skeletons from videos; one of "
                          f"{', '.join(LAYOUT_BACKENDS)} can be extracted")
    return LAYOUT_BACKENDS[layout]

"""Several persons per frame with nothing downloaded: BlazePose's person detector and its full
landmark model, both inside the mediapipe 0.10.14 wheel, run under LiteRT (`ai-edge-litert`;
MediaPipe's Tasks API refuses these files: they carry no metadata), each person carried from
frame to frame by `pipeline.source.tracking.Tracker`.

Facts of the two models (MediaPipe's pose_detection and pose_landmark graphs):
- `pose_detection.tflite`: 224x224 RGB in [-1, 1], the frame letterboxed into it; 2,254 SSD
  anchors (strides 8, 16, 32: 28x28x2 + 14x14x2 + 7x7x6, centres at cell middles, unit size);
  each row: box centre x, y, width, height, then 4 keypoints x, y, all in 224-pixel units
  relative to its anchor; the score is the sigmoid of the second output. Keypoint 0 is the hip
  centre, keypoint 1 fixes the body's size and rotation.
- `pose_landmark_full.tflite`: a 256x256 RGB crop in [0, 1]; 39 landmarks x (x, y, z in crop
  pixels, visibility and presence as logits): the 33 pose landmarks, then auxiliary ones of
  which 33 (hip centre) and 34 (size and rotation) give the next frame's region; a pose-presence
  score in the second output.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from pipeline import SkpipeError
from pipeline.source.tracking import Person, Region, Tracker, TrackerConfig, crop_matrix, iou, to_image

DETECT_SIZE, LANDMARK_SIZE = 224, 256
DETECT_SCORE = 0.5  # MediaPipe's min_score_thresh for the pose detector
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold
# the detector every 5th frame (and whenever no track is live): on the shared two-person video
# at 1080p both persons were found in 71 of 72 frames either way, at 13.3 frames/s against 8.1
REDETECT = 5
LITERT_EXTRA = "pip install ai-edge-litert (Apache-2.0; MediaPipe's own runtime for its .tflite files)"


def _interpreter(name: str) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise SkpipeError(f"several persons per frame need LiteRT: {LITERT_EXTRA}") from None
    from pipeline.source.pose import import_mediapipe

    folder = os.path.dirname(import_mediapipe().__file__)
    path = os.path.join(folder, "modules", *name.split("/"))
    if not os.path.isfile(path):
        raise SkpipeError(f"mediapipe's wheel lacks {name}: reinstall the video extra")
    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    return it


@lru_cache(maxsize=1)
def anchors() -> np.ndarray:
    """(2254, 2) SSD anchor centres in [0, 1] (x, y), in the detector's output order."""
    out = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        n = DETECT_SIZE // stride
        for y in range(n):
            for x in range(n):
                out += [((x + 0.5) / n, (y + 0.5) / n)] * per_cell
    return np.array(out, np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100, 100)))


class BlazePoseMulti:
    """Up to `max_persons` persons per frame, 33 landmarks each (`mediapipe33`), visibility as
    the score; `ids` holds the tracker's id of each person the last call returned."""

    layout = "mediapipe33"

    def __init__(self, detection: float = DETECT_SCORE, tracking: float = 0.5, max_persons: int = 2,
                 redetect: int = REDETECT) -> None:
        self._det = _interpreter("pose_detection/pose_detection.tflite")
        self._lmk = _interpreter("pose_landmark/pose_landmark_full.tflite")
        self.detection, self.max_persons = detection, max_persons
        cfg = TrackerConfig(presence=tracking, redetect=redetect, max_tracks=max(2 * max_persons, 4))
        self._tracker = Tracker(self._landmarks, self._detect, cfg)
        self.ids = np.zeros(0, np.int64)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tracks = self._tracker(rgb)
        self.ids = np.array([t.id for t in tracks], np.int64)
        if not tracks:
            return np.zeros((0, 33, 2), np.float32), np.zeros((0, 33), np.float32)
        xy = np.stack([t.person.xy for t in tracks]).astype(np.float32)  # (P, 33, 2)
        return xy, np.stack([t.person.score for t in tracks]).astype(np.float32)  # (P, 33)

    def close(self) -> None:
        self._det = self._lmk = None

    def _run(self, it: Any, x: np.ndarray) -> list[np.ndarray]:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return [it.get_tensor(o["index"]) for o in it.get_output_details()]

    def _detect(self, rgb: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
        """Persons in the frame: (score, box, hip centre, size point) in pixels, after NMS."""
        import cv2

        h, w = rgb.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top:top + h, left:left + w] = rgb
        x = cv2.resize(square, (DETECT_SIZE, DETECT_SIZE), interpolation=cv2.INTER_AREA)
        x = (x.astype(np.float32) / 127.5 - 1.0)[None]  # (1, 224, 224, 3) in [-1, 1]
        outs = self._run(self._det, x)
        raw = next(o for o in outs if o.shape[-1] == 12)[0]  # (2254, 12)
        score = _sigmoid(next(o for o in outs if o.shape[-1] == 1)[0, :, 0])  # (2254,)
        keep = np.flatnonzero(score >= self.detection)
        a = anchors()[keep]  # (n, 2)
        r = raw[keep].astype(np.float64) / DETECT_SIZE  # (n, 12) in [0, 1] units
        centre = r[:, :2] + a
        half = r[:, 2:4] / 2
        kp = r[:, 4:12].reshape(-1, 4, 2) + a[:, None]  # (n, 4, 2)

        def px(p: np.ndarray) -> np.ndarray:  # letterboxed [0, 1] -> frame pixels
            return p * side - [left, top]

        found: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
        for i in np.argsort(-score[keep]):
            box = np.concatenate([px(centre[i] - half[i]), px(centre[i] + half[i])])
            if all(iou(box, f[1]) <= NMS_IOU for f in found):
                found.append((float(score[keep][i]), box, px(kp[i, 0]), px(kp[i, 1])))
        return found

    def _landmarks(self, rgb: np.ndarray, region: Region) -> Person | None:
        """The person the landmark model finds in `region`, in frame pixels, or None."""
        import cv2

        if not np.isfinite([region.x, region.y, region.size, region.angle]).all() or region.size < 8:
            return None
        m = crop_matrix(region, LANDMARK_SIZE)  # crop -> frame
        crop = cv2.warpAffine(rgb, m, (LANDMARK_SIZE, LANDMARK_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        outs = self._run(self._lmk, (crop.astype(np.float32) / 255.0)[None])
        lm = next(o for o in outs if o.shape[-1] == 195)[0].reshape(39, 5).astype(np.float64)
        flag = float(next(o for o in outs if o.shape == (1, 1))[0, 0])
        presence = flag if 0.0 <= flag <= 1.0 else float(_sigmoid(np.array(flag)))
        xy = to_image(lm[:, :2], region, LANDMARK_SIZE)  # (39, 2) frame pixels
        return Person(xy[:33], _sigmoid(lm[:33, 3]), xy[33], xy[34], presence)

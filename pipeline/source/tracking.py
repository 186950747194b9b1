"""Everyone in the frame: regions of interest and the tracker that carries each person from
frame to frame by their own landmarks (MediaPipe's single-person rule, kept per person), with
the detector only adding persons that no track covers. Pure numpy: the detector and the
landmark model are passed in (`pipeline.source.blazepose` gives BlazePose's under LiteRT), so
the tracker is tested on synthetic people.

A `Region` is a rotated square in image pixels: centre, side and angle. From two points, a
body's centre (the hips) and a point whose distance fixes the body's size and whose direction
its rotation (BlazePose's detector keypoints 0, 1 and its auxiliary landmarks 33, 34), the side
is twice their distance times 1.25 and the angle turns the pair upright (MediaPipe's
AlignmentPointsRects and RectTransformation with scale 1.25).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

ROI_SCALE = 1.25  # MediaPipe's pose ROI: the aligned square enlarged by a quarter


@dataclass(frozen=True)
class Region:
    """A rotated square: centre (x, y) and side in pixels, angle in radians (0: upright)."""

    x: float
    y: float
    size: float
    angle: float = 0.0

    def box(self) -> np.ndarray:
        """(4,) x0, y0, x1, y1: the axis-aligned square of the same centre and side."""
        h = self.size / 2
        return np.array([self.x - h, self.y - h, self.x + h, self.y + h], np.float64)


def region_from_points(centre: np.ndarray, top: np.ndarray, scale: float = ROI_SCALE) -> Region:
    """The region of a body whose hips are at `centre` and whose size / rotation point is `top`
    (both (2,) pixels): side 2 * |top - centre| * scale, turned so that centre -> top points up."""
    dx, dy = float(top[0] - centre[0]), float(top[1] - centre[1])
    angle = math.pi / 2 - math.atan2(-dy, dx)  # image y points down
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    return Region(float(centre[0]), float(centre[1]), 2.0 * math.hypot(dx, dy) * scale, angle)


def crop_matrix(region: Region, side: int) -> np.ndarray:
    """(2, 3) affine taking crop pixels (side x side) to image pixels: the crop shows the region
    upright (`to_crop` is its inverse)."""
    c, s = math.cos(region.angle), math.sin(region.angle)
    k = region.size / side
    # crop (u, v) -> image: centre + R(angle) @ ((u, v) - side / 2) * k
    return np.array([[c * k, -s * k, region.x - k * side / 2 * (c - s)],
                     [s * k, c * k, region.y - k * side / 2 * (s + c)]], np.float64)


def to_image(points: np.ndarray, region: Region, side: int) -> np.ndarray:
    """(..., 2) crop pixels -> image pixels."""
    m = crop_matrix(region, side)
    return points @ m[:, :2].T + m[:, 2]


def to_crop(points: np.ndarray, region: Region, side: int) -> np.ndarray:
    """(..., 2) image pixels -> crop pixels (the inverse of `to_image`)."""
    m = crop_matrix(region, side)
    inv = np.linalg.inv(m[:, :2])
    return (points - m[:, 2]) @ inv.T


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (4,) x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _inside(point: np.ndarray, box: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def points_box(xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(4,) box of the seen points of (V, 2) `xy`."""
    pts = xy[seen] if seen.any() else xy
    return np.array([*pts.min(0), *pts.max(0)], np.float64)


@dataclass(frozen=True)
class Person:
    """What the landmark model found in a region: landmarks (V, 2) pixels, scores (V,), the two
    alignment points for the next region, and its presence (0..1)."""

    xy: np.ndarray
    score: np.ndarray
    centre: np.ndarray
    top: np.ndarray
    presence: float


@dataclass
class Track:
    id: int
    region: Region
    person: Person
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    missed: int = 0  # frames since the landmarks were last found
    total: float = 0.0  # summed landmark scores: PYSKL keeps the highest totals

    def box(self) -> np.ndarray:
        return _box(self.person)


def _box(p: Person) -> np.ndarray:
    return points_box(p.xy, p.score > 0.5)


LandmarkFn = Callable[[np.ndarray, Region], Person | None]  # (frame, region) -> a person or None
DetectFn = Callable[[np.ndarray], list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]]
# frame -> detections (score, box (4,), centre (2,), top (2,)) in pixels


@dataclass(frozen=True)
class TrackerConfig:
    presence: float = 0.5  # a track's landmarks count where the model's presence is above this
    redetect: int = 1  # run the detector every k frames (and whenever no track is live)
    overlap: float = 0.3  # a detection overlapping a track's box this much is that track's person
    duplicate: float = 0.5  # two tracks whose boxes overlap this much follow one person: one goes
    patience: int = 15  # frames a lost track waits (at its predicted place) to be found again
    max_tracks: int = 8  # tracks at most, so a crowd cannot make a frame unbounded in time


class Tracker:
    """Every person of a video, each carried by its own landmarks; ids stable across frames."""

    def __init__(self, landmarks: LandmarkFn, detect: DetectFn, cfg: TrackerConfig = TrackerConfig()) -> None:
        self.landmarks, self.detect, self.cfg = landmarks, detect, cfg
        self.tracks: list[Track] = []
        self.frame = 0
        self._next_id = 0

    def __call__(self, rgb: np.ndarray) -> list[Track]:
        """The tracks found in this frame (their landmarks this frame), ordered by id."""
        live = {t.id: t for t in self.tracks}
        predicted = {i: replace(t.region, x=t.region.x + t.velocity[0], y=t.region.y + t.velocity[1])
                     for i, t in live.items()}
        found: dict[int, Person] = {}
        for i, region in predicted.items():
            p = self.landmarks(rgb, region)
            if p is not None and p.presence >= self.cfg.presence:
                found[i] = p
        self._drop_duplicates(found, predicted)
        for i, t in live.items():
            if i in found:
                self._commit(t, found[i])
            else:  # lost: looked for next frame where it was heading
                t.missed, t.region = t.missed + 1, predicted[i]
        self.tracks = [t for t in self.tracks if t.missed <= self.cfg.patience]
        kept = [live[i] for i in found]
        if self.frame % self.cfg.redetect == 0 or not kept:
            kept += self._add_new(rgb, kept)
        self.frame += 1
        return sorted(kept, key=lambda t: t.id)

    def _commit(self, t: Track, p: Person) -> None:
        nxt = region_from_points(p.centre, p.top)
        step = (np.array([nxt.x, nxt.y]) - [t.region.x, t.region.y]) / (1 + t.missed)
        t.velocity = 0.5 * t.velocity + 0.5 * step
        t.region, t.person, t.missed = nxt, p, 0
        t.total += float(p.score.sum())

    def _drop_duplicates(self, found: dict[int, Person], predicted: dict[int, Region]) -> None:
        """Two tracks whose landmarks landed on one person (their regions met, as when people
        cross): the one that found it farther from where it expected it loses it this frame."""
        for a in sorted(found):
            for b in sorted(found):
                if not (a in found and b in found and b > a):
                    continue
                if iou(_box(found[a]), _box(found[b])) > self.cfg.duplicate:
                    err = {i: float(np.hypot(*(found[i].centre - [predicted[i].x, predicted[i].y])))
                           for i in (a, b)}
                    del found[max((a, b), key=lambda i: (err[i], i))]

    def _add_new(self, rgb: np.ndarray, found: list[Track]) -> list[Track]:
        """Detections that no live track covers become tracks (a recently lost track whose last
        place the detection overlaps takes it back under its own id)."""
        added: list[Track] = []
        boxes = [t.box() for t in found]
        for _score, box, centre, top in sorted(self.detect(rgb), key=lambda d: -d[0]):
            if len(self.tracks) >= self.cfg.max_tracks and not any(t.missed for t in self.tracks):
                break
            if any(iou(box, b) > self.cfg.overlap or _inside(centre, b) for b in boxes):
                continue  # a person a track already follows
            region = region_from_points(centre, top)
            p = self.landmarks(rgb, region)
            if p is None or p.presence < self.cfg.presence:
                continue
            pbox = points_box(p.xy, p.score > 0.5)
            if any(iou(pbox, b) > self.cfg.duplicate for b in boxes):
                continue
            near = {t.id: iou(t.region.box(), region.box()) for t in self.tracks if t.missed}
            lost = [t for t in self.tracks if near.get(t.id, 0.0) > self.cfg.overlap]
            if lost:  # found again where it was lost: its own id
                t = max(lost, key=lambda t: near[t.id])
                t.region, t.person, t.missed = region_from_points(p.centre, p.top), p, 0
                t.velocity = np.zeros(2)
                t.total += float(p.score.sum())
            else:
                if len(self.tracks) >= self.cfg.max_tracks:
                    self.tracks.remove(max(self.tracks, key=lambda t: t.missed))
                t = Track(self._next_id, region_from_points(p.centre, p.top), p)
                self._next_id += 1
                self.tracks.append(t)
                t.total += float(p.score.sum())
            added.append(t)
            boxes.append(pbox)
        return added
